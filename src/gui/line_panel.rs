//! The Line view: the model sorting parts as a camera writes them (`differnet watch` on a
//! thread of its own), with its counts, rate and latency and a strip of the last parts.
//! The Decide panel's lines apply to the next part, and the change is logged. The line's
//! health: a banner when the parts drift from what the model knows, a plot of the recent
//! scores against the model's good range and the reject line, and "Retrain with recent
//! good parts", which proposes the parts the line is sure are good as training images.

use crate::core::decision::{Decision, Thresholds};
use crate::core::message::{one_line, path_text};
use crate::engine::worker::WorkerOptions;
use crate::gui::command::{AppCommand, DialogKind, LineFolder};
use crate::gui::image_loader::{ImageLoader, Slot};
use crate::gui::{score_axis, style};
use crate::line::{
    LineControl, PartDecided, RECENT_GOOD, Tally, Watch, WatchOptions, recent_good_parts,
};
use crossbeam_channel::{Receiver, unbounded};
use egui::{Color32, RichText};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Parts kept in the live strip.
const STRIP: usize = 6;
/// The side of a tile of the strip, in points.
const TILE: f32 = 72.0;
/// Recent scores in the health plot.
const PLOT_PARTS: usize = 200;

/// How long closing the window waits for the line to stop: the part in flight is finished
/// and logged, or left for the next start.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// What the watch thread reports.
#[derive(Debug)]
pub enum LineEvent {
    /// A part (this file name) went to the worker.
    Scoring(String),
    /// A part was decided.
    Part(PartDecided),
    /// A message line (a summary, a warning, a change of lines).
    Message(String),
    /// The watch ended (stopped, or failed with a reason).
    Ended(Result<(), String>),
}

/// The file a model trained here (and not saved) is saved as in the sorted folder when
/// the line starts with it.
pub const LINE_MODEL_FILE: &str = "model.differnet";

/// A running watch.
struct LineRun {
    stop: Arc<AtomicBool>,
    /// Whether the stop was asked.
    stopping: bool,
    control: LineControl,
    events: Receiver<LineEvent>,
    thread: JoinHandle<()>,
    started: Instant,
    output: PathBuf,
}

