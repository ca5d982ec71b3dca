//! Finding the configured models, fetching them on first use.
//!
//! Everything that needs a model file goes through here, so the CLI, the server and the tests
//! all fetch through the same code path (`leye models fetch`), into `<home>/models`.

use std::path::PathBuf;

use models::catalog::{self, Catalog, FetchEvent, FetchOptions};

use crate::config::Config;

/// Returns the LLM file: `llm.path` when set, else the catalog model, fetched if missing.
pub fn llm_path(cfg: &Config, progress: &mut dyn FnMut(FetchEvent)) -> models::Result<PathBuf> {
    if let Some(p) = &cfg.llm.path {
        return Ok(p.clone());
    }
    ensure(cfg, &cfg.llm.model, progress)
}

/// Returns the embedder file: `embedder.path` when set, else the catalog model, fetched if
/// missing.
pub fn embedder_path(
    cfg: &Config,
    progress: &mut dyn FnMut(FetchEvent),
) -> models::Result<PathBuf> {
    if let Some(p) = &cfg.embedder.path {
        return Ok(p.clone());
    }
    ensure(cfg, &cfg.embedder.model, progress)
}

/// The installed path of catalog model `name`, fetching it first when it is not installed.
pub fn ensure(
    cfg: &Config,
    name: &str,
    progress: &mut dyn FnMut(FetchEvent),
) -> models::Result<PathBuf> {
    let catalog = Catalog::bundled()?;
    let spec = catalog.get(name)?;
    let dir = cfg.models_dir();
    match catalog::resolve(&dir, spec) {
        Ok(p) => Ok(p),
        Err(_) => catalog::fetch(&dir, spec, &FetchOptions::default(), progress),
    }
}

/// A fetch-progress sink for services: the fetch itself logs its progress every few seconds,
/// so nothing is drawn on the terminal.
pub fn quiet_progress() -> impl FnMut(FetchEvent) {
    |_| {}
}
