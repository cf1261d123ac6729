//! How many good parts a reject line will reject, predicted from the scores of the good
//! images held out from training, and how sure that prediction is.
//!
//! Sixteen held-out images cannot show a 1 % rate by counting: with none of them
//! rejected, the rate could still be 17 %. So the prediction comes from a fit: the logs
//! of the held-out good scores follow a normal distribution closely enough for the
//! detectors here (scores are positive and skewed to the right). Scores more than
//! [`OUTLIER_MADS`] robust deviations from the median are set aside before fitting, so one
//! unusual good part cannot move the line. The uncertainty of the fit with few images is
//! carried by one-sided normal tolerance bounds: the default line rejects at most the
//! target rate with [`LINE_CONFIDENCE`] confidence, and a line's predicted rate (the
//! predictive Student-t tail, which counts the fit's uncertainty) comes with a 90 %
//! interval.
//!
//! A fit can be wrong in the tail, which is where a 1 % line sits: long parts with a few
//! unusual good ones put 4 of 64 held-out images above a line the fit said rejects 0.8 %.
//! So every prediction is checked against the count it rests on: when the exact
//! (Clopper-Pearson) 90 % range of the held-out count at or above the line and the fit's
//! range do not meet, the count decides ([`RateBasis::Count`]), and the window says so.
//!
//! Measured on magnetic tiles, mono and poly solar cells (16 training images, 3 seeds,
//! PatchCore; BENCHMARKS.md), this rule at 1 % rejected 1.3 %, 0.5 % and ... of the good
//! test parts with 16 held out, where counting (the empirical 1 % quantile) rejected 5.5 %.

use crate::core::metrics::threshold_for_false_reject_rate;
use serde::{Deserialize, Serialize};
use statrs::distribution::{Beta, ContinuousCDF, StudentsT};
use statrs::function::erf::{erfc, erfc_inv};

/// Scores further than this many robust standard deviations (1.4826 median absolute
/// deviations) from the median are outliers and left out of the fit.
pub const OUTLIER_MADS: f64 = 5.0;
/// The default line rejects at most its target rate of good parts with this confidence.
pub const LINE_CONFIDENCE: f64 = 0.75;
/// The two-sided coverage of a predicted rate's interval.
pub const INTERVAL: f64 = 0.90;
/// The target false-reject rate of a model's default line.
pub const DEFAULT_TARGET_RATE: f64 = 0.01;
/// Fewer held-out scores than this give no fit.
pub const MIN_FIT_COUNT: usize = 4;

/// A fit of the held-out good scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoodScoreFit {
    /// Whether the fit is on the logs of the scores (every score positive).
    pub log: bool,
    /// Mean of the (log) scores kept.
    pub mean: f64,
    /// Standard deviation of the (log) scores kept (n - 1 in the denominator).
    pub std: f64,
    /// Scores kept in the fit.
    pub used: usize,
    /// Scores set aside as outliers.
    pub outliers: usize,
    /// Every finite held-out score, sorted ascending (to count how many a line rejects).
    pub scores: Vec<f64>,
}

/// What a predicted rate rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateBasis {
    /// The fitted curve, which the held-out count at or above the line allows.
    Fit,
    /// The held-out count at or above the line, which contradicts the fit there: its
    /// share, with its exact (Clopper-Pearson) range.
    Count,
}

/// What a reject line is predicted to do to good parts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatePrediction {
    /// The best estimate of the share of good parts at or above the line.
    pub rate: f64,
    /// The [`INTERVAL`] interval of that share.
    pub low: f64,
    /// Upper end of the interval.
    pub high: f64,
    /// Held-out good images at or above the line.
    pub held_out_rejected: usize,
    /// Held-out good images (the prediction's evidence).
    pub held_out: usize,
    /// Whether the rate and range are the fit's or the count's.
    pub basis: RateBasis,
    /// The fit's own estimate, kept when the count overrides it.
    pub fit_rate: f64,
    /// The fit's own [`INTERVAL`] interval: lower end.
    pub fit_low: f64,
    /// The fit's own interval: upper end.
    pub fit_high: f64,
}

