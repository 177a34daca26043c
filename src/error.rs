//! Typed errors that callers branch on; the CLI turns them into messages with `anyhow`.

use thiserror::Error;

/// A network description that cannot be built.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ConfigError {
    /// The TOML text did not parse.
    #[error("network config does not parse: {0}")]
    Parse(String),
    /// A field holds a value the engine cannot use.
    #[error("network config field `{field}`: {why}")]
    Invalid {
        /// Path of the field, e.g. `layers[1].hidden`.
        field: String,
        /// What is wrong with it.
        why: String,
    },
    /// The parameters do not fit in one buffer of the device.
    #[error(
        "the network's {params} parameters take {bytes} bytes; this GPU binds at most {limit} \
         bytes in one buffer (use fewer or smaller layers)"
    )]
    TooLarge {
        /// Parameter count.
        params: usize,
        /// Their size.
        bytes: u64,
        /// The device's largest storage binding.
        limit: u64,
    },
}

/// A batch, state or gradient whose shape or contents do not fit the model.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum InputError {
    /// The batch holds no sequences.
    #[error("empty batch: a batch needs at least one sequence")]
    EmptyBatch,
    /// A sequence length is zero or longer than the padded time dimension.
    #[error("sequence {index} has length {length}; lengths must be in 1..={time}")]
    BadLength {
        /// Index of the sequence in the batch.
        index: usize,
        /// Its length.
        length: usize,
        /// The padded number of time steps.
        time: usize,
    },
    /// A buffer has the wrong number of elements.
    #[error("{what}: expected {expected} values ({shape}), got {got}")]
    Shape {
        /// Which tensor.
        what: String,
        /// Expected element count.
        expected: usize,
        /// The expected shape, written out.
        shape: String,
        /// The element count supplied.
        got: usize,
    },
    /// A token id outside the vocabulary where unknown ids are an error.
    #[error(
        "token id {id} at step {step} of sequence {seq} is outside the vocabulary of {vocab} (set unknown = \"other\" to map it to the other slot)"
    )]
    TokenOutOfVocabulary {
        /// The id.
        id: u32,
        /// Time step.
        step: usize,
        /// Sequence index in the batch.
        seq: usize,
        /// Vocabulary size.
        vocab: usize,
    },
    /// A target class id outside the head's classes.
    #[error("target {target} at position {position} is outside the {classes} classes")]
    TargetOutOfRange {
        /// The target id.
        target: u32,
        /// Flat position (`t * B + b`, or `b` for classification).
        position: usize,
        /// Number of classes.
        classes: usize,
    },
    /// The kind of input does not match the encoding (ids vs dense features).
    #[error("{0}")]
    WrongKind(String),
    /// A value that must be finite is not.
    #[error("{what} is not finite ({value})")]
    NotFinite {
        /// What was checked.
        what: String,
        /// The value found.
        value: f64,
    },
    /// A batch of more sequences than the device's kernels cover in one dispatch.
    #[error(
        "a batch of {batch} sequences is more than this GPU runs in one dispatch ({limit}); \
         use at most {limit} sequences per batch"
    )]
    TooManySequences {
        /// Sequences in the batch.
        batch: usize,
        /// The most the device takes.
        limit: usize,
    },
    /// A buffer the batch needs is larger than the device can bind.
    #[error(
        "{what} needs {bytes} bytes in one buffer; this GPU binds at most {limit} bytes \
         (use fewer sequences per batch, shorter sequences or fewer units)"
    )]
    TooLarge {
        /// Which buffer.
        what: String,
        /// Its size.
        bytes: u64,
        /// The device's largest storage binding.
        limit: u64,
    },
}

/// A checkpoint that does not fit the model it is loaded into.
#[derive(Debug, Error)]
pub enum CheckpointError {
    /// The file could not be read or written.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid safetensors.
    #[error("checkpoint {path} is not a valid safetensors file: {why}")]
    Format {
        /// The file.
        path: String,
        /// The parser's message.
        why: String,
    },
    /// Tensor names or shapes disagree with the model.
    #[error(
        "checkpoint {path} does not fit this model:{}",
        describe_mismatch(missing, unexpected, wrong_shape)
    )]
    Mismatch {
        /// The file.
        path: String,
        /// Tensors the model needs that the file lacks.
        missing: Vec<String>,
        /// Tensors in the file the model does not have.
        unexpected: Vec<String>,
        /// `(name, model shape, file shape)` for tensors present in both with other shapes.
        wrong_shape: Vec<(String, Vec<usize>, Vec<usize>)>,
    },
    /// A tensor has a dtype the loader does not convert.
    #[error("checkpoint {path}: tensor `{name}` has dtype {dtype}; expected F32, F64, F16 or BF16")]
    Dtype {
        /// The file.
        path: String,
        /// The tensor.
        name: String,
        /// Its dtype.
        dtype: String,
    },
}

fn describe_mismatch(
    missing: &[String],
    unexpected: &[String],
    wrong_shape: &[(String, Vec<usize>, Vec<usize>)],
) -> String {
    let mut s = String::new();
    if !missing.is_empty() {
        s += &format!(" missing tensors: {};", missing.join(", "));
    }
    if !unexpected.is_empty() {
        s += &format!(" unexpected tensors: {};", unexpected.join(", "));
    }
    for (name, want, got) in wrong_shape {
        s += &format!(" `{name}` has shape {got:?}, the model needs {want:?};");
    }
    s.pop();
    s
}