impl Drop for LineRun {
    /// The window closes (or the view goes): the line stops, and the part in flight is
    /// finished and logged or left for the next start, never left half done.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + CLOSE_WAIT;
        while !self.thread.is_finished() {
            match self.events.recv_deadline(deadline) {
                Ok(LineEvent::Ended(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}

/// The Line view's state.
#[derive(Default)]
pub struct LinePanel {
    /// The folder the camera writes to.
    pub input: String,
    /// The folder parts are sorted into.
    pub output: String,
    /// Write heatmaps beside reject and review parts.
    pub heatmaps: bool,
    run: Option<LineRun>,
    /// The part the worker is scoring, until it is decided.
    pub in_flight: Option<String>,
    /// The last parts, newest first.
    pub recent: VecDeque<PartDecided>,
    /// Counts of the current (or last) run.
    pub tally: Tally,
    /// Its last messages.
    pub messages: Vec<String>,
    /// How long the last run ran, once it ended (its rate stays what it was).
    ran_for: std::time::Duration,
    /// The recent parts' (part number, score, decision), oldest first, for the plot.
    pub scores: VecDeque<(u64, f64, String)>,
    /// What is drifting now, one sentence each (empty: nothing).
    pub drift: Vec<String>,
    /// The reject line of the last part, and the model's held-out good range.
    pub lines: Option<(f64, Option<(f64, f64)>)>,
    /// The sorted folder of the current (or last) run.
    pub sorted: Option<PathBuf>,
    /// Parts in its recent-good folder, as last counted.
    pub recent_good: usize,
}

impl LinePanel {
    /// Whether a watch is running.
    pub fn is_running(&self) -> bool {
        self.run.is_some()
    }

    /// Starts watching `input` into `output` with `model`, the lines `thresholds` (the
    /// Decide panel's) for the first part.
    pub fn start(
        &mut self,
        model: PathBuf,
        input: PathBuf,
        output: PathBuf,
        thresholds: Option<Thresholds>,
        worker: WorkerOptions,
        waker: crate::core::protocol::Waker,
    ) {
        if self.run.is_some() {
            return;
        }
        let (tx, rx) = unbounded();
        let stop = Arc::new(AtomicBool::new(false));
        let control: LineControl = Arc::new(std::sync::Mutex::new(thresholds));
        let mut options = WatchOptions::new(model, input, output.clone());
        options.heatmaps = self.heatmaps;
        options.worker = worker;
        let (stop2, control2) = (stop.clone(), control.clone());
        let spawned = std::thread::Builder::new()
            .name("differnet-line".into())
            .spawn(move || {
                let say_tx = tx.clone();
                let say_waker = waker.clone();
                let mut say = move |line: String| {
                    let _ = say_tx.send(LineEvent::Message(line));
                    say_waker();
                };
                let (part_tx, part_waker) = (tx.clone(), waker.clone());
                let (scoring_tx, scoring_waker) = (tx.clone(), waker.clone());
                // A panic ends the line with its message, not with a view that waits for
                // an end that never comes.
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let Some(mut w) = Watch::open_until(options, &stop2, &mut say)? else {
                        return Ok(());
                    };
                    w.on_part = Some(Box::new(move |p: &PartDecided| {
                        let _ = part_tx.send(LineEvent::Part(p.clone()));
                        part_waker();
                    }));
                    w.on_scoring = Some(Box::new(move |name: &str| {
                        let _ = scoring_tx.send(LineEvent::Scoring(name.to_owned()));
                        scoring_waker();
                    }));
                    w.control = Some(control2);
                    w.run(&stop2, &mut say)
                }))
                .unwrap_or_else(|payload| {
                    let message = payload
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    Err(anyhow::anyhow!("internal error: {}", one_line(&message)))
                });
                let _ = tx.send(LineEvent::Ended(result.map_err(|e| format!("{e:#}"))));
                waker();
            });
        match spawned {
            Ok(thread) => {
                self.recent.clear();
                self.in_flight = None;
                self.tally = Tally::default();
                self.messages.clear();
                self.scores.clear();
                self.drift.clear();
                self.lines = None;
                self.recent_good = recent_good_parts(&output.join(RECENT_GOOD)).len();
                self.sorted = Some(output.clone());
                self.run = Some(LineRun {
                    stop,
                    stopping: false,
                    control,
                    events: rx,
                    thread,
                    started: Instant::now(),
                    output,
                });
            }
            Err(e) => self.messages.push(format!("cannot start the line: {e}")),
        }
    }

    /// Asks the watch to stop: it ends after the part in flight, within 2 s (a part the
    /// worker does not finish in time is left for the next start).
    pub fn stop(&mut self) {
        if let Some(r) = &mut self.run {
            r.stop.store(true, Ordering::Relaxed);
            r.stopping = true;
        }
    }

    /// Whether a stop was asked and the watch has not ended yet.
    pub fn is_stopping(&self) -> bool {
        self.run.as_ref().is_some_and(|r| r.stopping)
    }

    /// New lines for the next part (the change is logged by the watch).
    pub fn set_thresholds(&self, t: Thresholds) {
        if let Some(r) = &self.run
            && let Ok(mut slot) = r.control.lock()
        {
            *slot = Some(t);
        }
    }

    /// Takes the watch's reports; returns an error message when it failed.
    pub fn poll(&mut self) -> Option<String> {
        let run = self.run.as_ref()?;
        let mut failed = None;
        let mut ended = false;
        let mut accepted = false;
        for event in run.events.try_iter() {
            match event {
                LineEvent::Scoring(name) => self.in_flight = Some(name),
                LineEvent::Part(p) => {
                    self.in_flight = None;
                    accepted |= Decision::from_name(&p.decision) == Some(Decision::Accept);
                    if let Some(s) = p.score {
                        self.scores.push_back((p.part, s, p.decision.clone()));
                        if self.scores.len() > PLOT_PARTS {
                            self.scores.pop_front();
                        }
                    }
                    self.drift.clone_from(&p.drift);
                    self.lines = Some((p.reject, p.good_range));
                    *self
                        .tally
                        .by_decision
                        .entry(p.decision.clone())
                        .or_default() += 1;
                    self.tally.latencies.push(p.latency);
                    self.recent.push_front(p);
                    self.recent.truncate(STRIP);
                }
                LineEvent::Message(m) => {
                    self.messages.push(m);
                    let extra = self.messages.len().saturating_sub(5);
                    self.messages.drain(..extra);
                }
                LineEvent::Ended(result) => {
                    ended = true;
                    failed = result.err().map(|e| format!("The line stopped: {e}"));
                }
            }
        }
        // A thread that ended without saying so (it cannot, short of an abort) ends the
        // run too, with a reason.
        if !ended && run.thread.is_finished() && run.events.is_empty() {
            ended = true;
            failed = Some("The line stopped unexpectedly".into());
        }
        if accepted {
            self.recent_good = recent_good_parts(&run.output.join(RECENT_GOOD)).len();
        }
        if ended {
            self.ran_for = run.started.elapsed();
            self.run = None;
            self.in_flight = None;
        }
        failed
    }

    /// Draws the view. `model` is the model file the line would use; `unsaved` says a
    /// model trained here is not saved yet (the line saves it into the sorted folder).
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        model: Option<&PathBuf>,
        unsaved: bool,
        loader: &mut ImageLoader,
        commands: &mut Vec<AppCommand>,
    ) {
        about_ui(ui, model, unsaved);
        let running = self.run.is_some();
        self.folders_ui(ui, running, commands);
        ui.add_enabled(
            !running,
            egui::Checkbox::new(
                &mut self.heatmaps,
                "Heatmaps beside reject and review parts",
            ),
        );
        self.start_stop_ui(ui, model, unsaved, running, commands);
        self.status_ui(ui);
        self.drift_ui(ui);
        self.scores_ui(ui);
        self.recent_good_ui(ui, commands);
        for m in &self.messages {
            ui.add(egui::Label::new(RichText::new(m).small().weak()).wrap());
        }
        self.strip_ui(ui, loader);
    }

