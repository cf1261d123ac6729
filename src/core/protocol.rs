//! The worker protocol: what a front end asks of the engine's worker thread
//! ([`Command`]) and what the worker reports back ([`Event`]).
//!
//! Both enums are plain data (no tch, no egui), sent over bounded crossbeam channels. The
//! worker owns every tensor; the front ends only ever see these values.

use crate::core::calibration::GoodScoreFit;
use crate::core::config::{BackboneKind, DetectorConfig};
use crate::core::dataset::Label;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

/// Called by the worker after it sends events, so that a front end wakes up to read them
/// (`ctx.request_repaint()` in the GUI, nothing in the CLI, which blocks on the channel).
/// The worker never depends on a UI toolkit.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// A request to the worker. Jobs run one at a time, in the order sent.
#[derive(Debug, Clone)]
pub enum Command {
    /// Train a new model on `train` (good images only), then score `validation` (good
    /// images held out from training) to set the score statistics, the default threshold
    /// and the heatmap scale. The new model replaces the current one only on success.
    Train(TrainRequest),
    /// Score images with the current model, emitting one [`Event::Scored`] per image and
    /// then [`Event::ScoringDone`].
    Score(ScoreRequest),
    /// Score a labelled test set and compute metrics: [`Event::Scored`] per image, then
    /// [`Event::Evaluated`].
    Evaluate(EvaluateRequest),
    /// Save the current model (with `threshold`, if given, as its default threshold, and
    /// `review_threshold` as the start of its review band).
    SaveModel {
        /// Destination; written atomically.
        path: PathBuf,
        /// Reject threshold chosen by the user, stored in the file.
        threshold: Option<f64>,
        /// Review band start chosen by the user; stored only with a `threshold`.
        review_threshold: Option<f64>,
    },
    /// Replace the current model with the one in this file.
    LoadModel {
        /// A model file written by [`Command::SaveModel`].
        path: PathBuf,
    },
    /// Put the good images in the order to train on them, by how they look to
    /// `backbone` ([`Event::TrainingOrder`]); the held-out ones are still drawn with the
    /// seed.
    ChooseTraining {
        /// The good images.
        good: Vec<PathBuf>,
        /// The backbone that sums each one up.
        backbone: BackboneKind,
        /// Seed of the candidates' draw, when there are more than the chooser takes.
        seed: u64,
    },
    /// Finish the current job and stop the thread.
    Shutdown,
}

/// What to train on and how.
#[derive(Debug, Clone)]
pub struct TrainRequest {
    /// Good images to train on.
    pub train: Vec<PathBuf>,
    /// Good images held out for score statistics and the default threshold (may be empty).
    pub validation: Vec<PathBuf>,
    /// The detector's kind and all its settings.
    pub config: DetectorConfig,
    /// Images confirmed defective (the engineer's labels, or `test/<type>` images chosen
    /// for training), each with its ground-truth mask when there is one. Empty: the model
    /// learns from the good images only, exactly as without this field.
    pub defects: Vec<LabelledDefect>,
}

/// An image confirmed defective, to learn from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledDefect {
    /// The image file.
    pub path: PathBuf,
    /// Its ground-truth mask (non-zero where the defect is), when there is one; without
    /// it the defect is taken to be where the image looks least like the good parts.
    pub mask: Option<PathBuf>,
}

/// Images to score.
#[derive(Debug, Clone)]
pub struct ScoreRequest {
    /// Image files (already expanded from folders).
    pub paths: Vec<PathBuf>,
    /// Also compute a localisation heatmap for each image (DifferNet: a backward pass,
    /// about 3x slower; PatchCore: nearly free).
    pub heatmaps: bool,
    /// Override of the number of test rotations; `None` keeps the model's.
    pub rotations: Option<usize>,
}

/// A labelled test set to evaluate.
#[derive(Debug, Clone)]
pub struct EvaluateRequest {
    /// Images with labels and optional ground-truth masks.
    pub samples: Vec<crate::core::dataset::Sample>,
    /// Compute heatmaps and pixel AUROC for images that have masks.
    pub pixel_metrics: bool,
    /// Override of the number of test rotations; `None` keeps the model's.
    pub rotations: Option<usize>,
}

/// Which kind of job an event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobKind {
    /// [`Command::Train`].
    Train,
    /// [`Command::Score`].
    Score,
    /// [`Command::Evaluate`].
    Evaluate,
    /// [`Command::ChooseTraining`].
    Choose,
}

