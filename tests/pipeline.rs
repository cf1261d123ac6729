//! The whole pipeline on tiny generated images, through the same worker the front ends
//! use: train on good textures, score good and scratched ones, save and reload the model.

mod common;

use common::{scores, texture, tiny_config, wait_for, worker, write_set};

use differnet::core::metrics::auroc;
use differnet::core::protocol::{Command, EvaluateRequest, Event, ScoreRequest, TrainRequest};
use std::path::PathBuf;
use std::time::Duration;

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
        config: tiny_config().into(),
        defects: Vec::new(),
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
    let samples = common::good_and_scratched(&good, &bad);
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
    w.send(Command::SaveModel {
        path: model_path.clone(),
        threshold: Some(1.5),
        review_threshold: Some(1.2),
    })
    .unwrap();
    wait_for(&w, |e| matches!(e, Event::Saved { .. }).then_some(()));
    let paths: Vec<PathBuf> = samples.iter().map(|s| s.path.clone()).collect();
    let before = scores(&w, &paths);
    let w2 = worker();
    w2.send(Command::LoadModel { path: model_path }).unwrap();
    let loaded = wait_for(&w2, |e| match e {
        Event::Loaded { info, .. } => Some(info),
        _ => None,
    });
    assert_eq!(loaded.threshold, Some(1.5));
    assert_eq!(loaded.review_threshold, Some(1.2));
    let after = scores(&w2, &paths);
    for (a, b) in before.iter().zip(&after) {
        assert!(common::same_score(*a, *b), "{a} vs {b}");
    }
    let truth: Vec<bool> = samples
        .iter()
        .map(|s| s.label.is_defect() == Some(true))
        .collect();
    assert!(auroc(&after, &truth).unwrap() >= 0.9);
}

#[test]
fn heatmaps_have_the_image_size_and_turn_with_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let train = write_set(&dir.path().join("train"), "good", 0..12, false);
    let val = write_set(&dir.path().join("val"), "good", 100..104, false);
    // A non-square scratched image and the same image turned by 90 degrees.
    let img = image::imageops::crop_imm(&texture(300, true), 0, 0, 96, 64).to_image();
    let turned = image::imageops::rotate90(&img);
    let paths = vec![dir.path().join("a.png"), dir.path().join("b.png")];
    img.save(&paths[0]).unwrap();
    turned.save(&paths[1]).unwrap();
    let w = worker();
    w.send(Command::Train(TrainRequest {
        train,
        validation: val,
        config: tiny_config().into(),
        defects: Vec::new(),
    }))
    .unwrap();
    let info = wait_for(&w, |e| match e {
        Event::Trained(info) => Some(info),
        _ => None,
    });
    assert!(info.validation.is_some());
    w.send(Command::Score(ScoreRequest {
        paths,
        heatmaps: true,
        rotations: Some(4),
    }))
    .unwrap();
    let mut maps = Vec::new();
    wait_for(&w, |e| match e {
        Event::Scored(s) => {
            maps.push(s.heatmap.expect("heatmap"));
            None
        }
        Event::ScoringDone { .. } => Some(()),
        _ => None,
    });
    assert_eq!((maps[0].width, maps[0].height), (96, 64));
    assert_eq!((maps[1].width, maps[1].height), (64, 96));
    assert!(maps[0].values.iter().all(|v| v.is_finite() && *v >= 0.0));
    assert!(maps[0].values.iter().any(|v| *v > 0.0));
    // With the rotations 0, 90, 180 and 270 degrees, turning the image turns its map:
    // each rotation's gradient is brought back to the image's own frame. (The image is
    // stretched to a square first, so compare after the same stretch: coarse 8x8 cells.)
    let cell = |m: &differnet::core::protocol::Heatmap, cx: u32, cy: u32| {
        let (w, h) = (m.width, m.height);
        let mut s = 0f64;
        for y in cy * h / 8..(cy + 1) * h / 8 {
            for x in cx * w / 8..(cx + 1) * w / 8 {
                s += f64::from(m.values[(y * w + x) as usize]);
            }
        }
        s / f64::from((w / 8) * (h / 8))
    };
    let (mut num, mut den_a, mut den_b) = (0f64, 0f64, 0f64);
    let mean = |m| {
        (0..8)
            .flat_map(|y| (0..8).map(move |x| (x, y)))
            .map(|(x, y)| cell(m, x, y))
            .sum::<f64>()
            / 64.0
    };
    let (ma, mb) = (mean(&maps[0]), mean(&maps[1]));
    for cy in 0..8 {
        for cx in 0..8 {
            // rotate90 (clockwise) moves (x, y) to (H - 1 - y, x).
            let a = cell(&maps[0], cx, cy) - ma;
            let b = cell(&maps[1], 7 - cy, cx) - mb;
            num += a * b;
            den_a += a * a;
            den_b += b * b;
        }
    }
    let corr = num / (den_a * den_b).sqrt();
    assert!(corr > 0.8, "correlation of the turned maps {corr}");
}

