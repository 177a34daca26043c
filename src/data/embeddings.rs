//! Pretrained word vectors (word2vec / GloVe text files) and filling an embedding table with
//! them.
//!
//! File format: one `word v1 v2 ... vd` per line, fields separated by spaces or tabs,
//! optionally preceded by a word2vec header line `count dim`. Every row must have `d`
//! finite floats (`d` from the header, else from the first row); anything else is an error
//! naming the file, the line and the offending value. Blank lines are skipped; if a word
//! appears twice, its first vector is used. The file is read line by line and only the
//! vectors of words the caller keeps are stored, so a large file costs little memory.
//!
//! ```
//! use wgrnn::data::embeddings::vectors_from_str;
//!
//! let v = vectors_from_str("glove.txt", "2 3\nthe 0.1 0.2 0.3\ncat 1 2 3\n", |_| true).unwrap();
//! assert_eq!(v.dim(), 3);
//! assert_eq!(v.get("cat"), Some(&[1.0f32, 2.0, 3.0][..]));
//! ```

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

use crate::backend::Real;
use crate::data::error::DataError;
use crate::data::vocab::{RESERVED, Vocabulary};

/// Word vectors read from a file (the kept words only). Read-only, so the word index always
/// agrees with the rows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Vectors {
    dim: usize,
    words: Vec<String>,
    values: Vec<f32>,
    rows_read: usize,
    index: HashMap<String, usize>,
}

impl Vectors {
    /// Vectors from words and their `[words.len(), dim]` values (to write a file, or as test
    /// data); a repeated word keeps its first vector. Words must be non-empty and free of
    /// whitespace, since the file separates fields by whitespace.
    pub fn new(dim: usize, words: Vec<String>, values: Vec<f32>) -> Result<Self, DataError> {
        if dim == 0 || values.len() != words.len() * dim {
            return Err(DataError::invalid(
                "Vectors::new",
                format!(
                    "{} values for {} words of width {dim}",
                    values.len(),
                    words.len()
                ),
            ));
        }
        if let Some(w) = words
            .iter()
            .find(|w| w.is_empty() || w.contains(char::is_whitespace))
        {
            return Err(DataError::invalid(
                "Vectors::new",
                format!("word {w:?} is empty or holds whitespace, which a vector file cannot"),
            ));
        }
        let mut index = HashMap::new();
        for (i, w) in words.iter().enumerate() {
            index.entry(w.clone()).or_insert(i);
        }
        Ok(Vectors {
            dim,
            rows_read: words.len(),
            words,
            values,
            index,
        })
    }

    /// Width of every vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The kept words, in file order.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// Their vectors, `[words().len(), dim()]` row-major.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Number of vector rows the file held (kept or not).
    pub fn rows_read(&self) -> usize {
        self.rows_read
    }

    /// The vector of `word`, if it was kept.
    pub fn get(&self, word: &str) -> Option<&[f32]> {
        let i = *self.index.get(word)?;
        Some(&self.values[i * self.dim..(i + 1) * self.dim])
    }

    /// The vectors as a text file, with a word2vec header line when `header` is true. Floats
    /// are written so they read back to the same `f32`.
    pub fn to_text(&self, header: bool) -> String {
        let mut s = String::new();
        if header {
            s += &format!("{} {}\n", self.words.len(), self.dim);
        }
        for (w, row) in self.words.iter().zip(self.values.chunks(self.dim)) {
            s += w;
            for v in row {
                s += &format!(" {v}");
            }
            s.push('\n');
        }
        s
    }

    /// Writes [`Vectors::to_text`] to `path`.
    pub fn save(&self, path: &Path, header: bool) -> Result<(), DataError> {
        std::fs::write(path, self.to_text(header)).map_err(|source| DataError::Io {
            file: path.display().to_string(),
            source,
        })
    }
}

