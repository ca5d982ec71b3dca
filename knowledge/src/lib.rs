//! Documents and job listings for 乐业助手.
//!
//! # Layout
//! - [`document`]: the parsed form every format turns into: [`document::Document`] with
//!   [`document::Metadata`] and a list of [`document::Block`]s (headings, paragraphs, tables).
//! - [`parse`]: one module per format (Markdown with front matter, plain text, HTML, DOCX, PDF);
//!   each takes bytes, never a path, and never panics on bad input.
//! - [`metadata`]: finding title, 文号, date, issuer and region in the text itself.
//! - [`chunking`]: Chinese structure-aware chunks (第X章 / 第X条 / 一、 / （一） / 1. / (1)),
//!   each with its section path and article number.
//! - [`jobs`]: the job-listing schema, validation and the JSONL/CSV loaders.
//! - [`benefits`]: benefit cards (政策申领): conditions over a citizen's facts, what is granted,
//!   materials, where to apply, each tied to a verbatim span of its source; the rules engine
//!   and the verbatim check.
//!
//! The deterministic generator of the bundled sample listings is the `gen-jobs` binary
//! (`src/bin/gen_jobs/`), not part of the library.
//!
//! The crate depends on no other crate of ours, so retrieval and the assistant both build on
//! it. The bundled corpus lives in `knowledge/data/`.
#![warn(missing_docs)]

pub mod benefits;
pub mod chunking;
pub mod document;
pub mod jobs;
pub mod metadata;
pub mod parse;

/// Where the bundled corpus lives.
pub const DATA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data");

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be parsed; `file` names it.
    #[error("{file}: {reason}")]
    Parse {
        /// The file (or name given by the caller).
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// The file's format is not one we read.
    #[error(
        "{file}: unsupported format (supported: .md, .txt, .html, .htm, .docx, .pdf, .jsonl, .csv)"
    )]
    Unsupported {
        /// The file.
        file: String,
    },
    /// Reading a file failed.
    #[error("reading {file}")]
    Io {
        /// The file.
        file: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
