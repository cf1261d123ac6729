//! What the workstation knows right now: the images, the training run, the model and the
//! scored parts. Updated from worker events by the app; panels only read it.

use crate::core::calibration::{GoodScoreFit, RatePrediction};
use crate::core::dataset::Label;
use crate::core::decision::{Decision, DecisionCounts, Thresholds};
use crate::core::metrics;
use crate::core::protocol::{
    EvalReport, Heatmap, MEMBER_UNITS, ModelInfo, Phase, share_done, training_phases,
};
use crate::core::training_set::{Move, moves};
use crate::gui::training_log::TrainingLog;
use crate::gui::workset::Workset;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// One scored part.
#[derive(Debug, Clone)]
pub struct Part {
    /// The image file.
    pub path: PathBuf,
    /// What is known about it.
    pub label: Label,
    /// Its anomaly score (higher = more unusual).
    pub score: f64,
    /// Its heatmap, once computed.
    pub heatmap: Option<Arc<Heatmap>>,
    /// The model learnt from it as a confirmed defect: it counts in no accuracy figure.
    pub learnt: bool,
}

impl Part {
    /// Whether it is known defective (`Some(true)`) or good, for the accuracy figures:
    /// `None` for an unlabelled part and for one the model learnt from.
    pub fn truth(&self) -> Option<bool> {
        if self.learnt {
            None
        } else {
            self.label.is_defect()
        }
    }
}

/// What the running job will go through, known when it is sent, so one bar can cover it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JobPlan {
    /// Good images held out (a training job scores them in its validating phase, then a
    /// few images to calibrate the heatmap scale).
    pub held_out: usize,
    /// Whether a flow is optimised (DifferNet, CS-Flow): then the training phase takes
    /// most of the time; a PatchCore spends it extracting features.
    pub flow: bool,
    /// Detectors trained one after the other (a fusion's members; 0 or 1 for one).
    pub members: usize,
    /// The job chooses the good images to train on: one pass over them.
    pub choosing: bool,
}

impl JobPlan {
    /// The phases of a job in order with the share of its time each takes: a fusion
    /// trains its members one after the other, then scores the held-out images with all of
    /// them.
    fn phases(&self, first: Phase) -> &'static [(Phase, f32)] {
        const ONE: [(Phase, f32); 1] = [(Phase::Scoring, 1.0)];
        const FUSION: [(Phase, f32); 2] = [(Phase::Members, 0.65), (Phase::Validating, 0.35)];
        const FUSION_ALONE: [(Phase, f32); 2] = [(Phase::Members, 1.0), (Phase::Validating, 0.0)];
        const CHOOSING: [(Phase, f32); 1] = [(Phase::CachingFeatures, 1.0)];
        match first {
            Phase::Scoring => &ONE,
            _ if self.choosing => &CHOOSING,
            _ if self.members > 1 && self.held_out > 0 => &FUSION,
            _ if self.members > 1 => &FUSION_ALONE,
            _ => training_phases(self.flow),
        }
    }
}

/// Progress of the running job: its current phase and the whole job on one bar.
#[derive(Debug, Clone)]
pub struct JobProgress {
    /// The phase.
    pub phase: Phase,
    /// Units done.
    pub done: usize,
    /// Units in the phase.
    pub total: usize,
    /// When the phase started (for the time estimate).
    pub phase_started: Instant,
    /// When the job started.
    pub job_started: Instant,
    /// The share of the whole job done, never lower than it was shown before.
    pub job_fraction: f32,
    /// What the job goes through.
    pub plan: JobPlan,
}

impl JobProgress {
    /// The first report of a job.
    pub fn start(plan: JobPlan, phase: Phase, done: usize, total: usize) -> Self {
        let now = Instant::now();
        let mut p = Self {
            phase,
            done,
            total,
            phase_started: now,
            job_started: now,
            job_fraction: 0.0,
            plan,
        };
        p.job_fraction = p.whole_job_fraction();
        p
    }

    /// The next report of the same job.
    pub fn advance(&mut self, phase: Phase, done: usize, total: usize) {
        if phase != self.phase || done < self.done {
            self.phase_started = Instant::now();
        }
        self.phase = phase;
        self.done = done;
        self.total = total;
        self.job_fraction = self.job_fraction.max(self.whole_job_fraction());
    }

