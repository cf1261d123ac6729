//! What the workstation knows right now: the images, the training run, the model and the
//! scored parts. Updated from worker events by the app; panels only read it.

use crate::core::dataset::Label;
use crate::core::decision::{Decision, DecisionCounts, Thresholds};
use crate::core::metrics;
use crate::core::protocol::{EvalReport, Heatmap, ModelInfo, Phase};
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
}

/// Progress of the running job's current phase.
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
}

impl JobProgress {
    /// Fraction done in `[0, 1]`.
    pub fn fraction(&self) -> f32 {
        if self.total == 0 {
            0.0
        } else {
            (self.done as f32 / self.total as f32).clamp(0.0, 1.0)
        }
    }

    /// Seconds left in this phase at the pace so far, once a unit is done.
    pub fn eta_secs(&self) -> Option<f64> {
        eta_secs(
            self.phase_started.elapsed().as_secs_f64(),
            self.done,
            self.total,
        )
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
    /// The last (or running) training run.
    pub training: Option<TrainingLog>,
    /// The current model.
    pub model: Option<ModelInfo>,
    /// Where the current model came from, for display.
    pub model_source: Option<String>,
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
}

impl Session {
    /// Forgets scored parts and their metrics (new images, or before scoring again).
    pub fn clear_parts(&mut self) {
        self.parts.clear();
        self.index.clear();
        self.eval = None;
        self.version += 1;
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
        match self.index.get(&path) {
            Some(&i) => {
                let part = &mut self.parts[i];
                if label != Label::Unknown {
                    part.label = label;
                }
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
                });
            }
        }
        self.version += 1;
    }

    /// The scored part of this image.
    pub fn part(&self, path: &Path) -> Option<&Part> {
        self.index.get(path).map(|&i| &self.parts[i])
    }

    /// Whether any scored part has a label.
    pub fn has_labels(&self) -> bool {
        self.parts.iter().any(|p| p.label.is_defect().is_some())
    }

    /// Sets the thresholds (review band kept below the reject threshold).
    pub fn set_thresholds(&mut self, t: Thresholds) {
        self.thresholds = Some(t.ordered());
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
            self.parts.iter().map(|p| (p.score, p.label.is_defect())),
            t,
        ))
    }

    /// Scores and labels of the labelled parts.
    pub fn labelled_scores(&self) -> (Vec<f64>, Vec<bool>) {
        self.parts
            .iter()
            .filter_map(|p| p.label.is_defect().map(|d| (p.score, d)))
            .unzip()
    }

    /// The threshold with the best F1 on the labelled parts.
    pub fn best_f1(&self) -> Option<metrics::ThresholdChoice> {
        let (scores, truth) = self.labelled_scores();
        metrics::best_f1_threshold(&scores, &truth)
    }

    /// The threshold that rejects at most `pct` percent of the held-out good images.
    pub fn threshold_for_false_reject_pct(&self, pct: f64) -> Option<f64> {
        let v = self.model.as_ref()?.validation.as_ref()?;
        metrics::threshold_for_false_reject_rate(&v.scores, pct / 100.0)
    }

    /// A first reject threshold once parts are scored: the model's, else the best F1,
    /// else the upper quartile of the scores.
    pub fn initial_threshold(&self) -> Option<f64> {
        if let Some(t) = self.model.as_ref().and_then(|m| m.threshold) {
            return Some(t);
        }
        if let Some(c) = self.best_f1() {
            return Some(c.threshold);
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
