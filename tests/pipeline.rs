//! The whole pipeline on tiny generated images, through the same worker the front ends
//! use: train on good textures, score good and scratched ones, save and reload the model.

mod common;

use differnet::core::config::{BackboneKind, DifferNetConfig, Preset};
use differnet::core::dataset::{Label, Sample};
use differnet::core::metrics::auroc;
use differnet::core::protocol::{Command, EvaluateRequest, Event, ScoreRequest, TrainRequest};
use differnet::core::rng::SplitMix64;
use differnet::engine::worker::{WorkerHandle, WorkerOptions};
use image::{Rgb, RgbImage};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A woven texture with noise; `scratch` draws a bright diagonal line across it.
fn texture(seed: u64, scratch: bool) -> RgbImage {
    let mut rng = SplitMix64::new(seed);
    let (w, h) = (96u32, 96u32);
    let phase = rng.next_f64() * 6.28;
    let mut img = RgbImage::new(w, h);
    for y in 0..h {
        for x in 0..w {
            let v = 0.5
                + 0.2 * ((x as f64) * 0.7 + phase).sin() * ((y as f64) * 0.7).cos()
                + 0.08 * (rng.next_f64() - 0.5);
            let g = (v.clamp(0.0, 1.0) * 255.0) as u8;
            img.put_pixel(x, y, Rgb([g, g.saturating_sub(20), g.saturating_sub(40)]));
        }
    }
    if scratch {
        let x0 = 10 + rng.below(40) as i64;
        for t in 0..50i64 {
            for d in 0..3i64 {
                let (x, y) = (x0 + t, 20 + t + d);
                if (0..w as i64).contains(&x) && (0..h as i64).contains(&y) {
                    img.put_pixel(x as u32, y as u32, Rgb([250, 250, 250]));
                }
            }
        }
    }
    img
}

fn write_set(dir: &Path, prefix: &str, seeds: std::ops::Range<u64>, scratch: bool) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    seeds
        .map(|s| {
            let p = dir.join(format!("{prefix}_{s:03}.png"));
            texture(s, scratch).save(&p).unwrap();
            p
        })
        .collect()
}

/// A small, quick configuration with the real backbone.
fn tiny_config() -> DifferNetConfig {
    let mut c = Preset::Fast.config(BackboneKind::EfficientnetLite0);
    c.model.image_size = 96;
    c.model.feature_stages = vec![3, 5];
    c.model.n_blocks = 2;
    c.model.hidden = 64;
    c.train.epochs = 30;
    c.train.batch_images = 4;
    c.train.cached_rotations = Some(4);
    c.score.rotations = 4;
    c
}

fn worker() -> WorkerHandle {
    let _ = common::efficientnet_weights();
    let options = WorkerOptions {
        device: differnet::core::config::DeviceChoice::Cpu,
        ..Default::default()
    };
    WorkerHandle::spawn(options, Arc::new(|| {})).unwrap()
}

/// Waits for the first event `pick` accepts, failing on errors.
fn wait_for<T>(w: &WorkerHandle, mut pick: impl FnMut(Event) -> Option<T>) -> T {
    loop {
        let e = w.events().recv_timeout(Duration::from_secs(300)).expect("worker event");
        match e {
            Event::Failed { message } => panic!("job failed: {message}"),
            Event::Crashed { message } => panic!("worker crashed: {message}"),
            other => {
                if let Some(t) = pick(other) {
                    return t;
                }
            }
        }
    }
}

#[test]
fn trained_model_separates_scratched_textures_and_survives_a_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let train = write_set(&dir.path().join("train"), "good", 0..12, false);
    let val = write_set(&dir.path().join("val"), "good", 100..104, false);
    let good = write_set(&dir.path().join("test/good"), "good", 200..208, false);
    let bad = write_set(&dir.path().join("test/scratch"), "bad", 300..308, true);

    let w = worker();
    w.send(Command::Train(TrainRequest {
        train,
        validation: val,
        config: tiny_config(),
    }))
    .unwrap();
    let mut losses = Vec::new();
    let info = wait_for(&w, |e| match e {
        Event::EpochDone { mean_loss, .. } => {
            losses.push(mean_loss);
            None
        }
        Event::Trained(info) => Some(info),
        _ => None,
    });
    assert_eq!(losses.len(), 30);
    assert!(losses[29] < losses[0], "loss did not fall: {losses:?}");
    assert_eq!(info.train_count, 12);
    let stats = info.validation.expect("validation statistics");
    assert_eq!(stats.count, 4);
    assert!(info.threshold.unwrap() >= stats.max);

    // Evaluate: labelled samples, image AUROC >= 0.9.
    let samples: Vec<Sample> = good
        .iter()
        .map(|p| Sample { path: p.clone(), label: Label::Good, mask: None })
        .chain(bad.iter().map(|p| Sample {
            path: p.clone(),
            label: Label::Defect("scratch".into()),
            mask: None,
        }))
        .collect();
    w.send(Command::Evaluate(EvaluateRequest {
        samples: samples.clone(),
        pixel_metrics: false,
        rotations: None,
    }))
    .unwrap();
    let report = wait_for(&w, |e| match e {
        Event::Evaluated(r) => Some(r),
        _ => None,
    });
    assert_eq!(report.count, 16);
    let auc = report.image_auroc.unwrap();
    assert!(auc >= 0.9, "image AUROC {auc}");

    // Save, reload in a fresh worker, and get the same scores.
    let model_path = dir.path().join("model.differnet");
    w.send(Command::SaveModel { path: model_path.clone(), threshold: Some(1.5) }).unwrap();
    wait_for(&w, |e| matches!(e, Event::Saved { .. }).then_some(()));
    let paths: Vec<PathBuf> = samples.iter().map(|s| s.path.clone()).collect();
    let scores = |w: &WorkerHandle| {
        w.send(Command::Score(ScoreRequest { paths: paths.clone(), heatmaps: false, rotations: None }))
            .unwrap();
        let mut out = Vec::new();
        wait_for(w, |e| match e {
            Event::Scored(s) => {
                out.push(s.score);
                None
            }
            Event::ScoringDone { .. } => Some(()),
            _ => None,
        });
        out
    };
    let before = scores(&w);
    let w2 = worker();
    w2.send(Command::LoadModel { path: model_path }).unwrap();
    let loaded = wait_for(&w2, |e| match e {
        Event::Loaded { info, .. } => Some(info),
        _ => None,
    });
    assert_eq!(loaded.threshold, Some(1.5));
    let after = scores(&w2);
    for (a, b) in before.iter().zip(&after) {
        assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "{a} vs {b}");
    }
    let truth: Vec<bool> = samples.iter().map(|s| s.label.is_defect() == Some(true)).collect();
    assert!(auroc(&after, &truth).unwrap() >= 0.9);
}

