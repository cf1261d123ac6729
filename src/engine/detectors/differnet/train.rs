//! Training (DifferNet paper, Rudolph, Wandt, Rosenhahn, WACV 2021: randomly rotated copies
//! of the training images, the maximum-likelihood loss, Adam as its implementation details
//! set it) and validation.
//!
//! Two regimes, chosen by [`TrainConfig::cached_rotations`]:
//! - paper: fresh random angles in [-180, 180] for every copy of every image in every
//!   epoch, so the frozen backbone runs every epoch (under `no_grad`);
//! - cached: k random angles per image drawn once, the backbone runs once per (image,
//!   angle) and the features are reused across epochs; each epoch samples
//!   `rotations_per_image` of the k cached rows per image.

use super::DifferNet;
use crate::core::config::{DifferNetConfig, TrainConfig};
use crate::core::protocol::Phase;
use crate::core::rng::SplitMix64;
use crate::engine::detectors::common::{
    Report, StepAt, TrainJob, TrainProgress, heat_scale_of, load_images, load_training_images,
    optimiser_step, run_phase,
};
use crate::engine::error::{EngineError, Result};
use crate::engine::lanes::{Lanes, ReadOnly};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tch::nn::{self, OptimizerConfig};
use tch::{Kind, Tensor};

/// Decodes and prepares images, skipping (and reporting) those that cannot be read.
fn load_prepared(
    model: &DifferNet,
    paths: &[PathBuf],
    phase: Phase,
    report: &mut dyn FnMut(TrainProgress),
    cancel: &AtomicBool,
) -> Result<(Vec<PathBuf>, Vec<Tensor>)> {
    load_images(paths, phase, report, cancel, &|img| model.prepare(img))
}

/// A random angle in [-180, 180).
fn random_angle(rng: &mut SplitMix64) -> f64 {
    rng.next_f64() * 360.0 - 180.0
}

/// Trains a model. Returns it with its validation statistics, default threshold and heat
/// scale set. Cancellation and divergence are errors; the caller keeps its old model.
pub fn train(cfg: DifferNetConfig, job: TrainJob<'_>, report: Report<'_>) -> Result<DifferNet> {
    let started = Instant::now();
    let tc: &TrainConfig = &cfg.train;
    if tc.epochs == 0 || tc.batch_images == 0 || tc.rotations_per_image == 0 {
        return Err(EngineError::Config(
            "epochs, batch and rotations must be positive".into(),
        ));
    }
    let mut rng = SplitMix64::new(tc.seed);
    // The flow draws its initial weights from a generator of its own, seeded through its
    // permutations by `tc.seed`: not from libtorch's, which every worker shares.
    let mut model = DifferNet::new(cfg.clone(), job.backbone.clone(), job.device)
        .map_err(EngineError::Config)?;

    let (kept, images) = load_training_images(&job, report, &|img| model.prepare(img))?;
    let images = Tensor::cat(&images, 0); // [N, 3, S, S]
    let n_images = kept.len();

    let lanes = Lanes::for_device(job.device);
    let stop = || job.cancel.load(Ordering::Relaxed);
    // The feature cache: [N, k, D], computed once.
    let cache = match tc.cached_rotations {
        Some(k) if k > 0 => {
            report(TrainProgress::Phase {
                phase: Phase::CachingFeatures,
                done: 0,
                total: n_images,
            });
            let angles: Vec<Vec<f64>> = (0..n_images)
                .map(|_| (0..k).map(|_| random_angle(&mut rng)).collect())
                .collect();
            let feats = model
                .features_in_lanes(lanes, &images, &angles, &stop, &mut |done, total| {
                    // In images, as the bar started.
                    report(TrainProgress::Phase {
                        phase: Phase::CachingFeatures,
                        done: done * n_images / total,
                        total: n_images,
                    })
                })
                .ok_or(EngineError::Cancelled)?;
            Some(feats.view([n_images as i64, k as i64, -1]))
        }
        _ => None,
    };

    let mut opt = nn::Adam {
        beta1: tc.beta1,
        beta2: tc.beta2,
        wd: tc.weight_decay,
        eps: tc.adam_eps,
        amsgrad: false,
    }
    .build(&model.vs, tc.lr)?;

    let steps_per_epoch = n_images.div_ceil(tc.batch_images);
    let total_steps = tc.epochs * steps_per_epoch;
    let r = tc.rotations_per_image;
    for epoch in 0..tc.epochs {
        let mut order: Vec<usize> = (0..n_images).collect();
        rng.shuffle(&mut order);
        let mut loss_sum = 0.0;
        for (step, batch) in order.chunks(tc.batch_images).enumerate() {
            if job.cancel.load(Ordering::Relaxed) {
                return Err(EngineError::Cancelled);
            }
            let feats = match &cache {
                Some(cache) => {
                    let k = cache.size()[1] as usize;
                    let mut idx = Vec::with_capacity(batch.len() * r);
                    for &i in batch {
                        let mut picks: Vec<usize> = (0..k).collect();
                        rng.shuffle(&mut picks);
                        for j in 0..r {
                            // Without replacement while k allows, then cycling.
                            idx.push((i * k + picks[j % k]) as i64);
                        }
                    }
                    let idx = Tensor::from_slice(&idx).to_device(model.device());
                    cache.flatten(0, 1).index_select(0, &idx)
                }
                None => {
                    let angles: Vec<Vec<f64>> = batch
                        .iter()
                        .map(|_| (0..r).map(|_| random_angle(&mut rng)).collect())
                        .collect();
                    let idx: Vec<i64> = batch.iter().map(|&i| i as i64).collect();
                    let idx = Tensor::from_slice(&idx).to_device(model.device());
                    let x = images.index_select(0, &idx);
                    model
                        .features_in_lanes(lanes, &x, &angles, &|| false, &mut |_, _| {})
                        .expect("never stopped")
                }
            };
            let (z, log_det) = model.flow.forward(&feats);
            let loss = model.flow.nll(&z, &log_det).mean(Kind::Float);
            let at = StepAt {
                epoch,
                step,
                steps_per_epoch,
                total_steps,
            };
            // No clipping: the paper's training, exactly.
            loss_sum += optimiser_step(&mut opt, &loss, None, at, report)?;
        }
        report(TrainProgress::Epoch {
            epoch,
            mean_loss: loss_sum / steps_per_epoch as f64,
        });
    }
    drop(opt);
    model.vs.freeze();
    model.state.train_count = n_images;

    let fitted = Instant::now();
    validate(
        &mut model,
        lanes,
        job.validation,
        &images,
        report,
        job.cancel,
    )?;
    model.state.validation_secs = fitted.elapsed().as_secs_f64();
    model.state.train_secs = started.elapsed().as_secs_f64();
    Ok(model)
}

