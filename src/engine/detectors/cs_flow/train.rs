//! Training and validation of CS-Flow. The backbone runs once per good image (and its
//! rotations and flips, when asked): the three scales' maps are cached and the flow is
//! trained on them for every epoch, as the reference trains on precomputed features.

use super::flow::{CrossScaleFlow, Scales};
use super::{CsFlow, prepare, scale_features};
use crate::core::config::{CS_FLOW_SCALES, CsFlowConfig};
use crate::core::protocol::Phase;
use crate::core::rng::SplitMix64;
use crate::engine::detectors::common::{
    Report, StepAt, TrainJob, TrainProgress, heat_scale_of, load_images, load_training_images,
    optimiser_step, run_phase,
};
use crate::engine::error::{EngineError, Result};
use crate::engine::lanes::{Lanes, ReadOnly};
use crate::engine::transforms::dihedral;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tch::nn::{self, OptimizerConfig};
use tch::{Kind, Tensor};

/// Images whose maps calibrate the heat scale when no validation images are held out.
const HEAT_SCALE_IMAGES: usize = 4;

/// Trains a CS-Flow detector on the good images, then scores the held-out ones for the
/// score statistics, the default threshold and the heat scale. Cancellation and
/// divergence are errors; the caller keeps its old model.
pub fn train(config: CsFlowConfig, job: TrainJob<'_>, report: Report<'_>) -> Result<CsFlow> {
    let started = Instant::now();
    config.validate().map_err(EngineError::Config)?;
    let device = job.device;
    // The flow draws its initial weights from a generator of its own, seeded through its
    // permutations by `config.seed`: not from libtorch's, which every worker shares.
    let mut model =
        CsFlow::new(config.clone(), job.backbone.clone(), device).map_err(EngineError::Config)?;
    let (_, images) = load_training_images(&job, report, &|img| prepare(img, &config, device))?;
    let n_images = images.len();
    let lanes = Lanes::for_device(device);

    // The feature cache: the three scales' maps of every image and its copies.
    let per_image: Vec<Scales> = {
        let backbone = &*job.backbone;
        let cfg = &config;
        let batch = model.backbone_batch;
        let extract = |x: Tensor| {
            let x = if cfg.dihedral { dihedral(&x) } else { x };
            scale_features(backbone, cfg, &x, batch)
        };
        // SAFETY: `extract` runs the frozen backbone forward (held by reference, not by its
        // `Rc`) and builds new tensors; it mutates nothing.
        let shared = unsafe { ReadOnly::new(&extract) };
        run_phase(
            &lanes,
            images,
            &|x| shared.get()(x),
            job.cancel,
            Phase::CachingFeatures,
            (0, n_images),
            report,
        )?
    };
    let cache: Vec<Tensor> = (0..CS_FLOW_SCALES)
        .map(|s| Tensor::cat(&per_image.iter().map(|f| &f[s]).collect::<Vec<_>>(), 0))
        .collect();
    drop(per_image);
    let samples = cache[0].size()[0] as usize;

    let mut opt = nn::Adam {
        beta1: 0.9,
        beta2: 0.999,
        wd: config.weight_decay,
        eps: config.adam_eps,
        amsgrad: false,
    }
    .build(&model.vs, config.lr)?;
    let mut rng = SplitMix64::new(config.seed ^ 0x4353_464c_4f57);
    let steps_per_epoch = samples.div_ceil(config.batch);
    let total_steps = config.epochs * steps_per_epoch;
    report(TrainProgress::Phase {
        phase: Phase::Training,
        done: 0,
        total: total_steps,
    });
    for epoch in 0..config.epochs {
        let mut order: Vec<i64> = (0..samples as i64).collect();
        rng.shuffle(&mut order);
        let mut loss_sum = 0.0;
        for (step, batch) in order.chunks(config.batch).enumerate() {
            if job.cancel.load(Ordering::Relaxed) {
                return Err(EngineError::Cancelled);
            }
            let idx = Tensor::from_slice(batch).to_device(device);
            let x: Scales = [0, 1, 2].map(|s| cache[s].index_select(0, &idx));
            let (z, log_det) = model.flow().forward(&x);
            let loss = CrossScaleFlow::nll(&z, &log_det).mean(Kind::Float);
            let at = StepAt {
                epoch,
                step,
                steps_per_epoch,
                total_steps,
            };
            loss_sum += optimiser_step(&mut opt, &loss, Some(config.grad_clip), at, report)?;
        }
        report(TrainProgress::Epoch {
            epoch,
            mean_loss: loss_sum / steps_per_epoch as f64,
        });
    }
    drop(opt);
    drop(cache);
    model.vs.freeze();
    model.state.train_count = n_images;

    let fitted = Instant::now();
    validate(&mut model, lanes, &job, report)?;
    model.state.validation_secs = fitted.elapsed().as_secs_f64();
    model.state.train_secs = started.elapsed().as_secs_f64();
    Ok(model)
}

/// Scores the held-out good images (with maps, which cost nothing extra) to set the score
/// statistics, the default threshold and the heat scale. Without validation images there
/// is no default threshold and the heat scale comes from a few training images (which
/// the flow has seen, so it is lower).
fn validate(
    model: &mut CsFlow,
    lanes: Lanes,
    job: &TrainJob<'_>,
    report: &mut dyn FnMut(TrainProgress),
) -> Result<()> {
    let held_out = !job.validation.is_empty();
    let sources = if held_out {
        job.validation
    } else {
        &job.train[..job.train.len().min(HEAT_SCALE_IMAGES)]
    };
    // Loading is reported as loading, before the images are scored.
    let (_, images) = load_images(sources, Phase::Loading, report, job.cancel, &|img| {
        model.prepare(img)
    })?;
    let size = model.config.image_size;
    let total = images.len();
    let scored = {
        // SAFETY: only `score_prepared` runs through it: a forward pass under `no_grad` that
        // builds new tensors; it mutates nothing and clones no `Rc`.
        let shared = unsafe { ReadOnly::new(&*model) };
        run_phase(
            &lanes,
            images,
            &|x| shared.get().score_prepared(&x, Some((size, size))),
            job.cancel,
            Phase::Validating,
            (0, total),
            report,
        )?
    };
    let (scores, maps): (Vec<f64>, Vec<Option<Tensor>>) = scored.into_iter().unzip();
    let maps: Vec<Tensor> = maps.into_iter().flatten().collect();
    if held_out {
        model.state.set_validation(&scores);
    }
    model.state.heat_scale = heat_scale_of(&maps);
    Ok(())
}
