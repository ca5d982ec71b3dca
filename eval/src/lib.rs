//! Evaluation and benchmarks for 乐业助手.
//!
//! This crate will hold the datasets, retrieval and answer metrics and the benchmark runner
//! (`leye-eval`), using only the assistant's public library API. Model speed is measured today
//! by `leye models bench` (`models::bench`).
#![warn(missing_docs)]

pub use assistant::config::Config;
