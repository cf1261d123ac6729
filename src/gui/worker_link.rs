//! The GUI's side of the engine's worker: starts it with a waker that repaints the window,
//! remembers which job each command started (the worker runs them one at a time, in
//! order), and hands events over in small batches so a burst never stalls a frame.

use crate::core::protocol::Waker;
use crate::core::protocol::{Command, Event};
use crate::engine::worker::{WorkerHandle, WorkerOptions};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What the GUI asked the worker to do, so events can be routed to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// [`Command::Train`].
    Train,
    /// Scoring every image to inspect ([`Command::Evaluate`] or [`Command::Score`]).
    Inspect,
    /// The heatmap of one opened part.
    Heatmap(PathBuf),
    /// Heatmaps of many parts, written as images to this folder.
    ExportHeatmaps(PathBuf),
    /// [`Command::SaveModel`].
    Save(PathBuf),
    /// [`Command::LoadModel`].
    Load(PathBuf),
    /// [`Command::ChooseTraining`].
    Choose,
}

impl Job {
    /// A short description for the status line.
    pub fn describe(&self) -> &'static str {
        match self {
            Job::Train => "training",
            Job::Inspect => "inspecting parts",
            Job::Heatmap(_) => "computing a heatmap",
            Job::ExportHeatmaps(_) => "exporting heatmaps",
            Job::Save(_) => "saving the model",
            Job::Load(_) => "loading a model",
            Job::Choose => "choosing the good images to train on",
        }
    }
}

/// The worker and the jobs sent to it.
pub struct WorkerLink {
    options: WorkerOptions,
    waker: Waker,
    handle: Option<WorkerHandle>,
    jobs: VecDeque<Job>,
    ready: bool,
    dead: Option<String>,
}

impl WorkerLink {
    /// Starts a worker that calls `waker` after it sends events.
    pub fn start(options: WorkerOptions, waker: Waker) -> Self {
        let mut link = Self {
            options,
            waker,
            handle: None,
            jobs: VecDeque::new(),
            ready: false,
            dead: None,
        };
        link.restart();
        link
    }

    /// Replaces the worker with a fresh one (its model is lost).
    pub fn restart(&mut self) {
        // Dropping the old handle asks it to stop without waiting for it.
        self.handle = None;
        self.jobs.clear();
        self.ready = false;
        match WorkerHandle::spawn(self.options.clone(), self.waker.clone()) {
            Ok(h) => {
                self.handle = Some(h);
                self.dead = None;
            }
            Err(e) => self.dead = Some(format!("cannot start the worker thread: {e}")),
        }
    }

    /// Sends `command` as `job`. On failure the worker is marked dead and the reason
    /// returned.
    pub fn send(&mut self, job: Job, command: Command) -> Result<(), String> {
        let Some(handle) = &self.handle else {
            return Err(self.dead.clone().unwrap_or_else(|| "no worker".into()));
        };
        match handle.send(command) {
            Ok(()) => {
                self.jobs.push_back(job);
                Ok(())
            }
            Err(e) => {
                self.dead = Some(e.clone());
                Err(e)
            }
        }
    }

    /// Asks the running job to stop.
    pub fn cancel(&self) {
        if let Some(h) = &self.handle {
            h.cancel();
        }
    }

    /// The job the worker is on (the oldest unfinished one).
    pub fn current_job(&self) -> Option<&Job> {
        self.jobs.front()
    }

    /// Whether any job is queued or running.
    pub fn is_busy(&self) -> bool {
        !self.jobs.is_empty()
    }

    /// Whether a job of this kind is queued or running.
    pub fn has_job(&self, pred: impl Fn(&Job) -> bool) -> bool {
        self.jobs.iter().any(pred)
    }

    /// Why the worker is gone, when it is.
    pub fn dead_reason(&self) -> Option<&str> {
        self.dead.as_deref()
    }

    /// Events received within `budget`, each with the job it belongs to. A job is
    /// forgotten with its final event. Also notices a worker thread that ended.
    /// `more` is set when events were left for the next frame.
    pub fn drain(&mut self, budget: Duration, more: &mut bool) -> Vec<(Option<Job>, Event)> {
        let started = Instant::now();
        let mut out = Vec::new();
        *more = false;
        let Some(handle) = &self.handle else {
            return out;
        };
        loop {
            if started.elapsed() > budget {
                *more = !handle.events().is_empty();
                break;
            }
            let Ok(event) = handle.events().try_recv() else {
                break;
            };
            let job = match &event {
                Event::Ready { .. } => {
                    self.ready = true;
                    None
                }
                // Before `Ready`, a failure is about the device, not a job.
                Event::Failed { .. } if !self.ready => None,
                Event::Trained(_)
                | Event::ScoringDone { .. }
                | Event::Evaluated(_)
                | Event::Saved { .. }
                | Event::Loaded { .. }
                | Event::TrainingOrder(_)
                | Event::Cancelled { .. }
                | Event::Failed { .. } => self.jobs.pop_front(),
                Event::Crashed { message } => {
                    self.dead = Some(format!("the worker crashed: {message}"));
                    self.jobs.clear();
                    None
                }
                _ => self.jobs.front().cloned(),
            };
            out.push((job, event));
        }
        if self.dead.is_none() && handle.is_finished() && handle.events().is_empty() {
            self.dead = Some("the worker stopped unexpectedly".into());
            self.jobs.clear();
        }
        out
    }
}