impl RatePrediction {
    /// The prediction from the fit's `rate` and range, checked against `rejected` of
    /// `held_out` images at or above the line. Where the count's exact [`INTERVAL`] range
    /// and the fit's do not meet, the count's share and range replace the fit's. Where
    /// they meet, the rate is the fit's and the range spans both: the fit's range holds
    /// only as far as the log-normal curve holds in the tail, which the count can check
    /// no closer than its own range (measured: with the fit's range alone, the rate on
    /// unseen good parts fell inside it in 8 of 20 runs; BENCHMARKS.md).
    pub fn reconciled(rate: f64, low: f64, high: f64, rejected: usize, held_out: usize) -> Self {
        let (count_low, count_high) = clopper_pearson(rejected, held_out, INTERVAL);
        let contradicted = held_out > 0 && (high < count_low || low > count_high);
        let (basis, shown) = if contradicted {
            let share = rejected as f64 / held_out as f64;
            (RateBasis::Count, (share, count_low, count_high))
        } else {
            (
                RateBasis::Fit,
                (rate, low.min(count_low), high.max(count_high)),
            )
        };
        Self {
            rate: shown.0,
            low: shown.1,
            high: shown.2,
            held_out_rejected: rejected,
            held_out,
            basis,
            fit_rate: rate,
            fit_low: low,
            fit_high: high,
        }
    }
}

