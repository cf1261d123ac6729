//! The line: a watch on an input folder that sorts parts into `ok/`, `review/`, `ng/`
//! (and `unreadable/`) of an output folder as a camera writes them, each exactly once
//! (see [`crate::core::journal`]), with one row per part in `log.csv`. It watches its own
//! health ([`crate::core::drift`]): when the parts drift from what the model was trained
//! on it says so in a line that begins with `drift:` and in the log's `drift` column, and
//! it keeps the latest parts it is sure are good in `recent-good/` for a retrain.

use crate::core::atomic_file::sync_dir;
use crate::core::calibration::median;
use crate::core::colormap::Colormap;
use crate::core::decision::{Decision, Thresholds};
use crate::core::drift::{DriftBaseline, DriftMonitor, ImageLevels, Observation};
use crate::core::heatmap_image::{ScaledHeat, heatmap_image, hot_area_of};
use crate::core::image_io::{is_image_path, load_rgb};
use crate::core::journal::{self, Decided, Entry, FileKey, JournalState, LOG_HEADER};
use crate::core::message::format_score;
use crate::core::protocol::{Command, Event, Heatmap, ModelInfo, ScoreRequest};
use crate::core::provenance::{now_unix_secs, utc_text};
use crate::core::report::csv_record;
use crate::engine::worker::{WorkerHandle, WorkerOptions};
use anyhow::{Context, Result, anyhow, bail};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, UNIX_EPOCH};

/// The folders parts are sorted into, and the unreadable files'.
pub const FOLDERS: [&str; 4] = ["ok", "review", "ng", "unreadable"];
/// The journal's file name in the output folder.
pub const JOURNAL: &str = ".differnet-journal";
/// The log's file name in the output folder.
pub const LOG: &str = "log.csv";
/// The folder (in the output folder) of the latest parts the line is sure are good: copies
/// of accepted parts that scored well below the line, for a retrain. Never a rejected or
/// review part.
pub const RECENT_GOOD: &str = "recent-good";
/// Parts kept in [`RECENT_GOOD`] by default; the oldest go first.
pub const RECENT_GOOD_MAX: usize = 200;
/// Once the line is asked to stop, how long the worker may still take to finish the part
/// in flight (or to load the model) before the line gives up on it: the part is then left
/// in the input folder for the next start, and the line ends anyway. With the writing of a
/// finished part, a stop takes effect within 2 s.
pub const STOP_GRACE: Duration = Duration::from_millis(1200);
/// How often every wait of the line looks at the stop flag.
const STOP_TICK: Duration = Duration::from_millis(50);

/// How to watch.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// The model file.
    pub model: PathBuf,
    /// The folder the camera writes to.
    pub input: PathBuf,
    /// The folder parts are sorted into.
    pub output: PathBuf,
    /// Write a heatmap image beside each `ng` and `review` part.
    pub heatmaps: bool,
    /// Copy parts instead of moving them (the input folder keeps them).
    pub copy: bool,
    /// A file is complete once its size and time stayed the same this long.
    pub settle: Duration,
    /// How often the folder is listed, whatever the file system reports.
    pub poll: Duration,
    /// Only poll (for network shares, where change events do not arrive).
    pub poll_only: bool,
    /// How often a summary line is written.
    pub summary_every: Duration,
    /// Parts kept in [`RECENT_GOOD`] (0: none).
    pub recent_good: usize,
    /// The worker's device and weights.
    pub worker: WorkerOptions,
}

impl WatchOptions {
    /// Watching `input` into `output` with `model`, default timings.
    pub fn new(model: PathBuf, input: PathBuf, output: PathBuf) -> Self {
        Self {
            model,
            input,
            output,
            heatmaps: false,
            copy: false,
            settle: Duration::from_millis(1000),
            poll: Duration::from_millis(500),
            poll_only: false,
            summary_every: Duration::from_secs(60),
            recent_good: RECENT_GOOD_MAX,
            worker: WorkerOptions::default(),
        }
    }
}

/// Counts since the watch started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Parts decided, by folder name.
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
            "{} parts: {} ok, {} review, {} ng, {} unreadable; {:.1} per minute; latency p50 {}, p95 {}",
            self.parts(),
            count("ok"),
            count("review"),
            count("ng"),
            count("unreadable"),
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

