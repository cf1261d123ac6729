//! How well anomaly scores separate good images from defective ones, and where to put the
//! decision threshold.
//!
//! Throughout, higher scores mean "more anomalous" and an image is called defective when
//! its score is greater than or equal to the threshold. A NaN score counts as lower than
//! every number: it is never at or above a threshold, and it ranks lowest for the AUROC.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// Orders scores with NaN below every number, so NaN means "never flagged".
fn cmp_nan_low(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// The area under the ROC curve of `scores` (higher = more likely defective) against the
/// labels `is_defect`.
///
/// Exact, by the Mann-Whitney U statistic ([`mann_whitney`] of the defects against the
/// good images): the fraction of (defect, good) pairs in which the defect scores higher,
/// with a tie counting one half. O(n log n). `None` when either class is empty. A defect
/// scored NaN ranks lowest, so it counts as missed: the product accepts it.
///
/// # Panics
///
/// When the two slices differ in length.
pub fn auroc(scores: &[f64], is_defect: &[bool]) -> Option<f64> {
    assert_eq!(
        scores.len(),
        is_defect.len(),
        "one label per score is needed"
    );
    let (mut good, mut defects) = (Vec::new(), Vec::new());
    for (&score, &defect) in scores.iter().zip(is_defect) {
        if defect {
            defects.push(score);
        } else {
            good.push(score);
        }
    }
    if good.is_empty() || defects.is_empty() {
        return None;
    }
    Some(mann_whitney(&good, &defects).0)
}

/// The Mann-Whitney statistic of `b` against `a`: the probability that a value of `b`
/// exceeds one of `a` (ties count half; the AUROC when `a` holds the good scores and `b`
/// the defects'), and its standard score under the hypothesis that both come from one
/// distribution (normal approximation, tie-corrected variance). `(0.5, 0.0)` when either
/// sample is empty.
///
/// NaN policy, the module's: a NaN ranks below every number, whatever its sign bit, and
/// ties with every other NaN. It is how [`crate::core::decision`] and the thresholds here
/// read a NaN score (never at or above a line, so accepted), so the AUROC is that of the
/// decisions the product makes. Where low means fine, a NaN in `b` thus counts as the most
/// ordinary value there is: a caller that must not let a NaN pass as good drops its NaNs
/// first (the line's drift tests do).
///
/// U is counted in integers (twice U, as ties count half), so no tie is lost to rounding
/// and the fraction is the exact ratio rounded once.
pub fn mann_whitney(a: &[f64], b: &[f64]) -> (f64, f64) {
    if a.is_empty() || b.is_empty() {
        return (0.5, 0.0);
    }
    let mut all: Vec<(f64, bool)> = a
        .iter()
        .map(|&v| (v, false))
        .chain(b.iter().map(|&v| (v, true)))
        .collect();
    all.sort_by(|x, y| cmp_nan_low(x.0, y.0));
    // Twice U, and the variance's tie term: the sum of t^3 - t over groups of t equal values.
    let (mut twice_u, mut a_below, mut ties) = (0u128, 0u128, 0.0);
    for group in all.chunk_by(|x, y| cmp_nan_low(x.0, y.0) == Ordering::Equal) {
        let in_b = group.iter().filter(|(_, from_b)| *from_b).count() as u128;
        let in_a = group.len() as u128 - in_b;
        twice_u += in_b * (2 * a_below + in_a);
        a_below += in_a;
        let t = group.len() as f64;
        ties += t * t * t - t;
    }
    let (n0, n1) = (a.len() as f64, b.len() as f64);
    let u = twice_u as f64 / 2.0;
    let n = n0 + n1;
    let var = n0 * n1 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    let z = if var > 0.0 {
        (u - n0 * n1 / 2.0) / var.sqrt()
    } else {
        0.0
    };
    (twice_u as f64 / (2.0 * n0 * n1), z)
}

/// A decision threshold and how it performs on the scores it was chosen from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ThresholdChoice {
    /// Images scoring at or above this are called defective.
    pub threshold: f64,
    /// The F1 score (harmonic mean of precision and recall) at this threshold.
    pub f1: f64,
    /// The fraction of images called defective that are defective.
    pub precision: f64,
    /// The fraction of defective images that are called defective.
    pub recall: f64,
}

