//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod bad_files;

use differnet::core::config::{
    BackboneKind, CsFlowConfig, DifferNetConfig, PatchCoreConfig, Preset,
};
use differnet::core::rng::SplitMix64;
use image::{Rgb, RgbImage};
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

/// A woven texture with noise; `scratch` draws a bright diagonal line across it.
pub fn texture(seed: u64, scratch: bool) -> RgbImage {
    let mut rng = SplitMix64::new(seed);
    let (w, h) = (96u32, 96u32);
    let phase = rng.next_f64() * std::f64::consts::TAU;
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

pub fn write_set(
    dir: &Path,
    prefix: &str,
    seeds: std::ops::Range<u64>,
    scratch: bool,
) -> Vec<PathBuf> {
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
pub fn tiny_config() -> DifferNetConfig {
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

/// A small, quick PatchCore with the real backbone: 96 px inputs, a 12 x 12 patch grid.
pub fn tiny_patchcore() -> PatchCoreConfig {
    PatchCoreConfig {
        backbone: BackboneKind::EfficientnetLite0,
        image_size: 96,
        stages: vec![3, 4],
        ..PatchCoreConfig::default()
    }
}

/// A small, quick fusion: the tiny PatchCore at 96 px (standardised) and at 128 px
/// (as photographed).
pub fn tiny_fusion() -> differnet::core::config::FusionConfig {
    let fine = PatchCoreConfig {
        image_size: 128,
        standardise: false,
        ..tiny_patchcore()
    };
    differnet::core::config::FusionConfig {
        members: vec![tiny_patchcore().into(), fine.into()],
        rule: differnet::core::config::FusionRule::Mean,
        positive_score: true,
    }
}

/// A small, quick CS-Flow with the real backbone: 96 px inputs, stage 3's maps of 12 x 12,
/// 6 x 6 and 3 x 3 positions, a narrow flow.
pub fn tiny_cs_flow() -> CsFlowConfig {
    CsFlowConfig {
        backbone: BackboneKind::EfficientnetLite0,
        image_size: 96,
        stage: 3,
        hidden: 32,
        epochs: 30,
        ..CsFlowConfig::default()
    }
}

/// The pixels of `texture(seed, true)` within `margin` pixels (Chebyshev distance) of
/// its scratch.
pub fn scratch_mask(seed: u64, margin: i64) -> Vec<bool> {
    let (plain, scratched) = (texture(seed, false), texture(seed, true));
    let (w, h) = plain.dimensions();
    let on: Vec<bool> = plain
        .pixels()
        .zip(scratched.pixels())
        .map(|(a, b)| a != b)
        .collect();
    let at = |x: i64, y: i64| {
        (0..w as i64).contains(&x) && (0..h as i64).contains(&y) && on[(y * w as i64 + x) as usize]
    };
    (0..h as i64)
        .flat_map(|y| (0..w as i64).map(move |x| (x, y)))
        .map(|(x, y)| (-margin..=margin).any(|dy| (-margin..=margin).any(|dx| at(x + dx, y + dy))))
        .collect()
}

/// How far one detector's raw score (a distance, a negative log-likelihood) may move
/// between two ways of computing it, relative to its size.
///
/// Why: the score is a float32 computation (backbone convolutions, patch distances, flows)
/// whose sums libtorch orders differently for each batch size, lane and thread count, and
/// for each CPU (oneDNN, MKL and ATen pick AVX2, AVX-512 or AMX kernels). Measured: 1e-6
/// relative between batch 1 and 8 on an AVX-512 Xeon, 2e-5 to 4e-5 on an AVX2-only EPYC
/// (BENCHMARKS.md, "Scores and batch size"). 1e-4 keeps a margin of 2.5x over the worst
/// seen and is still far below a difference that moves a part across a line (the lines
/// of these tests sit at least 1 % of a score apart from any part).
pub const SCORE_RTOL: f64 = 1e-4;

/// How far a fusion's standard score (the log of its reported score, in held-out standard
/// deviations) may move between two ways of computing it.
///
/// Why: a member's standard score is (s - mean) / sd, so a relative wobble r of its raw
/// score s moves it by r x s / sd = r x (z + mean / sd). With r = [`SCORE_RTOL`], that is
/// 1e-4 of the standard score itself plus 1e-4 x mean / sd, which the absolute 1e-3 (a
/// thousandth of a held-out standard deviation) covers for mean / sd up to 10. Compared on
/// this scale because the reported score is exp(z): a wobble of 4e-5 in z = 150 is a
/// relative 4e-5 of a score of 1.7e66, which says nothing about the decision.
pub const STANDARD_SCORE_ATOL: f64 = 1e-3;

/// Whether two raw scores agree within [`SCORE_RTOL`].
pub fn same_score(a: f64, b: f64) -> bool {
    (a - b).abs() <= SCORE_RTOL * a.abs().max(b.abs()).max(1e-6)
}

/// Whether two lists of raw scores agree within [`SCORE_RTOL`], in order.
pub fn same_scores(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_score(*x, *y))
}

/// Whether two fusion standard scores agree: within [`SCORE_RTOL`] of their size plus
/// [`STANDARD_SCORE_ATOL`].
pub fn same_standard_score(a: f64, b: f64) -> bool {
    (a - b).abs() <= SCORE_RTOL * a.abs().max(b.abs()) + STANDARD_SCORE_ATOL
}

/// Whether two lists of scores of `config` agree on the scale where the product compares
/// them: a fusion that reports exp(z) on the log scale (its standard score), a fusion that
/// reports z as standard scores, every other detector's raw score relatively.
pub fn same_scores_of(
    config: &differnet::core::config::DetectorConfig,
    a: &[f64],
    b: &[f64],
) -> bool {
    use differnet::core::config::DetectorConfig;
    a.len() == b.len()
        && match config {
            DetectorConfig::Fusion(f) if f.positive_score => a
                .iter()
                .zip(b)
                .all(|(x, y)| *x > 0.0 && *y > 0.0 && same_standard_score(x.ln(), y.ln())),
            DetectorConfig::Fusion(_) => a.iter().zip(b).all(|(x, y)| same_standard_score(*x, *y)),
            _ => same_scores(a, b),
        }
}

/// A worker on the CPU with the real backbone weights, its events unread until asked for.
pub fn worker() -> differnet::engine::worker::WorkerHandle {
    let _ = efficientnet_weights();
    let options = differnet::engine::worker::WorkerOptions {
        device: differnet::core::config::DeviceChoice::Cpu,
        ..Default::default()
    };
    differnet::engine::worker::WorkerHandle::spawn(options, std::sync::Arc::new(|| {})).unwrap()
}

/// A worker on the CPU that scores in batches of `batch` images, as a GPU does.
pub fn batched_worker(batch: usize) -> differnet::engine::worker::WorkerHandle {
    let _ = efficientnet_weights();
    let options = differnet::engine::worker::WorkerOptions {
        device: differnet::core::config::DeviceChoice::Cpu,
        score_batch: Some(batch),
        ..Default::default()
    };
    differnet::engine::worker::WorkerHandle::spawn(options, std::sync::Arc::new(|| {})).unwrap()
}

/// Waits for the first event `pick` accepts, failing on errors.
pub fn wait_for<T>(
    w: &differnet::engine::worker::WorkerHandle,
    mut pick: impl FnMut(differnet::core::protocol::Event) -> Option<T>,
) -> T {
    use differnet::core::protocol::Event;
    loop {
        match w
            .events()
            .recv_timeout(std::time::Duration::from_secs(300))
            .expect("worker event")
        {
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

/// Trains `config` on `train` (holding out `validation`, learning from `defects`) and
/// waits for the trained model's record.
pub fn train(
    w: &differnet::engine::worker::WorkerHandle,
    train: &[PathBuf],
    validation: &[PathBuf],
    config: differnet::core::config::DetectorConfig,
    defects: Vec<differnet::core::protocol::LabelledDefect>,
) -> differnet::core::protocol::ModelInfo {
    use differnet::core::protocol::{Command, Event, TrainRequest};
    w.send(Command::Train(TrainRequest {
        train: train.to_vec(),
        validation: validation.to_vec(),
        config,
        defects,
    }))
    .unwrap();
    wait_for(w, |e| match e {
        Event::Trained(info) => Some(info),
        _ => None,
    })
}

/// Scores `paths` with the worker's current model (no maps), in order.
pub fn scores(w: &differnet::engine::worker::WorkerHandle, paths: &[PathBuf]) -> Vec<f64> {
    use differnet::core::protocol::{Command, Event, ScoreRequest};
    w.send(Command::Score(ScoreRequest {
        paths: paths.to_vec(),
        heatmaps: false,
        rotations: None,
    }))
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
}

/// Rewrites the JSON metadata of a saved model file with `edit`.
pub fn rewrite_meta(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let meta_str = header["__metadata__"]["differnet"]
        .as_str()
        .unwrap()
        .to_string();
    let mut meta: serde_json::Value = serde_json::from_str(&meta_str).unwrap();
    edit(&mut meta);
    header["__metadata__"]["differnet"] = serde_json::Value::String(meta.to_string());
    let mut new_header = serde_json::to_vec(&header).unwrap();
    while !new_header.len().is_multiple_of(8) {
        new_header.push(b' ');
    }
    let mut out = (new_header.len() as u64).to_le_bytes().to_vec();
    out.extend(new_header);
    out.extend(&bytes[8 + n..]);
    std::fs::write(path, out).unwrap();
}

/// Labelled test samples: `good` images and `bad` ones of the defect type "scratch".
pub fn good_and_scratched(
    good: &[PathBuf],
    bad: &[PathBuf],
) -> Vec<differnet::core::dataset::Sample> {
    use differnet::core::dataset::{Label, Sample};
    let sample = |path: &PathBuf, label: Label| Sample {
        path: path.clone(),
        label,
        mask: None,
    };
    good.iter()
        .map(|p| sample(p, Label::Good))
        .chain(
            bad.iter()
                .map(|p| sample(p, Label::Defect("scratch".into()))),
        )
        .collect()
}