    /// Fraction of the phase done in `[0, 1]`.
    pub fn fraction(&self) -> f32 {
        if self.total == 0 {
            0.0
        } else {
            (self.done as f32 / self.total as f32).clamp(0.0, 1.0)
        }
    }

    fn whole_job_fraction(&self) -> f32 {
        // A phase the plan does not know: hold the bar where it is.
        share_done(self.plan.phases(self.phase), self.phase, self.fraction())
            .unwrap_or(self.job_fraction)
    }

    /// Seconds left in the whole job at the pace so far.
    pub fn eta_secs(&self) -> Option<f64> {
        let f = f64::from(self.job_fraction);
        (f > 0.02 && f < 1.0).then(|| self.job_started.elapsed().as_secs_f64() / f * (1.0 - f))
    }

    /// What is being done now, with counts that agree with the plan: "training 12/30",
    /// "scoring held-out good images 4/16", "calibrating heatmaps 2/4".
    pub fn step_text(&self) -> String {
        let held = self.plan.held_out;
        match self.phase {
            Phase::Validating if held > 0 && self.done <= held && self.total >= held => {
                format!("scoring held-out good images {}/{held}", self.done)
            }
            Phase::Validating if self.total >= held => format!(
                "calibrating heatmaps {}/{}",
                self.done.saturating_sub(held),
                self.total - held
            ),
            Phase::Members => format!(
                "training detector {} of {}",
                self.done.saturating_sub(1) / MEMBER_UNITS + 1,
                (self.total / MEMBER_UNITS).max(1)
            ),
            phase => format!("{} {}/{}", phase.label(), self.done, self.total),
        }
    }
}

/// Seconds left when `done` of `total` units took `elapsed_secs`, assuming the same pace.
pub fn eta_secs(elapsed_secs: f64, done: usize, total: usize) -> Option<f64> {
    (done > 0 && total >= done).then(|| elapsed_secs / done as f64 * (total - done) as f64)
}

/// Everything the panels show.
#[derive(Default)]
pub struct Session {
    /// The worker's device, once it reported.
    pub device: Option<String>,
    /// The images.
    pub data: Option<Workset>,
    /// Progress of the running job.
    pub progress: Option<JobProgress>,
    /// What the job sent last will go through.
    pub plan: JobPlan,
    /// The last (or running) training run.
    pub training: Option<TrainingLog>,
    /// The current model.
    pub model: Option<ModelInfo>,
    /// Where the current model came from, for display.
    pub model_source: Option<String>,
    /// The file the current model was loaded from or saved to (what the line runs).
    pub model_path: Option<PathBuf>,
    /// Scored parts in scoring order.
    pub parts: Vec<Part>,
    index: HashMap<PathBuf, usize>,
    /// Metrics of the last evaluation of labelled parts.
    pub eval: Option<EvalReport>,
    /// The reject threshold and review band; set once parts are scored.
    pub thresholds: Option<Thresholds>,
    /// Files left out, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
    /// Bumped whenever parts or thresholds change, so panels can cache what they derive.
    pub version: u64,
    /// Images the running or last inspection was asked to score.
    pub inspect_total: usize,
    /// Set when the last inspection stopped before scoring every image: the parts are a
    /// part of the set, and every figure derived from them says so.
    pub partial: Option<Partial>,
    /// Why the inspected parts look unlike the model's training images, when they do.
    pub model_warning: Option<String>,
    /// Edits of the images that can be undone, latest last: what was done, and the
    /// images as they were before it.
    pub undo: Vec<(String, Workset)>,
    /// Edits undone, to do again, latest last: what was done, and the images as they
    /// were after it. A new edit forgets them.
    pub redo: Vec<(String, Workset)>,
    /// The calls of the parts under the previous model, at its line: kept when a new
    /// model arrives, to show which parts moved across the line.
    pub previous_calls: Option<HashMap<PathBuf, Decision>>,
    /// The previous model's reject line, which those calls were made at.
    pub previous_reject: Option<f64>,
    /// Whether the user set the lines (by hand, typed or by a rule) since the model
    /// gave them: a retrain then keeps them, so that what moved is what the new model did.
    pub line_by_user: bool,
    /// The new model's own lines, when a retrain kept the user's instead.
    pub model_line: Option<Thresholds>,
    /// The review line as the user last set it. The shown band starts at the lower of it
    /// and the reject line, so moving the reject line below it and back leaves it where
    /// it was.
    pub review_wanted: Option<f64>,
    /// Seconds one heatmap took, measured on the last heatmaps computed (to say up front
    /// how long an export takes).
    pub heat_secs: Option<f64>,
    /// Seconds one part took in the last full inspection (without heatmaps).
    pub inspect_secs: Option<f64>,
}

