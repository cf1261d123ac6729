//! The detector interface. A detector trains on good images only and returns, for an
//! image, an anomaly score and a per-pixel anomaly map at the image's size. The worker,
//! the scoring lanes and the model file use detectors only through [`Detector`]; each
//! kind lives in its own module under [`crate::engine::detectors`].

use crate::core::config::DetectorConfig;
use crate::core::protocol::ModelInfo;
pub use crate::engine::detectors::common::{Member, ModelState, RawScore, TrainJob, TrainProgress};
use crate::engine::detectors::cs_flow::CsFlow;
use crate::engine::detectors::differnet::DifferNet;
use crate::engine::detectors::fusion::Fusion;
use crate::engine::detectors::patchcore::PatchCore;
use crate::engine::error::{EngineError, Result};
use crate::engine::lanes::ReadOnly;
use image::RgbImage;
use tch::Device;

/// A trained (or loaded) detector of any kind, on one device. Lives on the worker thread.
// One detector lives per worker and it is moved only when a job ends: the variants' sizes
// (a few hundred bytes, the tensors are behind handles) do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Detector {
    /// A DifferNet normalizing flow.
    DifferNet(DifferNet),
    /// A PatchCore memory bank.
    PatchCore(PatchCore),
    /// A CS-Flow fully convolutional flow.
    CsFlow(CsFlow),
    /// Several detectors combined.
    Fusion(Fusion<Detector>),
}

impl Detector {
    /// The kind and settings.
    pub fn config(&self) -> DetectorConfig {
        match self {
            Detector::DifferNet(m) => DetectorConfig::DifferNet(m.config.clone()),
            Detector::PatchCore(m) => DetectorConfig::PatchCore(m.config.clone()),
            Detector::CsFlow(m) => DetectorConfig::CsFlow(m.config.clone()),
            Detector::Fusion(m) => DetectorConfig::Fusion(m.config.clone()),
        }
    }

    /// What validation taught it.
    pub fn state(&self) -> &ModelState {
        match self {
            Detector::DifferNet(m) => &m.state,
            Detector::PatchCore(m) => &m.state,
            Detector::CsFlow(m) => &m.state,
            Detector::Fusion(m) => &m.state,
        }
    }

    /// What validation taught it, to change the thresholds.
    pub fn state_mut(&mut self) -> &mut ModelState {
        match self {
            Detector::DifferNet(m) => &mut m.state,
            Detector::PatchCore(m) => &mut m.state,
            Detector::CsFlow(m) => &mut m.state,
            Detector::Fusion(m) => &mut m.state,
        }
    }

    /// The device its tensors live on.
    pub fn device(&self) -> Device {
        match self {
            Detector::DifferNet(m) => m.device(),
            Detector::PatchCore(m) => m.device(),
            Detector::CsFlow(m) => m.device(),
            Detector::Fusion(m) => m.device(),
        }
    }

    /// Sets how many images go through the backbone at once.
    pub fn set_backbone_batch(&mut self, batch: usize) {
        match self {
            Detector::DifferNet(m) => m.backbone_batch = batch,
            Detector::PatchCore(m) => m.backbone_batch = batch,
            Detector::CsFlow(m) => m.backbone_batch = batch,
            Detector::Fusion(m) => m
                .members_mut()
                .iter_mut()
                .for_each(|m| m.set_backbone_batch(batch)),
        }
    }

    /// Learnt values: flow parameters or bank entries times their width.
    pub fn parameters(&self) -> usize {
        match self {
            Detector::DifferNet(m) => {
                crate::engine::detectors::differnet::flow::parameter_count(&m.config.model)
            }
            Detector::PatchCore(m) => m.bank_len() * m.config.feature_dim(),
            Detector::CsFlow(m) => {
                crate::engine::detectors::cs_flow::flow::parameter_count(&m.config)
            }
            Detector::Fusion(m) => m.members().iter().map(Detector::parameters).sum(),
        }
    }

    /// Summary for the front ends.
    pub fn info(&self) -> ModelInfo {
        let state = self.state();
        ModelInfo {
            config: self.config(),
            train_count: state.train_count,
            validation: state.validation.clone(),
            threshold: state.threshold,
            review_threshold: state.review_threshold,
            parameters: self.parameters(),
            train_secs: state.train_secs,
            validation_secs: state.validation_secs,
            trained_on: state.trained_on.clone(),
        }
    }

