//! Fusion: several detectors trained in one job on the same good images, combined into
//! one score and one map. Each member's score is standardised by the mean and standard
//! deviation of its own scores on the held-out good images (so members on different
//! scales weigh alike) and each member's map is already in units of its good parts' heat
//! (1 = as hot as the most unusual 1 % of a good part); the fused score and map are the
//! mean, or the largest, of those. The fused score then gets its own held-out statistics,
//! default threshold and heat scale, like any detector's: the front ends see one model.

use crate::core::config::{DetectorConfig, FusionConfig, FusionRule};
use crate::core::protocol::{Heatmap, MEMBER_UNITS, Phase, share_done, training_phases};
use crate::engine::detectors::common::{
    Member, ModelState, RawScore, TrainJob, TrainProgress, percentile_99,
};
use crate::engine::error::{EngineError, Result};
use image::RgbImage;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tch::Device;

/// Trains one member of a fusion: the interface's dispatch on the member's kind.
pub type TrainMember<'a, M> =
    &'a mut dyn FnMut(DetectorConfig, TrainJob<'_>, &mut dyn FnMut(TrainProgress)) -> Result<M>;

/// A fusion of detectors (`M`: the interface's detector) on one device. Lives on the
/// worker thread.
#[derive(Debug)]
pub struct Fusion<M> {
    /// Settings (the members' among them).
    pub config: FusionConfig,
    /// What validation taught it about the fused score.
    pub state: ModelState,
    /// The trained members, in the order of `config.members`; each one's state holds its
    /// own held-out statistics, which standardise its score.
    members: Vec<M>,
}

impl<M: Member> Fusion<M> {
    /// A fusion of trained `members` (one per member of `config`, of the same kinds).
    pub fn new(config: FusionConfig, members: Vec<M>) -> Result<Self, String> {
        config.validate()?;
        if members.len() != config.members.len() {
            return Err(format!(
                "{} members given for a fusion of {}",
                members.len(),
                config.members.len()
            ));
        }
        for (m, c) in members.iter().zip(&config.members) {
            if m.config() != *c {
                return Err(format!(
                    "member {} given where {} was expected",
                    m.config().describe(),
                    c.describe()
                ));
            }
        }
        Ok(Self {
            config,
            state: ModelState::untrained(),
            members,
        })
    }

    /// The members.
    pub fn members(&self) -> &[M] {
        &self.members
    }

    /// The members, to change how they run.
    pub fn members_mut(&mut self) -> &mut [M] {
        &mut self.members
    }

    /// Device of the detector.
    pub fn device(&self) -> Device {
        self.members[0].device()
    }

    /// Scores decoded images with every member and combines them; with `heatmaps[i]`,
    /// also image i's fused map at its size.
    pub fn score_batch(
        &self,
        imgs: &[&RgbImage],
        heatmaps: &[bool],
        rotations: Option<usize>,
    ) -> Vec<RawScore> {
        let per_member: Vec<Vec<RawScore>> = self
            .members
            .iter()
            .map(|m| m.score_batch(imgs, heatmaps, rotations))
            .collect();
        let norms: Vec<(f64, f64)> = self.members.iter().map(member_norm).collect();
        (0..imgs.len())
            .map(|i| {
                let raw: Vec<&RawScore> = per_member.iter().map(|scores| &scores[i]).collect();
                positive(
                    combine(&raw, &norms, self.config.rule, self.state.heat_scale),
                    &self.config,
                )
            })
            .collect()
    }

    /// Scores one decoded image; with `heatmap`, also its fused map at the image's size.
    pub fn score_image(&self, img: &RgbImage, heatmap: bool, rotations: Option<usize>) -> RawScore {
        self.score_batch(&[img], &[heatmap], rotations)
            .pop()
            .expect("one image in, one score out")
    }
}