/// How far (in fitted standard deviations of the log score) the lowest tenth of the parts
/// must be above the held-out good parts before the window asks whether the model is the
/// right one.
const UNLIKE_SDS: f64 = 8.0;
/// Parts whose image sizes are compared with the training images'.
const SIZE_CHECKS: usize = 16;

/// An inspection that stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partial {
    /// Parts scored before it stopped.
    pub scored: usize,
    /// Images it was asked to score.
    pub total: usize,
    /// Why it stopped, in a few words ("stopped", "failed").
    pub why: &'static str,
}

impl Session {
    /// Forgets scored parts and their metrics (new images, or before scoring again).
    pub fn clear_parts(&mut self) {
        self.parts.clear();
        self.index.clear();
        self.eval = None;
        self.partial = None;
        self.model_warning = None;
        self.version += 1;
    }

    /// Checks the scored parts against what the model was trained on (image sizes, and
    /// scores against the held-out good images') and sets [`Session::model_warning`].
    pub fn check_parts_against_model(&mut self) {
        self.model_warning = self.unlike_training();
        self.version += 1;
    }

    fn unlike_training(&self) -> Option<String> {
        let m = self.model.as_ref()?;
        let mut reasons = Vec::new();
        if let Some(r) = &m.trained_on {
            let sizes: Vec<(u32, u32)> = self
                .parts
                .iter()
                .take(SIZE_CHECKS)
                .filter_map(|p| image::image_dimensions(&p.path).ok())
                .collect();
            reasons.extend(crate::core::drift::size_reason(r, &sizes));
        }
        if let Some(fit) = self.good_fit() {
            let mut scores: Vec<f64> = self
                .parts
                .iter()
                .map(|p| p.score)
                .filter(|s| s.is_finite())
                .collect();
            scores.sort_by(f64::total_cmp);
            // The lowest tenth: a batch of mostly defective parts still has good ones
            // there, parts of another kind do not.
            if let Some(&low) = scores.get(scores.len() / 10) {
                let far = fit.predict(low).rate < crate::core::calibration::normal_cdf(-UNLIKE_SDS);
                let above = m.threshold.is_none_or(|t| low >= t);
                if far && above {
                    reasons.push(format!(
                        "nine in ten of the parts score above {}, where its held-out good images score {} to {}",
                        crate::gui::style::format_score(low),
                        crate::gui::style::format_score(fit.scores[0]),
                        crate::gui::style::format_score(fit.scores[fit.scores.len() - 1])
                    ));
                }
            }
        }
        if reasons.is_empty() {
            return None;
        }
        let folder = m
            .trained_on
            .as_ref()
            .and_then(|r| r.folder.as_deref())
            .map(|f| format!(" (trained on {})", crate::core::message::path_text(f)))
            .unwrap_or_default();
        Some(format!(
            "These parts look unlike the ones this model knows{folder}: {}. Is it the right model for them?",
            reasons.join("; ")
        ))
    }

    /// Marks the inspection as stopped early (cancelled or failed) unless every image was
    /// scored.
    pub fn mark_partial(&mut self, why: &'static str) {
        let scored = self.parts.len();
        if scored < self.inspect_total {
            self.partial = Some(Partial {
                scored,
                total: self.inspect_total,
                why,
            });
            self.version += 1;
        }
    }

    /// Attaches a heatmap to a scored part; false when there is no such part.
    pub fn set_heatmap(&mut self, path: &Path, heatmap: Heatmap) -> bool {
        let Some(&i) = self.index.get(path) else {
            return false;
        };
        self.parts[i].heatmap = Some(Arc::new(heatmap));
        self.version += 1;
        true
    }

