//! What every detector kind shares, and what the interface ([`crate::engine::detector`])
//! and the kinds both take from here: the state a model keeps besides its weights, a raw
//! score, a training job and its progress reports, and the scaffolds of training and
//! scoring (image loading, the heat scale, maps at each image's size, the top patches, the
//! flows' permutations and soft clamp). Nothing here knows a kind.

use crate::core::config::DetectorConfig;
use crate::core::image_io::load_rgb;
use crate::core::protocol::{Heatmap, Phase, ScoreStats};
use crate::core::provenance::TrainingRecord;
use crate::core::rng::SplitMix64;
use crate::engine::backbone::Backbone;
use crate::engine::error::{EngineError, Result};
use crate::engine::lanes::Lanes;
use image::RgbImage;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use tch::{Device, Tensor};

/// What the engine learned besides the weights; the same for every kind.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelState {
    /// Number of training images.
    pub train_count: usize,
    /// Scores of the held-out good images.
    pub validation: Option<ScoreStats>,
    /// Reject threshold (default from validation, or the user's).
    pub threshold: Option<f64>,
    /// Start of the review band below the reject threshold, when the user set one.
    #[serde(default)]
    pub review_threshold: Option<f64>,
    /// Heatmap scale: the 99th percentile of raw map values on good images; maps are
    /// divided by it so 1.0 means "as hot as a good part gets".
    pub heat_scale: Option<f64>,
    /// Seconds spent training.
    pub train_secs: f64,
    /// Of `train_secs`, the seconds spent validating and calibrating the heatmap scale.
    #[serde(default)]
    pub validation_secs: f64,
    /// What the model was trained on (absent in files written before it was recorded).
    #[serde(default)]
    pub trained_on: Option<TrainingRecord>,
}

impl ModelState {
    /// The state of a model that has not been trained yet.
    pub fn untrained() -> Self {
        Self {
            train_count: 0,
            validation: None,
            threshold: None,
            review_threshold: None,
            heat_scale: None,
            train_secs: 0.0,
            validation_secs: 0.0,
            trained_on: None,
        }
    }

    /// Sets the score statistics of the held-out good images and the default threshold.
    pub fn set_validation(&mut self, scores: &[f64]) {
        self.validation = ScoreStats::from_scores(scores);
        self.threshold = self.validation.as_ref().map(ScoreStats::default_threshold);
    }
}

/// The raw output of scoring one image.
#[derive(Debug, Clone)]
pub struct RawScore {
    /// The anomaly score; higher is more anomalous.
    pub score: f64,
    /// Anomaly map at the image's size, divided by the heat scale when known.
    pub heatmap: Option<Heatmap>,
}

/// What training reports as it goes.
#[derive(Debug, Clone, PartialEq)]
pub enum TrainProgress {
    /// `done` of `total` units of a phase.
    Phase {
        /// The phase.
        phase: Phase,
        /// Units done.
        done: usize,
        /// Units in total.
        total: usize,
    },
    /// An image could not be used; training goes on without it.
    Skipped {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// An optimiser step.
    Step {
        /// 0-based epoch.
        epoch: usize,
        /// 0-based step in the epoch.
        step: usize,
        /// Batch loss.
        loss: f64,
    },
    /// An epoch ended.
    Epoch {
        /// 0-based epoch.
        epoch: usize,
        /// Mean loss over its steps.
        mean_loss: f64,
    },
}

/// Where a training run reports its progress.
pub type Report<'a> = &'a mut dyn FnMut(TrainProgress);

/// Inputs of a training run, whatever the kind.
pub struct TrainJob<'a> {
    /// Good images to train on.
    pub train: &'a [PathBuf],
    /// Held-out good images for statistics.
    pub validation: &'a [PathBuf],
    /// The frozen backbone (must match the configuration's).
    pub backbone: Rc<Backbone>,
    /// Where the tensors live.
    pub device: Device,
    /// Set from another thread to stop between batches.
    pub cancel: &'a AtomicBool,
    /// Images confirmed defective to learn from (PatchCore and the fusions of
    /// PatchCores; the flows learn from good images only and ignore them).
    pub defects: &'a [crate::core::protocol::LabelledDefect],
}

