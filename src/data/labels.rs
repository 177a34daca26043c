//! The label vocabulary of a tagging or classification head: exact (no "other" id, since a
//! label the head has no class for cannot be scored) and sorted, so the same training
//! labels always give the same class ids.
//!
//! ```
//! use wgrnn::data::labels::LabelVocab;
//!
//! let labels = LabelVocab::from_labels(["O", "B-LOC", "O", "I-LOC"]);
//! assert_eq!(labels.labels(), ["B-LOC", "I-LOC", "O"]);
//! assert_eq!(labels.id("O"), Some(2));
//! assert_eq!(labels.id("B-PER"), None);
//! ```

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::data::error::DataError;

/// Labels with class ids `0..len()` in ascending string order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "Vec<String>", try_from = "Vec<String>")]
pub struct LabelVocab {
    labels: Vec<String>,
    index: HashMap<String, u32>,
}

impl From<LabelVocab> for Vec<String> {
    fn from(v: LabelVocab) -> Self {
        v.labels
    }
}

impl TryFrom<Vec<String>> for LabelVocab {
    type Error = DataError;
    /// Accepts a list that is strictly ascending (as written by serialisation), so that the
    /// class ids a saved run used are the ones it gets back.
    fn try_from(labels: Vec<String>) -> Result<Self, DataError> {
        if let Some(w) = labels.windows(2).find(|w| w[0] >= w[1]) {
            return Err(DataError::invalid(
                "label vocabulary",
                format!(
                    "labels must be unique and sorted; `{}` before `{}`",
                    w[0], w[1]
                ),
            ));
        }
        Ok(LabelVocab::from_sorted(labels))
    }
}

impl LabelVocab {
    /// The distinct labels of `labels`, sorted.
    pub fn from_labels<I, S>(labels: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let set: BTreeSet<String> = labels.into_iter().map(|s| s.as_ref().to_string()).collect();
        LabelVocab::from_sorted(set.into_iter().collect())
    }

    fn from_sorted(labels: Vec<String>) -> Self {
        let index = labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.clone(), i as u32))
            .collect();
        LabelVocab { labels, index }
    }

    /// The class id of `label`, if known.
    pub fn id(&self, label: &str) -> Option<u32> {
        self.index.get(label).copied()
    }

    /// The class id of `label`, or an [`DataError::UnknownLabel`] naming it and where it was
    /// read (`file`, 1-based `line`).
    pub fn require(&self, label: &str, file: &str, line: usize) -> Result<u32, DataError> {
        self.id(label).ok_or_else(|| DataError::UnknownLabel {
            file: file.into(),
            line,
            label: label.into(),
            known: self.labels.len(),
        })
    }

    /// The label of class `id`, if it exists.
    pub fn label(&self, id: u32) -> Option<&str> {
        self.labels.get(id as usize).map(String::as_str)
    }

    /// All labels in id order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Number of labels: the `classes` of the head.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}
