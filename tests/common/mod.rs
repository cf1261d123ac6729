//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python of the setup environment (torch 2.11 and the reference packages), from
/// `DIFFERNET_PYTHON` or the setup cache. Panics with a hint when it is missing: the
/// tests that need it must not pass silently.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("DIFFERNET_PYTHON") {
        return PathBuf::from(p);
    }
    let cache = std::env::var_os("DIFFERNET_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/differnet")
        });
    let p = cache.join("venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run `make setup` first",
        p.display()
    );
    p
}

/// Runs a Python script of `scripts/` with arguments; panics with its stderr on failure.
pub fn run_python(script: &str, args: &[&Path]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(script);
    let out = Command::new(python())
        .arg(&path)
        .args(args)
        .output()
        .expect("cannot start python");
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The EfficientNet-Lite0 weights installed by `make setup`.
pub fn efficientnet_weights() -> PathBuf {
    let p = differnet::engine::weights::default_path(
        differnet::core::config::BackboneKind::EfficientnetLite0,
    );
    assert!(
        p.is_file(),
        "{} is missing: run `make setup` first",
        p.display()
    );
    p
}

/// A file of the test data folder.
pub fn test_data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}
