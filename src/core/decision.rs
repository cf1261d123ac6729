//! What happens to a part given its anomaly score: accepted, sent to a person for review,
//! or rejected, and how many parts of a scored set end up where.
//!
//! A part is rejected when its score is at or above the reject threshold, as everywhere in
//! [`crate::core::metrics`]. An optional second, lower threshold opens a review band: parts
//! scoring at or above it but below the reject threshold go to a person.

use serde::{Deserialize, Serialize};

/// The call made for one part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Decision {
    /// Below every threshold: the part passes.
    Accept,
    /// In the review band: a person looks at it.
    Review,
    /// At or above the reject threshold.
    Reject,
}

impl Decision {
    /// All decisions, from the best to the worst outcome.
    pub const ALL: [Decision; 3] = [Decision::Accept, Decision::Review, Decision::Reject];

    /// The product's one word for the decision, wherever it is said: the window, every
    /// CSV, the heatmap captions, the line's folders and its log (README, "Decisions").
    pub fn name(self) -> &'static str {
        match self {
            Decision::Accept => "accept",
            Decision::Review => "review",
            Decision::Reject => "reject",
        }
    }

    /// The decision a [`Decision::name`] names (`None` for any other word, such as the
    /// line's `unreadable`).
    pub fn from_name(name: &str) -> Option<Decision> {
        Decision::ALL.into_iter().find(|d| d.name() == name)
    }
}

/// The reject threshold and the optional start of the review band.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Parts scoring at or above this are rejected.
    pub reject: f64,
    /// Parts scoring at or above this (and below `reject`) go to review; `None`: no band.
    pub review: Option<f64>,
}

/// The call's name for `score` at `thresholds` ([`Decision::name`]: `accept`, `review`,
/// `reject`), or `unknown` without a line: what the command line writes.
pub fn decision_name(score: f64, thresholds: Option<Thresholds>) -> &'static str {
    thresholds.map_or("unknown", |t| t.decide(score).name())
}

impl Thresholds {
    /// A single reject threshold without a review band.
    pub fn reject_at(reject: f64) -> Self {
        Self {
            reject,
            review: None,
        }
    }

    /// The same thresholds with the review band start kept at or below the reject
    /// threshold, so moving one line past the other never inverts the band.
    pub fn ordered(self) -> Self {
        Self {
            reject: self.reject,
            review: self.review.map(|r| r.min(self.reject)),
        }
    }

    /// The call for `score`. A NaN score is never at or above a threshold, so it is
    /// accepted, as in [`crate::core::metrics`].
    pub fn decide(&self, score: f64) -> Decision {
        if score >= self.reject {
            Decision::Reject
        } else if self.review.is_some_and(|r| score >= r) {
            Decision::Review
        } else {
            Decision::Accept
        }
    }
}

/// How a scored set splits at some thresholds, and the mistakes among the labelled parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DecisionCounts {
    /// Parts accepted.
    pub accepted: usize,
    /// Parts sent to review.
    pub review: usize,
    /// Parts rejected.
    pub rejected: usize,
    /// Good parts rejected.
    pub false_rejects: usize,
    /// Defective parts accepted (review does not count: a person sees those).
    pub escapes: usize,
    /// Good parts sent to review.
    pub good_in_review: usize,
    /// Defective parts sent to review.
    pub defects_in_review: usize,
    /// Parts with a label (good or defective).
    pub labelled: usize,
}

impl DecisionCounts {
    /// Counts `parts`, each a score and `Some(true)` for a known defect, `Some(false)` for
    /// a known good part, `None` when unlabelled.
    pub fn count(parts: impl IntoIterator<Item = (f64, Option<bool>)>, at: Thresholds) -> Self {
        let mut counts = Self::default();
        for (score, defect) in parts {
            let decision = at.decide(score);
            match decision {
                Decision::Accept => counts.accepted += 1,
                Decision::Review => counts.review += 1,
                Decision::Reject => counts.rejected += 1,
            }
            if defect.is_some() {
                counts.labelled += 1;
            }
            match (decision, defect) {
                (Decision::Reject, Some(false)) => counts.false_rejects += 1,
                (Decision::Accept, Some(true)) => counts.escapes += 1,
                (Decision::Review, Some(false)) => counts.good_in_review += 1,
                (Decision::Review, Some(true)) => counts.defects_in_review += 1,
                _ => {}
            }
        }
        counts
    }

    /// All parts counted.
    pub fn total(&self) -> usize {
        self.accepted + self.review + self.rejected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_review_band_sits_below_the_reject_threshold() {
        let t = Thresholds {
            reject: 10.0,
            review: Some(5.0),
        };
        assert_eq!(t.decide(4.9), Decision::Accept);
        assert_eq!(t.decide(5.0), Decision::Review);
        assert_eq!(t.decide(10.0), Decision::Reject);
        assert_eq!(t.decide(f64::NAN), Decision::Accept);
        assert_eq!(Thresholds::reject_at(10.0).decide(9.0), Decision::Accept);
        let inverted = Thresholds {
            reject: 3.0,
            review: Some(5.0),
        }
        .ordered();
        assert_eq!(inverted.review, Some(3.0));
        assert_eq!(inverted.decide(4.0), Decision::Reject);
    }

    #[test]
    fn counts_name_the_mistakes() {
        let parts = [
            (1.0, Some(false)),
            (6.0, Some(false)),
            (12.0, Some(false)),
            (2.0, Some(true)),
            (7.0, Some(true)),
            (20.0, Some(true)),
            (30.0, None),
        ];
        let t = Thresholds {
            reject: 10.0,
            review: Some(5.0),
        };
        let c = DecisionCounts::count(parts, t);
        assert_eq!((c.accepted, c.review, c.rejected), (2, 2, 3));
        for d in Decision::ALL {
            assert_eq!(Decision::from_name(d.name()), Some(d));
        }
        assert_eq!(Decision::from_name("unreadable"), None);
        assert_eq!((c.false_rejects, c.escapes), (1, 1));
        assert_eq!((c.good_in_review, c.defects_in_review), (1, 1));
        assert_eq!((c.labelled, c.total()), (6, 7));
    }
}