    /// Adds or updates a scored part, keeping a heatmap already computed when the new
    /// result has none.
    pub fn upsert_part(
        &mut self,
        path: PathBuf,
        label: Label,
        score: f64,
        heatmap: Option<Heatmap>,
    ) {
        let heatmap = heatmap.map(Arc::new);
        let learnt = self.model.as_ref().is_some_and(|m| {
            m.trained_on
                .as_ref()
                .is_some_and(|t| t.defect_files.contains(&path))
        });
        match self.index.get(&path) {
            Some(&i) => {
                let part = &mut self.parts[i];
                if label != Label::Unknown {
                    part.label = label;
                }
                part.learnt = learnt;
                part.score = score;
                if heatmap.is_some() {
                    part.heatmap = heatmap;
                }
            }
            None => {
                self.index.insert(path.clone(), self.parts.len());
                self.parts.push(Part {
                    path,
                    label,
                    score,
                    heatmap,
                    learnt,
                });
            }
        }
        self.version += 1;
    }

    /// The scored part of this image.
    pub fn part(&self, path: &Path) -> Option<&Part> {
        self.index.get(path).map(|&i| &self.parts[i])
    }

    /// The ground-truth mask of an image to inspect, when the data set has one.
    pub fn mask_of(&self, path: &Path) -> Option<&Path> {
        self.data
            .as_ref()?
            .inspect
            .iter()
            .find(|s| s.path == path)?
            .mask
            .as_deref()
    }

    /// Whether the scored parts include labelled good parts, and labelled defective ones.
    pub fn label_kinds(&self) -> (bool, bool) {
        let mut kinds = (false, false);
        for p in &self.parts {
            match p.truth() {
                Some(false) => kinds.0 = true,
                Some(true) => kinds.1 = true,
                None => {}
            }
        }
        kinds
    }

    /// Whether any scored part has a label.
    pub fn has_labels(&self) -> bool {
        self.parts.iter().any(|p| p.truth().is_some())
    }

    /// Sets the thresholds (review band kept below the reject threshold), both as the
    /// user wants them.
    pub fn set_thresholds(&mut self, t: Thresholds) {
        self.review_wanted = t.review;
        self.thresholds = Some(t.ordered());
        self.version += 1;
    }

    /// Moves the reject line only; the review band starts where the user last put it, or
    /// at the reject line while that is lower.
    pub fn set_reject(&mut self, reject: f64) {
        self.thresholds = Some(Thresholds {
            reject,
            review: self.review_wanted.map(|r| r.min(reject)),
        });
        self.version += 1;
    }

    /// Moves (or with `None` removes) the review line only.
    pub fn set_review(&mut self, review: Option<f64>) {
        if let Some(t) = self.thresholds {
            self.review_wanted = review;
            self.thresholds = Some(
                Thresholds {
                    reject: t.reject,
                    review,
                }
                .ordered(),
            );
            self.version += 1;
        }
    }

    /// Remembers every part's call at the current line, before a new model replaces the
    /// current one (nothing when the parts are partial or there is no line).
    pub fn keep_calls(&mut self) {
        let Some(t) = self.thresholds else { return };
        if self.parts.is_empty() || self.partial.is_some() {
            return;
        }
        self.previous_reject = Some(t.reject);
        self.previous_calls = Some(
            self.parts
                .iter()
                .map(|p| (p.path.clone(), t.decide(p.score)))
                .collect(),
        );
    }

    /// Of the parts that moved, how many would have moved had the reject line stayed
    /// where it was (the new model's scores), when the line moved with the new model.
    pub fn moved_by_scores(&self) -> Option<usize> {
        let before = self.previous_calls.as_ref()?;
        let was = self.previous_reject?;
        let t = self.thresholds?;
        if was == t.reject {
            return None;
        }
        let old_line = Thresholds {
            reject: was,
            review: t.review.map(|r| r - t.reject + was),
        };
        let now: Vec<(PathBuf, Decision)> = self
            .parts
            .iter()
            .map(|p| (p.path.clone(), old_line.decide(p.score)))
            .collect();
        Some(moves(before, &now).len())
    }

    /// The parts whose call differs from the previous model's, at the current lines
    /// (`None` when there is nothing to compare with).
    pub fn moves(&self) -> Option<Vec<Move>> {
        let before = self.previous_calls.as_ref()?;
        let t = self.thresholds?;
        let now: Vec<(PathBuf, Decision)> = self
            .parts
            .iter()
            .map(|p| (p.path.clone(), t.decide(p.score)))
            .collect();
        Some(moves(before, &now))
    }