impl GoodScoreFit {
    /// Fits `scores` (non-finite ones are ignored); `None` with fewer than
    /// [`MIN_FIT_COUNT`] finite scores.
    pub fn new(scores: &[f64]) -> Option<Self> {
        let mut sorted: Vec<f64> = scores.iter().copied().filter(|s| s.is_finite()).collect();
        if sorted.len() < MIN_FIT_COUNT {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let log = sorted[0] > 0.0;
        let values: Vec<f64> = if log {
            sorted.iter().map(|s| s.ln()).collect()
        } else {
            sorted.clone()
        };
        let center = median(&values);
        let deviations: Vec<f64> = values.iter().map(|v| (v - center).abs()).collect();
        let robust_sd = 1.4826 * median(&deviations);
        let kept: Vec<f64> = if robust_sd > 0.0 {
            values
                .iter()
                .copied()
                .filter(|v| (v - center).abs() <= OUTLIER_MADS * robust_sd)
                .collect()
        } else {
            values.clone()
        };
        let n = kept.len() as f64;
        let mean = kept.iter().sum::<f64>() / n;
        let var = kept.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        Some(Self {
            log,
            mean,
            // Identical scores: a spread far below their size, so the line sits just above.
            std: var.sqrt().max(mean.abs() * 1e-9).max(f64::MIN_POSITIVE),
            used: kept.len(),
            outliers: values.len() - kept.len(),
            scores: sorted,
        })
    }

    /// Held-out scores (all finite ones, outliers included).
    pub fn count(&self) -> usize {
        self.scores.len()
    }

    fn to_fit(&self, score: f64) -> f64 {
        if self.log {
            if score > 0.0 {
                score.ln()
            } else {
                f64::NEG_INFINITY
            }
        } else {
            score
        }
    }

    fn score_of(&self, value: f64) -> f64 {
        if self.log { value.exp() } else { value }
    }

    /// The line that rejects at most `rate` of good parts with `confidence` (0.5: the
    /// fit's best estimate). `None` for a rate outside (0, 1) or a confidence outside
    /// (0, 1).
    pub fn line_for_rate(&self, rate: f64, confidence: f64) -> Option<f64> {
        if !(rate > 0.0 && rate < 1.0 && confidence > 0.0 && confidence < 1.0) {
            return None;
        }
        let k = tolerance_factor(self.used, rate, confidence)?;
        Some(self.score_of(self.mean + k * self.std))
    }

    /// The default reject line: at most [`DEFAULT_TARGET_RATE`] of good parts rejected
    /// with [`LINE_CONFIDENCE`] ([`Self::line_for_target`]).
    pub fn default_line(&self) -> f64 {
        self.line_for_target(DEFAULT_TARGET_RATE)
            .expect("the default rate is in range")
    }

    /// The line that rejects at most `rate` of good parts with [`LINE_CONFIDENCE`] by the
    /// fitted curve, moved up past held-out scores where the held-out count at or above it
    /// rules the target out (its exact [`INTERVAL`] range lies wholly above `rate`: a heavy
    /// tail of unusual good parts that the fit set aside): the lowest line at or above the
    /// curve's that the count allows for the target. `None` for a rate outside (0, 1).
    pub fn line_for_target(&self, rate: f64) -> Option<f64> {
        let line = self.line_for_rate(rate, LINE_CONFIDENCE)?;
        let n = self.count();
        let allowed = |k: usize| clopper_pearson(k, n, INTERVAL).0 <= rate;
        let above = self.scores.iter().filter(|s| **s >= line).count();
        if allowed(above) {
            return Some(line);
        }
        // Just above the held-out scores, one at a time from the lowest at or above the
        // line: the count falls by one each time, and none above allows any target.
        let mut k = above;
        for s in self.scores.iter().copied().filter(|s| *s >= line) {
            k -= 1;
            if allowed(k) {
                return Some(if s > 0.0 {
                    s * (1.0 + 1e-9)
                } else {
                    s + 1e-9 * s.abs().max(1e-12)
                });
            }
        }
        Some(line)
    }

    /// What the line at `threshold` is predicted to do to good parts.
    pub fn predict(&self, threshold: f64) -> RatePrediction {
        let k = (self.to_fit(threshold) - self.mean) / self.std;
        let n = self.used;
        let tail = |confidence: f64| rate_bound(n, k, confidence);
        let alpha = (1.0 - INTERVAL) / 2.0;
        RatePrediction::reconciled(
            // The expected share for a new good part: the predictive distribution of a
            // normal sample with unknown mean and spread, Student's t with n - 1 degrees
            // of freedom, widened by sqrt(1 + 1/n). It carries the fit's own uncertainty,
            // which the plain normal tail (too low by 2-4x with 16 images) leaves out.
            student_t_sf(k / (1.0 + 1.0 / n as f64).sqrt(), (n - 1) as f64),
            tail(alpha),
            tail(1.0 - alpha),
            self.scores.iter().filter(|s| **s >= threshold).count(),
            self.count(),
        )
    }

    /// How many held-out good images counting needs to confirm a false-reject `rate`:
    /// with none of them rejected, the rate is then below it with 95 % confidence.
    pub fn needed_to_confirm(rate: f64) -> usize {
        held_out_needed(rate, 0.95)
    }

    /// The smallest false-reject rate that counting the held-out images can show: with
    /// none of them rejected, the rate is below this with 95 % confidence (and not below
    /// anything smaller).
    pub fn smallest_countable_rate(&self) -> f64 {
        zero_of_n_upper_bound(self.count(), 0.95)
    }

    /// The line that counting alone gives for `rate`: the lowest that rejects at most
    /// that share of the held-out images.
    pub fn counted_line(&self, rate: f64) -> Option<f64> {
        threshold_for_false_reject_rate(&self.scores, rate)
    }
}

/// What a reject line did to labelled parts, beside what the fit predicted for good parts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LineCheck {
    /// The reject line.
    pub threshold: f64,
    /// Labelled good parts.
    pub good: usize,
    /// Good parts at or above the line.
    pub false_rejects: usize,
    /// Labelled defective parts.
    pub defects: usize,
    /// Defective parts at or above the line.
    pub caught: usize,
    /// The predicted share of good parts rejected (the fit's estimate), when there is a fit.
    pub predicted_rate: Option<f64>,
    /// The [`INTERVAL`] interval of that prediction.
    pub predicted_low: Option<f64>,
    /// Upper end of the interval.
    pub predicted_high: Option<f64>,
    /// Held-out good images the prediction rests on.
    pub held_out: usize,
    /// Held-out good images at or above the line.
    #[serde(default)]
    pub held_out_rejected: usize,
    /// Whether the prediction is the fit's or the held-out count's (which replaces the fit
    /// where the two contradict each other).
    #[serde(default)]
    pub predicted_basis: Option<RateBasis>,
}

impl LineCheck {
    /// Counts `parts` (score, is defective) at `threshold` and adds `fit`'s prediction.
    pub fn new(
        threshold: f64,
        fit: Option<&GoodScoreFit>,
        parts: impl IntoIterator<Item = (f64, bool)>,
    ) -> Self {
        let prediction = fit.map(|f| f.predict(threshold));
        let mut check = Self {
            threshold,
            good: 0,
            false_rejects: 0,
            defects: 0,
            caught: 0,
            predicted_rate: prediction.map(|p| p.rate),
            predicted_low: prediction.map(|p| p.low),
            predicted_high: prediction.map(|p| p.high),
            held_out: prediction.map_or(0, |p| p.held_out),
            held_out_rejected: prediction.map_or(0, |p| p.held_out_rejected),
            predicted_basis: prediction.map(|p| p.basis),
        };
        for (score, defect) in parts {
            let rejected = score >= threshold;
            if defect {
                check.defects += 1;
                check.caught += usize::from(rejected);
            } else {
                check.good += 1;
                check.false_rejects += usize::from(rejected);
            }
        }
        check
    }