/// The job's training images, decoded and turned into tensors with `prepare` (the loading
/// phase reported, unreadable ones reported and skipped): the kept paths and their
/// tensors. An error when none can be read.
pub(crate) fn load_training_images(
    job: &TrainJob<'_>,
    report: &mut dyn FnMut(TrainProgress),
    prepare: &dyn Fn(&RgbImage) -> Tensor,
) -> Result<(Vec<PathBuf>, Vec<Tensor>)> {
    let (kept, images) = load_images(job.train, Phase::Loading, report, job.cancel, prepare)?;
    if images.is_empty() {
        return Err(EngineError::NoImages(format!(
            "none of the {} training images could be read",
            job.train.len()
        )));
    }
    Ok((kept, images))
}

/// Where an optimiser step is in a training run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepAt {
    /// 0-based epoch.
    pub epoch: usize,
    /// 0-based step in the epoch.
    pub step: usize,
    /// Steps in an epoch.
    pub steps_per_epoch: usize,
    /// Steps in the run.
    pub total_steps: usize,
}

/// One optimiser step on `loss` (with the gradients' norm clipped at `clip` when given),
/// reported as a step and as a unit of the training phase. A loss that is not finite is
/// divergence, an error. Returns the loss.
pub(crate) fn optimiser_step(
    opt: &mut tch::nn::Optimizer,
    loss: &Tensor,
    clip: Option<f64>,
    at: StepAt,
    report: &mut dyn FnMut(TrainProgress),
) -> Result<f64> {
    let value = loss.double_value(&[]);
    if !value.is_finite() {
        return Err(EngineError::Diverged {
            epoch: at.epoch,
            loss: value,
        });
    }
    opt.zero_grad();
    loss.backward();
    if let Some(clip) = clip {
        opt.clip_grad_norm(clip);
    }
    opt.step();
    report(TrainProgress::Step {
        epoch: at.epoch,
        step: at.step,
        loss: value,
    });
    report(TrainProgress::Phase {
        phase: Phase::Training,
        done: at.epoch * at.steps_per_epoch + at.step + 1,
        total: at.total_steps,
    });
    Ok(value)
}

/// Runs `work` on every item through the lanes (the results in the items' order),
/// reporting `phase` as units `done + 1 ..` of `total` (and `done` of `total` before the
/// first, slow one). Cancelled when `cancel` was set before every item was done. The
/// kinds cache their features and score their held-out images through it.
pub(crate) fn run_phase<I: Send, O: Send>(
    lanes: &Lanes,
    items: Vec<I>,
    work: &(dyn Fn(I) -> O + Sync),
    cancel: &AtomicBool,
    phase: Phase,
    (done, total): (usize, usize),
    report: &mut dyn FnMut(TrainProgress),
) -> Result<Vec<O>> {
    report(TrainProgress::Phase { phase, done, total });
    let count = items.len();
    let mut out = Vec::with_capacity(count);
    lanes.map(
        items,
        work,
        &|| cancel.load(Ordering::Relaxed),
        &mut |i, o| {
            out.push(o);
            report(TrainProgress::Phase {
                phase,
                done: done + i + 1,
                total,
            });
        },
    );
    if out.len() < count {
        return Err(EngineError::Cancelled);
    }
    Ok(out)
}

/// What a fusion needs of its members (the interface's [`crate::engine::detector::Detector`]
/// is one): a fusion combines detectors without knowing their kinds.
pub trait Member {
    /// The member's kind and settings.
    fn config(&self) -> DetectorConfig;
    /// What it learnt besides its weights.
    fn state(&self) -> &ModelState;
    /// The same, to set its held-out statistics and heat scale.
    fn state_mut(&mut self) -> &mut ModelState;
    /// Where its tensors live.
    fn device(&self) -> Device;
    /// Scores decoded images, with a map for each `heatmaps[i]`.
    fn score_batch(
        &self,
        imgs: &[&RgbImage],
        heatmaps: &[bool],
        rotations: Option<usize>,
    ) -> Vec<RawScore>;
}

/// Decodes `paths` and turns each image into a tensor with `prepare`, skipping (and
/// reporting) those that cannot be read. Returns the kept paths and their tensors.
pub(crate) fn load_images(
    paths: &[PathBuf],
    phase: Phase,
    report: &mut dyn FnMut(TrainProgress),
    cancel: &AtomicBool,
    prepare: &dyn Fn(&RgbImage) -> Tensor,
) -> Result<(Vec<PathBuf>, Vec<Tensor>)> {
    let mut kept = Vec::new();
    let mut tensors = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        if cancel.load(Ordering::Relaxed) {
            return Err(EngineError::Cancelled);
        }
        match load_rgb(path) {
            Ok(img) => {
                tensors.push(prepare(&img));
                kept.push(path.clone());
            }
            Err(e) => report(TrainProgress::Skipped {
                path: path.clone(),
                reason: e.to_string(),
            }),
        }
        report(TrainProgress::Phase {
            phase,
            done: i + 1,
            total: paths.len(),
        });
    }
    Ok((kept, tensors))
}