    /// Scores one decoded image; with `heatmap`, also its anomaly map. `rotations`
    /// overrides DifferNet's number of test rotations (other kinds ignore it).
    pub fn score_image(&self, img: &RgbImage, heatmap: bool, rotations: Option<usize>) -> RawScore {
        match self {
            Detector::DifferNet(m) => {
                let mut score = m.config.score.clone();
                if let Some(r) = rotations {
                    score.rotations = r.clamp(1, crate::core::config::MAX_TEST_ROTATIONS);
                }
                m.score_image(img, &score.angles_deg(), heatmap)
            }
            Detector::PatchCore(m) => m.score_image(img, heatmap),
            Detector::CsFlow(m) => m.score_image(img, heatmap),
            Detector::Fusion(m) => m.score_image(img, heatmap, rotations),
        }
    }

    /// Scores decoded images at once, results in their order; with `heatmaps[i]`, also
    /// image i's map. The patch kinds run one batch through the network (what a GPU
    /// needs); DifferNet, whose batch is already an image's rotated copies, goes image by
    /// image.
    pub fn score_batch(
        &self,
        imgs: &[&RgbImage],
        heatmaps: &[bool],
        rotations: Option<usize>,
    ) -> Vec<RawScore> {
        match self {
            Detector::DifferNet(_) => imgs
                .iter()
                .zip(heatmaps)
                .map(|(img, &map)| self.score_image(img, map, rotations))
                .collect(),
            Detector::PatchCore(m) => m.score_batch(imgs, heatmaps),
            Detector::CsFlow(m) => m.score_batch(imgs, heatmaps),
            Detector::Fusion(m) => m.score_batch(imgs, heatmaps, rotations),
        }
    }
}

impl Member for Detector {
    fn config(&self) -> DetectorConfig {
        Detector::config(self)
    }

    fn state(&self) -> &ModelState {
        Detector::state(self)
    }

    fn state_mut(&mut self) -> &mut ModelState {
        Detector::state_mut(self)
    }

    fn device(&self) -> Device {
        Detector::device(self)
    }

    fn score_batch(
        &self,
        imgs: &[&RgbImage],
        heatmaps: &[bool],
        rotations: Option<usize>,
    ) -> Vec<RawScore> {
        Detector::score_batch(self, imgs, heatmaps, rotations)
    }
}

/// A detector shared read-only by the scoring lanes, for [`Detector::score_image`] only:
/// safe to make, as it lets nothing else through its [`ReadOnly`].
pub struct SharedDetector<'a>(ReadOnly<'a, Detector>);

impl<'a> SharedDetector<'a> {
    /// Shares `detector` between lanes.
    pub fn new(detector: &'a Detector) -> Self {
        // SAFETY: only `score_image` runs through it: forward passes over the weights and
        // the bank, and gradients with respect to the image's own new leaf (DifferNet's
        // map), that build new tensors; it mutates nothing and clones no `Rc`.
        Self(unsafe { ReadOnly::new(detector) })
    }

    /// [`Detector::score_image`].
    pub fn score_image(&self, img: &RgbImage, heatmap: bool, rotations: Option<usize>) -> RawScore {
        self.0.get().score_image(img, heatmap, rotations)
    }
}

/// Trains a detector of the configuration's kind. Returns it with its validation
/// statistics, default threshold and heat scale set. Cancellation and divergence are
/// errors; the caller keeps its old model.
pub fn train(
    config: DetectorConfig,
    job: TrainJob<'_>,
    report: &mut dyn FnMut(TrainProgress),
) -> Result<Detector> {
    if job.backbone.kind() != config.backbone() {
        return Err(EngineError::Config(format!(
            "backbone {} given for a {} model",
            job.backbone.kind(),
            config.backbone()
        )));
    }
    match config {
        DetectorConfig::DifferNet(c) => {
            crate::engine::detectors::differnet::train::train(c, job, report)
                .map(Detector::DifferNet)
        }
        DetectorConfig::PatchCore(c) => {
            crate::engine::detectors::patchcore::train(c, job, report).map(Detector::PatchCore)
        }
        DetectorConfig::CsFlow(c) => {
            crate::engine::detectors::cs_flow::train::train(c, job, report).map(Detector::CsFlow)
        }
        DetectorConfig::Fusion(c) => {
            crate::engine::detectors::fusion::train(c, job, report, &mut train)
                .map(Detector::Fusion)
        }
    }
}
