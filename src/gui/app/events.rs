//! The worker's events turned into the session: progress, results, a new model, errors
//! and crashes.

use super::*;
impl WorkstationApp {
    /// Turns one of the worker's events, answering `job`, into the session: one arm per
    /// event, the longer ones in the methods below.
    pub(super) fn handle_event(&mut self, job: Option<Job>, event: Event) {
        let s = &mut self.session;
        match event {
            Event::Ready { device } => s.device = Some(device),
            Event::Progress {
                phase, done, total, ..
            } => self.on_progress(phase, done, total),
            Event::TrainStep { epoch, step, loss } => {
                if let Some(log) = &mut s.training {
                    log.step(epoch, step, loss);
                }
            }
            Event::EpochDone { epoch, mean_loss } => {
                if let Some(log) = &mut s.training {
                    log.epoch(epoch, mean_loss);
                }
            }
            Event::Trained(info) => self.on_trained(info),
            Event::Scored(scored) => self.on_scored(job, scored),
            // Listed once, however many jobs meet the file.
            Event::Skipped { path, reason } => {
                if !s.skipped.iter().any(|(p, _)| *p == path) {
                    s.skipped.push((path, reason));
                }
            }
            Event::TrainingOrder(order) => self.on_training_order(order),
            Event::ScoringDone { .. } | Event::Evaluated(_) => self.on_scoring_done(job, event),
            Event::Saved { path } => self.on_saved(path),
            Event::Loaded { path, info } => self.on_loaded(path, info),
            Event::Cancelled { .. } => {
                s.progress = None;
                if job == Some(Job::Inspect) {
                    s.mark_partial("stopped");
                }
                let what = job.as_ref().map_or("job", Job::describe);
                self.notices.status(format!("Stopped {what}"));
                if job == Some(Job::Choose) {
                    self.choosing_gave_no_answer();
                }
            }
            Event::Failed { message } => self.on_failed(job, &message),
            Event::Crashed { .. } => {
                s.progress = None;
                if job == Some(Job::Inspect) {
                    s.mark_partial("stopped by a crash");
                }
                if job == Some(Job::Choose) {
                    self.choosing_gave_no_answer();
                }
            }
        }
    }

    /// Advances the job's progress, and learns the steps per epoch of a training.
    fn on_progress(&mut self, phase: crate::core::protocol::Phase, done: usize, total: usize) {
        let s = &mut self.session;
        if phase == crate::core::protocol::Phase::Training
            && let Some(log) = &mut s.training
            && log.epochs > 0
        {
            log.steps_per_epoch = (total / log.epochs).max(1);
        }
        match &mut s.progress {
            Some(p) => p.advance(phase, done, total),
            None => s.progress = Some(JobProgress::start(s.plan, phase, done, total)),
        }
    }

    /// Takes a model trained here, places its lines (or keeps the user's) and inspects.
    fn on_trained(&mut self, info: ModelInfo) {
        let s = &mut self.session;
        s.progress = None;
        self.notices.status(format!(
            "Trained on {} images in {:.1} s",
            info.train_count, info.train_secs
        ));
        s.keep_calls();
        let saved_review = info.review_threshold.is_some();
        let own = saved_thresholds(&self.state, &info);
        // A retrain keeps the lines the user set, when the new model's scores are
        // on the same scale (the same kind of detector): what moves is then what
        // the new model did. Its own lines are offered beside them.
        let keep = s.line_by_user
            && s.thresholds.is_some()
            && s.model.as_ref().map(|m| m.config.kind()) == Some(info.config.kind());
        if keep {
            s.model_line = own.filter(|o| Some(*o) != s.thresholds);
            s.version += 1;
        } else {
            s.line_by_user = false;
            s.model_line = None;
            s.thresholds = own;
            if let Some(t) = s.thresholds {
                s.set_thresholds(t);
                // A model saved with a review band shows it: a band that decides
                // parts is never hidden.
                if t.review.is_some() {
                    self.state.review_band = true;
                }
            }
        }
        s.model = Some(info);
        if !keep {
            place_review_band(s, &self.state, saved_review);
        }
        s.model_source = Some("trained here".into());
        s.model_path = None;
        s.clear_parts();
        self.inspect();
    }

    /// Takes a scored image: a heatmap asked for, one to export, or a part inspected.
    fn on_scored(&mut self, job: Option<Job>, scored: crate::core::protocol::ImageScore) {
        let s = &mut self.session;
        match job {
            Some(Job::Heatmap(_)) => {
                if let Some((path, sent)) = self.heat_sent.take()
                    && path == scored.path
                {
                    s.heat_secs = Some(sent.elapsed().as_secs_f64());
                }
                if let Some(h) = scored.heatmap {
                    s.set_heatmap(&scored.path, h);
                }
            }
            Some(Job::ExportHeatmaps(dir)) => {
                if let Some(h) = scored.heatmap {
                    if self.part_view.opened() == Some(scored.path.as_path()) {
                        s.set_heatmap(&scored.path, h.clone());
                    }
                    self.write_heatmap(&dir, scored.path, scored.score, h);
                }
            }
            _ => s.upsert_part(scored.path, scored.label, scored.score, scored.heatmap),
        }
    }