    /// The camera and sorted folders: a field and a Browse button each, locked while the
    /// line runs.
    fn folders_ui(&mut self, ui: &mut egui::Ui, running: bool, commands: &mut Vec<AppCommand>) {
        for (which, name, hint) in [
            (LineFolder::Camera, "Camera folder", "/path/to/camera"),
            (LineFolder::Sorted, "Sorted into", "/path/to/sorted"),
        ] {
            let label = ui.label(name).id;
            ui.horizontal(|ui| {
                // The button first, right-aligned: the field takes what is left.
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    if ui
                        .add_enabled(!running, egui::Button::new("Browse…"))
                        .on_hover_text(format!("Choose the {} with a dialog.", name.to_lowercase()))
                        .clicked()
                    {
                        commands.push(AppCommand::Dialog(DialogKind::LineFolder(which)));
                    }
                    ui.add_enabled(
                        !running,
                        egui::TextEdit::singleline(self.folder_mut(which))
                            .hint_text(hint)
                            .desired_width(ui.available_width()),
                    )
                    .labelled_by(label);
                });
            });
        }
    }

    /// Start the line (once there is a model and both folders) and Stop the line.
    fn start_stop_ui(
        &self,
        ui: &mut egui::Ui,
        model: Option<&PathBuf>,
        unsaved: bool,
        running: bool,
        commands: &mut Vec<AppCommand>,
    ) {
        ui.horizontal(|ui| {
            let ready = (model.is_some() || unsaved)
                && !self.input.trim().is_empty()
                && !self.output.trim().is_empty();
            if ui
                .add_enabled(!running && ready, egui::Button::new("Start the line"))
                .clicked()
            {
                let output = PathBuf::from(self.output.trim());
                commands.push(AppCommand::StartLine {
                    model: model
                        .cloned()
                        .unwrap_or_else(|| output.join(LINE_MODEL_FILE)),
                    save_first: model.is_none(),
                    input: PathBuf::from(self.input.trim()),
                    output,
                });
            }
            if ui
                .add_enabled(
                    running && !self.is_stopping(),
                    egui::Button::new("Stop the line"),
                )
                .clicked()
            {
                commands.push(AppCommand::StopLine);
            }
        });
    }

    /// What the running line does and where it logs, and the counts so far.
    fn status_ui(&self, ui: &mut egui::Ui) {
        if let Some(r) = &self.run {
            ui.horizontal(|ui| {
                style::busy_indicator(ui);
                let doing = match (r.stopping, &self.in_flight) {
                    (true, _) => "Stopping after the part in flight".to_owned(),
                    (false, Some(name)) => format!("Scoring {name}"),
                    (false, None) => "Watching".to_owned(),
                };
                // Wrapped: a long path must not widen the panel (and re-wrap the lines
                // above, moving the buttons).
                ui.add(
                    egui::Label::new(format!(
                        "{doing}; log in {}",
                        path_text(&r.output.join("log.csv"))
                    ))
                    .wrap(),
                );
            });
        }
        if self.tally.parts() > 0 {
            let elapsed = self
                .run
                .as_ref()
                .map_or(self.ran_for, |r| r.started.elapsed());
            ui.label(self.tally.summary(elapsed));
        }
    }

    /// A banner when the parts drift from what the model knows.
    fn drift_ui(&self, ui: &mut egui::Ui) {
        if !self.drift.is_empty() {
            egui::Frame::new()
                .fill(style::REVIEW.gamma_multiply(0.25))
                .stroke(egui::Stroke::new(1.0, style::REVIEW))
                .inner_margin(6.0)
                .corner_radius(4.0)
                .show(ui, |ui| {
                    ui.add(
                        egui::Label::new(RichText::new("The line is drifting").strong())
                            .wrap(),
                    );
                    for d in &self.drift {
                        ui.add(egui::Label::new(format!("• {d}.")).wrap());
                    }
                    ui.add(
                        egui::Label::new(
                            RichText::new(
                                "Check the light, the camera and the material; if the parts are good, retrain with recent good parts.",
                            )
                            .small(),
                        )
                        .wrap(),
                    );
                });
        }
    }

    /// The recent scores' plot, with its caption.
    fn scores_ui(&self, ui: &mut egui::Ui) {
        if !self.scores.is_empty() {
            ui.add(
                egui::Label::new(
                    RichText::new(format!(
                        "The last {} scores against the model's held-out good parts (band) and the reject line",
                        self.scores.len()
                    ))
                    .small(),
                )
                .wrap(),
            );
            self.health_plot(ui);
        }
    }

    /// "Retrain with recent good parts", once the line has some.
    fn recent_good_ui(&self, ui: &mut egui::Ui, commands: &mut Vec<AppCommand>) {
        if self.recent_good > 0
            && let Some(sorted) = &self.sorted
        {
            let button = ui
                .button(format!("Retrain with recent good parts ({})", self.recent_good))
                .on_hover_text(
                    "Adds the latest parts the line is sure are good (accepted well below the line) to the good images, to look through before you train again. Nothing is trained until you click Train.",
                );
            if button.clicked() {
                commands.push(AppCommand::ProposeRecentGood(sorted.join(RECENT_GOOD)));
            }
        }
    }

    /// The strip of the last parts sorted.
    fn strip_ui(&self, ui: &mut egui::Ui, loader: &mut ImageLoader) {
        if !self.recent.is_empty() {
            // As many tiles as fit in one row: a wider strip would widen the side panel.
            let gap = ui.spacing().item_spacing.x;
            let fit = (((ui.available_width() + gap) / (TILE + gap)).floor() as usize).max(1);
            ui.horizontal(|ui| {
                for p in self.recent.iter().take(fit) {
                    strip_tile(ui, p, loader);
                }
            });
        }
    }
}