/// A part the watch decided, for a live view.
#[derive(Debug, Clone, PartialEq)]
pub struct PartDecided {
    /// The file name.
    pub name: String,
    /// Its score (`None`: unreadable).
    pub score: Option<f64>,
    /// `ok`, `review`, `ng` or `unreadable`.
    pub decision: String,
    /// Where it went.
    pub dest: PathBuf,
    /// Its heatmap image, when one was written.
    pub heatmap: Option<PathBuf>,
    /// Seconds from its appearance to its decision.
    pub latency: f64,
    /// Its part number on the line.
    pub part: u64,
    /// The reject line it was decided at.
    pub reject: f64,
    /// The model's held-out good scores, lowest and highest.
    pub good_range: Option<(f64, f64)>,
    /// What is drifting now, one sentence each (empty: nothing).
    pub drift: Vec<String>,
}

/// What a live view is called with for each part decided.
pub type PartCallback = Box<dyn FnMut(&PartDecided) + Send>;

/// What a live view is called with when a part (its file name) goes to the worker.
pub type ScoringCallback = Box<dyn FnMut(&str) + Send>;

/// Lines set from outside while the watch runs (the workstation's Decide panel): taken
/// before the next part, and logged.
pub type LineControl = Arc<std::sync::Mutex<Option<Thresholds>>>;

/// A file seen in the input folder and not decided yet.
struct Candidate {
    first_seen: Instant,
    size: u64,
    mtime_ns: i64,
    stable_since: Instant,
}

/// The watch: its folders, journal, log, model and worker.
pub struct Watch {
    options: WatchOptions,
    journal: File,
    log: File,
    logged: HashSet<u64>,
    state: JournalState,
    worker: WorkerHandle,
    thresholds: Thresholds,
    model_name: String,
    model_id: String,
    vmax: f32,
    /// A typical good part's score (the heatmaps' decision scale starts there).
    typical_good: Option<f64>,
    candidates: HashMap<String, Candidate>,
    drift: DriftMonitor,
    /// The held-out good scores' lowest and highest, and their median (computed once).
    good_range: Option<(f64, f64)>,
    good_median: Option<f64>,
    /// Counts since start.
    pub tally: Tally,
    /// Called with every part decided.
    pub on_part: Option<PartCallback>,
    /// Called with every part sent to the worker (the part in flight).
    pub on_scoring: Option<ScoringCallback>,
    /// New lines to use from the next part on.
    pub control: Option<LineControl>,
}

impl Watch {
    /// Opens the output folder (finishing what a previous run left half done) and loads
    /// the model. [`Watch::open_until`] can be stopped while the model loads.
    pub fn open(options: WatchOptions, say: &mut dyn FnMut(String)) -> Result<Self> {
        Self::open_until(options, &AtomicBool::new(false), say)?
            .ok_or_else(|| anyhow!("stopped before the model was loaded"))
    }

