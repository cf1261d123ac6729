//! A histogram of anomaly scores on a log scale.
//!
//! Scores of good parts cluster near the bottom of the range while defects can score a
//! hundred times higher, so the bins are equally wide in `log10(score)`: both ends stay
//! readable. Each bin counts three groups (good, defective, unlabelled) so they can be
//! drawn in different colours.

/// Counts of one bin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BinCounts {
    /// Parts known to be good.
    pub good: usize,
    /// Parts known to be defective.
    pub defect: usize,
    /// Unlabelled parts.
    pub unknown: usize,
}

/// Scores binned equally in `log10(score)`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogHistogram {
    /// `log10` of the lower edge of the first bin.
    pub log_min: f64,
    /// Width of every bin in `log10` units.
    pub log_width: f64,
    /// The bins, lowest scores first.
    pub bins: Vec<BinCounts>,
}

/// The smallest score placed on the log axis; lower (and non-positive) scores are counted
/// in the first bin.
pub const MIN_LOG_SCORE: f64 = 1e-6;

impl LogHistogram {
    /// Bins `parts` (a score and `Some(true)` for a defect, `Some(false)` for a good part,
    /// `None` unlabelled) into `bins` bins spanning their range. NaN scores are left out.
    /// `None` when there is no finite score.
    pub fn new(parts: &[(f64, Option<bool>)], bins: usize) -> Option<Self> {
        let logs: Vec<(f64, Option<bool>)> = parts
            .iter()
            .filter(|(s, _)| s.is_finite())
            .map(|&(s, d)| (s.max(MIN_LOG_SCORE).log10(), d))
            .collect();
        let lo = logs.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
        let hi = logs.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
        if !lo.is_finite() {
            return None;
        }
        let bins = bins.max(1);
        // A single distinct score still gets a visible bar.
        let span = (hi - lo).max(0.1);
        let log_width = span / bins as f64;
        let mut out = Self {
            log_min: lo,
            log_width,
            bins: vec![BinCounts::default(); bins],
        };
        for (l, defect) in logs {
            let i = (((l - lo) / log_width) as usize).min(bins - 1);
            let bin = &mut out.bins[i];
            match defect {
                Some(false) => bin.good += 1,
                Some(true) => bin.defect += 1,
                None => bin.unknown += 1,
            }
        }
        Some(out)
    }

    /// `log10` of the centre of bin `i`.
    pub fn center(&self, i: usize) -> f64 {
        self.log_min + (i as f64 + 0.5) * self.log_width
    }

    /// `log10` of the upper edge of the last bin.
    pub fn log_max(&self) -> f64 {
        self.log_min + self.log_width * self.bins.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_split_the_groups_on_a_log_scale() {
        let parts = [
            (1.0, Some(false)),
            (1.1, Some(false)),
            (100.0, Some(true)),
            (10.0, None),
            (f64::NAN, Some(true)),
        ];
        let h = LogHistogram::new(&parts, 4).unwrap();
        assert_eq!(h.log_min, 0.0);
        assert!((h.log_max() - 2.0).abs() < 1e-12);
        assert_eq!(h.bins[0].good, 2);
        assert_eq!(h.bins[3].defect, 1);
        assert_eq!(h.bins[2].unknown, 1);
        let total: usize = h.bins.iter().map(|b| b.good + b.defect + b.unknown).sum();
        assert_eq!(total, 4);
        assert!((h.center(0) - 0.25).abs() < 1e-12);
        assert!(LogHistogram::new(&[(f64::NAN, None)], 4).is_none());
        let one = LogHistogram::new(&[(5.0, None)], 3).unwrap();
        assert!(one.log_width > 0.0);
    }
}
