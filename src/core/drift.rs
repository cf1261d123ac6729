//! The line's health: whether the parts it sees have drifted from what the model was
//! trained on. Pure statistics over the decided parts, used by `differnet watch` and the
//! window's Line view (through [`crate::line`]) and by the window's check of
//! inspected parts ([`size_reason`]).
//!
//! Four things are watched, each with a test that does not cry wolf on a stream of
//! ordinary good and defective parts like the training ones:
//!
//! - **Scores**: the scores of the recently accepted parts against the model's held-out
//!   good scores below the same line, and against the parts accepted before them on this
//!   run, by one-sided Mann-Whitney tests (the accepted parts of a healthy line are good
//!   parts, so they score like the held-out good images; when the light or the material
//!   changes they score higher). Accepted parts only, so a batch of defects is not drift.
//!   The held-out images say whether a line starts drifted; the run's own parts, many more
//!   than 16, find a change sooner.
//! - **Rejects**: the share of the last [`REJECT_WINDOW`] parts not accepted against the
//!   share before them on this line (a two-proportion test): catches a drift that pushes
//!   every good part over the line, when there are no accepted parts left to test.
//! - **Brightness and contrast** of the recent parts' images against the training
//!   images' and the run's earlier parts' (two-sided Mann-Whitney tests, and a change of
//!   the median of at least [`LEVEL_CHANGE`]), only when the recent parts' median lies
//!   outside the range of the training and held-out good images: parts that come in
//!   several lighting series (magnetic tiles: medians 0.26 to 0.60) are ordinary anywhere
//!   in the range the model was trained and calibrated on, even when a run sees one series
//!   after another. Every part, accepted or not: a drift that pushes the good parts over
//!   the line leaves none accepted, and defects, a minority, move a median little.
//! - **Image size**: parts of a size the training images do not have.
//!
//! A test fires when its standard score has passed [`Z_FIRE`] (one-sided p below 0.0002)
//! on [`PERSIST`] parts in a row (it is looked at after every part, on windows of
//! [`SCORE_WINDOWS`] parts, and so many looks need both) and ends when it falls below
//! [`Z_END`]. Where the drift began is the change point of a CUSUM over the
//! window (the part after the lowest point of the running sum of `above - 1/2`).

use crate::core::calibration::median;
pub use crate::core::image_io::ImageLevels;
/// The tests' statistic. Its NaN policy ranks a NaN lowest, as an ordinary score: every
/// sample given it here is free of NaN (scores pass a `<` filter, levels are never NaN).
pub use crate::core::metrics::mann_whitney;
use crate::core::provenance::TrainingRecord;
use std::collections::VecDeque;

/// A standard score past which a test says the line drifted (one-sided p about 0.0002).
pub const Z_FIRE: f64 = 3.5;
/// A fired test ends once its standard score is below this.
pub const Z_END: f64 = 2.0;
/// Parts in a row a test must pass [`Z_FIRE`] on before it fires: one look after every
/// part makes many looks, and a real drift lasts.
pub const PERSIST: usize = 5;
/// Windows of recently accepted parts whose scores and images are tested (each once it is
/// full; the shortest finds a sudden change soon, the longest a small one).
pub const SCORE_WINDOWS: [usize; 3] = [20, 50, 100];
/// Parts in the window whose share of rejects is compared with the parts before it.
pub const REJECT_WINDOW: usize = 50;
/// Parts before the reject window that the comparison needs.
pub const REJECT_BEFORE_MIN: usize = 50;
/// Windows of recent parts whose images' grey levels are tested (longer than the score
/// windows: the levels of single images vary more than a model's scores of good parts).
pub const LEVEL_WINDOWS: [usize; 3] = [30, 50, 100];
/// The smallest relative change of the median brightness or contrast that is reported.
pub const LEVEL_CHANGE: f64 = 0.10;
/// How far beyond the range of the training and held-out images' grey levels, in their
/// standard deviations, recent parts must lie before their levels are tested.
pub const RANGE_MARGIN_SDS: f64 = 0.25;
/// Parts of an unknown size among the last [`REJECT_WINDOW`] that make a size drift.
pub const ODD_SIZES: usize = 3;
/// Parts kept in the history.
const HISTORY: usize = 400;
/// Held-out good scores (below the line) and training images needed for a test.
const BASELINE_MIN: usize = 8;
/// Parts of this run before a window that a comparison with them needs, and the most it
/// takes.
const EARLIER_MIN: usize = 50;
const EARLIER_MAX: usize = 200;
/// The latest parts searched for where a drift began: longer than a window, which may
/// lie wholly after the change.
const ONSET_PARTS: usize = 200;