    /// [`Watch::open`], given up when `stop` is set while the model loads: `None` once the
    /// worker has not answered within [`STOP_GRACE`] of the stop (said with the summary
    /// line, as a stopped run says it). Nothing is sorted before the model is loaded.
    pub fn open_until(
        options: WatchOptions,
        stop: &AtomicBool,
        say: &mut dyn FnMut(String),
    ) -> Result<Option<Self>> {
        if !options.input.is_dir() {
            bail!(
                "the input folder does not exist: {}",
                options.input.display()
            );
        }
        for folder in FOLDERS {
            let dir = options.output.join(folder);
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        // The journal, cut after its last whole line.
        let journal_path = options.output.join(JOURNAL);
        let text = read_text(&journal_path)?;
        let state = journal::read(&text);
        if state.bad_lines > 0 {
            say(format!(
                "warning: {} unreadable lines in {} were skipped",
                state.bad_lines,
                journal_path.display()
            ));
        }
        let journal = open_append(&journal_path, state.valid_len as u64)?;
        // The log, cut after its last whole row, with its header when new.
        let log_path = options.output.join(LOG);
        let mut log_text = read_text(&log_path)?;
        if let Some(kept) = keep_old_log(&log_path, &log_text)? {
            say(format!(
                "the log had the columns of an older version: it is kept as {}, and log.csv starts again",
                kept.display()
            ));
            log_text.clear();
        }
        let whole = log_text.rfind('\n').map_or(0, |i| i + 1);
        let mut log = open_append(&log_path, whole as u64)?;
        let logged: HashSet<u64> = log_text[..whole]
            .lines()
            .skip(1)
            .filter_map(|row| row.rsplit(',').next()?.parse().ok())
            .collect();
        // Part numbers stay unique even if journal lines were lost.
        let mut state = state;
        state.next_part = state
            .next_part
            .max(logged.iter().max().map_or(1, |p| p + 1));
        if whole == 0 {
            writeln!(log, "{LOG_HEADER}")
                .and_then(|()| log.sync_data())
                .with_context(|| format!("cannot write {}", log_path.display()))?;
        }

        let worker = WorkerHandle::spawn(options.worker.clone(), Arc::new(|| {}))
            .context("cannot start the worker thread")?;
        worker
            .send(Command::LoadModel {
                path: options.model.clone(),
            })
            .map_err(|e| anyhow!(e))?;
        let Some(info) = wait_loaded(&worker, stop)? else {
            say(format!(
                "stopped before the model was loaded: {}",
                Tally::default().summary(Duration::ZERO)
            ));
            return Ok(None);
        };
        let reject = info.threshold.ok_or_else(|| {
            anyhow!(
                "the model has no reject line: train it with held-out good images, or save it from the workstation: {}",
                options.model.display()
            )
        })?;
        let thresholds = Thresholds {
            reject,
            review: info.review_threshold,
        }
        .ordered();
        let good_scores = info
            .validation
            .as_ref()
            .map(|v| v.scores.clone())
            .unwrap_or_default();
        // Sorted ascending (`ScoreStats`).
        let good_range = good_scores
            .first()
            .zip(good_scores.last())
            .map(|(a, b)| (*a, *b));
        let good_median = (!good_scores.is_empty()).then(|| median(&good_scores));
        let drift = DriftMonitor::new(DriftBaseline {
            good_scores,
            record: info.trained_on.clone(),
        });
        let mut watch = Self {
            model_name: options
                .model
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            model_id: info
                .trained_on
                .as_ref()
                .map_or_else(String::new, |r| r.id.clone()),
            vmax: info.config.heat_vmax(),
            typical_good: info.typical_good_score(),
            options,
            journal,
            log,
            logged,
            state,
            worker,
            thresholds,
            candidates: HashMap::new(),
            drift,
            good_range,
            good_median,
            tally: Tally::default(),
            on_part: None,
            on_scoring: None,
            control: None,
        };
        let pending = std::mem::take(&mut watch.state.pending);
        if !pending.is_empty() {
            say(format!(
                "finishing {} parts a previous run left half done",
                pending.len()
            ));
        }
        for d in pending {
            watch.finish(&d)?;
        }
        Ok(Some(watch))
    }

    /// The lines parts are decided at.
    pub fn thresholds(&self) -> Thresholds {
        self.thresholds
    }

    /// `"no drift"`, or `"drift: scores, brightness"`: what the summary line says of the
    /// line's health.
    pub fn health(&self) -> String {
        let codes: Vec<&str> = self
            .drift
            .findings()
            .iter()
            .map(|f| f.moved.code())
            .collect();
        if codes.is_empty() {
            "no drift".to_owned()
        } else {
            format!("drift: {}", codes.join(", "))
        }
    }

    /// The folder of the latest parts the line is sure are good.
    pub fn recent_good_dir(&self) -> PathBuf {
        self.options.output.join(RECENT_GOOD)
    }

    /// Sets the lines for the next part, and logs the change.
    pub fn set_thresholds(&mut self, t: Thresholds, say: &mut dyn FnMut(String)) {
        self.thresholds = t.ordered();
        say(format!(
            "{} reject line {}, review from {}",
            utc_text(now_unix_secs()),
            format_score(self.thresholds.reject),
            self.thresholds.review.map_or("-".to_owned(), format_score)
        ));
    }

    /// Watches until `stop` is set, then returns after the part in flight, within 2 s in
    /// every state: idle, waiting for a file to settle, or scoring a part (a part the
    /// worker does not finish within [`STOP_GRACE`] is left for the next start).
    pub fn run(&mut self, stop: &AtomicBool, say: &mut dyn FnMut(String)) -> Result<()> {
        let (tx, rx) = crossbeam_channel::unbounded::<()>();
        let _watcher = if self.options.poll_only {
            None
        } else {
            use notify::Watcher;
            let watcher = notify::recommended_watcher(move |_event| {
                let _ = tx.send(());
            })
            .ok()
            .and_then(|mut w| {
                w.watch(&self.options.input, notify::RecursiveMode::NonRecursive)
                    .is_ok()
                    .then_some(w)
            });
            if watcher.is_none() {
                say("warning: no change events for the input folder; polling it".into());
            }
            watcher
        };
        let started = Instant::now();
        let mut last_summary = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            for name in self.scan()? {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                self.process(&name, stop, say)?;
            }
            if last_summary.elapsed() >= self.options.summary_every {
                say(format!(
                    "{} {}; {}",
                    utc_text(now_unix_secs()),
                    self.tally.summary(started.elapsed()),
                    self.health()
                ));
                last_summary = Instant::now();
            }
            // Wake on a change event, or poll; a waiting candidate checks back sooner.
            let wait = if self.candidates.is_empty() {
                self.options.poll
            } else {
                self.options
                    .poll
                    .min(self.options.settle / 4)
                    .max(Duration::from_millis(20))
            };
            wait_for_change(&rx, wait, stop);
        }
        say(format!(
            "stopped: {}; {}",
            self.tally.summary(started.elapsed()),
            self.health()
        ));
        Ok(())
    }

