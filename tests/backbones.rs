//! The backbones load real weights correctly: EfficientNet-Lite0 classifies real
//! photographs, and Lite0, Lite1 and Lite2 match the Python reference numerically; AlexNet loads torchvision's
//! checkpoint format and matches PyTorch's forward pass.

mod common;

use differnet::core::config::BackboneKind;
use differnet::core::image_io::load_rgb;
use differnet::engine::backbone::Backbone;
use differnet::engine::transforms::{image_to_tensor, normalize, resize_square};
use std::collections::HashMap;
use std::path::Path;
use tch::{Device, Kind, Tensor};

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

#[test]
fn efficientnet_puts_real_photographs_in_the_right_imagenet_class() {
    let net = Backbone::load(
        BackboneKind::EfficientnetLite0,
        &common::efficientnet_weights(),
        Device::Cpu,
    )
    .unwrap();
    // ImageNet classes: 285 "Egyptian cat", 967 "espresso".
    for (file, class) in [("chelsea.png", 285), ("coffee.png", 967)] {
        let img = load_rgb(&common::test_data(file)).unwrap();
        let x = normalize(&resize_square(&image_to_tensor(&img, Device::Cpu), 224));
        let logits = tch::no_grad(|| net.classify(&x).unwrap());
        let top = logits.argmax(1, false).int64_value(&[0]);
        let p = logits.softmax(1, Kind::Float).double_value(&[0, class]);
        assert_eq!(
            top, class,
            "{file}: predicted class {top}, p(expected) = {p:.3}"
        );
        assert!(p > 0.5, "{file}: p = {p}");
    }
}

/// Compares every stage and the logits of our port of `kind` with the Python model's.
fn efficientnet_matches_the_python_reference(kind: BackboneKind, variant: &str, sizes: &[i64]) {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("reference.safetensors");
    let sizes_arg = sizes
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(",");
    common::run_python(
        "efficientnet_reference.py",
        &[&reference, Path::new(variant), Path::new(&sizes_arg)],
    );
    let expected: HashMap<String, Tensor> = Tensor::read_safetensors(&reference)
        .unwrap()
        .into_iter()
        .collect();
    let weights = differnet::engine::weights::default_path(kind);
    let net = Backbone::load(kind, &weights, Device::Cpu).unwrap();
    for size in sizes {
        let x = &expected[&format!("input_{size}")];
        let stages: Vec<usize> = (1..=7).collect();
        let maps = tch::no_grad(|| net.stage_maps(x, &stages));
        for (s, map) in stages.iter().zip(&maps) {
            let want = &expected[&format!("stage{s}_{size}")];
            assert_eq!(
                map.size()[1] as usize,
                kind.stage_channels()[s - 1],
                "{kind} stage {s}"
            );
            let d = max_abs_diff(map, want);
            let scale = want.abs().max().double_value(&[]);
            assert!(
                d <= 1e-4 * scale.max(1.0) * 10.0,
                "{kind} stage {s} at {size}: max diff {d} (scale {scale})"
            );
        }
        let logits = tch::no_grad(|| net.classify(x).unwrap());
        let d = max_abs_diff(&logits, &expected[&format!("logits_{size}")]);
        assert!(d < 1e-3, "{kind} logits at {size}: max diff {d}");
    }
}

#[test]
fn efficientnet_port_matches_the_python_reference() {
    efficientnet_matches_the_python_reference(BackboneKind::EfficientnetLite0, "0", &[224, 448]);
}

#[test]
fn efficientnet_lite1_port_matches_the_python_reference() {
    efficientnet_matches_the_python_reference(BackboneKind::EfficientnetLite1, "1", &[240]);
}

#[test]
fn efficientnet_lite2_port_matches_the_python_reference() {
    efficientnet_matches_the_python_reference(BackboneKind::EfficientnetLite2, "2", &[260]);
}

#[test]
fn alexnet_loads_torchvision_checkpoints_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    common::run_python("alexnet_fixture.py", &[dir.path()]);
    let expected: HashMap<String, Tensor> =
        Tensor::read_safetensors(dir.path().join("expected.safetensors"))
            .unwrap()
            .into_iter()
            .collect();
    for file in ["alexnet_zip.pth", "alexnet_legacy.pth"] {
        let net =
            Backbone::load(BackboneKind::Alexnet, &dir.path().join(file), Device::Cpu).unwrap();
        let y = tch::no_grad(|| net.stage_maps(&expected["input"], &[1]).remove(0));
        let d = max_abs_diff(&y, &expected["output"]);
        assert!(d < 1e-4, "{file}: max diff {d}");
    }
}

#[test]
fn missing_or_mismatched_weights_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.safetensors");
    let e = Backbone::load(BackboneKind::EfficientnetLite0, &missing, Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("nope.safetensors"), "{e}");
    // EfficientNet weights are not AlexNet weights.
    let e = Backbone::load(
        BackboneKind::Alexnet,
        &common::efficientnet_weights(),
        Device::Cpu,
    )
    .unwrap_err();
    assert!(e.to_string().contains("features.0"), "{e}");
}

#[test]
fn the_fast_pass_stays_close_to_float32_and_is_float32_where_bfloat16_is_slow() {
    let net = Backbone::load(
        BackboneKind::EfficientnetLite1,
        &differnet::engine::weights::default_path(BackboneKind::EfficientnetLite1),
        Device::Cpu,
    )
    .unwrap();
    let img = load_rgb(&common::test_data("chelsea.png")).unwrap();
    let x = normalize(&resize_square(&image_to_tensor(&img, Device::Cpu), 256));
    let (exact, fast) = tch::no_grad(|| {
        (
            net.stage_maps(&x, &[5, 6]),
            net.stage_maps_fast(&x, &[5, 6]),
        )
    });
    assert_eq!(net.uses_bf16(), differnet::engine::backbone::fast_bf16());
    for (e, f) in exact.iter().zip(&fast) {
        assert_eq!(f.kind(), Kind::Float);
        assert_eq!(e.size(), f.size());
        let rel = (e - f).norm().double_value(&[]) / e.norm().double_value(&[]);
        if net.uses_bf16() {
            // bfloat16 keeps 8 bits of mantissa: a few per cent over 30 layers.
            assert!(rel < 0.1, "relative error {rel}");
            assert!(rel > 0.0, "the fast pass ran in bfloat16");
        } else {
            assert_eq!(rel, 0.0);
        }
    }
}