/// What a model knows of its good parts: the held-out good scores and the training
/// images (levels and sizes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DriftBaseline {
    /// The held-out good images' scores.
    pub good_scores: Vec<f64>,
    /// The training record (image sizes and grey levels), when the model file has one.
    pub record: Option<TrainingRecord>,
}

/// One decided part, as the monitor sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// The line's part number.
    pub part: u64,
    /// Its score (`None`: unreadable, which the monitor leaves out).
    pub score: Option<f64>,
    /// Whether it was accepted (below the accept line: not rejected, not sent to review).
    pub accepted: bool,
    /// The accept line it was decided at (the review line, else the reject line).
    pub accept_line: f64,
    /// Its image size.
    pub size: Option<(u32, u32)>,
    /// Its image's grey levels.
    pub levels: Option<ImageLevels>,
}

/// What moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Moved {
    /// The accepted parts score higher than the held-out good parts.
    Scores,
    /// More parts are rejected or sent to review than before on this line.
    Rejects,
    /// The accepted parts are brighter or darker than the training images.
    Brightness,
    /// Their contrast differs from the training images'.
    Contrast,
    /// Parts of a size the training images do not have.
    Size,
}

impl Moved {
    /// A short name for `log.csv` (no commas).
    pub fn code(self) -> &'static str {
        match self {
            Self::Scores => "scores",
            Self::Rejects => "rejects",
            Self::Brightness => "brightness",
            Self::Contrast => "contrast",
            Self::Size => "size",
        }
    }
}

/// A test that fired: what moved, by how much, since which part.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// What moved.
    pub moved: Moved,
    /// The test's standard score (how sure: 3.5 is p 0.0002).
    pub z: f64,
    /// What moved and by how much, in words.
    pub text: String,
    /// The part it began with, as far as the window tells.
    pub since_part: u64,
}

impl Finding {
    /// `"<what moved, by how much>, since part N"`.
    pub fn sentence(&self) -> String {
        format!("{}, since about part {}", self.text, self.since_part)
    }
}

/// What a part changed in the line's health.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Change {
    /// Tests that fired with this part.
    pub started: Vec<Finding>,
    /// Tests that ended with it.
    pub ended: Vec<Moved>,
}

/// The line's health over its recent parts.
#[derive(Debug, Clone, Default)]
pub struct DriftMonitor {
    baseline: DriftBaseline,
    history: VecDeque<Observation>,
    active: Vec<Finding>,
    /// Parts in a row each test has passed [`Z_FIRE`] on, by [`Moved`].
    streak: [usize; 5],
}

impl DriftMonitor {
    /// A monitor against what the model knows.
    pub fn new(baseline: DriftBaseline) -> Self {
        Self {
            baseline,
            history: VecDeque::new(),
            active: Vec::new(),
            streak: [0; 5],
        }
    }

    /// The tests firing now, in the order of [`Moved`].
    pub fn findings(&self) -> &[Finding] {
        &self.active
    }

    /// `"scores;brightness"`: what is drifting now, for `log.csv` (empty when nothing).
    pub fn codes(&self) -> String {
        self.active
            .iter()
            .map(|f| f.moved.code())
            .collect::<Vec<_>>()
            .join(";")
    }