/// The 99th percentile of the values of `maps`, the heat scale ([`percentile_99`]); `None`
/// when there are no maps or the percentile is not a positive number.
pub(crate) fn heat_scale_of(maps: &[Tensor]) -> Option<f64> {
    if maps.is_empty() {
        return None;
    }
    let all = Tensor::cat(
        &maps
            .iter()
            .map(|m| m.flatten(0, -1).to_kind(tch::Kind::Float))
            .collect::<Vec<_>>(),
        0,
    )
    .to_device(Device::Cpu);
    percentile_99(Vec::<f32>::try_from(&all).ok()?)
}

/// The heat scale of map values: their 99th percentile by linear interpolation between the
/// two nearest ranks (libtorch's and numpy's default, `quantile(0.99, "linear")`, computed
/// in `f32` as libtorch does: position `0.99 (n - 1)` in the sorted values). `None` when
/// there are no values, any is NaN, or the percentile is not a positive finite number.
///
/// Every kind's heat scale, and the fusion's, is this one; in Rust rather than
/// `Tensor::quantile`, which refuses more than 2^24 values (a few dozen maps of 448 x 448).
pub(crate) fn percentile_99(mut v: Vec<f32>) -> Option<f64> {
    if v.is_empty() || v.iter().any(|x| x.is_nan()) {
        return None;
    }
    let n = v.len();
    let rank = 0.99f32 * (n - 1) as f32;
    let below = (rank as usize).min(n - 1);
    let weight = rank - below as f32;
    let (_, &mut lo, above) = v.select_nth_unstable_by(below, f32::total_cmp);
    let hi = if weight > 0.0 {
        above.iter().copied().fold(f32::INFINITY, f32::min)
    } else {
        lo
    };
    // libtorch's `lerp`, exact at both ends.
    let q = if weight < 0.5 {
        lo + weight * (hi - lo)
    } else {
        hi - (hi - lo) * (1.0 - weight)
    };
    let q = f64::from(q);
    (q > 0.0 && q.is_finite()).then_some(q)
}

/// Anomaly maps of the images of a batch from their grids of patch or position scores
/// `[B, 1, h, w]`: each grid upsampled bilinearly to the square input size `input`,
/// blurred with a Gaussian of `sigma`, resized to its image's size (`sizes[i]`, `None`
/// for an image that needs no map) and divided by `heat_scale`. The grids are upsampled
/// and blurred together; only the last resize is per image.
pub(crate) fn maps_from_grids(
    grids: &Tensor,
    input: u32,
    sigma: f64,
    sizes: &[Option<(u32, u32)>],
    heat_scale: Option<f64>,
) -> Vec<Option<Tensor>> {
    let s = i64::from(input);
    maps_from_grids_at(grids, (s, s), sigma, sizes, heat_scale)
}

/// [`maps_from_grids`] for inputs of any shape: `input` is the network input's
/// `(height, width)` in pixels, which the grids are upsampled to before the blur (so
/// `sigma` is in input pixels whatever the image's shape).
pub(crate) fn maps_from_grids_at(
    grids: &Tensor,
    input: (i64, i64),
    sigma: f64,
    sizes: &[Option<(u32, u32)>],
    heat_scale: Option<f64>,
) -> Vec<Option<Tensor>> {
    let wanted: Vec<i64> = (0..sizes.len() as i64)
        .filter(|&i| sizes[i as usize].is_some())
        .collect();
    let mut out: Vec<Option<Tensor>> = sizes.iter().map(|_| None).collect();
    if wanted.is_empty() {
        return out;
    }
    let rows = if wanted.len() == sizes.len() {
        grids.shallow_clone()
    } else {
        grids.index_select(0, &Tensor::from_slice(&wanted).to_device(grids.device()))
    };
    let up = rows.upsample_bilinear2d([input.0, input.1], false, None, None);
    let mut blurred = crate::engine::transforms::gaussian_blur(&up, sigma);
    if let Some(scale) = heat_scale.filter(|s| *s > 0.0) {
        blurred /= scale;
    }
    for (row, &i) in wanted.iter().enumerate() {
        let (w, h) = sizes[i as usize].expect("only images that want a map");
        let one = blurred.narrow(0, row as i64, 1);
        let map = if (i64::from(h), i64::from(w)) == input {
            one
        } else {
            one.internal_upsample_bilinear2d_aa([i64::from(h), i64::from(w)], false, None, None)
        };
        out[i as usize] = Some(map.view([i64::from(h), i64::from(w)]));
    }
    out
}

