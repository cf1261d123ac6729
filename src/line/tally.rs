//! The line's counts since it started, and its summary line.

#[cfg(test)]
use super::FOLDERS;
use super::UNREADABLE;
use crate::core::decision::Decision;
use std::collections::HashMap;
use std::time::Duration;

/// Counts since the watch started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Parts decided, by folder name ([`super::FOLDERS`]).
    pub by_decision: HashMap<String, usize>,
    /// Seconds from a file's appearance to its decision, per part.
    pub latencies: Vec<f64>,
}

impl Tally {
    /// Parts decided.
    pub fn parts(&self) -> usize {
        self.by_decision.values().sum()
    }

    /// The `p`-quantile (0..1) of the latencies in seconds.
    pub fn latency(&self, p: f64) -> Option<f64> {
        let mut v = self.latencies.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(v[((v.len() - 1) as f64 * p).round() as usize])
    }

    /// The summary line: parts, per decision, parts per minute, p50 / p95 latency.
    pub fn summary(&self, elapsed: Duration) -> String {
        let count = |d: &str| self.by_decision.get(d).copied().unwrap_or(0);
        let minutes = elapsed.as_secs_f64() / 60.0;
        let secs = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2} s"));
        format!(
            "{} parts: {} accept, {} review, {} reject, {} unreadable; {:.1} per minute; latency p50 {}, p95 {}",
            self.parts(),
            count(Decision::Accept.name()),
            count(Decision::Review.name()),
            count(Decision::Reject.name()),
            count(UNREADABLE),
            if minutes > 0.0 {
                self.parts() as f64 / minutes
            } else {
                0.0
            },
            secs(self.latency(0.5)),
            secs(self.latency(0.95)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_rate_and_latency() {
        let mut t = Tally::default();
        t.by_decision.insert("accept".into(), 8);
        t.by_decision.insert("reject".into(), 2);
        t.latencies = (1..=10).map(f64::from).collect();
        let line = t.summary(Duration::from_secs(30));
        assert_eq!(
            line,
            "10 parts: 8 accept, 0 review, 2 reject, 0 unreadable; 20.0 per minute; latency p50 6.00 s, p95 10.00 s"
        );
    }

    #[test]
    fn the_folders_are_the_decisions_names() {
        let names: Vec<&str> = [Decision::Accept, Decision::Review, Decision::Reject]
            .into_iter()
            .map(Decision::name)
            .chain([UNREADABLE])
            .collect();
        assert_eq!(names, FOLDERS);
    }
}