/// The threshold with the highest F1 score, trying every distinct (non-NaN) score as the
/// threshold.
///
/// When several thresholds reach the same F1 the lowest wins, as it catches the most
/// defects. `None` when there are no defects or no non-NaN scores.
///
/// # Panics
///
/// When the two slices differ in length.
pub fn best_f1_threshold(scores: &[f64], is_defect: &[bool]) -> Option<ThresholdChoice> {
    assert_eq!(
        scores.len(),
        is_defect.len(),
        "one label per score is needed"
    );
    let total_defects = is_defect.iter().filter(|&&defect| defect).count();
    if total_defects == 0 {
        return None;
    }
    let mut pairs: Vec<(f64, bool)> = scores
        .iter()
        .copied()
        .zip(is_defect.iter().copied())
        .filter(|(score, _)| !score.is_nan())
        .collect();
    // Highest first: lowering the threshold one distinct score at a time flags one more
    // group of tied images.
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));

    let (mut tp, mut fp) = (0usize, 0usize);
    let mut best: Option<ThresholdChoice> = None;
    for group in pairs.chunk_by(|a, b| a.0 == b.0) {
        let group_defects = group.iter().filter(|(_, defect)| *defect).count();
        tp += group_defects;
        fp += group.len() - group_defects;
        // 2tp / (2tp + fp + fn), with fn = total_defects - tp.
        let f1 = 2.0 * tp as f64 / (tp + fp + total_defects) as f64;
        // `>=`: thresholds come in falling order, so an equal F1 moves to the lower one.
        if best.is_none_or(|b| f1 >= b.f1) {
            best = Some(ThresholdChoice {
                threshold: group[0].0,
                f1,
                precision: tp as f64 / (tp + fp) as f64,
                recall: tp as f64 / total_defects as f64,
            });
        }
    }
    best
}

/// Counts of right and wrong calls at one threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Confusion {
    /// Defective images called defective.
    pub tp: usize,
    /// Good images called defective (false rejects).
    pub fp: usize,
    /// Good images called good.
    pub tn: usize,
    /// Defective images called good (escapes).
    pub fn_: usize,
}