    /// Lists the input folder; returns the files complete enough to decide, oldest first.
    fn scan(&mut self) -> Result<Vec<String>> {
        let now = Instant::now();
        let entries = std::fs::read_dir(&self.options.input)
            .with_context(|| format!("cannot list {}", self.options.input.display()))?;
        let mut seen = HashSet::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                continue;
            };
            if name.starts_with('.') || !is_image_path(&path) {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let (size, mtime_ns) = (meta.len(), mtime_ns_of(&meta));
            let key = FileKey {
                name: name.clone(),
                size,
                mtime_ns,
            };
            if self.state.done_files.contains(&key) {
                continue;
            }
            seen.insert(name.clone());
            let c = self.candidates.entry(name).or_insert(Candidate {
                first_seen: now,
                size,
                mtime_ns,
                stable_since: now,
            });
            if (c.size, c.mtime_ns) != (size, mtime_ns) {
                c.size = size;
                c.mtime_ns = mtime_ns;
                c.stable_since = now;
            }
        }
        self.candidates.retain(|name, _| seen.contains(name));
        let mut ready: Vec<(&String, &Candidate)> = self
            .candidates
            .iter()
            .filter(|(_, c)| now.duration_since(c.stable_since) >= self.options.settle)
            .collect();
        ready.sort_by(|a, b| a.1.first_seen.cmp(&b.1.first_seen).then(a.0.cmp(b.0)));
        Ok(ready.into_iter().map(|(n, _)| n.clone()).collect())
    }

    /// Scores one complete file and sorts it. When the line is stopped and the worker
    /// does not score it in time, it is left as it is, for the next start.
    fn process(
        &mut self,
        name: &str,
        stop: &AtomicBool,
        say: &mut dyn FnMut(String),
    ) -> Result<()> {
        let new_lines = self
            .control
            .as_ref()
            .and_then(|c| c.lock().ok().and_then(|mut t| t.take()));
        if let Some(t) = new_lines {
            self.set_thresholds(t, say);
        }
        let Some(c) = self.candidates.get(name) else {
            return Ok(());
        };
        let (first_seen, size, mtime_ns) = (c.first_seen, c.size, c.mtime_ns);
        let path = self.options.input.join(name);
        if let Some(f) = &mut self.on_scoring {
            f(name);
        }
        let Some((score, heatmap, reason)) = self.score(&path, stop)? else {
            say(format!(
                "the worker did not score {name} before the line stopped: it stays in {} for the next start",
                self.options.input.display()
            ));
            return Ok(());
        };
        // Changed while it was scored: not complete after all; wait again.
        match std::fs::metadata(&path) {
            Ok(meta) if (meta.len(), mtime_ns_of(&meta)) == (size, mtime_ns) => {}
            _ => {
                if let Some(c) = self.candidates.get_mut(name) {
                    c.stable_since = Instant::now();
                }
                return Ok(());
            }
        }
        let decision = match score {
            Some(s) => match self.thresholds.decide(s) {
                Decision::Accept => "ok",
                Decision::Review => "review",
                Decision::Reject => "ng",
            },
            None => "unreadable",
        };
        self.observe_drift(&path, score, decision, say);
        let output = self.options.output.clone();
        let taken = &self.state.taken;
        let dest = journal::free_dest(decision, name, &|p: &Path| {
            taken.contains(p) || output.join(p).exists()
        });
        let mut heatmap_file = None;
        // On the decision scale, as the window and `score` draw it: the colours only for a
        // heatmap that is written, the hot area for every part with a map.
        let reject = Some(self.thresholds.reject);
        let hot = heatmap
            .as_ref()
            .zip(score)
            .and_then(|(h, s)| hot_area_of(h, s, reject, self.typical_good));
        if let (true, Some(h), Some(s), "ng" | "review") =
            (self.options.heatmaps, &heatmap, score, decision)
        {
            let scaled = ScaledHeat::new(h, s, reject, self.typical_good, self.vmax);
            heatmap_file = self.write_heatmap(&path, &scaled, s, decision, &dest, say);
        }
        let t = self.thresholds;
        let row = csv_record([
            utc_text(now_unix_secs()).as_str(),
            name,
            &score.map_or_else(String::new, |s| s.to_string()),
            decision,
            &t.reject.to_string(),
            &t.review.map_or_else(String::new, |r| r.to_string()),
            &self.model_name,
            &self.model_id,
            &hot.map_or_else(String::new, |a| a.to_string()),
            &self.drift.codes(),
            &self.state.next_part.to_string(),
        ]);
        let d = Decided {
            part: self.state.next_part,
            file: FileKey {
                name: name.to_owned(),
                size,
                mtime_ns,
            },
            score,
            decision: decision.to_owned(),
            dest,
            row,
        };
        self.append_journal(&Entry::Decided(d.clone()))?;
        self.state.next_part += 1;
        self.state.taken.insert(d.dest.clone());
        self.candidates.remove(name);
        *self
            .tally
            .by_decision
            .entry(decision.to_owned())
            .or_default() += 1;
        self.tally
            .latencies
            .push(first_seen.elapsed().as_secs_f64());
        if let Some(reason) = reason {
            say(format!("unreadable: {name}: {reason}"));
        }
        self.finish(&d)?;
        if let (Some(s), "ok") = (score, decision) {
            self.keep_if_sure(s, &d, say);
        }
        if let Some(f) = &mut self.on_part {
            f(&PartDecided {
                name: name.to_owned(),
                score,
                decision: decision.to_owned(),
                dest: self.options.output.join(&d.dest),
                heatmap: heatmap_file,
                latency: first_seen.elapsed().as_secs_f64(),
                part: d.part,
                reject: t.reject,
                good_range: self.good_range,
                drift: self.drift.findings().iter().map(|f| f.sentence()).collect(),
            });
        }
        Ok(())
    }

    /// Gives the part to the drift monitor (with its image's size and grey levels), and
    /// says what started or ended drifting with it.
    fn observe_drift(
        &mut self,
        path: &Path,
        score: Option<f64>,
        decision: &str,
        say: &mut dyn FnMut(String),
    ) {
        let image = score.and_then(|_| load_rgb(path).ok());
        let t = self.thresholds;
        let change = self.drift.observe(Observation {
            part: self.state.next_part,
            score,
            accepted: decision == "ok",
            accept_line: t.review.unwrap_or(t.reject).min(t.reject),
            size: image.as_ref().map(image::RgbImage::dimensions),
            levels: image.as_ref().map(ImageLevels::of),
        });
        for f in &change.started {
            say(format!("drift: {}", f.sentence()));
        }
        for m in &change.ended {
            say(format!(
                "drift over: the {} test is back within what the model knows (part {})",
                m.code(),
                self.state.next_part
            ));
        }
    }

    /// Keeps a copy of an accepted part in [`RECENT_GOOD`] when it scored well below the
    /// line: below the middle between the held-out good parts' median and the accept line.
    /// The folder keeps the latest [`RECENT_GOOD_MAX`].
    fn keep_if_sure(&self, score: f64, d: &Decided, say: &mut dyn FnMut(String)) {
        let t = self.thresholds;
        let accept = t.review.unwrap_or(t.reject).min(t.reject);
        if self.options.recent_good == 0 || !is_sure_good(score, accept, self.good_median) {
            return;
        }
        let dir = self.recent_good_dir();
        let kept = std::fs::create_dir_all(&dir)
            .map_err(anyhow::Error::from)
            .and_then(|()| {
                let src = self.options.output.join(&d.dest);
                let dst = dir.join(format!("{:06}-{}", d.part, d.file.name));
                if dst.exists() {
                    return Ok(());
                }
                std::fs::hard_link(&src, &dst).or_else(|_| copy_synced(&src, &dst))?;
                prune_recent_good(&dir, self.options.recent_good)
            });
        if let Err(e) = kept {
            say(format!(
                "warning: cannot keep {} in {}: {e:#}",
                d.file.name,
                dir.display()
            ));
        }
    }

    /// Scores one file: its score and heatmap, or why it cannot be read. `None`: the line
    /// was stopped and the worker did not answer within [`STOP_GRACE`] (it is told to
    /// cancel), or it cancelled the job.
    fn score(&self, path: &Path, stop: &AtomicBool) -> Result<Option<Scored>> {
        self.worker
            .send(Command::Score(ScoreRequest {
                paths: vec![path.to_path_buf()],
                heatmaps: self.options.heatmaps,
                rotations: None,
            }))
            .map_err(|e| anyhow!(e))?;
        let (mut score, mut heatmap, mut reason) = (None, None, None);
        let mut stopping = None;
        loop {
            let Some(event) = next_event(&self.worker, stop, &mut stopping)? else {
                self.worker.cancel();
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

    fn write_heatmap(
        &self,
        path: &Path,
        heat: &ScaledHeat,
        score: f64,
        decision: &str,
        dest: &Path,
        say: &mut dyn FnMut(String),
    ) -> Option<PathBuf> {
        let stem = dest
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        let file = self
            .options
            .output
            .join(dest.parent().unwrap_or(Path::new("")))
            .join(format!("{stem}_heatmap.png"));
        let written = load_rgb(path).map_err(|e| e.to_string()).and_then(|img| {
            let caption = format!(
                "{}  score {}  {decision} (reject at {})",
                dest.file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                format_score(score),
                format_score(self.thresholds.reject)
            );
            let out = heatmap_image(&img, heat, Colormap::default(), 0.6, &[caption]);
            let mut bytes = Vec::new();
            out.write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Png,
            )
            .map_err(|e| e.to_string())?;
            crate::core::atomic_file::write_atomic(&file, &bytes).map_err(|e| e.to_string())
        });
        match written {
            Ok(()) => Some(file),
            Err(e) => {
                say(format!("warning: no heatmap for {}: {e}", path.display()));
                None
            }
        }
    }

    /// Steps 2 to 4 of a decided part: its log row, its move, `done`.
    fn finish(&mut self, d: &Decided) -> Result<()> {
        if !self.logged.contains(&d.part) {
            writeln!(self.log, "{}", d.row)
                .and_then(|()| self.log.sync_data())
                .with_context(|| {
                    format!("cannot write {}", self.options.output.join(LOG).display())
                })?;
            self.logged.insert(d.part);
        }
        let src = self.options.input.join(&d.file.name);
        let dst = self.options.output.join(&d.dest);
        let src_is_part = std::fs::metadata(&src)
            .is_ok_and(|m| (m.len(), mtime_ns_of(&m)) == (d.file.size, d.file.mtime_ns));
        if !dst.exists() && src_is_part {
            if self.options.copy {
                copy_synced(&src, &dst)?;
            } else {
                move_synced(&src, &dst)?;
            }
        }
        self.append_journal(&Entry::Done { part: d.part })?;
        self.state.done_files.insert(d.file.clone());
        Ok(())
    }

    fn append_journal(&mut self, entry: &Entry) -> Result<()> {
        self.journal
            .write_all(entry.line().as_bytes())
            .and_then(|()| self.journal.sync_data())
            .with_context(|| {
                format!(
                    "cannot write the journal {}",
                    self.options.output.join(JOURNAL).display()
                )
            })
    }
}

/// Whether an accepted part's score is far enough below the accept line to keep it as a
/// good part: below the middle between the held-out good scores' median and the line
/// (never without held-out scores).
pub fn is_sure_good(score: f64, accept_line: f64, good_median: Option<f64>) -> bool {
    good_median.is_some_and(|m| m < accept_line && score < 0.5 * (m + accept_line))
}

/// The parts in a recent-good folder, oldest first (by the part number they start with).
pub fn recent_good_parts(dir: &Path) -> Vec<PathBuf> {
    let mut parts: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            let name = path.file_name()?.to_str()?.to_owned();
            let part = name.split_once('-')?.0.parse().ok()?;
            (is_image_path(&path) && !name.starts_with('.')).then_some((part, path))
        })
        .collect();
    parts.sort();
    parts.into_iter().map(|(_, p)| p).collect()
}

