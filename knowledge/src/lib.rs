//! Documents and job listings for 乐业助手.
//!
//! This crate will hold the parsers (txt, md, html, docx, pdf), Chinese structure-aware
//! chunking (第X条, 一、, （一）, 1.), document metadata and the job-listing schema and loaders,
//! plus the bundled corpus in `knowledge/data/` (see DESIGN.md, "Crates"). It depends on no
//! other crate of ours, so retrieval and the assistant can both build on it.
#![warn(missing_docs)]

/// Where the bundled corpus lives, relative to this crate.
pub const DATA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data");