impl LinePanel {
    /// The text of one of the folders.
    pub fn folder(&self, which: LineFolder) -> &str {
        match which {
            LineFolder::Camera => &self.input,
            LineFolder::Sorted => &self.output,
        }
    }

    /// The text of one of the folders, to edit.
    pub fn folder_mut(&mut self, which: LineFolder) -> &mut String {
        match which {
            LineFolder::Camera => &mut self.input,
            LineFolder::Sorted => &mut self.output,
        }
    }

    /// The recent scores (log scale when all are positive) against the model's held-out
    /// good range (a band) and the reject line.
    fn health_plot(&self, ui: &mut egui::Ui) {
        use egui_plot::{Axis, HLine, Plot, Points, Span};
        let log = self.scores.iter().all(|(_, s, _)| *s > 0.0)
            && self
                .lines
                .is_none_or(|(r, g)| r > 0.0 && g.is_none_or(|(lo, _)| lo > 0.0));
        let y = |v: f64| if log { score_axis::log_score(v) } else { v };
        let mut plot = Plot::new("line_health")
            .height(110.0)
            .allow_drag(false)
            .allow_zoom(false)
            .allow_scroll(false)
            .show_x(false)
            .x_axis_label("part")
            .y_axis_label(if log { "score (log scale)" } else { "score" });
        // The histogram's axis: real scores at round values, as many as have room.
        if log {
            plot = plot
                .grid_spacing(score_axis::GRID_SPACING)
                .y_grid_spacer(score_axis::y_marks)
                .y_axis_formatter(|mark, _| style::format_score(10f64.powf(mark.value)));
        }
        // The reject line is always in view, however far below it the parts score.
        if let Some((reject, _)) = self.lines {
            plot = plot.include_y(y(reject));
        }
        plot.show(ui, |p| {
            if let Some((reject, good)) = self.lines {
                if let Some((lo, hi)) = good {
                    p.span(
                        Span::new("", y(lo)..=y(hi))
                            .axis(Axis::Y)
                            .fill(style::ACCEPT.gamma_multiply(0.15))
                            .border_width(0.0),
                    );
                }
                p.hline(HLine::new("reject line", y(reject)).color(style::REJECT));
            }
            for d in Decision::ALL {
                let (decision, colour) = (d.name(), style::decision_color(d));
                let pts: Vec<[f64; 2]> = self
                    .scores
                    .iter()
                    .filter(|(_, _, d)| d == decision)
                    .map(|(n, s, _)| [*n as f64, y(*s)])
                    .collect();
                if !pts.is_empty() {
                    p.points(Points::new(decision, pts).color(colour).radius(2.0));
                }
            }
        });
    }
}

