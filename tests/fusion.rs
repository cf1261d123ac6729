//! Fusion: a model of one member scores what that member scores, standardised by its
//! own held-out good images; the members' standardisation survives the model file.

mod common;

use common::{scores, tiny_patchcore, wait_for, worker, write_set};
use differnet::core::config::{DetectorConfig, FusionConfig, FusionRule};
use differnet::core::protocol::{Command, Event, ModelInfo, TrainRequest};
use differnet::engine::worker::WorkerHandle;
use std::path::PathBuf;

fn train(
    w: &WorkerHandle,
    train: &[PathBuf],
    val: &[PathBuf],
    config: DetectorConfig,
) -> ModelInfo {
    w.send(Command::Train(TrainRequest {
        train: train.to_vec(),
        validation: val.to_vec(),
        config,
        defects: Vec::new(),
    }))
    .unwrap();
    wait_for(w, |e| match e {
        Event::Trained(info) => Some(info),
        _ => None,
    })
}

#[test]
fn a_fusion_of_one_member_scores_the_members_standardised_score() {
    let dir = tempfile::tempdir().unwrap();
    let train_set = write_set(&dir.path().join("train"), "good", 0..8, false);
    let val = write_set(&dir.path().join("val"), "good", 100..106, false);
    let mut parts = write_set(&dir.path().join("good"), "good", 200..204, false);
    parts.extend(write_set(&dir.path().join("bad"), "bad", 300..304, true));

    let w = worker();
    let member = train(&w, &train_set, &val, tiny_patchcore().into());
    let stats = member.validation.expect("held-out statistics");
    let plain = scores(&w, &parts);
    let expected: Vec<f64> = plain.iter().map(|s| (s - stats.mean) / stats.std).collect();

    let fusion = FusionConfig {
        members: vec![tiny_patchcore().into()],
        rule: FusionRule::Mean,
        positive_score: false,
    };
    let info = train(&w, &train_set, &val, fusion.clone().into());
    let fused = scores(&w, &parts);
    // Standard scores, compared as the product compares them (common::STANDARD_SCORE_ATOL):
    // the member trained twice sums its floats in another order, which moves a standard
    // score of 100 by about 2e-3 on an AVX2 CPU.
    assert!(
        common::same_scores_of(&fusion.clone().into(), &fused, &expected),
        "{fused:?} vs {expected:?}"
    );
    // The fused held-out scores are standardised too: mean 0, sd 1.
    let v = info.validation.expect("fused statistics");
    assert!(v.mean.abs() < 1e-6 && (v.std - 1.0).abs() < 1e-6, "{v:?}");
    assert!(info.threshold.is_some());

    // As the product reports it: exp of the standard score, positive, in the same order.
    let positive = FusionConfig {
        positive_score: true,
        ..fusion
    };
    let info = train(&w, &train_set, &val, positive.clone().into());
    let fused = scores(&w, &parts);
    let expected_exp: Vec<f64> = expected.iter().map(|z| z.exp()).collect();
    assert!(fused.iter().all(|s| *s > 0.0));
    // On the log scale: exp turns that 2e-3 into a relative 2e-3 of the reported score.
    assert!(
        common::same_scores_of(&positive.into(), &fused, &expected_exp),
        "{fused:?} vs {expected_exp:?}"
    );
    let v = info.validation.expect("fused statistics");
    assert!(v.scores.iter().all(|s| *s > 0.0), "{v:?}");
}

#[test]
fn a_fusion_needs_members_on_one_backbone() {
    let mut other = tiny_patchcore();
    other.backbone = differnet::core::config::BackboneKind::EfficientnetLite1;
    let bad = FusionConfig {
        members: vec![tiny_patchcore().into(), other.into()],
        rule: FusionRule::Max,
        positive_score: true,
    };
    assert!(bad.validate().unwrap_err().contains("one backbone"));
    let empty = FusionConfig {
        members: vec![],
        rule: FusionRule::Mean,
        positive_score: true,
    };
    assert!(empty.validate().is_err());
    let nested = FusionConfig {
        members: vec![DetectorConfig::Fusion(FusionConfig::default())],
        rule: FusionRule::Mean,
        positive_score: true,
    };
    assert!(
        nested
            .validate()
            .unwrap_err()
            .contains("cannot be a fusion")
    );
}