/// `numerator / denominator`, or `None` when the denominator is zero.
fn ratio(numerator: usize, denominator: usize) -> Option<f64> {
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

impl Confusion {
    /// Counts the calls "defective if score >= threshold" against the labels.
    ///
    /// # Panics
    ///
    /// When the two slices differ in length.
    pub fn at(scores: &[f64], is_defect: &[bool], threshold: f64) -> Confusion {
        assert_eq!(
            scores.len(),
            is_defect.len(),
            "one label per score is needed"
        );
        let mut confusion = Confusion::default();
        for (&score, &defect) in scores.iter().zip(is_defect) {
            match (score >= threshold, defect) {
                (true, true) => confusion.tp += 1,
                (true, false) => confusion.fp += 1,
                (false, false) => confusion.tn += 1,
                (false, true) => confusion.fn_ += 1,
            }
        }
        confusion
    }

    /// tp / (tp + fp): the fraction of rejected images that are defective. `None` when
    /// nothing was rejected.
    pub fn precision(&self) -> Option<f64> {
        ratio(self.tp, self.tp + self.fp)
    }

    /// tp / (tp + fn): the fraction of defective images caught. `None` when there are no
    /// defective images.
    pub fn recall(&self) -> Option<f64> {
        ratio(self.tp, self.tp + self.fn_)
    }

    /// 2tp / (2tp + fp + fn), the harmonic mean of precision and recall (0 when there are
    /// defects but none is caught). `None` when there are no defective images and nothing
    /// was rejected.
    pub fn f1(&self) -> Option<f64> {
        ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }

    /// fp / (fp + tn): the fraction of good images rejected. `None` when there are no good
    /// images.
    pub fn false_reject_rate(&self) -> Option<f64> {
        ratio(self.fp, self.fp + self.tn)
    }

    /// fn / (fn + tp): the fraction of defective images let through. `None` when there are
    /// no defective images.
    pub fn escape_rate(&self) -> Option<f64> {
        ratio(self.fn_, self.fn_ + self.tp)
    }
}

/// The smallest threshold at which at most `rate` (a fraction, 0.01 = 1 %) of the good
/// images would be rejected, i.e. score at or above it.
///
/// With `n` good scores, at most `k = floor(rate * n)` may be rejected, so the threshold is
/// the next `f64` above the (k+1)-th highest good score: every good score strictly above
/// that one is rejected, it and every score tied with it are not. A NaN score is never
/// rejected but counts in `n`. When `rate` allows every good image to be rejected (`k >=
/// n`), the lowest good score is returned. `None` when there are no good scores, or
/// `rate` is negative or NaN.
pub fn threshold_for_false_reject_rate(good_scores: &[f64], rate: f64) -> Option<f64> {
    if good_scores.is_empty() || rate.is_nan() || rate < 0.0 {
        return None;
    }
    let mut sorted: Vec<f64> = good_scores
        .iter()
        .copied()
        .filter(|score| !score.is_nan())
        .collect();
    sorted.sort_by(|a, b| b.total_cmp(a));
    // The small allowance keeps e.g. 0.29 * 100 = 28.999999999999996 from losing one.
    let allowed = (rate * good_scores.len() as f64 + 1e-9).floor();
    if allowed >= sorted.len() as f64 {
        // Every (non-NaN) good image may be rejected; NaN ones never are.
        return sorted.last().copied().or(Some(f64::INFINITY));
    }
    Some(sorted[allowed as usize].next_up())
}

/// For each defect type, the AUROC of its images against the `"good"` ones.
///
/// `types[i]` is the type name of image `i` (as given by
/// [`Label::type_name`](crate::core::dataset::Label::type_name)). Types `"good"` and
/// `"unknown"` get no entry, and neither does any type when there are no good images. The
/// result is sorted by type name.
///
/// # Panics
///
/// When the two slices differ in length.
pub fn per_type_auroc(scores: &[f64], types: &[&str]) -> Vec<(String, f64)> {
    assert_eq!(scores.len(), types.len(), "one type per score is needed");
    let mut names: Vec<&str> = types
        .iter()
        .copied()
        .filter(|name| *name != "good" && *name != "unknown")
        .collect();
    names.sort_unstable();
    names.dedup();

    let good: Vec<f64> = scores
        .iter()
        .zip(types)
        .filter(|(_, name)| **name == "good")
        .map(|(score, _)| *score)
        .collect();
    names
        .into_iter()
        .filter_map(|name| {
            let mut subset = good.clone();
            let mut is_defect = vec![false; good.len()];
            for (score, _) in scores.iter().zip(types).filter(|(_, t)| **t == name) {
                subset.push(*score);
                is_defect.push(true);
            }
            auroc(&subset, &is_defect).map(|value| (name.to_owned(), value))
        })
        .collect()
}

/// A pixel-level AUROC accumulated image by image, in memory that does not grow with the
/// number of pixels.
///
/// The scores are counted in a histogram of `bins` equal bins over `[lo, hi]` for defective
/// and for good pixels; scores outside the range go to the end bins and NaN to the lowest.
/// Pixels that share a bin count as tied (one half), so the result is within about
/// `1 / bins` of the exact AUROC when the scores spread over the range.
#[derive(Debug, Clone, PartialEq)]
pub struct PixelAuroc {
    lo: f64,
    hi: f64,
    /// Pixel counts per bin for defective pixels.
    defect_counts: Vec<u64>,
    /// Pixel counts per bin for good pixels.
    good_counts: Vec<u64>,
}

impl PixelAuroc {
    /// An empty accumulator with `bins` bins over `[lo, hi]`.
    ///
    /// # Panics
    ///
    /// When `bins` is 0, or `lo` and `hi` are not finite with `lo < hi`.
    pub fn new(lo: f64, hi: f64, bins: usize) -> Self {
        assert!(bins > 0, "a histogram needs at least one bin");
        assert!(
            lo.is_finite() && hi.is_finite() && lo < hi,
            "the score range must be finite and not empty, got [{lo}, {hi}]"
        );
        Self {
            lo,
            hi,
            defect_counts: vec![0; bins],
            good_counts: vec![0; bins],
        }
    }

    /// Adds the pixels of one image: `scores[i]` with `mask[i]` true for a defective pixel.
    ///
    /// # Panics
    ///
    /// When the two slices differ in length.
    pub fn add(&mut self, scores: &[f32], mask: &[bool]) {
        assert_eq!(
            scores.len(),
            mask.len(),
            "one mask value per score is needed"
        );
        let bins = self.good_counts.len();
        let per_unit = bins as f64 / (self.hi - self.lo);
        for (&score, &defect) in scores.iter().zip(mask) {
            // `as usize` sends NaN and negatives to 0 and saturates large values.
            let bin = (((f64::from(score) - self.lo) * per_unit) as usize).min(bins - 1);
            if defect {
                self.defect_counts[bin] += 1;
            } else {
                self.good_counts[bin] += 1;
            }
        }
    }

    /// The AUROC of the pixels added so far; `None` until both defective and good pixels
    /// have been added.
    pub fn value(&self) -> Option<f64> {
        let mut twice_u: u128 = 0;
        let mut good_below: u128 = 0;
        let (mut defects, mut goods) = (0u128, 0u128);
        for (&defect, &good) in self.defect_counts.iter().zip(&self.good_counts) {
            let (defect, good) = (u128::from(defect), u128::from(good));
            twice_u += defect * (2 * good_below + good);
            good_below += good;
            defects += defect;
            goods += good;
        }
        if defects == 0 || goods == 0 {
            return None;
        }
        Some(twice_u as f64 / (2 * defects * goods) as f64)
    }
}

/// The highest threshold that catches at least `recall` (a fraction in (0, 1]) of the
/// defective images: the k-th highest defect score, k = ceil(recall x defects). `None`
/// without (non-NaN) defect scores or with `recall` outside (0, 1].
pub fn threshold_for_recall(defect_scores: &[f64], recall: f64) -> Option<f64> {
    if !(recall > 0.0 && recall <= 1.0) {
        return None;
    }
    let mut sorted: Vec<f64> = defect_scores
        .iter()
        .copied()
        .filter(|s| !s.is_nan())
        .collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(|a, b| b.total_cmp(a));
    // Of all defects (NaN ones can never be caught, but count).
    let needed = ((recall * defect_scores.len() as f64) - 1e-9)
        .ceil()
        .max(1.0) as usize;
    sorted.get(needed - 1).copied().or(sorted.last().copied())
}

/// A line chosen by weighing mistakes, and its rates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CostChoice {
    /// The reject threshold.
    pub threshold: f64,
    /// Share of good images rejected at it.
    pub false_reject_rate: f64,
    /// Share of defective images accepted at it.
    pub escape_rate: f64,
    /// Expected cost per part, in units of one false reject.
    pub cost: f64,
}