/// What the line does, and which model file it runs (or why it cannot run yet).
fn about_ui(ui: &mut egui::Ui, model: Option<&PathBuf>, unsaved: bool) {
    ui.label(
        RichText::new(
            "Sort parts as a camera writes them: each new image in the input folder goes to accept, review or reject in the output folder, exactly once, with a row in log.csv.",
        )
        .small(),
    );
    // Wrapped, and the fields as wide as the panel: a long path never widens it.
    let about = match model {
        Some(m) => format!("Runs the model file {}", path_text(m)),
        None if unsaved => "Runs the model trained here: it is saved into the sorted folder as model.differnet when the line starts.".to_owned(),
        None => "Train, load or save a model first: the line runs a model file.".to_owned(),
    };
    ui.add(egui::Label::new(about).wrap());
}

/// One part of the live strip: its heatmap (or image), decision and score.
fn strip_tile(ui: &mut egui::Ui, p: &PartDecided, loader: &mut ImageLoader) {
    let colour = Decision::from_name(&p.decision).map_or(Color32::GRAY, style::decision_color);
    ui.vertical(|ui| {
        ui.set_width(TILE);
        let shown = p.heatmap.as_ref().unwrap_or(&p.dest);
        let (rect, _) = ui.allocate_exact_size(egui::vec2(TILE, TILE), egui::Sense::hover());
        if let Slot::Ready(tex, _) = loader.get(shown, 144) {
            let size = tex.size_vec2();
            let fit = rect.size() / size.max_elem();
            let r = egui::Rect::from_center_size(rect.center(), size * fit.x.min(fit.y));
            ui.painter().image(
                tex.id(),
                r,
                egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0)),
                Color32::WHITE,
            );
        }
        ui.painter().rect_stroke(
            rect,
            2.0,
            egui::Stroke::new(2.0, colour),
            egui::StrokeKind::Inside,
        );
        let score = p.score.map_or("-".to_owned(), style::format_score);
        ui.label(
            RichText::new(format!("{} {score}", p.decision))
                .small()
                .color(colour),
        )
        .on_hover_text(&p.name);
    });
}
