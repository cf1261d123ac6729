//! The line's talk with its worker: every wait looks at the stop flag, and once the line
//! is stopped the worker gets at most [`STOP_GRACE`] more.

use super::STOP_GRACE;
use crate::core::protocol::{Command, Event, Heatmap, ModelInfo, ScoreRequest};
use crate::engine::worker::WorkerHandle;
use anyhow::{Result, anyhow, bail};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often every wait of the line looks at the stop flag.
const STOP_TICK: Duration = Duration::from_millis(50);

/// A part's score, its heatmap, and why it could not be read.
pub(super) type Scored = (Option<f64>, Option<Heatmap>, Option<String>);

/// Waits for the model to load; `None` when `stop` was set and the worker did not answer
/// within [`STOP_GRACE`].
pub(super) fn wait_loaded(worker: &WorkerHandle, stop: &AtomicBool) -> Result<Option<ModelInfo>> {
    let mut stopping = None;
    loop {
        let Some(event) = next_or_cancel(worker, stop, &mut stopping)? else {
            return Ok(None);
        };
        match event {
            Event::Loaded { info, .. } => return Ok(Some(info)),
            Event::Failed { message } | Event::Crashed { message } => bail!("{message}"),
            _ => {}
        }
    }
}

/// The worker's next event. Once `stop` is set (`stopping` keeps when this wait first saw
/// it), waits at most [`STOP_GRACE`] more: `None` when that passed without an event.
fn next_event(
    worker: &WorkerHandle,
    stop: &AtomicBool,
    stopping: &mut Option<Instant>,
) -> Result<Option<Event>> {
    loop {
        if stopping.is_none() && stop.load(Ordering::Relaxed) {
            *stopping = Some(Instant::now());
        }
        let tick = match stopping {
            Some(since) => match STOP_GRACE.checked_sub(since.elapsed()) {
                Some(left) if !left.is_zero() => left.min(STOP_TICK),
                _ => return Ok(None),
            },
            None => STOP_TICK,
        };
        match worker.events().recv_timeout(tick) {
            Ok(event) => return Ok(Some(event)),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => bail!("the worker stopped"),
        }
    }
}

/// [`next_event`], with the worker told to cancel its job when the wait gives up.
fn next_or_cancel(
    worker: &WorkerHandle,
    stop: &AtomicBool,
    stopping: &mut Option<Instant>,
) -> Result<Option<Event>> {
    let event = next_event(worker, stop, stopping)?;
    if event.is_none() {
        worker.cancel();
    }
    Ok(event)
}

/// Waits up to `wait` for a change event in the input folder, or until `stop` is set (it is
/// looked at every [`STOP_TICK`]); takes every event that arrived.
pub(super) fn wait_for_change(changes: &Receiver<()>, wait: Duration, stop: &AtomicBool) {
    let until = Instant::now() + wait;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || stop.load(Ordering::Relaxed) {
            break;
        }
        match changes.recv_timeout(left.min(STOP_TICK)) {
            Ok(()) => break,
            Err(RecvTimeoutError::Timeout) => {}
            // No watcher (polling only): the wait is the poll interval.
            Err(RecvTimeoutError::Disconnected) => std::thread::sleep(left.min(STOP_TICK)),
        }
    }
    while changes.try_recv().is_ok() {}
}

/// Scores one file: its score and heatmap, or why it cannot be read. `None`: the line
/// was stopped and the worker did not answer within [`STOP_GRACE`] (it is told to
/// cancel), or it cancelled the job.
pub(super) fn score_part(
    worker: &WorkerHandle,
    path: &Path,
    heatmaps: bool,
    stop: &AtomicBool,
) -> Result<Option<Scored>> {
    worker
        .send(Command::Score(ScoreRequest {
            paths: vec![path.to_path_buf()],
            heatmaps,
            rotations: None,
        }))
        .map_err(|e| anyhow!(e))?;
    let (mut score, mut heatmap, mut reason) = (None, None, None);
    let mut stopping = None;
    loop {
        let Some(event) = next_or_cancel(worker, stop, &mut stopping)? else {
            return Ok(None);
        };
        match event {
            Event::Scored(s) => {
                score = Some(s.score);
                heatmap = s.heatmap;
            }
            Event::Skipped { reason: r, .. } => reason = Some(r),
            Event::ScoringDone { .. } => break,
            Event::Cancelled { .. } => return Ok(None),
            Event::Failed { message } | Event::Crashed { message } => {
                bail!("scoring {} failed: {message}", path.display())
            }
            _ => {}
        }
    }
    Ok(Some((score, heatmap, reason)))
}