/// The mean and standard deviation that standardise a member's score: those of its
/// held-out good scores, or (0, 1) when it has none (trained without held-out images).
fn member_norm<M: Member>(member: &M) -> (f64, f64) {
    member
        .state()
        .validation
        .as_ref()
        .map_or((0.0, 1.0), |v| (v.mean, v.std.max(1e-9)))
}

/// The fused score as the fusion reports it ([`FusionConfig::positive_score`]).
fn positive(mut fused: RawScore, config: &FusionConfig) -> RawScore {
    if config.positive_score {
        fused.score = fused.score.exp();
    }
    fused
}

/// One image's fused score and map from its members' raw results.
fn combine(
    raw: &[&RawScore],
    norms: &[(f64, f64)],
    rule: FusionRule,
    heat_scale: Option<f64>,
) -> RawScore {
    let z: Vec<f64> = raw
        .iter()
        .zip(norms)
        .map(|(r, (mean, std))| (r.score - mean) / std)
        .collect();
    let score = match rule {
        FusionRule::Mean => z.iter().sum::<f64>() / z.len() as f64,
        FusionRule::Max => z.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    };
    let heatmap = fuse_maps(raw, rule, heat_scale);
    RawScore { score, heatmap }
}

/// The members' maps of one image combined value by value (all of them at the image's
/// size), divided by the fusion's own heat scale; `None` unless every member made one.
fn fuse_maps(raw: &[&RawScore], rule: FusionRule, heat_scale: Option<f64>) -> Option<Heatmap> {
    let maps: Vec<&Heatmap> = raw
        .iter()
        .map(|r| r.heatmap.as_ref())
        .collect::<Option<_>>()?;
    let first = maps[0];
    if maps
        .iter()
        .any(|m| (m.width, m.height) != (first.width, first.height))
    {
        return None;
    }
    let n = maps.len() as f32;
    let scale = heat_scale.filter(|s| *s > 0.0).unwrap_or(1.0) as f32;
    let values = (0..first.values.len())
        .map(|i| {
            let v = maps.iter().map(|m| m.values[i]);
            let fused = match rule {
                FusionRule::Mean => v.sum::<f32>() / n,
                FusionRule::Max => v.fold(f32::NEG_INFINITY, f32::max),
            };
            fused / scale
        })
        .collect();
    Some(Heatmap {
        width: first.width,
        height: first.height,
        values,
    })
}

/// A training report of member `index` of `count` (`flow`: the member optimises a flow),
/// as the fusion's: the member's phases, by their shares of its time, move one
/// [`Phase::Members`] count from `index` to `index + 1` members' worth, so one bar covers
/// the members one after the other and then the fusion's own validation. A member's own
/// validation is the fusion's, so members train without held-out images.
fn member_progress(
    p: TrainProgress,
    index: usize,
    count: usize,
    flow: bool,
) -> Option<TrainProgress> {
    match p {
        TrainProgress::Phase { phase, done, total } => {
            let fraction = if total == 0 {
                0.0
            } else {
                done as f32 / total as f32
            };
            let within = share_done(training_phases(flow), phase, fraction)?;
            Some(TrainProgress::Phase {
                phase: Phase::Members,
                done: index * MEMBER_UNITS + (within * MEMBER_UNITS as f32).round() as usize,
                total: count * MEMBER_UNITS,
            })
        }
        // Every member reads the same files: say once which could not be read.
        TrainProgress::Skipped { .. } if index == 0 => Some(p),
        // A member's loss would restart the plot: a fusion shows none.
        _ => None,
    }
}

