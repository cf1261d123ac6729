//! Reads real `torch.save` files (ZIP and legacy format) with the restricted unpickler and
//! compares every value with what PyTorch itself wrote.
//!
//! Needs a Python with torch: `$DIFFERNET_PYTHON`, or else
//! `~/.cache/differnet/venv/bin/python`. Without one the test fails, unless
//! `DIFFERNET_SKIP_PYTHON_TESTS=1` says to skip it.

use differnet::core::torch_pickle::{NamedTensor, PickleError, read_state_dict};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Writes an AlexNet-layout state_dict (torchvision key names) in both formats, plus a
/// wrapped checkpoint, and the expected contiguous float32 data of every float tensor.
const FIXTURE_SCRIPT: &str = r#"
import sys, pathlib, collections
import torch

out = pathlib.Path(sys.argv[1])
torch.manual_seed(0)
sd = collections.OrderedDict()
convs = [("features.0", 64, 3, 11), ("features.3", 192, 64, 5), ("features.6", 384, 192, 3),
         ("features.8", 256, 384, 3), ("features.10", 256, 256, 3)]
for name, cout, cin, k in convs:
    sd[name + ".weight"] = torch.randn(cout, cin, k, k)
    sd[name + ".bias"] = torch.randn(cout)
# A view with a storage offset: the bias is a slice of a larger storage.
sd["features.0.bias"] = torch.randn(100)[7:71]
# A non-contiguous (transposed) classifier weight, and a view sharing its storage.
base = torch.randn(16, 32)
sd["classifier.1.weight"] = base.t()
sd["classifier.1.bias"] = torch.randn(32)
sd["classifier.1.weight_rows"] = base[2:5, ::3]
# Other float types are converted; integer tensors are skipped.
sd["extra.f64"] = torch.randn(5, dtype=torch.float64)
sd["extra.f16"] = torch.randn(7).half()
sd["extra.bf16"] = torch.randn(3).bfloat16()
sd["extra.scalar"] = torch.tensor(2.5)
sd["extra.num_batches_tracked"] = torch.tensor(42)

torch.save(sd, out / "alexnet-zip.pth")
torch.save(sd, out / "alexnet-legacy.pth", _use_new_zipfile_serialization=False)
torch.save({"epoch": 3, "state_dict": sd}, out / "checkpoint.pth")

with open(out / "expected.txt", "w") as manifest:
    for name, t in sd.items():
        if not t.is_floating_point():
            continue
        manifest.write(name + " " + " ".join(str(d) for d in t.shape) + "\n")
        t.detach().float().contiguous().numpy().astype("<f4").tofile(out / (name + ".f32"))
"#;

fn python() -> Option<PathBuf> {
    if let Some(python) = std::env::var_os("DIFFERNET_PYTHON") {
        return Some(PathBuf::from(python));
    }
    let home = std::env::var_os("HOME")?;
    let venv = Path::new(&home).join(".cache/differnet/venv/bin/python");
    venv.exists().then_some(venv)
}

/// The fixture directory, or `None` when the test is skipped on purpose.
fn make_fixtures(dir: &Path) -> Option<()> {
    let Some(python) = python() else {
        if std::env::var("DIFFERNET_SKIP_PYTHON_TESTS").as_deref() == Ok("1") {
            eprintln!("skipping: no Python with torch and DIFFERNET_SKIP_PYTHON_TESTS=1");
            return None;
        }
        panic!(
            "this test needs a Python with torch to write .pth fixtures: set DIFFERNET_PYTHON \
             or create ~/.cache/differnet/venv (or set DIFFERNET_SKIP_PYTHON_TESTS=1 to skip)"
        );
    };
    let script = dir.join("make_fixtures.py");
    std::fs::write(&script, FIXTURE_SCRIPT).unwrap();
    let output = Command::new(&python)
        .arg(&script)
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        output.status.success(),
        "{} failed to write fixtures:\n{}",
        python.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    Some(())
}

/// `(name, shape, data)` of every float tensor as PyTorch wrote them, in order.
fn expected(dir: &Path) -> Vec<NamedTensor> {
    let manifest = std::fs::read_to_string(dir.join("expected.txt")).unwrap();
    manifest
        .lines()
        .map(|line| {
            let mut fields = line.split_whitespace();
            let name = fields.next().unwrap().to_owned();
            let shape = fields.map(|d| d.parse().unwrap()).collect();
            let bytes = std::fs::read(dir.join(format!("{name}.f32"))).unwrap();
            let data = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            NamedTensor { name, shape, data }
        })
        .collect()
}

fn assert_same(file: &Path, actual: &[NamedTensor], expected: &[NamedTensor]) {
    let names =
        |tensors: &[NamedTensor]| tensors.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(actual), names(expected), "{}", file.display());
    for (a, e) in actual.iter().zip(expected) {
        assert_eq!(a.shape, e.shape, "{} in {}", a.name, file.display());
        assert_eq!(
            a.data.len(),
            e.data.len(),
            "{} in {}",
            a.name,
            file.display()
        );
        // Bit-exact: conversion to f32 must match torch's `.float()`.
        let same = a
            .data
            .iter()
            .zip(&e.data)
            .all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "{} differs in {}", a.name, file.display());
    }
}

#[test]
fn reads_torch_save_files_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    if make_fixtures(dir.path()).is_none() {
        return;
    }
    let expected = expected(dir.path());
    assert_eq!(expected.len(), 17, "fixture manifest");
    for file in ["alexnet-zip.pth", "alexnet-legacy.pth", "checkpoint.pth"] {
        let path = dir.path().join(file);
        let tensors = read_state_dict(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_same(&path, &tensors, &expected);
    }

    // The legacy file starts with the pickled magic number, the ZIP one with "PK".
    let legacy = std::fs::read(dir.path().join("alexnet-legacy.pth")).unwrap();
    assert_eq!(&legacy[..4], b"\x80\x02\x8a\x0a");
    let zip = std::fs::read(dir.path().join("alexnet-zip.pth")).unwrap();
    assert_eq!(&zip[..4], b"PK\x03\x04");

    // Cutting a real file short gives an error naming it, never a panic.
    for (name, bytes) in [("cut-legacy.pth", &legacy), ("cut-zip.pth", &zip)] {
        let cut = dir.path().join(name);
        for len in [bytes.len() / 2, bytes.len() - 1] {
            std::fs::write(&cut, &bytes[..len]).unwrap();
            let error: PickleError = read_state_dict(&cut).unwrap_err();
            assert!(
                error.to_string().ends_with(&cut.display().to_string()),
                "{error}"
            );
        }
    }
}
