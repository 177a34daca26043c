//! Task data: readers, tokenisers, vocabularies, batching and metrics, plus the synthetic
//! slot-filling generator.
//!
//! The path of real data to the model, one module per step:
//! 1. [`formats`] (plain text, `label TAB text`) and [`conll`] (tagging) read files, and
//!    [`tokenize`] splits text into tokens;
//! 2. [`vocab`] maps tokens to ids (with an "other" id for the rest), [`labels`] maps tags
//!    and classes to class ids, [`trigram`] encodes words as bags of letter trigrams, and
//!    [`embeddings`] fills an embedding table from pretrained vectors;
//! 3. [`example`] pairs ids with targets (and cuts language-model streams and long
//!    sequences), [`batching`] schedules epochs and builds padded time-major batches;
//! 4. [`metrics`] (with [`bio`] spans) scores predictions.
//!
//! Every file error is a [`error::DataError`] naming the file and the 1-based line.

pub mod batching;
pub mod bio;
pub mod conll;
pub mod embeddings;
pub mod error;
pub mod example;
pub mod formats;
pub mod labels;
pub mod metrics;
pub mod slots;
pub mod tokenize;
pub mod trigram;
pub mod vocab;