/// Trains every member on the job's good images (one after the other, on one progress
/// bar), then scores the held-out good images with each member: each member's scores
/// standardise it, and the fused scores set the fusion's statistics, default threshold
/// and heat scale. `train_member` trains one member (the interface's dispatch).
pub fn train<M: Member>(
    config: FusionConfig,
    job: TrainJob<'_>,
    report: &mut dyn FnMut(TrainProgress),
    train_member: TrainMember<'_, M>,
) -> Result<Fusion<M>> {
    let started = Instant::now();
    config.validate().map_err(EngineError::Config)?;
    let count = config.members.len();
    let mut members = Vec::with_capacity(count);
    for (index, member) in config.members.iter().enumerate() {
        let member_job = TrainJob {
            train: job.train,
            validation: &[],
            backbone: job.backbone.clone(),
            device: job.device,
            cancel: job.cancel,
            defects: job.defects,
        };
        let flow = member.loss_schedule(1).is_some();
        let mut forward = |p: TrainProgress| {
            if let Some(p) = member_progress(p, index, count, flow) {
                report(p);
            }
        };
        members.push(train_member(member.clone(), member_job, &mut forward)?);
    }
    let train_count = members[0].state().train_count;
    // What training set in a member's settings (a PatchCore's one input scale) is part of
    // the fusion's.
    let mut config = config;
    for (c, m) in config.members.iter_mut().zip(&members) {
        *c = m.config();
    }
    let mut fusion = Fusion::new(config, members).map_err(EngineError::Config)?;
    let fitted = Instant::now();
    validate(&mut fusion, &job, report)?;
    fusion.state.train_count = train_count;
    fusion.state.validation_secs = fitted.elapsed().as_secs_f64();
    fusion.state.train_secs = started.elapsed().as_secs_f64();
    Ok(fusion)
}

/// Scores the held-out good images with every member (with maps): sets each member's
/// statistics and heat scale from them, then the fusion's from the fused scores and maps.
/// Without held-out images the members keep their own calibration and the fusion has no
/// default threshold.
fn validate<M: Member>(
    fusion: &mut Fusion<M>,
    job: &TrainJob<'_>,
    report: &mut dyn FnMut(TrainProgress),
) -> Result<()> {
    let total = job.validation.len();
    report(TrainProgress::Phase {
        phase: Phase::Validating,
        done: 0,
        total,
    });
    let mut per_member: Vec<Vec<RawScore>> = vec![Vec::with_capacity(total); fusion.members.len()];
    for (i, path) in job.validation.iter().enumerate() {
        if job.cancel.load(Ordering::Relaxed) {
            return Err(EngineError::Cancelled);
        }
        match crate::core::image_io::load_rgb(path) {
            Ok(img) => {
                for (m, out) in fusion.members.iter().zip(per_member.iter_mut()) {
                    out.extend(m.score_batch(&[&img], &[true], None));
                }
            }
            Err(e) => report(TrainProgress::Skipped {
                path: path.clone(),
                reason: e.to_string(),
            }),
        }
        report(TrainProgress::Phase {
            phase: Phase::Validating,
            done: i + 1,
            total,
        });
    }
    if per_member[0].is_empty() {
        return Ok(());
    }
    // What each member's maps are divided by to be in its new units.
    let mut rescale: Vec<f32> = Vec::with_capacity(per_member.len());
    for (m, scores) in fusion.members.iter_mut().zip(&per_member) {
        let values: Vec<f64> = scores.iter().map(|r| r.score).collect();
        let state = m.state_mut();
        state.set_validation(&values);
        // The maps came out divided by the member's old heat scale: rescale it so that
        // 1 is the 99th percentile of the held-out maps.
        let heat: Vec<f32> = scores
            .iter()
            .flat_map(|r| r.heatmap.iter().flat_map(|h| h.values.iter().copied()))
            .collect();
        let q = percentile_99(heat);
        if let Some(q) = q {
            state.heat_scale = Some(state.heat_scale.unwrap_or(1.0) * q);
        }
        rescale.push(q.map_or(1.0, |q| q as f32));
    }
    // Member maps are now in their new units: combine the rescaled ones.
    let norms: Vec<(f64, f64)> = fusion.members.iter().map(member_norm).collect();
    let mut fused_scores = Vec::with_capacity(per_member[0].len());
    let mut fused_heat = Vec::new();
    for i in 0..per_member[0].len() {
        let raw: Vec<RawScore> = per_member
            .iter()
            .zip(&rescale)
            .map(|(scores, q)| {
                let mut r = scores[i].clone();
                if let Some(h) = r.heatmap.as_mut() {
                    h.values.iter_mut().for_each(|v| *v /= q);
                }
                r
            })
            .collect();
        let refs: Vec<&RawScore> = raw.iter().collect();
        let fused = positive(
            combine(&refs, &norms, fusion.config.rule, None),
            &fusion.config,
        );
        fused_scores.push(fused.score);
        if let Some(h) = fused.heatmap {
            fused_heat.extend(h.values);
        }
    }
    fusion.state.set_validation(&fused_scores);
    fusion.state.heat_scale = percentile_99(fused_heat);
    Ok(())
}