/// Phases of a job, for progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Decoding and resizing images.
    Loading,
    /// Running the backbone once to fill the feature cache.
    CachingFeatures,
    /// Optimising the flow.
    Training,
    /// Scoring held-out good images.
    Validating,
    /// Scoring images.
    Scoring,
    /// Training the members of a fusion one after the other: `done` of `total` in
    /// [`MEMBER_UNITS`] per member.
    Members,
}

/// Progress units of one fusion member in [`Phase::Members`]: member `k` is done at
/// `(k + 1) * MEMBER_UNITS`.
pub const MEMBER_UNITS: usize = 1000;

/// The phases of a training run in order, with the rough share of its time each takes on
/// a CPU (`flow`: a flow is optimised, which then takes most of the time; a PatchCore
/// spends it extracting features). Only has to keep one bar moving at a fair pace.
pub fn training_phases(flow: bool) -> &'static [(Phase, f32)] {
    const FLOW: [(Phase, f32); 4] = [
        (Phase::Loading, 0.03),
        (Phase::CachingFeatures, 0.12),
        (Phase::Training, 0.70),
        (Phase::Validating, 0.15),
    ];
    const BANK: [(Phase, f32); 3] = [
        (Phase::Loading, 0.10),
        (Phase::CachingFeatures, 0.55),
        (Phase::Validating, 0.35),
    ];
    if flow { &FLOW } else { &BANK }
}

/// The share of a job done when `fraction` of `phase` is done, by the phases' shares;
/// `None` for a phase the list does not hold.
pub fn share_done(phases: &[(Phase, f32)], phase: Phase, fraction: f32) -> Option<f32> {
    let mut before = 0.0;
    for (p, weight) in phases {
        if *p == phase {
            return Some((before + weight * fraction.clamp(0.0, 1.0)).clamp(0.0, 1.0));
        }
        before += weight;
    }
    None
}

impl Phase {
    /// A short human label.
    pub fn label(self) -> &'static str {
        match self {
            Phase::Loading => "loading images",
            Phase::CachingFeatures => "extracting features",
            Phase::Training => "training",
            Phase::Validating => "validating",
            Phase::Scoring => "scoring",
            Phase::Members => "training detectors",
        }
    }
}

/// A localisation map at the original image size, row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heatmap {
    /// Width in pixels (same as the image).
    pub width: u32,
    /// Height in pixels (same as the image).
    pub height: u32,
    /// Values scaled so that 1.0 is the 99th percentile of the held-out good images' map
    /// values; larger means more anomalous.
    pub values: Vec<f32>,
}

/// The result for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageScore {
    /// The image file.
    pub path: PathBuf,
    /// Its label when known.
    pub label: Label,
    /// Anomaly score (DifferNet: mean of z^2 over rotations and features; PatchCore: the
    /// distance of the most unusual patch to its nearest good one). Higher = more
    /// anomalous; the scale depends on the detector.
    pub score: f64,
    /// Localisation map, when asked for.
    pub heatmap: Option<Heatmap>,
}

/// Summary of a model, for display.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The detector's kind and all its settings.
    pub config: DetectorConfig,
    /// Number of training images.
    pub train_count: usize,
    /// Validation scores statistics, when validation images were given.
    pub validation: Option<ScoreStats>,
    /// Default reject threshold (from validation or saved by the user).
    pub threshold: Option<f64>,
    /// Start of the review band saved by the user (parts between it and the reject
    /// threshold go to a person); `None`: no band.
    #[serde(default)]
    pub review_threshold: Option<f64>,
    /// Learnt values: the flow's parameters (DifferNet) or the memory bank's entries
    /// times their width (PatchCore).
    #[serde(alias = "flow_parameters")]
    pub parameters: usize,
    /// Seconds spent training.
    pub train_secs: f64,
    /// Of `train_secs`, the seconds after the flow was fitted: scoring the held-out good
    /// images and calibrating the heatmap scale.
    #[serde(default)]
    pub validation_secs: f64,
    /// What it was trained on, when the file records it.
    #[serde(default)]
    pub trained_on: Option<crate::core::provenance::TrainingRecord>,
}

impl ModelInfo {
    /// A typical good part's score: the median of the held-out good scores, the bottom of
    /// the heatmaps' decision scale ([`crate::core::heat_layer::DecisionScale`]).
    pub fn typical_good_score(&self) -> Option<f64> {
        self.validation.as_ref().and_then(ScoreStats::median)
    }
}

/// Statistics of the held-out good images' scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreStats {
    /// Number of images.
    pub count: usize,
    /// Mean score.
    pub mean: f64,
    /// Standard deviation of the scores.
    pub std: f64,
    /// Largest score.
    pub max: f64,
    /// Every validation score, sorted ascending.
    pub scores: Vec<f64>,
}