/// The threshold with the lowest expected cost per part when an escape costs
/// `escape_cost` false rejects and a share `defect_share` of the parts on the line are
/// defective: (1 - share) x false-reject rate + share x cost x escape rate. The rates come
/// from the labelled images, so the choice does not depend on how many of each kind were
/// labelled. Candidates are every distinct score and "reject nothing"; on ties the higher
/// threshold wins (fewer parts rejected). `None` without both good and defective scores
/// or with a share outside [0, 1] or a negative cost.
pub fn threshold_for_cost(
    good_scores: &[f64],
    defect_scores: &[f64],
    escape_cost: f64,
    defect_share: f64,
) -> Option<CostChoice> {
    if good_scores.is_empty()
        || defect_scores.is_empty()
        || !(0.0..=1.0).contains(&defect_share)
        || escape_cost.is_nan()
        || escape_cost < 0.0
    {
        return None;
    }
    let mut candidates: Vec<f64> = good_scores
        .iter()
        .chain(defect_scores)
        .copied()
        .filter(|s| !s.is_nan())
        .collect();
    candidates.sort_by(|a, b| b.total_cmp(a));
    candidates.dedup();
    // Above every score: nothing rejected.
    let top = candidates.first().map_or(f64::INFINITY, |s| s.next_up());
    let rate = |scores: &[f64], t: f64| {
        scores.iter().filter(|s| **s >= t).count() as f64 / scores.len() as f64
    };
    let mut best: Option<CostChoice> = None;
    for t in std::iter::once(top).chain(candidates) {
        let fr = rate(good_scores, t);
        let esc = 1.0 - rate(defect_scores, t);
        let cost = (1.0 - defect_share) * fr + defect_share * escape_cost * esc;
        // Highest first, so strictly better moves lower.
        if best.is_none_or(|b| cost < b.cost - 1e-12) {
            best = Some(CostChoice {
                threshold: t,
                false_reject_rate: fr,
                escape_rate: esc,
                cost,
            });
        }
    }
    best
}

/// One point of a ROC or precision-recall curve: what the threshold does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurvePoint {
    /// The threshold (images at or above it are called defective).
    pub threshold: f64,
    /// Share of good images called defective.
    pub false_reject_rate: f64,
    /// Share of defective images caught (the recall).
    pub recall: f64,
    /// Share of the images called defective that are (1 when none is called).
    pub precision: f64,
}

/// Every distinct threshold from above the highest score down to the lowest, with its
/// rates: the ROC curve is (false_reject_rate, recall), the precision-recall curve
/// (recall, precision). Empty without both classes.
///
/// # Panics
///
/// When the two slices differ in length.
pub fn curve(scores: &[f64], is_defect: &[bool]) -> Vec<CurvePoint> {
    assert_eq!(
        scores.len(),
        is_defect.len(),
        "one label per score is needed"
    );
    let defects = is_defect.iter().filter(|d| **d).count();
    let goods = is_defect.len() - defects;
    if defects == 0 || goods == 0 {
        return Vec::new();
    }
    let mut pairs: Vec<(f64, bool)> = scores
        .iter()
        .copied()
        .zip(is_defect.iter().copied())
        .filter(|(s, _)| !s.is_nan())
        .collect();
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let top = pairs.first().map_or(f64::INFINITY, |p| p.0.next_up());
    let mut points = vec![CurvePoint {
        threshold: top,
        false_reject_rate: 0.0,
        recall: 0.0,
        precision: 1.0,
    }];
    let (mut tp, mut fp) = (0usize, 0usize);
    for group in pairs.chunk_by(|a, b| a.0 == b.0) {
        let d = group.iter().filter(|(_, defect)| *defect).count();
        tp += d;
        fp += group.len() - d;
        points.push(CurvePoint {
            threshold: group[0].0,
            false_reject_rate: fp as f64 / goods as f64,
            recall: tp as f64 / defects as f64,
            precision: tp as f64 / (tp + fp) as f64,
        });
    }
    points
}