#[test]
fn cancelling_training_keeps_the_worker_ready() {
    let dir = tempfile::tempdir().unwrap();
    let train = write_set(&dir.path().join("train"), "good", 0..8, false);
    let w = worker();
    let mut cfg = tiny_config();
    cfg.train.epochs = 100_000;
    w.send(Command::Train(TrainRequest {
        train: train.clone(),
        validation: vec![],
        config: cfg.into(),
        defects: Vec::new(),
    }))
    .unwrap();
    wait_for(&w, |e| matches!(e, Event::TrainStep { .. }).then_some(()));
    w.cancel();
    wait_for(&w, |e| matches!(e, Event::Cancelled { .. }).then_some(()));
    // No model was produced: scoring is a clear error, and training again works.
    w.send(Command::Score(ScoreRequest {
        paths: train.clone(),
        heatmaps: false,
        rotations: None,
    }))
    .unwrap();
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
    w.send(Command::Train(TrainRequest {
        train,
        validation: vec![],
        config: cfg.into(),
        defects: Vec::new(),
    }))
    .unwrap();
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
    w.send(Command::Train(TrainRequest {
        train,
        validation: vec![],
        config: cfg.into(),
        defects: Vec::new(),
    }))
    .unwrap();
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

#[test]
fn training_is_reproducible_with_a_seed() {
    let dir = tempfile::tempdir().unwrap();
    let train = write_set(&dir.path().join("train"), "good", 0..6, false);
    let probe = write_set(&dir.path().join("probe"), "probe", 400..402, true);
    let run = |seed: u64| {
        let w = worker();
        let mut cfg = tiny_config();
        cfg.train.epochs = 3;
        cfg.train.seed = seed;
        w.send(Command::Train(TrainRequest {
            train: train.clone(),
            validation: vec![],
            config: cfg.into(),
            defects: Vec::new(),
        }))
        .unwrap();
        wait_for(&w, |e| matches!(e, Event::Trained(_)).then_some(()));
        scores(&w, &probe)
    };
    let (a, b, c) = (run(5), run(5), run(6));
    assert_eq!(a, b, "same seed, different scores");
    assert_ne!(a, c, "different seeds, same scores");
}

#[test]
fn a_diverging_training_stops_with_a_message_and_keeps_the_previous_model() {
    let dir = tempfile::tempdir().unwrap();
    let train = write_set(&dir.path().join("train"), "good", 0..6, false);
    let probe = write_set(&dir.path().join("probe"), "probe", 50..52, true);
    let w = worker();
    w.send(Command::Train(TrainRequest {
        train: train.clone(),
        validation: vec![],
        config: tiny_config().into(),
        defects: Vec::new(),
    }))
    .unwrap();
    wait_for(&w, |e| matches!(e, Event::Trained(_)).then_some(()));
    let before = scores(&w, &probe);

    // A learning rate that throws the weights to infinity in a step or two.
    let mut cfg = tiny_config();
    cfg.train.lr = 1e30;
    cfg.train.epochs = 20;
    w.send(Command::Train(TrainRequest {
        train,
        validation: vec![],
        config: cfg.into(),
        defects: Vec::new(),
    }))
    .unwrap();
    let msg = loop {
        match w.events().recv_timeout(Duration::from_secs(300)).unwrap() {
            Event::Failed { message } => break message,
            Event::Trained(_) => panic!("a diverging training ended as a model"),
            Event::Crashed { message } => panic!("worker crashed: {message}"),
            _ => {}
        }
    };
    assert!(msg.contains("diverged"), "{msg}");
    // The model trained before is still the one that scores.
    assert_eq!(scores(&w, &probe), before);
}

#[test]
fn cancelling_scoring_at_any_point_keeps_the_model_and_the_worker_ready() {
    let dir = tempfile::tempdir().unwrap();
    let train = write_set(&dir.path().join("train"), "good", 0..6, false);
    let parts = write_set(&dir.path().join("parts"), "part", 20..40, true);
    let w = worker();
    w.send(Command::Train(TrainRequest {
        train,
        validation: vec![],
        config: tiny_config().into(),
        defects: Vec::new(),
    }))
    .unwrap();
    wait_for(&w, |e| matches!(e, Event::Trained(_)).then_some(()));
    let full = scores(&w, &parts);
    // Cancel right away, after one part, and after several, with and without heatmaps.
    for (after, heatmaps) in [(0usize, false), (1, true), (5, false), (9, true)] {
        w.send(Command::Score(ScoreRequest {
            paths: parts.clone(),
            heatmaps,
            rotations: None,
        }))
        .unwrap();
        let mut seen = 0;
        if after == 0 {
            w.cancel();
        }
        let cancelled = loop {
            match w.events().recv_timeout(Duration::from_secs(300)).unwrap() {
                Event::Scored(s) => {
                    // What arrives before the cancel is right (the heatmap path sums in
                    // another order: common::SCORE_RTOL).
                    let want = full[seen];
                    assert!(common::same_score(s.score, want), "part {seen}");
                    seen += 1;
                    if seen == after {
                        w.cancel();
                    }
                }
                Event::Cancelled { .. } => break true,
                Event::ScoringDone { .. } => break false,
                Event::Failed { message } => panic!("{message}"),
                Event::Crashed { message } => panic!("{message}"),
                _ => {}
            }
        };
        assert!(
            cancelled,
            "scoring ran to the end after a cancel at {after}"
        );
        assert!(seen < parts.len());
        // The next job runs normally on the same model.
        let again = scores(&w, &parts[..2]);
        assert!(
            common::same_scores(&again, &full[..2]),
            "{again:?} vs {:?}",
            &full[..2]
        );
    }
}