/// The settings of a fusion's members, for the model file.
pub fn member_configs(config: &DetectorConfig) -> &[DetectorConfig] {
    match config {
        DetectorConfig::Fusion(c) => &c.members,
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(score: f64, map: Option<Vec<f32>>) -> RawScore {
        RawScore {
            score,
            heatmap: map.map(|values| Heatmap {
                width: values.len() as u32,
                height: 1,
                values,
            }),
        }
    }

    #[test]
    fn one_member_gives_its_standardised_score() {
        let r = raw(14.0, Some(vec![1.0, 3.0]));
        let fused = combine(&[&r], &[(10.0, 2.0)], FusionRule::Mean, None);
        assert_eq!(fused.score, 2.0);
        assert_eq!(fused.heatmap.unwrap().values, vec![1.0, 3.0]);
    }

    #[test]
    fn members_combine_by_mean_or_max() {
        let (a, b) = (
            raw(14.0, Some(vec![1.0, 4.0])),
            raw(1.0, Some(vec![3.0, 0.0])),
        );
        let norms = [(10.0, 2.0), (0.0, 0.5)];
        let mean = combine(&[&a, &b], &norms, FusionRule::Mean, Some(2.0));
        assert_eq!(mean.score, 2.0);
        assert_eq!(mean.heatmap.unwrap().values, vec![1.0, 1.0]);
        let max = combine(&[&a, &b], &norms, FusionRule::Max, None);
        assert_eq!(max.score, 2.0);
        assert_eq!(max.heatmap.unwrap().values, vec![3.0, 4.0]);
        // No map unless every member made one.
        let c = raw(0.0, None);
        assert!(
            combine(&[&a, &c], &norms, FusionRule::Mean, None)
                .heatmap
                .is_none()
        );
    }

    #[test]
    fn progress_of_members_adds_up_to_one_bar() {
        let p = |phase, done, total| TrainProgress::Phase { phase, done, total };
        let members = |done| Some(p(Phase::Members, done, 2 * MEMBER_UNITS));
        // A bank member: loading is its first tenth, its features the next 55 %.
        assert_eq!(
            member_progress(p(Phase::Loading, 0, 16), 0, 2, false),
            members(0)
        );
        assert_eq!(
            member_progress(p(Phase::Loading, 16, 16), 0, 2, false),
            members(100)
        );
        assert_eq!(
            member_progress(p(Phase::CachingFeatures, 8, 16), 1, 2, false),
            members(1375)
        );
        // Its heat calibration ends the member: the second one ends the members.
        assert_eq!(
            member_progress(p(Phase::Validating, 4, 4), 0, 2, false),
            members(1000)
        );
        assert_eq!(
            member_progress(p(Phase::Validating, 4, 4), 1, 2, false),
            members(2000)
        );
        // A flow member spends most of its time training.
        assert_eq!(
            member_progress(p(Phase::Training, 50, 100), 0, 2, true),
            members(500)
        );
        let step = TrainProgress::Step {
            epoch: 0,
            step: 0,
            loss: 1.0,
        };
        assert_eq!(member_progress(step, 0, 2, false), None);
    }
}