    /// Records an edit of the images, to undo it later: call before changing them.
    pub fn push_undo(&mut self, what: impl Into<String>) {
        if let Some(data) = &self.data {
            self.undo.push((what.into(), data.clone()));
            self.redo.clear();
            // A long session keeps the last edits, not every one.
            if self.undo.len() > 50 {
                self.undo.remove(0);
            }
        }
    }

    /// Undoes the last edit of the images; returns what it was. The scored parts take
    /// their labels back.
    pub fn undo_edit(&mut self) -> Option<String> {
        let (what, data) = self.undo.pop()?;
        if let Some(now) = self.data.replace(data) {
            self.redo.push((what.clone(), now));
        }
        self.sync_labels();
        self.version += 1;
        Some(what)
    }

    /// Does the last undone edit again; returns what it was.
    pub fn redo_edit(&mut self) -> Option<String> {
        let (what, data) = self.redo.pop()?;
        if let Some(before) = self.data.replace(data) {
            self.undo.push((what.clone(), before));
        }
        self.sync_labels();
        self.version += 1;
        Some(what)
    }

    /// Gives each scored part the label its image has in the data set now.
    pub fn sync_labels(&mut self) {
        let Some(data) = &self.data else { return };
        let labels: HashMap<&Path, &Label> = data
            .inspect
            .iter()
            .map(|s| (s.path.as_path(), &s.label))
            .collect();
        for p in &mut self.parts {
            if let Some(l) = labels.get(p.path.as_path()) {
                p.label = (*l).clone();
            }
        }
        self.version += 1;
    }

    /// The call for a part at the current thresholds.
    pub fn decide(&self, score: f64) -> Option<Decision> {
        self.thresholds.map(|t| t.decide(score))
    }

    /// Counts of the scored parts at the current thresholds.
    pub fn counts(&self) -> Option<DecisionCounts> {
        let t = self.thresholds?;
        Some(DecisionCounts::count(
            self.parts.iter().map(|p| (p.score, p.truth())),
            t,
        ))
    }

    /// Scores and labels of the labelled parts.
    pub fn labelled_scores(&self) -> (Vec<f64>, Vec<bool>) {
        self.parts
            .iter()
            .filter_map(|p| p.truth().map(|d| (p.score, d)))
            .unzip()
    }

    /// Where a review band starts below the reject line `reject`: the line that the
    /// held-out good scores say sends at most 5 % of good parts to review or reject (else
    /// 10 %, 20 %, 50 %: the highest of these below the reject line), else 0.7 x the
    /// reject line when the model has no held-out scores.
    pub fn default_review(&self, reject: f64) -> f64 {
        [5.0, 10.0, 20.0, 50.0]
            .into_iter()
            .filter_map(|pct| self.threshold_for_false_reject_pct(pct))
            .find(|&r| r < reject)
            .unwrap_or(reject * 0.7)
    }

    /// The fit of the current model's held-out good scores, which predicts false-reject
    /// rates.
    pub fn good_fit(&self) -> Option<GoodScoreFit> {
        self.model.as_ref()?.validation.as_ref()?.fit()
    }

    /// What the reject line at `threshold` is predicted to do to good parts.
    pub fn predict(&self, threshold: f64) -> Option<RatePrediction> {
        Some(self.good_fit()?.predict(threshold))
    }

    /// The line that rejects at most `pct` percent of good parts (with the default line's
    /// confidence), from the fit of the held-out good scores; by counting them when they
    /// are too few to fit.
    pub fn threshold_for_false_reject_pct(&self, pct: f64) -> Option<f64> {
        let v = self.model.as_ref()?.validation.as_ref()?;
        match v.fit() {
            Some(fit) => fit.line_for_target(pct / 100.0),
            None => metrics::threshold_for_false_reject_rate(&v.scores, pct / 100.0),
        }
    }

    /// Scores of the labelled good parts and of the labelled defective parts.
    pub fn scores_by_class(&self) -> (Vec<f64>, Vec<f64>) {
        let (mut good, mut defect) = (Vec::new(), Vec::new());
        for p in &self.parts {
            match p.truth() {
                Some(true) => defect.push(p.score),
                Some(false) => good.push(p.score),
                None => {}
            }
        }
        (good, defect)
    }

    /// The highest line that catches at least `pct` percent of the labelled defects.
    pub fn threshold_for_recall_pct(&self, pct: f64) -> Option<f64> {
        metrics::threshold_for_recall(&self.scores_by_class().1, pct / 100.0)
    }

