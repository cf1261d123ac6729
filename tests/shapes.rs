//! Images at their own shape: a long part's map has the part's size and its hot region
//! lies where the defect is, not stretched or shifted by a square input.

mod common;

use common::{tiny_patchcore, train as train_model, wait_for, worker};
use differnet::core::config::{DetectorConfig, FusionConfig, FusionRule, PatchCoreConfig};
use differnet::core::protocol::{Command, Event, ScoreRequest};
use differnet::core::rng::SplitMix64;
use image::{Rgb, RgbImage};
use std::path::{Path, PathBuf};

/// A woven texture of `w` x `h` with noise; `spot`: a bright 12 x 12 square centred there.
fn long_texture(seed: u64, w: u32, h: u32, spot: Option<(u32, u32)>) -> RgbImage {
    let mut rng = SplitMix64::new(seed);
    let phase = rng.next_f64() * std::f64::consts::TAU;
    let mut img = RgbImage::from_fn(w, h, |x, y| {
        let v = 0.5
            + 0.2 * ((x as f64) * 0.7 + phase).sin() * ((y as f64) * 0.7).cos()
            + 0.08 * (rng.next_f64() - 0.5);
        let g = (v.clamp(0.0, 1.0) * 255.0) as u8;
        Rgb([g, g.saturating_sub(20), g.saturating_sub(40)])
    });
    if let Some((cx, cy)) = spot {
        for y in cy - 6..cy + 6 {
            for x in cx - 6..cx + 6 {
                img.put_pixel(x, y, Rgb([250, 250, 250]));
            }
        }
    }
    img
}

fn write(dir: &Path, name: &str, img: &RgbImage) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join(name);
    img.save(&p).unwrap();
    p
}

/// Good textures `seeds` in `dir`, each of the size `size(seed)`, as `<seed>.png`.
fn write_good(
    dir: &Path,
    seeds: std::ops::Range<u64>,
    size: impl Fn(u64) -> (u32, u32),
) -> Vec<PathBuf> {
    seeds
        .map(|s| {
            let (w, h) = size(s);
            write(dir, &format!("{s}.png"), &long_texture(s, w, h, None))
        })
        .collect()
}

/// Trains on long good textures, then checks the map of a long part with a spot.
fn map_follows_the_part(config: PatchCoreConfig, (w, h): (u32, u32), spot: (u32, u32)) {
    let dir = tempfile::tempdir().unwrap();
    let train = write_good(&dir.path().join("train"), 0..8, |_| (w, h));
    let val = write_good(&dir.path().join("val"), 100..103, |_| (w, h));
    let bad = write(dir.path(), "bad.png", &long_texture(7, w, h, Some(spot)));

    let worker = worker();
    train_model(
        &worker,
        &train,
        &val,
        DetectorConfig::PatchCore(config),
        Vec::new(),
    );
    worker
        .send(Command::Score(ScoreRequest {
            paths: vec![bad],
            heatmaps: true,
            rotations: None,
        }))
        .unwrap();
    let scored = wait_for(&worker, |e| match e {
        Event::Scored(s) => Some(s),
        _ => None,
    });
    let map = scored.heatmap.expect("a heatmap");
    assert_eq!(
        (map.width, map.height),
        (w, h),
        "the map has the image's size"
    );
    // The hottest pixel lies on the spot (within a patch of it).
    let (hot, _) = map
        .values
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap();
    let (hx, hy) = ((hot as u32 % w) as i64, (hot as u32 / w) as i64);
    let (sx, sy) = (i64::from(spot.0), i64::from(spot.1));
    assert!(
        (hx - sx).abs() <= 16 && (hy - sy).abs() <= 16,
        "hottest pixel at ({hx}, {hy}), the spot at ({sx}, {sy}) in a {w} x {h} image"
    );
    // Hotter around the spot than far from it.
    let mean = |near: bool| {
        let v: Vec<f64> = map
            .values
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                let (x, y) = ((*i as u32 % w) as i64, (*i as u32 / w) as i64);
                ((x - sx).abs() <= 12 && (y - sy).abs() <= 12) == near
            })
            .map(|(_, v)| f64::from(*v))
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let (near, far) = (mean(true), mean(false));
    assert!(
        near > 2.0 * far,
        "heat {near} near the spot, {far} elsewhere"
    );
}

#[test]
fn a_wide_part_gets_a_map_of_its_own_size_hot_at_the_defect() {
    map_follows_the_part(tiny_patchcore(), (400, 100), (330, 40));
}

