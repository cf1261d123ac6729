//! The losses of a training run, kept as plot points so the live plot borrows them
//! instead of rebuilding them every frame.

use egui_plot::PlotPoint;

/// Losses of the training run, for the live plot.
#[derive(Debug, Clone, Default)]
pub struct TrainingLog {
    /// Epochs of the run.
    pub epochs: usize,
    /// Optimiser steps per epoch (estimated from the request, then as the worker reports).
    pub steps_per_epoch: usize,
    /// Loss of every step; x is the fractional epoch.
    pub steps: Vec<PlotPoint>,
    /// Mean loss of every finished epoch; x is the epoch's end.
    pub epochs_done: Vec<PlotPoint>,
    /// Lowest step loss so far.
    min_loss: Option<f64>,
    /// Highest epoch mean after the first epoch (whose early steps are far higher).
    settled_max: Option<f64>,
}

impl TrainingLog {
    /// A fresh log for a run of `epochs` epochs of `steps_per_epoch` steps.
    pub fn new(epochs: usize, steps_per_epoch: usize) -> Self {
        Self {
            epochs,
            steps_per_epoch: steps_per_epoch.max(1),
            ..Self::default()
        }
    }

    /// Records one step's loss.
    pub fn step(&mut self, epoch: usize, step: usize, loss: f64) {
        let x = epoch as f64 + (step + 1) as f64 / self.steps_per_epoch.max(1) as f64;
        if loss.is_finite() {
            self.steps.push(PlotPoint::new(x, loss));
            self.min_loss = Some(self.min_loss.map_or(loss, |m| m.min(loss)));
        }
    }

    /// The loss range worth showing: from the lowest step to a margin above the highest
    /// epoch mean after the first epoch, so the first steps' huge losses do not flatten
    /// the curve. `None` until two epochs are done.
    pub fn loss_range(&self) -> Option<(f64, f64)> {
        let (lo, hi) = (self.min_loss?, self.settled_max?);
        let margin = ((hi - lo) * 0.5).max(1e-3);
        Some((lo - margin * 0.2, hi + margin))
    }

    /// Records an epoch's mean loss.
    pub fn epoch(&mut self, epoch: usize, mean_loss: f64) {
        if mean_loss.is_finite() {
            self.epochs_done
                .push(PlotPoint::new((epoch + 1) as f64, mean_loss));
            if epoch > 0 {
                self.settled_max = Some(self.settled_max.map_or(mean_loss, |m| m.max(mean_loss)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_epoch_does_not_set_the_loss_range() {
        let mut log = TrainingLog::new(3, 2);
        log.step(0, 0, 5000.0);
        log.step(0, 1, 40.0);
        log.epoch(0, 2520.0);
        assert_eq!(log.loss_range(), None);
        log.step(1, 0, 3.0);
        log.step(1, 1, 1.0);
        log.epoch(1, 2.0);
        let (lo, hi) = log.loss_range().unwrap();
        assert!(lo < 1.0 && hi > 2.0 && hi < 40.0, "{lo}..{hi}");
        assert_eq!(log.steps[1].x, 1.0);
        assert_eq!(log.steps[2].x, 1.5);
    }
}