    /// The line with the lowest expected cost when an escape costs `escape_cost` false
    /// rejects and `defect_pct` percent of the parts are defective, from the labelled
    /// parts' rates.
    pub fn threshold_for_cost(
        &self,
        escape_cost: f64,
        defect_pct: f64,
    ) -> Option<metrics::CostChoice> {
        let (good, defect) = self.scores_by_class();
        metrics::threshold_for_cost(&good, &defect, escape_cost, defect_pct / 100.0)
    }

    /// A first reject threshold once parts are scored: the model's, else the upper
    /// quartile of the scores.
    pub fn initial_threshold(&self) -> Option<f64> {
        if let Some(t) = self.model.as_ref().and_then(|m| m.threshold) {
            return Some(t);
        }
        let mut s: Vec<f64> = self
            .parts
            .iter()
            .map(|p| p.score)
            .filter(|s| s.is_finite())
            .collect();
        s.sort_by(f64::total_cmp);
        s.get(s.len() * 3 / 4).copied()
    }

    /// The smallest and largest finite score among parts and validation images.
    pub fn score_range(&self) -> Option<(f64, f64)> {
        let validation = self
            .model
            .as_ref()
            .and_then(|m| m.validation.as_ref())
            .map(|v| v.scores.as_slice())
            .unwrap_or(&[]);
        let all = self
            .parts
            .iter()
            .map(|p| p.score)
            .chain(validation.iter().copied())
            .filter(|s| s.is_finite());
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for s in all {
            lo = lo.min(s);
            hi = hi.max(s);
        }
        lo.is_finite().then_some((lo, hi))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_follows_the_pace() {
        assert_eq!(eta_secs(10.0, 0, 10), None);
        assert_eq!(eta_secs(10.0, 5, 10), Some(10.0));
        assert_eq!(eta_secs(10.0, 10, 10), Some(0.0));
    }

    #[test]
    fn one_bar_covers_the_whole_job_and_never_goes_back() {
        let plan = JobPlan {
            held_out: 16,
            flow: true,
            members: 1,
            choosing: false,
        };
        let mut p = JobProgress::start(plan, Phase::Loading, 0, 16);
        let mut shown = vec![p.job_fraction];
        for (phase, total) in [
            (Phase::Loading, 16),
            (Phase::CachingFeatures, 16),
            (Phase::Training, 300),
            (Phase::Validating, 20),
        ] {
            for done in 0..=total {
                p.advance(phase, done, total);
                shown.push(p.job_fraction);
            }
        }
        assert!(shown.windows(2).all(|w| w[1] >= w[0]), "{shown:?}");
        assert!((shown.last().unwrap() - 1.0).abs() < 1e-6);
        // Half way through training is past half of the job.
        p = JobProgress::start(plan, Phase::Training, 150, 300);
        assert!((0.45..0.55).contains(&p.job_fraction), "{}", p.job_fraction);
        // The validating counts name what is counted.
        p.advance(Phase::Validating, 4, 20);
        assert_eq!(p.step_text(), "scoring held-out good images 4/16");
        p.advance(Phase::Validating, 18, 20);
        assert_eq!(p.step_text(), "calibrating heatmaps 2/4");
        let bank = JobPlan {
            held_out: 0,
            flow: false,
            members: 1,
            choosing: false,
        };
        let mut p = JobProgress::start(bank, Phase::Validating, 1, 4);
        assert_eq!(p.step_text(), "calibrating heatmaps 1/4");
        p.advance(Phase::Validating, 4, 4);
        assert!((p.job_fraction - 1.0).abs() < 1e-6);
    }

    #[test]
    fn parts_are_updated_in_place() {
        let mut s = Session::default();
        let p = PathBuf::from("/a.png");
        s.upsert_part(p.clone(), Label::Good, 1.0, None);
        s.upsert_part(
            p.clone(),
            Label::Unknown,
            2.0,
            Some(Heatmap {
                width: 1,
                height: 1,
                values: vec![3.0],
            }),
        );
        assert_eq!(s.parts.len(), 1);
        let part = s.part(&p).unwrap();
        assert_eq!((part.score, &part.label), (2.0, &Label::Good));
        assert!(part.heatmap.is_some());
        s.upsert_part(p.clone(), Label::Good, 2.5, None);
        assert!(s.part(&p).unwrap().heatmap.is_some());
    }
}