/// Removes the oldest parts of a recent-good folder beyond `keep`.
fn prune_recent_good(dir: &Path, keep: usize) -> Result<()> {
    let parts = recent_good_parts(dir);
    for old in parts.iter().take(parts.len().saturating_sub(keep)) {
        std::fs::remove_file(old).with_context(|| format!("cannot remove {}", old.display()))?;
    }
    Ok(())
}

/// A log whose header is not this version's is renamed (`log.<n>.csv`) so that its rows
/// are kept and the new log's columns are one; returns its new name.
fn keep_old_log(path: &Path, text: &str) -> Result<Option<PathBuf>> {
    match text.lines().next() {
        None => return Ok(None),
        Some(header) if header.trim_end() == LOG_HEADER => return Ok(None),
        Some(_) => {}
    }
    let kept = (1..)
        .map(|n| path.with_extension(format!("{n}.csv")))
        .find(|p| !p.exists())
        .expect("some number is free");
    std::fs::rename(path, &kept)
        .with_context(|| format!("cannot rename {} to {}", path.display(), kept.display()))?;
    Ok(Some(kept))
}

/// A part's score, its heatmap, and why it could not be read.
type Scored = (Option<f64>, Option<Heatmap>, Option<String>);

/// Waits for the model to load; `None` when `stop` was set and the worker did not answer
/// within [`STOP_GRACE`].
fn wait_loaded(worker: &WorkerHandle, stop: &AtomicBool) -> Result<Option<ModelInfo>> {
    let mut stopping = None;
    loop {
        let Some(event) = next_event(worker, stop, &mut stopping)? else {
            worker.cancel();
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

/// Waits up to `wait` for a change event in the input folder, or until `stop` is set (it is
/// looked at every [`STOP_TICK`]); takes every event that arrived.
fn wait_for_change(changes: &Receiver<()>, wait: Duration, stop: &AtomicBool) {
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

fn read_text(path: &Path) -> Result<String> {
    let mut text = String::new();
    match File::open(path) {
        Ok(mut f) => {
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes)
                .with_context(|| format!("cannot read {}", path.display()))?;
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    Ok(text)
}

/// Opens `path` for appending after its first `len` bytes (what follows is cut off).
fn open_append(path: &Path, len: u64) -> Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    if file.metadata().map(|m| m.len()).unwrap_or(0) != len {
        file.set_len(len)
            .and_then(|()| file.sync_data())
            .with_context(|| format!("cannot repair {}", path.display()))?;
    }
    Ok(file)
}

fn mtime_ns_of(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Renames `src` to `dst` and makes both folders' entries durable; across file systems,
/// copies (synced) and then removes the source.
fn move_synced(src: &Path, dst: &Path) -> Result<()> {
    match std::fs::rename(src, dst) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(18) => {
            // EXDEV: another file system.
            copy_synced(src, dst)?;
            std::fs::remove_file(src)
                .with_context(|| format!("cannot remove {}", src.display()))?;
        }
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot move {} to {}", src.display(), dst.display()));
        }
    }
    for dir in [dst.parent(), src.parent()].into_iter().flatten() {
        sync_dir(dir);
    }
    Ok(())
}

/// Copies `src` to `dst` through a synced temporary file and a rename.
fn copy_synced(src: &Path, dst: &Path) -> Result<()> {
    let bytes = std::fs::read(src).with_context(|| format!("cannot read {}", src.display()))?;
    crate::core::atomic_file::write_atomic(dst, &bytes)
        .with_context(|| format!("cannot write {}", dst.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_rate_and_latency() {
        let mut t = Tally::default();
        t.by_decision.insert("ok".into(), 8);
        t.by_decision.insert("ng".into(), 2);
        t.latencies = (1..=10).map(f64::from).collect();
        let line = t.summary(Duration::from_secs(30));
        assert_eq!(
            line,
            "10 parts: 8 ok, 0 review, 2 ng, 0 unreadable; 20.0 per minute; latency p50 6.00 s, p95 10.00 s"
        );
    }
}