/// Scores `[B]` (on the device) and the maps where asked, of a prepared batch.
pub(crate) type BatchScores = (Tensor, Vec<Option<Tensor>>);

/// Scores decoded images of any sizes as one batch, for a kind that prepares each image
/// (`prepare`: `[1, 3, S, S]`) and scores a prepared batch (`score`: scores `[B]` and, where
/// a size is given, the map at that size); with `heatmaps[i]`, image i's map at its size.
pub(crate) fn score_decoded<F>(
    imgs: &[&RgbImage],
    heatmaps: &[bool],
    prepare: &dyn Fn(&RgbImage) -> Tensor,
    score: F,
) -> Vec<RawScore>
where
    F: FnOnce(&Tensor, &[Option<(u32, u32)>]) -> BatchScores,
{
    if imgs.is_empty() {
        return Vec::new();
    }
    let x = Tensor::cat(&imgs.iter().map(|img| prepare(img)).collect::<Vec<_>>(), 0);
    let sizes: Vec<_> = imgs
        .iter()
        .zip(heatmaps)
        .map(|(img, &map)| map.then(|| img.dimensions()))
        .collect();
    let (scores, maps) = score(&x, &sizes);
    read_back(&scores, maps)
}

/// The scores `[B]` and maps of a batch, read back to the host with one transfer for the
/// scores and one for all the maps (no synchronisation per image on a GPU).
fn read_back(scores: &Tensor, maps: Vec<Option<Tensor>>) -> Vec<RawScore> {
    let scores = Vec::<f64>::try_from(scores.to_kind(tch::Kind::Double).to_device(Device::Cpu))
        .expect("scores are a 1-D tensor");
    let flat: Vec<Tensor> = maps.iter().flatten().map(|m| m.flatten(0, -1)).collect();
    let mut values = if flat.is_empty() {
        Vec::new()
    } else {
        Vec::<f32>::try_from(
            Tensor::cat(&flat, 0)
                .to_kind(tch::Kind::Float)
                .to_device(Device::Cpu),
        )
        .expect("maps are float tensors")
    }
    .into_iter();
    scores
        .into_iter()
        .zip(maps)
        .map(|(score, map)| RawScore {
            score,
            heatmap: map.map(|m| {
                let (h, w) = (m.size()[0] as u32, m.size()[1] as u32);
                Heatmap {
                    width: w,
                    height: h,
                    values: values.by_ref().take((w * h) as usize).collect(),
                }
            }),
        })
        .collect()
}

/// The image scores `[B]` of patch scores `[B, P]`: the largest, or the mean of the
/// largest `fraction` of them.
pub(crate) fn top_scores(patches: &Tensor, fraction: Option<f64>) -> Tensor {
    match fraction {
        None => patches.amax([1i64].as_slice(), false),
        Some(fraction) => {
            let p = patches.size()[1];
            let k = ((p as f64 * fraction).ceil() as i64).clamp(1, p);
            patches
                .topk(k, 1, true, false)
                .0
                .mean_dim([1i64].as_slice(), false, tch::Kind::Float)
        }
    }
}

/// `count` seeded random permutations of `0..len`, the fixed channel shuffles of a
/// normalizing flow's blocks: one generator seeded with `seed ^ salt` shuffles `0..len`
/// afresh for each (each flow has its salt, so one seed draws different permutations for
/// each). A flow's initial weights are seeded by its permutations, so a seed must keep
/// drawing exactly these.
pub(crate) fn random_permutations(len: usize, count: usize, seed: u64, salt: u64) -> Vec<Vec<i64>> {
    let mut rng = SplitMix64::new(seed ^ salt);
    (0..count)
        .map(|_| {
            let mut p: Vec<i64> = (0..len as i64).collect();
            rng.shuffle(&mut p);
            p
        })
        .collect()
}

/// Checks that `perm` is a permutation of 0..dim.
pub fn check_permutation(perm: &[i64], dim: usize) -> std::result::Result<(), String> {
    if perm.len() != dim {
        return Err(format!(
            "permutation of length {} for dimension {dim}",
            perm.len()
        ));
    }
    let mut seen = vec![false; dim];
    for &p in perm {
        let ok = p >= 0 && (p as usize) < dim && !seen[p as usize];
        if !ok {
            return Err(format!("not a permutation of 0..{dim} (entry {p})"));
        }
        seen[p as usize] = true;
    }
    Ok(())
}