    /// Takes a decided part; says which tests fired and which ended with it.
    pub fn observe(&mut self, obs: Observation) -> Change {
        if obs.score.is_some_and(f64::is_finite) {
            self.history.push_back(obs);
            if self.history.len() > HISTORY {
                self.history.pop_front();
            }
        }
        let now = self.evaluate();
        let mut change = Change::default();
        let mut next = Vec::new();
        for moved in [
            Moved::Scores,
            Moved::Rejects,
            Moved::Brightness,
            Moved::Contrast,
            Moved::Size,
        ] {
            let was = self.active.iter().find(|f| f.moved == moved);
            let found = now.iter().find(|f| f.moved == moved);
            let streak = &mut self.streak[moved as usize];
            *streak = if found.is_some_and(|f| f.z >= Z_FIRE) {
                *streak + 1
            } else {
                0
            };
            // A size is a fact, not a sample: it needs no run of looks.
            let persist = if moved == Moved::Size { 1 } else { PERSIST };
            match (was, found) {
                (None, Some(f)) if *streak >= persist => {
                    change.started.push(f.clone());
                    next.push(f.clone());
                }
                (Some(old), Some(f)) if f.z >= Z_END => next.push(Finding {
                    since_part: old.since_part,
                    ..f.clone()
                }),
                (Some(_), _) => change.ended.push(moved),
                _ => {}
            }
        }
        self.active = next;
        change
    }

    /// Every test's strongest finding on the current history (fired or not).
    fn evaluate(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        out.extend(self.score_test());
        out.extend(self.reject_test());
        out.extend(self.level_test(Moved::Brightness));
        out.extend(self.level_test(Moved::Contrast));
        out.extend(self.size_test());
        out
    }

    /// The last `n` accepted parts, oldest first.
    fn accepted(&self, n: usize) -> Vec<&Observation> {
        self.before(u64::MAX, n, true)
    }

    fn score_test(&self) -> Option<Finding> {
        strongest(SCORE_WINDOWS.iter().flat_map(|&w| {
            let mut out = Vec::new();
            let recent = self.accepted(w);
            if recent.len() < w {
                return out;
            }
            // Both samples below the lowest accept line either was decided at: a line
            // moved up lets higher scores pass, which is not drift.
            let cut = |parts: &[&Observation]| {
                parts
                    .iter()
                    .map(|o| o.accept_line)
                    .fold(f64::INFINITY, f64::min)
            };
            // A NaN score fails `<` and is dropped: given to `mann_whitney`, which ranks NaN
            // lowest, it would count as a good part's score.
            let scores_below = |parts: &[&Observation], cut: f64| -> Vec<f64> {
                parts
                    .iter()
                    .filter_map(|o| o.score)
                    .filter(|s| *s < cut)
                    .collect()
            };
            let line = cut(&recent);
            let held_out: Vec<f64> = self
                .baseline
                .good_scores
                .iter()
                .copied()
                .filter(|s| *s < line)
                .collect();
            let earlier = self.before(recent[0].part, EARLIER_MAX, true);
            let mut references = vec![(held_out, "the model's held-out good parts".to_owned(), line)];
            if earlier.len() >= EARLIER_MIN {
                let both = line.min(cut(&earlier));
                references.push((
                    scores_below(&earlier, both),
                    format!("the {} accepted parts before them on this line", earlier.len()),
                    both,
                ));
            }
            for (reference, name, line) in references {
                let scores = scores_below(&recent, line);
                if reference.len() < BASELINE_MIN || scores.len() < w / 2 {
                    continue;
                }
                let (auc, z) = mann_whitney(&reference, &scores);
                let reference_median = median(&reference);
                out.push(Finding {
                    moved: Moved::Scores,
                    z,
                    text: format!(
                        "the accepted parts score higher than {name}: median {} over the last {w} accepted against {} (a part scores above one of those {:.0} % of the time, 50 % without drift)",
                        crate::core::message::format_score(median(&scores)),
                        crate::core::message::format_score(reference_median),
                        auc * 100.0
                    ),
                    since_part: onset(&self.before(u64::MAX, ONSET_PARTS, true), |o| {
                        o.score.unwrap_or(reference_median)
                    }),
                });
            }
            out
        }))
    }