/// Reads a word-vector file, keeping the vectors of the words for which `keep` is true
/// (every row is still checked).
pub fn read_vectors(path: &Path, keep: impl FnMut(&str) -> bool) -> Result<Vectors, DataError> {
    let name = path.display().to_string();
    let io = |source| DataError::Io {
        file: name.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    parse(&name, std::io::BufReader::new(file), keep)
}

/// [`read_vectors`] on text already in memory; `name` is the file named in errors.
pub fn vectors_from_str(
    name: &str,
    text: &str,
    keep: impl FnMut(&str) -> bool,
) -> Result<Vectors, DataError> {
    parse(name, text.as_bytes(), keep)
}

fn parse(
    name: &str,
    mut reader: impl BufRead,
    mut keep: impl FnMut(&str) -> bool,
) -> Result<Vectors, DataError> {
    let mut out = Vectors::default();
    let mut header: Option<usize> = None;
    let mut dim: Option<usize> = None;
    let (mut buf, mut offset, mut line) = (Vec::new(), 0usize, 0usize);
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|source| DataError::Io {
                file: name.into(),
                source,
            })?;
        if n == 0 {
            break;
        }
        line += 1;
        let text = std::str::from_utf8(&buf).map_err(|e| DataError::InvalidUtf8 {
            file: name.into(),
            line,
            offset: offset + e.valid_up_to(),
        })?;
        offset += n;
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        if line == 1
            && let [count, d] = fields[..]
            && let (Ok(count), Ok(d)) = (count.parse::<usize>(), d.parse::<usize>())
        {
            if d == 0 {
                let why = "word2vec header `count dim` has dimension 0";
                return Err(DataError::malformed(name, line, why, text.trim_end()));
            }
            header = Some(count);
            dim = Some(d);
            continue;
        }
        let word = fields[0];
        let values = &fields[1..];
        let d = *dim.get_or_insert(values.len());
        if values.len() != d || d == 0 {
            return Err(DataError::WrongWidth {
                file: name.into(),
                line,
                word: word.into(),
                expected: d,
                got: values.len(),
            });
        }
        out.rows_read += 1;
        let wanted = !out.index.contains_key(word) && keep(word);
        for (k, v) in values.iter().enumerate() {
            let x: f32 = v
                .parse()
                .ok()
                .filter(|x: &f32| x.is_finite())
                .ok_or_else(|| DataError::BadNumber {
                    file: name.into(),
                    line,
                    field: k + 2,
                    value: (*v).into(),
                    expected: "a finite float",
                })?;
            if wanted {
                out.values.push(x);
            }
        }
        if wanted {
            out.index.insert(word.into(), out.words.len());
            out.words.push(word.into());
        }
    }
    if let Some(count) = header
        && count != out.rows_read
    {
        let why = format!(
            "the header announces {count} vectors but the file has {}",
            out.rows_read
        );
        return Err(DataError::malformed(
            name,
            1,
            &why,
            &format!("{count} {}", dim.unwrap_or(0)),
        ));
    }
    match dim {
        Some(d) if out.rows_read > 0 => out.dim = d,
        _ => {
            return Err(DataError::Empty {
                file: name.into(),
                why: "no word vectors".into(),
            });
        }
    }
    Ok(out)
}

/// How many vocabulary tokens got a pretrained vector.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FillReport {
    /// Tokens whose row was overwritten with their pretrained vector.
    pub found: usize,
    /// Tokens without a vector (their rows keep their initial values).
    pub missing: usize,
}

/// Overwrites the row of every vocabulary token that has a pretrained vector in the
/// embedding table `matrix` (`[rows, dim]` row-major, `rows >= vocab.len()`, e.g. the
/// model's `embedding.weight`); other rows, `<pad>` and `<other>` keep their values. Words
/// are matched exactly (a lower-cased vocabulary needs lower-cased vectors such as GloVe's).
pub fn fill_embedding<T: Real>(
    vectors: &Vectors,
    vocab: &Vocabulary,
    matrix: &mut [T],
    dim: usize,
) -> Result<FillReport, DataError> {
    if dim != vectors.dim {
        return Err(DataError::invalid(
            "fill_embedding",
            format!(
                "the table is {dim} wide but the vectors have {}",
                vectors.dim
            ),
        ));
    }
    if dim == 0 || !matrix.len().is_multiple_of(dim) || matrix.len() / dim < vocab.len() {
        return Err(DataError::invalid(
            "fill_embedding",
            format!(
                "a table of {} values is not [rows >= {}, {dim}]",
                matrix.len(),
                vocab.len()
            ),
        ));
    }
    let mut report = FillReport::default();
    for id in RESERVED..vocab.len() {
        let vector = vocab.token(id as u32).and_then(|t| vectors.get(t));
        match vector {
            Some(v) => {
                for (dst, &x) in matrix[id * dim..(id + 1) * dim].iter_mut().zip(v) {
                    *dst = T::of(x as f64);
                }
                report.found += 1;
            }
            None => report.missing += 1,
        }
    }
    Ok(report)
}