    /// Takes the order in which to prefer the good images for training.
    fn on_training_order(&mut self, order: Vec<PathBuf>) {
        let s = &mut self.session;
        s.progress = None;
        if let Some(among) = self.choose_sent.clone() {
            if let Some(d) = &mut s.data {
                d.set_preferred(Some((order.clone(), among.clone())));
            }
            self.chosen = Some((among, order));
        }
        s.version += 1;
    }

    /// Ends a scoring or an evaluation; after an inspection, places the first lines and
    /// refreshes the opened part.
    fn on_scoring_done(&mut self, job: Option<Job>, event: Event) {
        let s = &mut self.session;
        s.progress = None;
        if let Event::Evaluated(report) = event {
            s.eval = Some(report);
        }
        if job == Some(Job::Inspect) {
            if let Some(sent) = self.inspect_sent.take()
                && !s.parts.is_empty()
            {
                s.inspect_secs = Some(sent.elapsed().as_secs_f64() / s.parts.len() as f64);
            }
            s.check_parts_against_model();
            if s.thresholds.is_none()
                && let Some(t) = s.initial_threshold()
            {
                s.set_thresholds(thresholds_at(&self.state, t));
                place_review_band(s, &self.state, false);
            }
            s.version += 1;
            let n = s.parts.len();
            self.notices.status(format!("Inspected {n} parts"));
            // The part left open gets the new model's heatmap.
            if let Some(open) = self.part_view.opened().map(Path::to_path_buf) {
                self.open_part(open);
            }
        }
    }

    /// Says the model was saved, then closes the window or starts the line waiting for it.
    fn on_saved(&mut self, path: PathBuf) {
        self.notices
            .status(format!("Model saved to {}", path_text(&path)));
        self.session.model_path = Some(path.clone());
        // Saved on the way out: now the window may close.
        if std::mem::take(&mut self.close_after_save) {
            self.close_now = true;
        }
        if let Some((model, input, output)) = self.line_waits_for_save.take()
            && model == path
        {
            self.apply_one(AppCommand::StartLine {
                model,
                save_first: false,
                input,
                output,
            });
        }
    }

    /// Takes a loaded model with the lines saved in it, and inspects.
    fn on_loaded(&mut self, path: PathBuf, info: ModelInfo) {
        let s = &mut self.session;
        s.model_source = Some(format!(
            "loaded from {}",
            path.file_name()
                .map(|n| path_text(std::path::Path::new(n)))
                .unwrap_or_default()
        ));
        s.keep_calls();
        s.line_by_user = false;
        s.model_line = None;
        s.thresholds = saved_thresholds(&self.state, &info);
        if let Some(t) = s.thresholds {
            s.set_thresholds(t);
            // A model saved with a review band shows it: a band that decides
            // parts is never hidden.
            if t.review.is_some() {
                self.state.review_band = true;
            }
        }
        let saved_review = info.review_threshold.is_some();
        s.model = Some(info);
        place_review_band(s, &self.state, saved_review);
        s.model_path = Some(path.clone());
        s.training = None;
        s.clear_parts();
        self.notices.status(format!("Loaded {}", path_text(&path)));
        self.inspect();
    }

    /// Says a job failed, and cancels what waited for it.
    /// A choice of the training images that ended without an answer: the seeded draw is
    /// used, and the setting is off so that it is not asked again and again; ticking it
    /// again asks again.
    fn choosing_gave_no_answer(&mut self) {
        self.choose_sent = None;
        self.state.choose_training = false;
        self.notices.status(
            "The good images to train on were not chosen: the seeded draw is used. Tick \"Choose the ones to train on by how they look\" to try again.",
        );
    }

    fn on_failed(&mut self, job: Option<Job>, message: &str) {
        if job == Some(Job::Choose) {
            self.choosing_gave_no_answer();
        }
        // A save on the way out failed: the window stays open to say so.
        self.close_after_save = false;
        // A line waiting for its model file does not start.
        self.line_waits_for_save = None;
        let s = &mut self.session;
        s.progress = None;
        if job == Some(Job::Inspect) {
            s.mark_partial("failed");
        }
        let what = job
            .as_ref()
            .map_or(String::new(), |j| format!("{} failed: ", j.describe()));
        self.notices.error(format!("{what}{message}"));
    }
}

/// A reject threshold, with a review band below it when the user wants one.
pub(super) fn thresholds_at(state: &State, reject: f64) -> Thresholds {
    Thresholds {
        reject,
        review: state.review_band.then_some(reject * REVIEW_FRACTION),
    }
}

/// Starts the review band where the model's held-out good scores put it
/// ([`Session::default_review`]), when the band is on and the model saved none of its own.
pub(super) fn place_review_band(s: &mut Session, state: &State, saved_review: bool) {
    if state.review_band
        && !saved_review
        && let Some(t) = s.thresholds
    {
        let review = s.default_review(t.reject);
        s.set_thresholds(Thresholds {
            reject: t.reject,
            review: Some(review),
        });
    }
}

/// The thresholds a model comes with: its saved review band if it has one, else the
/// user's usual band below its reject threshold.
pub(super) fn saved_thresholds(state: &State, info: &ModelInfo) -> Option<Thresholds> {
    let reject = info.threshold?;
    Some(match info.review_threshold {
        Some(review) => Thresholds {
            reject,
            review: Some(review),
        }
        .ordered(),
        None => thresholds_at(state, reject),
    })
}