    /// Up to `n` parts (accepted ones only, when `accepted`) before part `first`, oldest
    /// first.
    fn before(&self, first: u64, n: usize, accepted: bool) -> Vec<&Observation> {
        let mut v: Vec<&Observation> = self
            .history
            .iter()
            .rev()
            .filter(|o| o.part < first && (o.accepted || !accepted))
            .take(n)
            .collect();
        v.reverse();
        v
    }

    fn reject_test(&self) -> Option<Finding> {
        let n = self.history.len();
        if n < REJECT_WINDOW + REJECT_BEFORE_MIN {
            return None;
        }
        let all: Vec<&Observation> = self.history.iter().collect();
        let (before, recent) = all.split_at(n - REJECT_WINDOW);
        let k1 = recent.iter().filter(|o| !o.accepted).count() as f64;
        let k0 = before.iter().filter(|o| !o.accepted).count() as f64;
        let (n1, n0) = (recent.len() as f64, before.len() as f64);
        let (p1, p0) = (k1 / n1, k0 / n0);
        let pooled = (k0 + k1) / (n0 + n1);
        let se = (pooled * (1.0 - pooled) * (1.0 / n0 + 1.0 / n1)).sqrt();
        let z = if se > 0.0 { (p1 - p0) / se } else { 0.0 };
        let since = onset(&self.before(u64::MAX, ONSET_PARTS, false), |o| {
            if o.accepted { 0.0 } else { 1.0 }
        });
        Some(Finding {
            moved: Moved::Rejects,
            z,
            text: format!(
                "{} of the last {} parts were rejected or sent to review, against {:.0} % of the {} parts before them",
                k1 as usize,
                REJECT_WINDOW,
                p0 * 100.0,
                n0 as usize
            ),
            since_part: since,
        })
    }