    /// The share of labelled good parts rejected; `None` without good parts.
    pub fn false_reject_rate(&self) -> Option<f64> {
        (self.good > 0).then(|| self.false_rejects as f64 / self.good as f64)
    }

    /// One line for a report, e.g. "2 of 191 good parts rejected (1.0 %; predicted 0.6 %,
    /// 90 % interval 0.1-2.4 %, from 64 held-out), 120 of 392 defects caught (30.6 %)".
    pub fn summary(&self) -> String {
        let pct = |v: f64| format!("{:.1} %", 100.0 * v);
        let mut text = format!(
            "{} of {} good parts rejected",
            self.false_rejects, self.good
        );
        if let Some(rate) = self.false_reject_rate() {
            text += &format!(" ({}", pct(rate));
            if let (Some(p), Some(lo), Some(hi)) =
                (self.predicted_rate, self.predicted_low, self.predicted_high)
            {
                let by = match self.predicted_basis {
                    Some(RateBasis::Count) => "counted",
                    _ => "fitted",
                };
                text += &format!(
                    "; predicted {}, {:.0} % interval {:.1}-{}, {by} on {} held out, {} at or above the line",
                    pct(p),
                    INTERVAL * 100.0,
                    100.0 * lo,
                    pct(hi),
                    self.held_out,
                    self.held_out_rejected
                );
            }
            text += ")";
        }
        if self.defects > 0 {
            text += &format!(
                ", {} of {} defects caught ({})",
                self.caught,
                self.defects,
                pct(self.caught as f64 / self.defects as f64)
            );
        }
        text
    }
}

