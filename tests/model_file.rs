//! The model file: a round trip keeps everything; broken files are clear errors.

mod common;

use common::rewrite_meta;
use differnet::core::config::{BackboneKind, DifferNetConfig, Preset};
use differnet::engine::backbone::Backbone;
use differnet::engine::detector::Detector;
use differnet::engine::detectors::differnet::DifferNet;
use differnet::engine::model_file::{FORMAT_VERSION, load, read_meta, save};
use std::path::Path;
use std::rc::Rc;
use tch::{Device, Kind, Tensor};

fn small_config() -> DifferNetConfig {
    let mut c = Preset::Fast.config(BackboneKind::Alexnet);
    c.model.image_size = 64;
    c.model.n_scales = 2;
    c.model.n_blocks = 2;
    c.model.hidden = 8;
    c.train.seed = 42;
    c
}

fn backbone() -> Rc<Backbone> {
    Rc::new(Backbone::new_untrained(BackboneKind::Alexnet, Device::Cpu))
}

fn saved_model(dir: &Path) -> (std::path::PathBuf, Detector) {
    let mut m = DifferNet::new(small_config(), backbone(), Device::Cpu).unwrap();
    m.state.threshold = Some(1.25);
    m.state.heat_scale = Some(0.5);
    let path = dir.join("m.differnet");
    let m = Detector::DifferNet(m);
    save(&m, &path).unwrap();
    (path, m)
}

/// The DifferNet in a loaded detector.
fn differnet(d: Detector) -> DifferNet {
    match d {
        Detector::DifferNet(m) => m,
        other => panic!("expected a DifferNet, got {other:?}"),
    }
}

#[test]
fn round_trip_keeps_weights_permutations_and_state() {
    let dir = tempfile::tempdir().unwrap();
    let (path, m) = saved_model(dir.path());
    let m = differnet(m);
    let back = differnet(load(&path, backbone(), Device::Cpu).unwrap());
    assert_eq!(back.config, m.config);
    assert_eq!(back.state, m.state);
    assert_eq!(back.flow().permutations(), m.flow().permutations());
    let x = Tensor::randn([3, m.flow().dim()], (Kind::Float, Device::Cpu));
    let (z1, l1) = m.flow().forward(&x);
    let (z2, l2) = back.flow().forward(&x);
    assert!(z1.allclose(&z2, 0.0, 0.0, false));
    assert!(l1.allclose(&l2, 0.0, 0.0, false));
    assert_eq!(read_meta(&path).unwrap().format_version, FORMAT_VERSION);
}

#[test]
fn broken_files_are_clear_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = saved_model(dir.path());
    let bytes = std::fs::read(&path).unwrap();
    let case = |name: &str, data: &[u8], expect: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        let e = load(&p, backbone(), Device::Cpu).unwrap_err().to_string();
        assert!(e.contains(name), "{name}: {e}");
        assert!(e.contains(expect), "{name}: {e}");
    };
    case(
        "truncated.differnet",
        &bytes[..bytes.len() / 2],
        "model file",
    );
    case("empty.differnet", b"", "model file");
    case(
        "magic.differnet",
        b"GIF89a this is not a model at all",
        "not a model file",
    );
    let missing = dir.path().join("missing.differnet");
    assert!(
        load(&missing, backbone(), Device::Cpu)
            .unwrap_err()
            .to_string()
            .contains("cannot read")
    );
}

#[test]
fn newer_versions_and_inconsistent_metadata_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err_after = |edit: &dyn Fn(&mut serde_json::Value)| {
        let (path, _) = saved_model(dir.path());
        rewrite_meta(&path, |m| edit(m));
        load(&path, backbone(), Device::Cpu)
            .unwrap_err()
            .to_string()
    };
    let e = err_after(&|m| m["format_version"] = serde_json::json!(FORMAT_VERSION + 1));
    assert!(e.contains("newer"), "{e}");
    // Metadata that says the flow is wider than the tensors are.
    let e = err_after(&|m| m["detector"]["model"]["hidden"] = serde_json::json!(16));
    assert!(e.contains("shape"), "{e}");
    // A permutation that is not one.
    let e = err_after(&|m| m["permutations"][0][0] = m["permutations"][0][1].clone());
    assert!(e.contains("permutation"), "{e}");
    // A different backbone than the one given.
    let e = err_after(&|m| {
        m["detector"]["model"]["backbone"] = serde_json::json!("efficientnet-lite0")
    });
    assert!(!e.is_empty());
    let e = err_after(&|m| m["format"] = serde_json::json!("something-else"));
    assert!(e.contains("not a DifferNet model"), "{e}");
    // Settings that would make scoring allocate without bound, or overflow a shift.
    let e = err_after(&|m| m["detector"]["score"]["rotations"] = serde_json::json!(1u64 << 32));
    assert!(e.contains("test rotations"), "{e}");
    let e = err_after(&|m| m["detector"]["model"]["n_scales"] = serde_json::json!(313));
    assert!(e.contains("scales"), "{e}");
}

#[test]
fn saving_over_an_existing_model_is_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = saved_model(dir.path());
    // Saving into a folder that does not exist fails and leaves nothing behind.
    let m = load(&path, backbone(), Device::Cpu).unwrap();
    let bad = dir.path().join("no/such/dir/m.differnet");
    assert!(save(&m, &bad).is_err());
    // Overwriting leaves a loadable file and no temporary files.
    save(&m, &path).unwrap();
    load(&path, backbone(), Device::Cpu).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}