    fn level_test(&self, moved: Moved) -> Option<Finding> {
        let pick = |l: &ImageLevels| {
            f64::from(if moved == Moved::Brightness {
                l.brightness
            } else {
                l.contrast
            })
        };
        let training: Vec<f64> = self
            .baseline
            .record
            .as_ref()
            .map(|r| r.levels.iter().map(pick).collect())
            .unwrap_or_default();
        // The range the model knows: the training and held-out good images' levels,
        // widened by a fraction of their spread (a few dozen images show the ends of a
        // lighting series' range only roughly: its median can lie at the edge).
        let known = (training.len() >= BASELINE_MIN).then(|| {
            let lo = training.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = training.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let n = training.len() as f64;
            let mean = training.iter().sum::<f64>() / n;
            let sd = (training.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
            (lo - RANGE_MARGIN_SDS * sd, hi + RANGE_MARGIN_SDS * sd)
        });
        strongest(LEVEL_WINDOWS.iter().flat_map(|&w| {
            let mut out = Vec::new();
            let mut recent: Vec<&Observation> = self
                .history
                .iter()
                .rev()
                .filter(|o| o.levels.is_some())
                .take(w)
                .collect();
            recent.reverse();
            if recent.len() < w {
                return out;
            }
            let values: Vec<f64> = recent.iter().filter_map(|o| o.levels.as_ref().map(pick)).collect();
            if let Some((lo, hi)) = known {
                let m = median(&values);
                if (lo..=hi).contains(&m) {
                    return out;
                }
            }
            let earlier: Vec<f64> = self
                .before(recent[0].part, EARLIER_MAX, false)
                .iter()
                .filter_map(|o| o.levels.as_ref().map(pick))
                .collect();
            let mut references = vec![(training.as_slice(), "the training images".to_owned())];
            if earlier.len() >= EARLIER_MIN {
                references.push((
                    earlier.as_slice(),
                    format!("the {} parts before them on this line", earlier.len()),
                ));
            }
            for (reference, name) in references {
                if reference.len() < BASELINE_MIN {
                    continue;
                }
                let base_median = median(reference);
                let m = median(&values);
                let change = if base_median > 0.0 {
                    m / base_median - 1.0
                } else {
                    0.0
                };
                if change.abs() < LEVEL_CHANGE {
                    continue;
                }
                let (_, z) = mann_whitney(reference, &values);
                let up = change > 0.0;
                let words = match (moved, up) {
                    (Moved::Brightness, true) => "brighter",
                    (Moved::Brightness, false) => "darker",
                    (_, true) => "more contrast",
                    (_, false) => "less contrast",
                };
                let (verb, what) = if moved == Moved::Brightness {
                    ("are", "median grey level")
                } else {
                    ("have", "median spread of grey levels")
                };
                out.push(Finding {
                    moved,
                    z: z.abs(),
                    text: format!(
                        "the parts {verb} {:.0} % {words} than {name} ({what} {m:.3} over the last {w} parts against {base_median:.3})",
                        change.abs() * 100.0
                    ),
                    since_part: onset(&self.before(u64::MAX, ONSET_PARTS, false), |o| {
                        o.levels.as_ref().map_or(base_median, pick)
                    }),
                });
            }
            out
        }))
    }

    fn size_test(&self) -> Option<Finding> {
        let record = self.baseline.record.as_ref()?;
        let recent: Vec<&Observation> = self.history.iter().rev().take(REJECT_WINDOW).collect();
        let odd: Vec<&Observation> = recent
            .iter()
            .copied()
            .filter(|o| o.size.is_some_and(|(w, h)| !record.knows_size(w, h)))
            .collect();
        let first = odd.last()?;
        let (w, h) = first.size?;
        // Deterministic: a size the training images lack is a fact, not a sample; the
        // standard score only says how many parts have it.
        let z = Z_FIRE * odd.len() as f64 / ODD_SIZES as f64;
        Some(Finding {
            moved: Moved::Size,
            z,
            text: format!(
                "{} of the last {} parts are of a size the training images do not have ({w}×{h} pixels; the training images {})",
                odd.len(),
                recent.len(),
                record.sizes_text()
            ),
            since_part: first.part,
        })
    }
}

/// Why parts of these sizes look unlike the training images, when some do: the window's
/// check of inspected parts and the line's size test say it the same way.
pub fn size_reason(record: &TrainingRecord, sizes: &[(u32, u32)]) -> Option<String> {
    let (w, h) = sizes.iter().find(|(w, h)| !record.knows_size(*w, *h))?;
    Some(format!(
        "these parts are {w}×{h} pixels, its training images {}",
        record.sizes_text()
    ))
}

/// The finding with the largest standard score.
fn strongest(findings: impl Iterator<Item = Finding>) -> Option<Finding> {
    findings.max_by(|a, b| a.z.total_cmp(&b.z))
}

/// Where the change began in `window` (the latest parts, oldest first), by `value` of each
/// part: the CUSUM
/// change point, the split `k` where the running sum of the values departs most from its
/// straight line, `|S_k - k S_n / n|`; the part after it. A window that changed nowhere
/// (the test fired on the whole of it) begins with its first part.
fn onset(window: &[&Observation], value: impl Fn(&Observation) -> f64) -> u64 {
    let values: Vec<f64> = window.iter().map(|o| value(o)).collect();
    let n = values.len();
    let total: f64 = values.iter().sum();
    let (mut sum, mut best, mut at) = (0.0, 0.0, 0);
    for (k, v) in values.iter().enumerate().take(n.saturating_sub(1)) {
        sum += v;
        let d = (sum - (k + 1) as f64 * total / n as f64).abs();
        if d > best {
            best = d;
            at = k + 1;
        }
    }
    window.get(at).map_or(0, |o| o.part)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::rng::SplitMix64;
    use image::RgbImage;

    fn gauss(rng: &mut SplitMix64) -> f64 {
        // Box-Muller.
        let u1 = rng.next_f64().max(1e-12);
        let u2 = rng.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    fn record(levels: Vec<ImageLevels>) -> TrainingRecord {
        let mut r = TrainingRecord::new(&[], &[], "test", 0);
        r.image_sizes = vec![(64, 64, 16)];
        r.levels = levels;
        r
    }

    /// A part of a line: good parts score N(1, 0.2) and have brightness N(0.4, 0.03) times
    /// `bright`; defective ones (a share of them) score N(3, 0.5). The reject line is at 1.6.
    fn part(rng: &mut SplitMix64, n: u64, defect_share: f64, bright: f64) -> Observation {
        let defective = rng.next_f64() < defect_share;
        let mut score = if defective {
            3.0 + 0.5 * gauss(rng)
        } else {
            1.0 + 0.2 * gauss(rng)
        };
        let brightness = (0.4 + 0.03 * gauss(rng)) * bright;
        // A brighter picture of a good part scores higher (the model sees what it never saw).
        score += (bright - 1.0) * 3.0;
        let contrast = 0.1 + 0.01 * gauss(rng);
        decided(n, score, brightness, contrast)
    }

    /// Part `n` of 64 x 64 pixels, scored `score`, decided at a reject line of 1.6.
    fn decided(n: u64, score: f64, brightness: f64, contrast: f64) -> Observation {
        Observation {
            part: n,
            score: Some(score),
            accepted: score < 1.6,
            accept_line: 1.6,
            size: Some((64, 64)),
            levels: Some(ImageLevels {
                brightness: brightness as f32,
                contrast: contrast as f32,
            }),
        }
    }

    fn baseline(rng: &mut SplitMix64) -> DriftBaseline {
        let good_scores = (0..16).map(|_| 1.0 + 0.2 * gauss(rng)).collect();
        let levels = (0..32)
            .map(|_| ImageLevels {
                brightness: (0.4 + 0.03 * gauss(rng)) as f32,
                contrast: 0.1 + 0.01 * gauss(rng) as f32,
            })
            .collect();
        DriftBaseline {
            good_scores,
            record: Some(record(levels)),
        }
    }

    #[test]
    fn ordinary_good_and_defective_parts_raise_no_warning() {
        // 100 lines of 300 parts, a quarter of them defective: no test may fire.
        for seed in 0..100 {
            let mut rng = SplitMix64::new(seed);
            let mut m = DriftMonitor::new(baseline(&mut rng));
            for n in 1..=300 {
                let c = m.observe(part(&mut rng, n, 0.25, 1.0));
                assert!(
                    c.started.is_empty(),
                    "seed {seed}, part {n}: {:?}",
                    c.started
                );
            }
        }
    }

    #[test]
    fn a_brightness_change_of_30_percent_is_found_within_50_parts_and_says_what_moved() {
        let mut worst = 0;
        for seed in 0..20 {
            let mut rng = SplitMix64::new(seed);
            let mut m = DriftMonitor::new(baseline(&mut rng));
            for n in 1..=130 {
                assert!(m.observe(part(&mut rng, n, 0.25, 1.0)).started.is_empty());
            }
            let found = (131..=230).find_map(|n| {
                let c = m.observe(part(&mut rng, n, 0.0, 1.3));
                (!c.started.is_empty()).then_some((n, c))
            });
            let (n, c) = found.unwrap_or_else(|| panic!("seed {seed}: no warning"));
            worst = worst.max(n - 130);
            let f = &c.started[0];
            assert!(
                matches!(f.moved, Moved::Scores | Moved::Brightness | Moved::Rejects),
                "{f:?}"
            );
            // Said with what moved and since when: the change came with part 131
            // (within the noise of the parts before it: a CUSUM change point).
            assert!((100..=145).contains(&f.since_part), "{f:?}");
            assert!(!m.codes().is_empty());
            let all: Vec<Moved> = m.findings().iter().map(|f| f.moved).collect();
            // Within 50 parts the brightness itself is named.
            for n in n + 1..=180 {
                m.observe(part(&mut rng, n, 0.0, 1.3));
            }
            let later: Vec<Moved> = m.findings().iter().map(|f| f.moved).collect();
            assert!(later.contains(&Moved::Brightness), "{all:?} then {later:?}");
            let text = m
                .findings()
                .iter()
                .find(|f| f.moved == Moved::Brightness)
                .unwrap()
                .sentence();
            assert!(text.contains("brighter"), "{text}");
        }
        assert!(worst <= 50, "found after {worst} parts");
    }

    #[test]
    fn parts_of_another_size_are_a_size_drift_and_it_ends_when_they_stop() {
        let mut rng = SplitMix64::new(3);
        let mut m = DriftMonitor::new(baseline(&mut rng));
        for n in 1..=40 {
            m.observe(part(&mut rng, n, 0.1, 1.0));
        }
        let mut fired = None;
        for n in 41..=50 {
            let mut p = part(&mut rng, n, 0.1, 1.0);
            p.size = Some((640, 480));
            let c = m.observe(p);
            if let Some(f) = c.started.first() {
                fired = Some((n, f.clone()));
                break;
            }
        }
        let (n, f) = fired.expect("a size drift");
        assert_eq!((n, f.moved, f.since_part), (43, Moved::Size, 41));
        assert!(f.text.contains("640×480"), "{}", f.text);
        let mut ended = false;
        for n in 44..=120 {
            ended |= m
                .observe(part(&mut rng, n, 0.1, 1.0))
                .ended
                .contains(&Moved::Size);
        }
        assert!(ended && m.findings().is_empty());
    }

    /// A good tile of lighting series `series` (0-5, medians 0.26 to 0.60, as magnetic
    /// tiles come), brightened by `bright`.
    fn tile(rng: &mut SplitMix64, n: u64, series: u64, bright: f64) -> Observation {
        let centre = 0.26 + 0.068 * series as f64;
        let score = 1.0 + 0.2 * gauss(rng) + (bright - 1.0) * 3.0;
        let brightness = (centre + 0.02 * gauss(rng)) * bright;
        decided(n, score, brightness, 0.3 * centre + 0.005 * gauss(rng))
    }

    #[test]
    fn lighting_series_the_model_knows_raise_no_warning_and_a_brightened_one_does() {
        for seed in 0..20 {
            let mut rng = SplitMix64::new(seed);
            // Training and held-out images from every series.
            let levels = (0..40)
                .map(|i| tile(&mut rng, 0, i % 6, 1.0).levels.unwrap())
                .collect();
            // 64 held out, as the window holds out when there are spare good images.
            let baseline = DriftBaseline {
                good_scores: (0..64).map(|_| 1.0 + 0.2 * gauss(&mut rng)).collect(),
                record: Some(record(levels)),
            };
            let mut m = DriftMonitor::new(baseline);
            // One series after another, darkest first: 80 parts each of series 0, 1, 2.
            let mut n = 0;
            for series in 0..3 {
                for _ in 0..80 {
                    n += 1;
                    let c = m.observe(tile(&mut rng, n, series, 1.0));
                    assert!(
                        c.started.is_empty(),
                        "seed {seed}, part {n}: {:?}",
                        c.started
                    );
                }
            }
            // The brightest series lit a quarter brighter: outside what the model knows.
            let found = (0..100).find_map(|_| {
                n += 1;
                let c = m.observe(tile(&mut rng, n, 5, 1.25));
                c.started
                    .iter()
                    .any(|f| f.moved == Moved::Brightness)
                    .then_some(n)
            });
            assert!(found.is_some(), "seed {seed}: no brightness warning");
        }
    }

    #[test]
    fn mann_whitney_matches_a_hand_count() {
        let (auc, z) = mann_whitney(&[1.0, 2.0, 3.0], &[2.0, 4.0, 5.0]);
        // Pairs where b > a: 2>1, 4>all 3, 5>all 3 = 7, plus the tie 2=2 half: 7.5 of 9.
        assert!((auc - 7.5 / 9.0).abs() < 1e-12);
        assert!(z > 0.0);
        let (auc, z) = mann_whitney(&[1.0, 2.0], &[1.0, 2.0]);
        assert!((auc - 0.5).abs() < 1e-12 && z.abs() < 1e-12);
    }

    #[test]
    fn levels_are_the_grey_mean_and_spread() {
        let img = RgbImage::from_fn(4, 2, |x, _| {
            if x < 2 {
                image::Rgb([0, 0, 0])
            } else {
                image::Rgb([255, 255, 255])
            }
        });
        let l = ImageLevels::of(&img);
        assert!((l.brightness - 0.5).abs() < 1e-6 && (l.contrast - 0.5).abs() < 1e-6);
    }
}