#[test]
fn heatmaps_point_at_the_scratch() {
    let dir = tempfile::tempdir().unwrap();
    let train = write_set(&dir.path().join("train"), "good", 0..12, false);
    let val = write_set(&dir.path().join("val"), "good", 100..104, false);
    let bad = write_set(&dir.path().join("bad"), "bad", 300..302, true);
    let w = worker();
    w.send(Command::Train(TrainRequest { train, validation: val, config: tiny_config() })).unwrap();
    wait_for(&w, |e| matches!(e, Event::Trained(_)).then_some(()));
    w.send(Command::Score(ScoreRequest { paths: bad.clone(), heatmaps: true, rotations: None })).unwrap();
    let mut maps = Vec::new();
    wait_for(&w, |e| match e {
        Event::Scored(s) => {
            maps.push(s.heatmap.expect("heatmap"));
            None
        }
        Event::ScoringDone { .. } => Some(()),
        _ => None,
    });
    assert_eq!(maps.len(), 2);
    for (map, seed) in maps.iter().zip(300u64..) {
        assert_eq!((map.width, map.height), (96, 96));
        // The scratch's pixels: where the scratched texture differs from the clean one.
        let (clean, scratched) = (texture(seed, false), texture(seed, true));
        let (mut on, mut n_on, mut off, mut n_off) = (0f64, 0, 0f64, 0);
        for (i, (a, b)) in clean.pixels().zip(scratched.pixels()).enumerate() {
            let v = f64::from(map.values[i]);
            if a != b {
                on += v;
                n_on += 1;
            } else {
                off += v;
                n_off += 1;
            }
        }
        let (on, off) = (on / n_on as f64, off / n_off as f64);
        assert!(on > 1.5 * off, "heat on the scratch {on} vs elsewhere {off}");
    }
}

#[test]
fn cancelling_training_keeps_the_worker_ready() {
    let dir = tempfile::tempdir().unwrap();
    let train = write_set(&dir.path().join("train"), "good", 0..8, false);
    let w = worker();
    let mut cfg = tiny_config();
    cfg.train.epochs = 100_000;
    w.send(Command::Train(TrainRequest { train: train.clone(), validation: vec![], config: cfg })).unwrap();
    wait_for(&w, |e| matches!(e, Event::TrainStep { .. }).then_some(()));
    w.cancel();
    wait_for(&w, |e| matches!(e, Event::Cancelled { .. }).then_some(()));
    // No model was produced: scoring is a clear error, and training again works.
    w.send(Command::Score(ScoreRequest { paths: train.clone(), heatmaps: false, rotations: None })).unwrap();
    let msg = loop {
        match w.events().recv_timeout(Duration::from_secs(60)).unwrap() {
            Event::Failed { message } => break message,
            Event::Scored(_) => panic!("scored without a model"),
            _ => {}
        }
    };
    assert!(msg.contains("no model"), "{msg}");
    let mut cfg = tiny_config();
    cfg.train.epochs = 2;
    w.send(Command::Train(TrainRequest { train, validation: vec![], config: cfg })).unwrap();
    wait_for(&w, |e| matches!(e, Event::Trained(_)).then_some(()));
}

#[test]
fn unreadable_images_are_skipped_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut train = write_set(&dir.path().join("train"), "good", 0..6, false);
    let broken = dir.path().join("train/broken.png");
    std::fs::write(&broken, b"not a png").unwrap();
    train.push(broken.clone());
    let w = worker();
    let mut cfg = tiny_config();
    cfg.train.epochs = 1;
    w.send(Command::Train(TrainRequest { train, validation: vec![], config: cfg })).unwrap();
    let mut skipped = Vec::new();
    let info = wait_for(&w, |e| match e {
        Event::Skipped { path, reason } => {
            skipped.push((path, reason));
            None
        }
        Event::Trained(info) => Some(info),
        _ => None,
    });
    assert_eq!(info.train_count, 6);
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].0, broken);
    assert!(skipped[0].1.contains("broken.png"), "{}", skipped[0].1);
}
