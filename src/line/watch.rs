//! The [`Watch`]: opens the output folder, loads the model, and decides each part that
//! settles in the input folder, journalled before anything is moved.

use super::files::{
    copy_synced, keep_old_log, move_synced, mtime_ns_of, open_append, prune_recent_good, read_text,
};
use super::scoring::{score_part, wait_for_change, wait_loaded};
use super::{
    FOLDERS, JOURNAL, LOG, LineControl, PartCallback, PartDecided, RECENT_GOOD, ScoringCallback,
    Tally, UNREADABLE, WatchOptions,
};
use crate::core::calibration::median;
use crate::core::colormap::Colormap;
use crate::core::decision::{Decision, Thresholds};
use crate::core::drift::{DriftBaseline, DriftMonitor, ImageLevels, Observation};
use crate::core::heatmap_image::{
    HEATMAP_OPACITY, ScaledHeat, heatmap_caption, hot_area_of, write_heatmap_file,
};
use crate::core::image_io::{is_image_path, load_rgb};
use crate::core::journal::{self, Decided, Entry, FileKey, JournalState, LOG_HEADER};
use crate::core::message::format_score;
use crate::core::protocol::Command;
use crate::core::provenance::{now_unix_secs, utc_text};
use crate::core::report::{CsvContext, PartRow, csv_record, part_fields};
use crate::engine::worker::WorkerHandle;
use anyhow::{Context, Result, anyhow, bail};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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
    /// The model's file name (heatmap captions).
    model_name: String,
    /// The model as every parts CSV names it: its file name and settings.
    model_text: String,
    model_id: Option<String>,
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
        let model_name = options
            .model
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let mut watch = Self {
            model_text: format!("{model_name}: {}", info.config.describe()),
            model_name,
            model_id: info.trained_on.as_ref().map(|r| r.id.clone()),
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
        let scored = score_part(&self.worker, &path, self.options.heatmaps, stop)?;
        let Some((score, heatmap, reason)) = scored else {
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
        let t = self.thresholds;
        let call = score.map(|s| t.decide(s));
        let decision = call.map_or(UNREADABLE, Decision::name);
        let accepted = call == Some(Decision::Accept);
        self.observe_drift(&path, score, accepted, say);
        let output = self.options.output.clone();
        let taken = &self.state.taken;
        let dest = journal::free_dest(decision, name, &|p: &Path| {
            taken.contains(p) || output.join(p).exists()
        });
        // On the decision scale, as the window and `score` draw it: the colours only for a
        // heatmap that is written (its hot area comes with them), the hot area alone for
        // every other part with a map.
        let map = heatmap.as_ref().zip(score);
        let written = map
            .filter(|_| self.options.heatmaps && !accepted)
            .map(|(h, s)| ScaledHeat::new(h, s, Some(t.reject), self.typical_good, self.vmax));
        let hot = match &written {
            Some(heat) => heat.hot_area,
            None => map.and_then(|(h, s)| hot_area_of(h, s, Some(t.reject), self.typical_good)),
        };
        let heatmap_file = written
            .zip(score)
            .and_then(|(heat, s)| self.write_heatmap(&path, &heat, s, &dest, say));
        let row = self.log_row(&dest, score, decision, hot);
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
        if let Some(s) = score.filter(|_| accepted) {
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
        accepted: bool,
        say: &mut dyn FnMut(String),
    ) {
        let image = score.and_then(|_| load_rgb(path).ok());
        let t = self.thresholds;
        let change = self.drift.observe(Observation {
            part: self.state.next_part,
            score,
            accepted,
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

    /// Writes the heatmap file of a part beside where it goes (`<stem>_heatmap.png`), on
    /// the decision scale, with the one caption of every heatmap file; `None` (and a
    /// warning) when it cannot.
    fn write_heatmap(
        &self,
        path: &Path,
        heat: &ScaledHeat,
        score: f64,
        dest: &Path,
        say: &mut dyn FnMut(String),
    ) -> Option<PathBuf> {
        let t = self.thresholds;
        let stem = dest
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        let file = self
            .options
            .output
            .join(dest.parent().unwrap_or(Path::new("")))
            .join(format!("{stem}_heatmap.png"));
        let caption = heatmap_caption(dest, score, Some(t), Some(&self.model_name));
        let written = write_heatmap_file(
            path,
            heat,
            Colormap::default(),
            HEATMAP_OPACITY,
            &caption,
            &file,
        );
        match written {
            Ok(()) => Some(file),
            Err(e) => {
                say(format!("warning: no heatmap for {}: {e}", path.display()));
                None
            }
        }
    }

    /// The part's row of `log.csv`: the columns of every parts CSV of the product
    /// ([`part_fields`]), then the line's own, `drift` and `part`.
    fn log_row(
        &self,
        dest: &Path,
        score: Option<f64>,
        decision: &str,
        hot_area: Option<usize>,
    ) -> String {
        let where_now = self.options.output.join(dest);
        let context = CsvContext {
            thresholds: Some(self.thresholds),
            model: self.model_text.clone(),
            model_id: self.model_id.clone(),
            time: utc_text(now_unix_secs()),
        };
        let row = PartRow {
            path: &where_now,
            label: "unknown",
            score,
            decision,
            hot_area,
            model_role: None,
        };
        let mut fields = part_fields(&row, &context);
        fields.push(self.drift.codes());
        fields.push(self.state.next_part.to_string());
        csv_record(fields)
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