/// For each defect type (not `"good"` or `"unknown"`), how many of its images score at or
/// above `threshold`, and how many there are; sorted by type name.
///
/// # Panics
///
/// When the two slices differ in length.
pub fn caught_by_type(
    scores: &[f64],
    types: &[&str],
    threshold: f64,
) -> Vec<(String, usize, usize)> {
    assert_eq!(scores.len(), types.len(), "one type per score is needed");
    let mut by: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    for (score, name) in scores.iter().zip(types) {
        if *name == "good" || *name == "unknown" {
            continue;
        }
        let e = by.entry(name).or_default();
        e.0 += usize::from(*score >= threshold);
        e.1 += 1;
    }
    by.into_iter()
        .map(|(name, (caught, total))| (name.to_owned(), caught, total))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::rng::SplitMix64;

    const F: bool = false;
    const T: bool = true;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// The AUROC by its definition: every pair, O(n^2).
    fn brute_auroc(scores: &[f64], is_defect: &[bool]) -> f64 {
        let (mut wins, mut pairs) = (0.0, 0.0);
        for (i, &d) in is_defect.iter().enumerate() {
            for (j, &g) in is_defect.iter().enumerate() {
                if d && !g {
                    pairs += 1.0;
                    wins += match scores[i].partial_cmp(&scores[j]) {
                        Some(Ordering::Greater) => 1.0,
                        Some(Ordering::Equal) => 0.5,
                        _ => 0.0,
                    };
                }
            }
        }
        wins / pairs
    }

    #[test]
    fn auroc_of_hand_computed_cases() {
        assert_eq!(auroc(&[0.1, 0.4, 0.35, 0.8], &[F, F, T, T]), Some(0.75));
        assert_eq!(auroc(&[0.5; 4], &[F, T, F, T]), Some(0.5));
        assert_eq!(auroc(&[0.1, 0.2, 0.3, 0.4], &[F, F, T, T]), Some(1.0));
        assert_eq!(auroc(&[0.1, 0.2, 0.3, 0.4], &[T, T, F, F]), Some(0.0));
        // One tie across classes among four pairs: (1 + 1 + 1 + 0.5) / 4.
        assert_eq!(auroc(&[0.1, 0.3, 0.3, 0.5], &[F, F, T, T]), Some(0.875));
    }

    #[test]
    fn auroc_needs_both_classes() {
        assert_eq!(auroc(&[], &[]), None);
        assert_eq!(auroc(&[0.1, 0.2], &[F, F]), None);
        assert_eq!(auroc(&[0.1, 0.2], &[T, T]), None);
    }

    #[test]
    fn auroc_matches_brute_force_with_many_ties() {
        let mut rng = SplitMix64::new(17);
        for _ in 0..20 {
            let n = 2 + rng.below(60);
            // Few distinct values, so ties are common.
            let scores: Vec<f64> = (0..n).map(|_| rng.below(6) as f64 / 5.0).collect();
            let mut labels: Vec<bool> = (0..n).map(|_| rng.below(2) == 1).collect();
            labels[0] = true;
            labels[1] = false;
            let fast = auroc(&scores, &labels).expect("both classes");
            assert!(close(fast, brute_auroc(&scores, &labels)));
        }
    }

    #[test]
    fn auroc_ranks_nan_lowest() {
        assert_eq!(auroc(&[f64::NAN, 0.2], &[T, F]), Some(0.0));
        assert_eq!(auroc(&[f64::NAN, 0.2], &[F, T]), Some(1.0));
        assert_eq!(auroc(&[f64::NAN, f64::NAN], &[F, T]), Some(0.5));
    }

    #[test]
    fn mann_whitney_ranks_every_nan_lowest_and_ties_them() {
        // Whatever its sign bit (x86 arithmetic makes negative NaNs), a NaN is below every
        // number: a NaN among the high sample never counts as high.
        for nan in [f64::NAN, -f64::NAN] {
            assert_eq!(mann_whitney(&[-1e300], &[nan]).0, 0.0);
            assert_eq!(mann_whitney(&[nan], &[f64::NEG_INFINITY]).0, 1.0);
        }
        // NaNs tie with each other in the statistic and in the variance, as one low value.
        let with_nans = mann_whitney(&[f64::NAN, 0.2, 0.5], &[-f64::NAN, 0.3, 0.9]);
        let with_lows = mann_whitney(&[-7.0, 0.2, 0.5], &[-7.0, 0.3, 0.9]);
        assert_eq!(with_nans, with_lows);
        assert!((with_nans.0 - 5.5 / 9.0).abs() < 1e-12);
        // The AUROC is the same statistic, NaN and all.
        assert_eq!(
            auroc(
                &[f64::NAN, 0.2, 0.5, -f64::NAN, 0.3, 0.9],
                &[F, F, F, T, T, T]
            ),
            Some(with_nans.0)
        );
        assert_eq!(mann_whitney(&[], &[1.0]), (0.5, 0.0));
    }

    #[test]
    #[should_panic(expected = "one label per score")]
    fn auroc_rejects_mismatched_lengths() {
        let _ = auroc(&[0.1, 0.2], &[T]);
    }

    #[test]
    fn best_f1_of_a_hand_computed_case() {
        // Scores 0.1 0.2 0.3 0.4 0.5 0.6, defects at 0.3, 0.5 and 0.6 (3 defects).
        // t=0.6: tp1 fp0 -> F1 2/(2+0+2)=0.5; t=0.5: tp2 -> 4/5=0.8;
        // t=0.4: tp2 fp1 -> 4/6; t=0.3: tp3 fp1 -> 6/7=0.857; t=0.2: 6/8; t=0.1: 6/9.
        let scores = [0.4, 0.1, 0.3, 0.6, 0.2, 0.5];
        let labels = [F, F, T, T, F, T];
        let choice = best_f1_threshold(&scores, &labels).expect("defects present");
        assert_eq!(choice.threshold, 0.3);
        assert!(close(choice.f1, 6.0 / 7.0));
        assert!(close(choice.precision, 0.75));
        assert!(close(choice.recall, 1.0));
        let at = Confusion::at(&scores, &labels, choice.threshold);
        assert!(close(at.f1().expect("defined"), choice.f1));
    }

    #[test]
    fn best_f1_breaks_ties_toward_the_lower_threshold() {
        // t=0.9: tp1 fp0 fn1 -> 2/3; t=0.5: tp2 fp2 fn0 -> 4/6 = 2/3 as well.
        let scores = [0.9, 0.5, 0.5, 0.5];
        let labels = [T, T, F, F];
        let choice = best_f1_threshold(&scores, &labels).expect("defects present");
        assert_eq!(choice.threshold, 0.5);
        assert!(close(choice.f1, 2.0 / 3.0));
        assert!(close(choice.recall, 1.0));
        assert!(close(choice.precision, 0.5));
    }

    #[test]
    fn best_f1_of_perfect_separation_and_edge_cases() {
        let choice = best_f1_threshold(&[0.1, 0.2, 0.8, 0.9], &[F, F, T, T]).expect("defects");
        assert_eq!(choice.threshold, 0.8);
        assert_eq!(choice.f1, 1.0);

        let only_defects = best_f1_threshold(&[0.3, 0.7], &[T, T]).expect("defects");
        assert_eq!(only_defects.threshold, 0.3);
        assert_eq!(only_defects.f1, 1.0);

        assert_eq!(best_f1_threshold(&[0.3, 0.7], &[F, F]), None);
        assert_eq!(best_f1_threshold(&[], &[]), None);
        assert_eq!(best_f1_threshold(&[f64::NAN], &[T]), None);
    }

    #[test]
    fn confusion_counts_and_rates() {
        let scores = [0.1, 0.4, 0.35, 0.8, 0.5];
        let labels = [F, F, T, T, F];
        let c = Confusion::at(&scores, &labels, 0.4);
        assert_eq!(
            c,
            Confusion {
                tp: 1,
                fp: 2,
                tn: 1,
                fn_: 1
            }
        );
        assert_eq!(c.precision(), Some(1.0 / 3.0));
        assert_eq!(c.recall(), Some(0.5));
        assert_eq!(c.f1(), Some(0.4));
        assert_eq!(c.false_reject_rate(), Some(2.0 / 3.0));
        assert_eq!(c.escape_rate(), Some(0.5));
        // The threshold itself counts as defective.
        assert_eq!(Confusion::at(&[0.5], &[T], 0.5).tp, 1);
        // NaN is never at or above a threshold.
        assert_eq!(Confusion::at(&[f64::NAN], &[T], f64::NEG_INFINITY).fn_, 1);
    }

    #[test]
    fn confusion_rates_with_empty_denominators() {
        let empty = Confusion::default();
        assert_eq!(empty.precision(), None);
        assert_eq!(empty.recall(), None);
        assert_eq!(empty.f1(), None);
        assert_eq!(empty.false_reject_rate(), None);
        assert_eq!(empty.escape_rate(), None);

        let missed = Confusion::at(&[0.1], &[T], 0.5);
        assert_eq!(missed.precision(), None);
        assert_eq!(missed.recall(), Some(0.0));
        assert_eq!(missed.f1(), Some(0.0));
        assert_eq!(missed.escape_rate(), Some(1.0));
        assert_eq!(missed.false_reject_rate(), None);
    }

    #[test]
    fn false_reject_threshold_is_the_smallest_allowed() {
        let good: Vec<f64> = (1..=10).map(|i| f64::from(i) / 10.0).collect();
        // 10 % of 10: one image (0.9 < score) may be rejected: threshold just above 0.9.
        let t = threshold_for_false_reject_rate(&good, 0.1).expect("threshold");
        assert_eq!(t, 0.9f64.next_up());
        let rejected = good.iter().filter(|&&s| s >= t).count();
        assert_eq!(rejected, 1);
        assert!(good.iter().filter(|&&s| s >= 0.9).count() > 1);

        // 0 %: just above the highest good score.
        assert_eq!(
            threshold_for_false_reject_rate(&good, 0.0),
            Some(1.0f64.next_up())
        );
        // 15 % still allows only one.
        assert_eq!(
            threshold_for_false_reject_rate(&good, 0.15),
            Some(0.9f64.next_up())
        );
        // Everything may be rejected: the lowest good score.
        assert_eq!(threshold_for_false_reject_rate(&good, 1.0), Some(0.1));
        assert_eq!(threshold_for_false_reject_rate(&good, 5.0), Some(0.1));
    }

    #[test]
    fn false_reject_threshold_handles_ties_rounding_and_bad_input() {
        // Ties at the cut: none of the tied scores may be rejected.
        let good = [0.2, 0.5, 0.5, 0.5, 0.7];
        let t = threshold_for_false_reject_rate(&good, 0.4).expect("threshold");
        assert_eq!(t, 0.5f64.next_up());
        assert_eq!(good.iter().filter(|&&s| s >= t).count(), 1);

        // 0.29 * 100 is 28.999999999999996 in floating point; 29 may still be rejected.
        let many: Vec<f64> = (0..100).map(f64::from).collect();
        let t = threshold_for_false_reject_rate(&many, 0.29).expect("threshold");
        assert_eq!(many.iter().filter(|&&s| s >= t).count(), 29);

        assert_eq!(threshold_for_false_reject_rate(&[], 0.1), None);
        assert_eq!(threshold_for_false_reject_rate(&good, -0.1), None);
        assert_eq!(threshold_for_false_reject_rate(&good, f64::NAN), None);
        assert_eq!(
            threshold_for_false_reject_rate(&[f64::NAN], 1.0),
            Some(f64::INFINITY)
        );
    }

    #[test]
    fn per_type_auroc_compares_each_type_with_good() {
        let scores = [0.1, 0.2, 0.3, 0.9, 0.15, 0.25, 0.5];
        let types = ["good", "good", "good", "scratch", "hole", "hole", "unknown"];
        let result = per_type_auroc(&scores, &types);
        assert_eq!(result.len(), 2);
        assert_eq!(result[0].0, "hole");
        // hole 0.15 beats 0.1; 0.25 beats 0.1 and 0.2: 3 of 6 pairs.
        assert!(close(result[0].1, 0.5));
        assert_eq!(result[1], ("scratch".to_owned(), 1.0));

        assert!(per_type_auroc(&[0.3, 0.4], &["hole", "crack"]).is_empty());
        assert!(per_type_auroc(&[], &[]).is_empty());
    }

    #[test]
    fn pixel_auroc_matches_exact_auroc() {
        let mut rng = SplitMix64::new(23);
        let mut pixels = PixelAuroc::new(0.0, 1.0, 10_000);
        let (mut all_scores, mut all_labels) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            let mask: Vec<bool> = (0..2_000).map(|_| rng.below(5) == 0).collect();
            let scores: Vec<f32> = mask
                .iter()
                .map(|&d| {
                    let shift = if d { 0.15 } else { 0.0 };
                    (0.4 + shift + 0.15 * rng.normal_f32()).clamp(0.0, 1.0)
                })
                .collect();
            pixels.add(&scores, &mask);
            all_scores.extend(scores.iter().map(|&s| f64::from(s)));
            all_labels.extend(mask);
        }
        let exact = auroc(&all_scores, &all_labels).expect("both classes");
        let approx = pixels.value().expect("both classes");
        assert!(
            (exact - approx).abs() < 1e-3,
            "exact {exact}, binned {approx}"
        );
        assert!(exact > 0.6 && exact < 0.9);
    }

    #[test]
    fn pixel_auroc_clamps_and_counts_ties_as_half() {
        let mut pixels = PixelAuroc::new(0.0, 1.0, 4);
        assert_eq!(pixels.value(), None);
        // Both outside the range above: the same (top) bin, a tie.
        pixels.add(&[5.0, 7.0], &[false, true]);
        assert_eq!(pixels.value(), Some(0.5));
        // Below the range and NaN land in the lowest bin.
        let mut pixels = PixelAuroc::new(0.0, 1.0, 4);
        pixels.add(&[-3.0, f32::NAN, 0.99], &[false, false, true]);
        assert_eq!(pixels.value(), Some(1.0));
        // Exactly `hi` falls in the last bin, exactly `lo` in the first.
        let mut pixels = PixelAuroc::new(0.0, 1.0, 4);
        pixels.add(&[1.0, 0.0], &[false, true]);
        assert_eq!(pixels.value(), Some(0.0));
    }

    #[test]
    #[should_panic(expected = "score range")]
    fn pixel_auroc_rejects_an_empty_range() {
        let _ = PixelAuroc::new(1.0, 1.0, 10);
    }

    #[test]
    fn recall_targets_pick_the_highest_line_that_reaches_them() {
        let defects = [5.0, 1.0, 3.0, 4.0, 2.0];
        assert_eq!(threshold_for_recall(&defects, 1.0), Some(1.0));
        assert_eq!(threshold_for_recall(&defects, 0.8), Some(2.0));
        assert_eq!(threshold_for_recall(&defects, 0.79), Some(2.0));
        assert_eq!(threshold_for_recall(&defects, 0.2), Some(5.0));
        assert_eq!(threshold_for_recall(&defects, 0.01), Some(5.0));
        assert_eq!(threshold_for_recall(&defects, 0.0), None);
        assert_eq!(threshold_for_recall(&[], 0.5), None);
    }

    #[test]
    fn weighing_mistakes_depends_on_rates_not_on_the_labelled_mix() {
        let good = [1.0, 2.0, 3.0, 4.0];
        let defects = [3.5, 5.0, 6.0];
        // Escapes free: reject nothing.
        let c = threshold_for_cost(&good, &defects, 0.0, 0.1).unwrap();
        assert_eq!((c.false_reject_rate, c.escape_rate), (0.0, 1.0));
        // An escape costs 100 false rejects and 10 % are defective: catch them all.
        let c = threshold_for_cost(&good, &defects, 100.0, 0.1).unwrap();
        assert_eq!((c.threshold, c.escape_rate), (3.5, 0.0));
        assert_eq!(c.false_reject_rate, 0.25);
        // Ten times as many good images labelled, same rates: same line.
        let many_good: Vec<f64> = good.iter().cycle().take(40).copied().collect();
        let d = threshold_for_cost(&many_good, &defects, 100.0, 0.1).unwrap();
        assert_eq!(d.threshold, c.threshold);
        // A cheap escape with rare defects: only the sure ones.
        let c = threshold_for_cost(&good, &defects, 2.0, 0.01).unwrap();
        assert!(c.threshold > 4.0, "{c:?}");
        assert_eq!(threshold_for_cost(&good, &[], 1.0, 0.1), None);
        assert_eq!(threshold_for_cost(&good, &defects, 1.0, 1.5), None);
    }

    #[test]
    fn curves_run_from_nothing_flagged_to_everything() {
        let scores = [0.1, 0.4, 0.35, 0.8];
        let truth = [F, F, T, T];
        let c = curve(&scores, &truth);
        assert_eq!(c.len(), 5);
        assert_eq!((c[0].false_reject_rate, c[0].recall), (0.0, 0.0));
        let last = c[4];
        assert_eq!(
            (last.false_reject_rate, last.recall, last.precision),
            (1.0, 1.0, 0.5)
        );
        // At 0.4: one good and one defect flagged.
        assert_eq!(c[2].threshold, 0.4);
        assert_eq!(
            (c[2].false_reject_rate, c[2].recall, c[2].precision),
            (0.5, 0.5, 0.5)
        );
        assert!(curve(&scores, &[F; 4]).is_empty());
    }

    #[test]
    fn caught_by_type_counts_each_defect_type_at_the_line() {
        let scores = [1.0, 5.0, 2.0, 6.0, 7.0, 9.0];
        let types = ["good", "crack", "crack", "hole", "good", "unknown"];
        assert_eq!(
            caught_by_type(&scores, &types, 4.0),
            vec![("crack".to_owned(), 1, 2), ("hole".to_owned(), 1, 1)]
        );
    }
}