/// The share rejected, at most, with `confidence`, by a line `k` fitted standard
/// deviations above the mean of `n` scores: the `rate` whose tolerance factor is `k`.
fn rate_bound(n: usize, k: f64, confidence: f64) -> f64 {
    if k.is_nan() {
        return f64::NAN;
    }
    if k == f64::INFINITY {
        return 0.0;
    }
    if k == f64::NEG_INFINITY {
        return 1.0;
    }
    // The tolerance factor falls as the rate grows: bisect on the rate.
    let (mut lo, mut hi) = (1e-12_f64, 1.0 - 1e-12);
    let factor = |rate: f64| tolerance_factor(n, rate, confidence).unwrap_or(f64::NAN);
    if factor(lo) <= k {
        return lo;
    }
    if factor(hi) >= k {
        return hi;
    }
    for _ in 0..200 {
        // Bisect in log space: the rates of interest span many decades.
        let mid = (lo.ln() + hi.ln()).mul_add(0.5, 0.0).exp();
        if factor(mid) > k {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi / lo < 1.0 + 1e-9 {
            break;
        }
    }
    (lo + hi) / 2.0
}

/// The one-sided normal tolerance factor: with `confidence`, at most `rate` of the
/// population lies above mean + factor x sd, both estimated from `n` values (the
/// Natrella approximation, within a few per cent of the exact non-central t factor for
/// n >= 4). `None` when `n` < 2 or the approximation has no solution.
pub fn tolerance_factor(n: usize, rate: f64, confidence: f64) -> Option<f64> {
    if n < 2 {
        return None;
    }
    let n = n as f64;
    let zp = normal_quantile(1.0 - rate);
    let zg = normal_quantile(confidence);
    let a = 1.0 - zg * zg / (2.0 * (n - 1.0));
    let b = zp * zp - zg * zg / n;
    let disc = zp * zp - a * b;
    // The larger root bounds the rate from above (confidence over one half), the smaller
    // from below.
    let root = if zg >= 0.0 { disc.sqrt() } else { -disc.sqrt() };
    (a > 0.0 && disc >= 0.0).then(|| (zp + root) / a)
}

/// The exact (Clopper-Pearson) two-sided `coverage` interval of a share, `k` of `n`. (0, 1)
/// for `n` = 0.
pub fn clopper_pearson(k: usize, n: usize, coverage: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let k = k.min(n);
    let alpha = (1.0 - coverage) / 2.0;
    let (kf, nf) = (k as f64, n as f64);
    // P(X >= k | p) = I_p(k, n - k + 1) and P(X <= k | p) = 1 - I_p(k + 1, n - k).
    let low = if k == 0 {
        0.0
    } else {
        beta_quantile(alpha, kf, nf - kf + 1.0)
    };
    let high = if k == n {
        1.0
    } else {
        beta_quantile(1.0 - alpha, kf + 1.0, nf - kf)
    };
    (low, high)
}

/// The `q` quantile of the beta distribution with shapes `a`, `b` (statrs's AS 109: Newton
/// steps on the regularized incomplete beta function; the Clopper-Pearson bounds it gives
/// agree with mpmath to about 1e-11 relative). `q` outside [0, 1] is clamped; NaN for a NaN
/// `q` or shapes that are not positive.
fn beta_quantile(q: f64, a: f64, b: f64) -> f64 {
    Beta::new(a, b).map_or(f64::NAN, |beta| {
        beta.try_inverse_cdf(q.clamp(0.0, 1.0)).unwrap_or(f64::NAN)
    })
}

/// The fewest good parts, none of them rejected, that show a rate below `rate` with
/// `confidence`: the smallest n with 1 - (1 - confidence)^(1/n) <= rate.
pub fn held_out_needed(rate: f64, confidence: f64) -> usize {
    if !(rate > 0.0 && rate < 1.0) {
        return usize::MAX;
    }
    let n = ((1.0 - confidence).ln() / (1.0 - rate).ln()).ceil();
    let mut n = n.max(1.0) as usize;
    // Guard the rounding of the logarithms.
    while n > 1 && zero_of_n_upper_bound(n - 1, confidence) <= rate {
        n -= 1;
    }
    while zero_of_n_upper_bound(n, confidence) > rate {
        n += 1;
    }
    n
}

/// With 0 of `n` good parts rejected, the rate is below this with `confidence`
/// (Clopper-Pearson): 1 - (1 - confidence)^(1/n). 1 when `n` is 0.
pub fn zero_of_n_upper_bound(n: usize, confidence: f64) -> f64 {
    if n == 0 {
        return 1.0;
    }
    1.0 - (1.0 - confidence).powf(1.0 / n as f64)
}

/// The median of `values` (not empty), in any order.
pub fn median(sorted_or_not: &[f64]) -> f64 {
    let mut v = sorted_or_not.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// P(T >= t) for Student's t distribution with `nu` degrees of freedom (statrs's, by the
/// regularized incomplete beta function: about 1e-13 relative up to 100 degrees of freedom,
/// measured against mpmath).
pub fn student_t_sf(t: f64, nu: f64) -> f64 {
    if t.is_nan() || nu.is_nan() || nu <= 0.0 {
        return f64::NAN;
    }
    if t.is_infinite() {
        return if t > 0.0 { 0.0 } else { 1.0 };
    }
    StudentsT::new(0.0, 1.0, nu).map_or(f64::NAN, |dist| dist.sf(t))
}

/// The standard normal distribution function, by statrs's erfc: a relative error below
/// 1e-10 in both tails, measured against mpmath (statrs 0.19 keeps Boost's interval
/// constants to ten digits only).
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// The quantile of the standard normal distribution, by statrs's inverse erfc: a relative
/// error below 1e-15 for `p` up to 0.999, measured against mpmath (closer to 1, the
/// rounding of `p` itself limits it). Infinite at 0 and 1, NaN outside [0, 1].
pub fn normal_quantile(p: f64) -> f64 {
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    -std::f64::consts::SQRT_2 * erfc_inv(2.0 * p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::rng::SplitMix64;
    use statrs::function::gamma::ln_gamma;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    /// P(X >= k) for X binomial(n, p), by direct summation.
    fn binomial_at_least(k: usize, n: usize, p: f64) -> f64 {
        (k..=n)
            .map(|i| {
                let ln_choose = ln_gamma(n as f64 + 1.0)
                    - ln_gamma(i as f64 + 1.0)
                    - ln_gamma((n - i) as f64 + 1.0);
                (ln_choose + i as f64 * p.ln() + (n - i) as f64 * (1.0 - p).ln()).exp()
            })
            .sum()
    }

    #[test]
    fn clopper_pearson_bounds_leave_five_per_cent_on_each_side() {
        for (k, n) in [(1, 16), (4, 64), (10, 50), (30, 191)] {
            let (low, high) = clopper_pearson(k, n, 0.90);
            let share = k as f64 / n as f64;
            assert!(low < share && share < high);
            assert!(close(binomial_at_least(k, n, low), 0.05, 1e-6), "{k}/{n}");
            assert!(
                close(1.0 - binomial_at_least(k + 1, n, high), 0.05, 1e-6),
                "{k}/{n}"
            );
        }
        // None rejected: the one-sided bound of the rule of three family.
        let (low, high) = clopper_pearson(0, 64, 0.90);
        assert_eq!(low, 0.0);
        assert!(close(high, zero_of_n_upper_bound(64, 0.95), 1e-9));
        assert_eq!(clopper_pearson(5, 5, 0.9).1, 1.0);
        assert_eq!(clopper_pearson(0, 0, 0.9), (0.0, 1.0));
    }

    #[test]
    fn held_out_needed_to_confirm_a_rate() {
        // 0 of 299 shows a rate below 1 % with 95 % confidence; 0 of 298 does not.
        assert_eq!(held_out_needed(0.01, 0.95), 299);
        assert_eq!(GoodScoreFit::needed_to_confirm(0.05), 59);
        assert!(zero_of_n_upper_bound(58, 0.95) > 0.05);
    }

    /// 64 held-out scores, 60 of them log-normal and 4 in a heavy tail (the long parts
    /// that a new user met: "about 0.8 %" at a line with 4 of 64 above it).
    fn heavy_tail() -> Vec<f64> {
        let mut scores: Vec<f64> = (0..60)
            .map(|i| (0.1 * normal_quantile((f64::from(i) + 0.5) / 60.0)).exp())
            .collect();
        scores.extend([1.9, 2.2, 2.6, 3.1]);
        scores
    }

    #[test]
    fn a_count_that_contradicts_the_fit_replaces_it() {
        let fit = GoodScoreFit::new(&heavy_tail()).unwrap();
        // The tail is set aside by the fit, so at a line 3 fitted deviations up the fit
        // predicts a few in a thousand while 4 of 64 held-out images lie above it.
        let line = (fit.mean + 3.0 * fit.std).exp();
        let p = fit.predict(line);
        assert_eq!((p.held_out_rejected, p.held_out), (4, 64));
        assert!(p.fit_high < 0.02, "the fit alone: {p:?}");
        assert_eq!(p.basis, RateBasis::Count);
        assert!(close(p.rate, 4.0 / 64.0, 1e-12), "{p:?}");
        let (low, high) = clopper_pearson(4, 64, INTERVAL);
        assert_eq!((p.low, p.high), (low, high));
        // Never a prediction that its own count contradicts, at any line.
        for i in 0..200 {
            let line = 0.5 + f64::from(i) * 0.02;
            let p = fit.predict(line);
            let (low, high) = clopper_pearson(p.held_out_rejected, p.held_out, INTERVAL);
            assert!(p.high >= low && p.low <= high, "line {line}: {p:?}");
        }
        // The default line moves up past held-out scores until its own count allows the
        // 1 % target: 2 of 64 above it do (their exact range starts at 0.55 %), 3 do not.
        let default = fit.default_line();
        let curve = fit.line_for_rate(DEFAULT_TARGET_RATE, LINE_CONFIDENCE);
        assert!(default > curve.unwrap());
        let p = fit.predict(default);
        assert_eq!(p.held_out_rejected, 2, "{p:?}");
        assert!(p.low <= DEFAULT_TARGET_RATE, "{p:?}");
        // Where the count allows the fit, the fit stands.
        let calm = GoodScoreFit::new(&heavy_tail()[..60]).unwrap();
        let p = calm.predict(calm.default_line());
        assert_eq!(p.basis, RateBasis::Fit);
        // The fit's rate, in a range that spans the fit's and the count's.
        let (low, high) = clopper_pearson(p.held_out_rejected, p.held_out, INTERVAL);
        assert_eq!(p.rate, p.fit_rate);
        assert_eq!((p.low, p.high), (p.fit_low.min(low), p.fit_high.max(high)));
        assert!(
            p.high > p.fit_high,
            "60 images cannot confirm the fit's 1 %: {p:?}"
        );
        let check = LineCheck::new(line, Some(&fit), [(0.5, false)]);
        assert_eq!(check.held_out_rejected, fit.predict(line).held_out_rejected);
        assert!(
            check.summary().contains("at or above the line"),
            "{}",
            check.summary()
        );
    }

    #[test]
    fn normal_functions_match_tables() {
        assert!(close(normal_cdf(0.0), 0.5, 1e-7));
        assert!(close(normal_cdf(1.959_963_985), 0.975, 1e-7));
        assert!(close(normal_cdf(-2.326_347_874), 0.01, 1e-8));
        assert!(close(normal_quantile(0.975), 1.959_963_985, 1e-8));
        assert!(close(normal_quantile(0.01), -2.326_347_874, 1e-8));
        assert!(close(normal_quantile(1e-6), -4.753_424_309, 1e-7));
        // mpmath's values, to 1e-9 relative (the hand-written erfc before statrs: 1e-7).
        for (x, p) in [
            (-1.0, 0.158_655_253_931_457_05),
            (-5.0, 2.866_515_718_791_939e-7),
            (-10.0, 7.619_853_024_160_526e-24),
        ] {
            assert!(
                close(normal_cdf(x) / p, 1.0, 1e-9),
                "{x}: {}",
                normal_cdf(x)
            );
        }
        for p in [1e-9, 0.001, 0.2, 0.5, 0.77, 0.999] {
            assert!(close(normal_cdf(normal_quantile(p)), p, p * 1e-9), "{p}");
        }
        assert!(normal_quantile(1.5).is_nan());
    }

    #[test]
    fn student_t_matches_tables() {
        // Two-sided 95 % critical values: P(T >= t) = 0.025.
        for (nu, t) in [
            (1.0, 12.706_2),
            (5.0, 2.570_58),
            (15.0, 2.131_45),
            (100.0, 1.983_97),
        ] {
            assert!(
                close(student_t_sf(t, nu), 0.025, 2e-6),
                "nu {nu}: {}",
                student_t_sf(t, nu)
            );
        }
        assert!(close(student_t_sf(0.0, 7.0), 0.5, 1e-12));
        assert!(close(student_t_sf(-2.570_58, 5.0), 0.975, 2e-6));
        // Many degrees of freedom: the normal tail.
        assert!(close(student_t_sf(2.326_348, 1e6), 0.01, 1e-5));
        assert!(close(ln_gamma(5.0), 24f64.ln(), 1e-12));
    }

    #[test]
    fn tolerance_factors_match_published_tables() {
        // Exact one-sided factors, from the non-central t distribution (scipy's
        // nct.ppf(confidence, n - 1, z(1 - rate) sqrt(n)) / sqrt(n)).
        let exact = [
            (10, 0.05, 0.95, 2.911),
            (20, 0.01, 0.95, 3.295),
            (16, 0.01, 0.75, 2.756),
        ];
        for (n, rate, conf, k) in exact {
            let got = tolerance_factor(n, rate, conf).unwrap();
            assert!((got / k - 1.0).abs() < 0.03, "n={n}: {got} vs {k}");
        }
        // Half confidence is the plain quantile, up to the small-sample term.
        let k = tolerance_factor(1000, 0.01, 0.5).unwrap();
        assert!(close(k, 2.326, 0.01), "{k}");
        assert_eq!(tolerance_factor(1, 0.01, 0.75), None);
    }

    /// Log-normal good scores: the line for 1 % rejects about 1 % of new good scores.
    #[test]
    fn the_default_line_rejects_about_its_target_on_new_good_parts() {
        let mut rng = SplitMix64::new(3);
        let mut normal = || {
            // Box-Muller from two uniforms.
            let (u, v) = (rng.next_f64().max(1e-300), rng.next_f64());
            (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
        };
        let draw = |z: f64| (3.0 + 0.2 * z).exp();
        let mut rates = Vec::new();
        let mut predicted = Vec::new();
        let mut inside = 0;
        let trials = 400;
        for _ in 0..trials {
            let held: Vec<f64> = (0..16).map(|_| draw(normal())).collect();
            let fit = GoodScoreFit::new(&held).unwrap();
            let line = fit.default_line();
            // The true rate of this line under the distribution the scores came from.
            let truth = 1.0 - normal_cdf((line.ln() - 3.0) / 0.2);
            rates.push(truth);
            let p = fit.predict(line);
            predicted.push(p.rate);
            if p.fit_low <= truth && truth <= p.fit_high {
                inside += 1;
            }
            // The range shown spans the fit's and the count's: never narrower.
            assert!(p.low <= p.fit_low && p.high >= p.fit_high, "{p:?}");
        }
        let at_most_target = rates.iter().filter(|r| **r <= 0.01).count() as f64 / trials as f64;
        // At most 1 % with 75 % confidence.
        assert!((0.68..=0.82).contains(&at_most_target), "{at_most_target}");
        // The expected rate is right on average (the plain normal tail was 3x too low).
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let (truth, guess) = (mean(&rates), mean(&predicted));
        assert!((guess / truth - 1.0).abs() < 0.25, "{guess} vs {truth}");
        // Where the scores are log-normal, the fit's own 90 % interval holds the truth
        // about 90 % of the time (the range shown, wider, at least as often).
        let coverage = inside as f64 / trials as f64;
        assert!((0.84..=0.96).contains(&coverage), "{coverage}");
    }

    #[test]
    fn one_unusual_good_part_does_not_move_the_line() {
        let held: Vec<f64> = (0..16).map(|i| 10.0 + 0.1 * i as f64).collect();
        let fit = GoodScoreFit::new(&held).unwrap();
        let mut with_outlier = held.clone();
        with_outlier[15] = 82.5;
        let fit_out = GoodScoreFit::new(&with_outlier).unwrap();
        assert_eq!((fit_out.outliers, fit_out.used), (1, 15));
        let (a, b) = (fit.default_line(), fit_out.default_line());
        assert!((b / a - 1.0).abs() < 0.02, "{a} vs {b}");
        // It still counts as a held-out part the line rejects.
        assert_eq!(fit_out.predict(b).held_out_rejected, 1);
        assert_eq!(fit_out.count(), 16);
    }

    #[test]
    fn predictions_follow_the_line() {
        let held: Vec<f64> = (1..=20).map(|i| i as f64).collect();
        let fit = GoodScoreFit::new(&held).unwrap();
        let low = fit.predict(5.0);
        let high = fit.predict(30.0);
        assert!(low.rate > high.rate);
        assert!(low.low <= low.rate && low.rate <= low.high);
        assert!(high.low <= high.rate && high.rate <= high.high);
        assert_eq!((low.held_out_rejected, low.held_out), (16, 20));
        assert_eq!(high.held_out_rejected, 0);
        // The fitted quantile for 5 %: a little more is expected, for the fit is uncertain.
        let line = fit.line_for_rate(0.05, 0.5).unwrap();
        let expected = fit.predict(line).rate;
        assert!((0.05..0.08).contains(&expected), "{expected}");
        assert_eq!(fit.line_for_rate(0.0, 0.75), None);
        assert_eq!(fit.line_for_rate(0.01, 1.0), None);
    }

    #[test]
    fn counting_needs_many_images_to_show_a_small_rate() {
        assert!(close(zero_of_n_upper_bound(16, 0.95), 0.17, 0.005));
        assert!(close(zero_of_n_upper_bound(300, 0.95), 0.00994, 0.0002));
        assert_eq!(zero_of_n_upper_bound(0, 0.95), 1.0);
    }

    #[test]
    fn a_line_check_counts_labelled_parts_beside_the_prediction() {
        let fit = GoodScoreFit::new(&[1.0, 1.1, 1.2, 1.3, 1.4, 1.5]).unwrap();
        let parts = [
            (1.0, false),
            (2.0, false),
            (3.0, true),
            (1.5, true),
            (0.5, false),
        ];
        let check = LineCheck::new(1.8, Some(&fit), parts);
        assert_eq!((check.good, check.false_rejects), (3, 1));
        assert_eq!((check.defects, check.caught), (2, 1));
        assert_eq!(check.held_out, 6);
        assert!(check.predicted_rate.unwrap() < 0.05);
        let text = check.summary();
        assert!(
            text.starts_with("1 of 3 good parts rejected (33.3 %; predicted"),
            "{text}"
        );
        assert!(text.ends_with("1 of 2 defects caught (50.0 %)"), "{text}");
        let bare = LineCheck::new(1.8, None, parts);
        assert_eq!(bare.predicted_rate, None);
        assert!(!bare.summary().contains("predicted"));
    }

    #[test]
    fn odd_scores_are_handled() {
        assert_eq!(GoodScoreFit::new(&[1.0, 2.0, f64::NAN]), None);
        // Non-positive scores: fitted without logs.
        let fit = GoodScoreFit::new(&[-1.0, 0.0, 1.0, 2.0, 3.0]).unwrap();
        assert!(!fit.log);
        assert!(fit.default_line() > 3.0);
        // Identical scores: the line sits at (just above) them.
        let fit = GoodScoreFit::new(&[5.0; 8]).unwrap();
        let line = fit.default_line();
        assert!((5.0..5.001).contains(&line), "{line}");
        assert_eq!(fit.predict(line).held_out_rejected, 0);
    }
}