impl ScoreStats {
    /// Statistics of `scores` (None when empty).
    pub fn from_scores(scores: &[f64]) -> Option<Self> {
        if scores.is_empty() {
            return None;
        }
        let n = scores.len() as f64;
        let mean = scores.iter().sum::<f64>() / n;
        let var = scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n;
        let mut sorted = scores.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Self {
            count: scores.len(),
            mean,
            std: var.sqrt(),
            max: sorted[sorted.len() - 1],
            scores: sorted,
        })
    }

    /// The median score: a typical good part's.
    pub fn median(&self) -> Option<f64> {
        (!self.scores.is_empty()).then(|| crate::core::calibration::median(&self.scores))
    }

    /// The fit of these scores that predicts false-reject rates (at least
    /// [`crate::core::calibration::MIN_FIT_COUNT`] scores).
    pub fn fit(&self) -> Option<GoodScoreFit> {
        GoodScoreFit::new(&self.scores)
    }

    /// The default reject line: at most 1 % of good parts rejected, with 75 % confidence,
    /// by a fit of the held-out good scores that sets outliers aside
    /// ([`GoodScoreFit::default_line`]). With too few scores to fit, mean + 3 standard
    /// deviations and at least the largest score.
    pub fn default_threshold(&self) -> f64 {
        self.fit().map_or_else(
            || (self.mean + 3.0 * self.std).max(self.max),
            |fit| fit.default_line(),
        )
    }
}

/// Metrics of an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Number of images scored.
    pub count: usize,
    /// Image-level AUROC over all defect types (None without both classes).
    pub image_auroc: Option<f64>,
    /// AUROC of each defect type against the good images.
    pub per_type_auroc: Vec<(String, f64)>,
    /// The threshold maximising F1 on this set, with its F1, precision and recall.
    pub best_f1: Option<crate::core::metrics::ThresholdChoice>,
    /// Pixel-level AUROC over images with masks, when computed.
    pub pixel_auroc: Option<f64>,
    /// Seconds per image spent scoring (including heatmaps when computed).
    pub secs_per_image: f64,
    /// Images skipped because they could not be read, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

/// A report from the worker.
#[derive(Debug, Clone)]
pub enum Event {
    /// The worker started on this device (for example "CPU (2 threads)" or a GPU name).
    Ready {
        /// Human-readable device description.
        device: String,
    },
    /// Progress of the current job: `done` of `total` units of `phase`.
    Progress {
        /// The job.
        job: JobKind,
        /// Its current phase.
        phase: Phase,
        /// Units done.
        done: usize,
        /// Units in this phase.
        total: usize,
    },
    /// One optimiser step finished.
    TrainStep {
        /// 0-based epoch.
        epoch: usize,
        /// 0-based step within the epoch.
        step: usize,
        /// Loss of this batch (per dimension negative log-likelihood; can be negative).
        loss: f64,
    },
    /// An epoch finished.
    EpochDone {
        /// 0-based epoch.
        epoch: usize,
        /// Mean training loss over the epoch.
        mean_loss: f64,
    },
    /// Training succeeded; the new model is now the worker's current model.
    Trained(ModelInfo),
    /// One image was scored.
    Scored(ImageScore),
    /// One image could not be read; the job goes on with the others.
    Skipped {
        /// The file.
        path: PathBuf,
        /// Why, in one line.
        reason: String,
    },
    /// A [`Command::Score`] job finished.
    ScoringDone {
        /// Images scored.
        scored: usize,
        /// Images skipped, with the reason.
        skipped: Vec<(PathBuf, String)>,
    },
    /// A [`Command::Evaluate`] job finished.
    Evaluated(EvalReport),
    /// A [`Command::ChooseTraining`] job finished: the good images in the order to train
    /// on them (at most 128; the rest follow in the seeded order).
    TrainingOrder(Vec<PathBuf>),
    /// The model was written to this path.
    Saved {
        /// The file written.
        path: PathBuf,
    },
    /// A model was loaded and is now current.
    Loaded {
        /// The file read.
        path: PathBuf,
        /// What it holds.
        info: ModelInfo,
    },
    /// The current job stopped because it was cancelled; the previous model is unchanged.
    Cancelled {
        /// The job that stopped.
        job: JobKind,
    },
    /// The current job failed; the previous model is unchanged.
    Failed {
        /// One-line reason.
        message: String,
    },
    /// The worker thread panicked or stopped unexpectedly; it must be restarted.
    Crashed {
        /// The panic message.
        message: String,
    },
}