/// Images used to set the heatmap scale (each costs a backward pass per rotation).
const HEAT_SCALE_IMAGES: usize = 4;

/// Scores the held-out good images to set the score statistics, the default threshold
/// and the heatmap scale. Without validation images the heat scale comes from training
/// images (which the flow has seen, so it is lower) and there is no default threshold.
fn validate(
    model: &mut DifferNet,
    lanes: Lanes,
    validation: &[PathBuf],
    train_images: &Tensor,
    report: &mut dyn FnMut(TrainProgress),
    cancel: &AtomicBool,
) -> Result<()> {
    let angles = model.config.score.angles_deg();
    // Loading is reported as loading: a phase that reached its end on the files would
    // show a full bar before they are scored.
    let (_, val) = load_prepared(model, validation, Phase::Loading, report, cancel)?;
    // One unit per validation image scored, then one per heat-scale image (those cost a
    // backward pass per rotation, so the bar must keep moving through them too).
    let heat_count = if val.is_empty() {
        (train_images.size()[0] as usize).min(HEAT_SCALE_IMAGES)
    } else {
        val.len().min(HEAT_SCALE_IMAGES)
    };
    let total = val.len() + heat_count;
    let val_count = val.len();
    // Heat scale from a few good images: validation ones, else training ones (taken
    // before `val` moves into the lanes).
    let sources: Vec<Tensor> = if val.is_empty() {
        let n = train_images.size()[0].min(HEAT_SCALE_IMAGES as i64);
        (0..n).map(|i| train_images.narrow(0, i, 1)).collect()
    } else {
        val.iter()
            .take(HEAT_SCALE_IMAGES)
            .map(Tensor::shallow_clone)
            .collect()
    };
    let scores = {
        // SAFETY: only `score_prepared` runs through it: a forward pass under `no_grad` that
        // builds new tensors; it mutates nothing and clones no `Rc`.
        let shared = unsafe { ReadOnly::new(&*model) };
        run_phase(
            &lanes,
            val,
            &|x| shared.get().score_prepared(&x, &angles),
            cancel,
            Phase::Validating,
            (0, total),
            report,
        )?
    };
    model.state.set_validation(&scores);

    // Heat scale: 99th percentile of raw map values of those images.
    let size = model.config.model.image_size;
    let values = {
        // SAFETY: only `localize_prepared` runs through it: forward passes, and gradients
        // with respect to a new leaf of each lane's own (`run_backward` with inputs, which
        // accumulates nothing into the weights); it mutates nothing and clones no `Rc`.
        let shared = unsafe { ReadOnly::new(&*model) };
        run_phase(
            &lanes,
            sources,
            &|x| {
                shared
                    .get()
                    .localize_prepared(&x, &angles, size, size)
                    .1
                    .flatten(0, -1)
            },
            cancel,
            Phase::Validating,
            (val_count, total),
            report,
        )?
    };
    if !values.is_empty() {
        model.state.heat_scale = heat_scale_of(&values);
    }
    Ok(())
}