/// The inverse of the permutation `perm`: `inverse[perm[i]] = i`.
pub(crate) fn inverse_permutation(perm: &[i64]) -> Vec<i64> {
    let mut inv = vec![0i64; perm.len()];
    for (i, &j) in perm.iter().enumerate() {
        inv[j as usize] = i as i64;
    }
    inv
}

/// The soft clamp of a flow coupling's log-scales, c(s) = alpha * 2/pi * atan(s / alpha):
/// |c(s)| < alpha, and c(s) is close to s for small s.
pub(crate) fn soft_clamp(s: &Tensor, alpha: f64) -> Tensor {
    (s / alpha).atan() * (alpha * std::f64::consts::FRAC_2_PI)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heat_scale_is_the_linear_99th_percentile_as_libtorch_computes_it() {
        let v: Vec<f32> = (1..=100).map(|i| i as f32).collect();
        // Position 0.99 x 99 = 98.01 of 0..99: a hundredth of the way from 99 to 100.
        assert!((percentile_99(v.clone()).unwrap() - 99.01).abs() < 1e-4);
        assert_eq!(percentile_99(vec![3.0]), Some(3.0));
        assert_eq!(percentile_99(vec![]), None);
        assert_eq!(percentile_99(vec![0.0, 0.0]), None);
        assert_eq!(percentile_99(vec![1.0, f32::NAN, 2.0]), None);
        assert_eq!(percentile_99(vec![1.0, f32::INFINITY]), None);
        // The same number as `Tensor::quantile`, which every kind's heat scale was.
        let mut rng = SplitMix64::new(7);
        for n in [2, 7, 100, 101, 1000, 4097, 65_537] {
            let values: Vec<f32> = (0..n).map(|_| rng.normal_f32().exp()).collect();
            let torch = Tensor::from_slice(&values)
                .quantile_scalar(0.99, None, false, "linear")
                .double_value(&[]);
            assert_eq!(percentile_99(values.clone()), Some(torch), "{n} values");
            let maps = [
                Tensor::from_slice(&values[..n / 2]),
                Tensor::from_slice(&values[n / 2..]),
            ];
            assert_eq!(heat_scale_of(&maps), Some(torch), "{n} values in two maps");
        }
    }

    #[test]
    fn a_seed_draws_the_permutations_it_always_drew() {
        // Saved models and the flows' initial weights depend on these: the values the
        // flows drew before their shared code moved here (DifferNet's salt, then CS-Flow's).
        let weighted = |perms: &[Vec<i64>]| -> i64 {
            perms
                .iter()
                .flatten()
                .enumerate()
                .map(|(i, &p)| (i as i64 + 1) * p)
                .sum()
        };
        const DIFFERNET: u64 = 0x5045_524d_5554_4520;
        const CS_FLOW: u64 = 0x4353_2d46_4c4f_5750;
        assert_eq!(
            random_permutations(8, 2, 42, DIFFERNET),
            vec![vec![5, 6, 2, 3, 0, 7, 4, 1], vec![3, 0, 1, 4, 6, 2, 7, 5]]
        );
        assert_eq!(
            random_permutations(6, 3, 42, CS_FLOW),
            vec![
                vec![1, 2, 5, 4, 0, 3],
                vec![5, 3, 2, 0, 1, 4],
                vec![5, 2, 1, 3, 4, 0]
            ]
        );
        assert_eq!(
            weighted(&random_permutations(1536, 8, 7, DIFFERNET)),
            57_957_357_367
        );
        assert_eq!(
            weighted(&random_permutations(304, 12, 7, CS_FLOW)),
            1_008_091_044
        );
        for perm in random_permutations(304, 12, 7, CS_FLOW) {
            assert!(check_permutation(&perm, 304).is_ok());
            let inverse = inverse_permutation(&perm);
            assert!((0..304).all(|i| inverse[perm[i] as usize] == i as i64));
        }
    }

    #[test]
    fn the_soft_clamp_stays_within_alpha() {
        let s = Tensor::from_slice(&[-1e9f32, -1.0, 0.0, 0.5, 1e9]);
        let c = Vec::<f32>::try_from(soft_clamp(&s, 2.0)).unwrap();
        assert!(c.iter().all(|v| v.abs() <= 2.0) && c[4] > 1.99 && c[0] < -1.99);
        assert_eq!(c[2], 0.0);
        let expected = 2.0 * std::f64::consts::FRAC_2_PI * (0.5f64 / 2.0).atan();
        assert!((f64::from(c[3]) - expected).abs() < 1e-6);
    }
}