#[test]
fn a_tall_part_gets_a_map_of_its_own_size_hot_at_the_defect() {
    let config = PatchCoreConfig {
        dihedral_bank: false,
        ..tiny_patchcore()
    };
    assert!(config.keep_aspect);
    map_follows_the_part(config, (100, 400), (60, 90));
}

#[test]
fn a_long_part_shown_in_tiles_gets_its_map_hot_at_the_defect() {
    // 160 px short side in 96 px tiles: 2 tiles across, 10 along, every seam inside the
    // part; a stitch put in the wrong place moves the hot spot or leaves a cold band.
    let config = PatchCoreConfig {
        image_size: 160,
        tile: 96,
        dihedral_bank: false,
        ..tiny_patchcore()
    };
    map_follows_the_part(config, (400, 100), (250, 60));
}

#[test]
fn one_scale_for_every_crop_is_learnt_from_the_training_images_and_kept_in_the_model_file() {
    // Good crops of one texture at two sizes (median short side 100 px), as a camera's
    // crops of parts of different sizes.
    let dir = tempfile::tempdir().unwrap();
    let sizes = [(100, 200), (120, 100), (100, 100), (90, 180)];
    let train = write_good(&dir.path().join("train"), 0..8, |s| {
        sizes[s as usize % sizes.len()]
    });
    let val = write_good(&dir.path().join("val"), 100..103, |_| (100, 150));
    let parts: Vec<PathBuf> = [(100, 300), (60, 60), (200, 100)]
        .iter()
        .enumerate()
        .map(|(i, &(w, h))| {
            write(
                dir.path(),
                &format!("part{i}.png"),
                &long_texture(50 + i as u64, w, h, None),
            )
        })
        .collect();
    let member = PatchCoreConfig {
        scale_to_training: true,
        dihedral_bank: false,
        ..tiny_patchcore()
    };
    // In a fusion beside a square member: the fusion keeps what its member learnt.
    let config = DetectorConfig::Fusion(FusionConfig {
        members: vec![
            member.clone().into(),
            PatchCoreConfig {
                keep_aspect: false,
                ..tiny_patchcore()
            }
            .into(),
        ],
        rule: FusionRule::Mean,
        positive_score: true,
    });
    let worker = worker();
    let info = train_model(&worker, &train, &val, config, Vec::new());
    let DetectorConfig::Fusion(trained) = &info.config else {
        panic!("a fusion: {:?}", info.config);
    };
    let DetectorConfig::PatchCore(learnt) = &trained.members[0] else {
        panic!("a PatchCore member");
    };
    // 96 px for a median short side of 100 px: every crop at 0.96 times its size.
    let scale = learnt.input_scale.expect("the scale is learnt");
    assert!((scale - 0.96).abs() < 1e-9, "{scale}");
    assert_eq!(learnt.input_shape(100, 300), (288, 96));
    assert_eq!(learnt.input_shape(60, 60), (64, 64));

    // Maps at every part's own size, and the same scores after a reload.
    let score_all = |w: &differnet::engine::worker::WorkerHandle| {
        w.send(Command::Score(ScoreRequest {
            paths: parts.clone(),
            heatmaps: true,
            rotations: None,
        }))
        .unwrap();
        let mut out = Vec::new();
        wait_for(w, |e| match e {
            Event::Scored(s) => {
                let map = s.heatmap.expect("a heatmap");
                out.push((s.score, (map.width, map.height)));
                None
            }
            Event::ScoringDone { .. } => Some(()),
            _ => None,
        });
        out
    };
    let before = score_all(&worker);
    let sizes: Vec<(u32, u32)> = before.iter().map(|b| b.1).collect();
    assert_eq!(sizes, [(100, 300), (60, 60), (200, 100)]);
    let model = dir.path().join("model.differnet");
    worker
        .send(Command::SaveModel {
            path: model.clone(),
            threshold: None,
            review_threshold: None,
        })
        .unwrap();
    wait_for(&worker, |e| matches!(e, Event::Saved { .. }).then_some(()));
    let reloaded = common::worker();
    reloaded.send(Command::LoadModel { path: model }).unwrap();
    let loaded = wait_for(&reloaded, |e| match e {
        Event::Loaded { info, .. } => Some(info),
        _ => None,
    });
    assert_eq!(loaded.config, info.config);
    let after = score_all(&reloaded);
    let (a, b): (Vec<f64>, Vec<f64>) = (
        before.iter().map(|s| s.0).collect(),
        after.iter().map(|s| s.0).collect(),
    );
    assert!(
        common::same_scores_of(&info.config, &a, &b),
        "{a:?} vs {b:?}"
    );
}
