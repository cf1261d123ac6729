//! The workstation application: owns the persisted [`State`], the runtime handles (worker,
//! image loader, dialogs, exporter) and the panels; turns worker events into the
//! [`Session`] in `logic`, draws in `ui`, and applies the commands the panels recorded
//! after the frame.

use crate::core::atomic_file::write_atomic;
use crate::core::config::{BackboneKind, DetectorConfig, DetectorKind};
use crate::core::dataset;
use crate::core::decision::Thresholds;
use crate::core::folder_edits::FolderEdits;
use crate::core::message::path_text;
use crate::core::protocol::Waker;
use crate::core::protocol::{
    Command, EvaluateRequest, Event, ModelInfo, ScoreRequest, TrainRequest,
};
use crate::core::provenance;
use crate::core::report::{CsvContext, ExportNames, PartRow, parts_csv};
use crate::core::training_set::RoleChoice;
use crate::core::training_set::moves_summary;
use crate::engine::worker::WorkerOptions;
use crate::gui::command::{AppCommand, DialogKind, ImageRole};
use crate::gui::data_panel::DataPanel;
use crate::gui::dialogs::Dialogs;
use crate::gui::frame_log::FrameLog;
use crate::gui::gallery::Gallery;
use crate::gui::heatmap_export::HeatmapExporter;
use crate::gui::image_loader::ImageLoader;
use crate::gui::line_panel::LinePanel;
use crate::gui::notices::Notices;
use crate::gui::part_view::PartView;
use crate::gui::results_panel::ResultsPanel;
use crate::gui::session::{JobPlan, JobProgress, Session};
use crate::gui::state::{STATE_KEY, State};
use crate::gui::style;
use crate::gui::training_log::TrainingLog;
use crate::gui::training_panel::TrainingPanel;
use crate::gui::worker_link::{Job, WorkerLink};
use crate::gui::workset::{Workset, demo_folder};
use egui::RichText;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Time per frame spent taking worker events; the rest waits for the next frame.
const EVENT_BUDGET: Duration = Duration::from_millis(8);
/// Where a new review band starts, as a fraction of the reject threshold.
const REVIEW_FRACTION: f64 = 0.7;
/// Largest side of an opened part's textures, whatever the GPU allows.
const MAX_VIEW_SIDE: usize = 4096;
/// Width of the central column from which an opened part is shown beside the gallery
/// rather than in its place.
const SIDE_BY_SIDE_WIDTH: f32 = 1000.0;
/// The most of the central column's height the Decide panel takes before it scrolls.
const DECIDE_SHARE: f32 = 0.55;

/// How to start the workstation; tests inject a data folder, a CPU worker and a tiny
/// training configuration.
#[derive(Debug, Clone, Default)]
pub struct AppOptions {
    /// A data folder to open at start.
    pub data: Option<PathBuf>,
    /// How to start the worker.
    pub worker: WorkerOptions,
    /// Training configuration to use instead of the selected preset's.
    pub config: Option<DetectorConfig>,
    /// Settings to start from instead of the saved ones.
    pub state: Option<State>,
    /// Where the user's edits of each data folder's images (labels, roles, parts called
    /// good) are kept between runs, next to the settings; `None` keeps them for this run
    /// only.
    pub edits_dir: Option<PathBuf>,
}

/// The workstation window's application.
pub struct WorkstationApp {
    state: State,
    config_override: Option<DetectorConfig>,
    waker: Waker,
    worker: WorkerLink,
    session: Session,
    loader: ImageLoader,
    dialogs: Dialogs,
    exporter: HeatmapExporter,
    export_names: ExportNames,
    export_dir: Option<PathBuf>,
    notices: Notices,
    data_panel: DataPanel,
    training_panel: TrainingPanel,
    results_panel: ResultsPanel,
    gallery: Gallery,
    part_view: PartView,
    line: LinePanel,
    worker_options: WorkerOptions,
    commands: Vec<AppCommand>,
    frame_log: Option<FrameLog>,
    /// A heatmap export waiting for the user to go on.
    export_plan: Option<ExportPlan>,
    /// What changed since the model was trained, cached per session version and split.
    changes: Option<ChangesCache>,
    /// When the last heatmap job was sent to an idle worker (to time heatmaps).
    heat_sent: Option<(PathBuf, Instant)>,
    /// When the last inspection was sent to an idle worker (to time parts).
    inspect_sent: Option<Instant>,
    /// Where each data folder's edits are kept ([`AppOptions::edits_dir`]).
    edits_dir: Option<PathBuf>,
    /// The edits as last written, so that only a change is written.
    edits_saved: Option<FolderEdits>,
    /// A line to start once the model trained here is saved as its file: (model file,
    /// camera folder, sorted folder).
    line_waits_for_save: Option<(PathBuf, PathBuf, PathBuf)>,
    /// The window was asked to close while a model trains: the user is asked first.
    close_asked: bool,
    /// The user said to close anyway.
    close_confirmed: bool,
}

/// The changes banner's key (session version, training count, held-out count), its text
/// about the good images and its text about the parts that moved.
type ChangesCache = ((u64, usize, Option<usize>), Option<String>, Option<String>);

/// A heatmap export the user is asked about: how many, how many are ready, how long.
#[derive(Debug, Clone)]
struct ExportPlan {
    dir: PathBuf,
    total: usize,
    ready: usize,
    /// Seconds per heatmap to compute, when measured.
    heat_secs: Option<f64>,
    /// Seconds per part of the inspection (a lower bound when heatmaps were not timed).
    inspect_secs: Option<f64>,
}

impl ExportPlan {
    fn text(&self) -> String {
        let todo = self.total - self.ready;
        let mut text = format!(
            "Write {} heatmap images to {}.",
            self.total,
            path_text(&self.dir)
        );
        if self.ready > 0 {
            text += &format!(
                " {} are computed already and are written at once.",
                self.ready
            );
        }
        if todo > 0 {
            text += &match (self.heat_secs, self.inspect_secs) {
                (Some(s), _) => format!(
                    " The other {todo} take about {} ({} each, as measured here).",
                    style::format_duration(s * todo as f64),
                    style::format_duration(s)
                ),
                (None, Some(s)) => format!(
                    " The other {todo} take at least {} (inspecting took {} a part; a heatmap takes longer).",
                    style::format_duration(s * todo as f64),
                    style::format_duration(s)
                ),
                (None, None) => format!(" The other {todo} are computed one by one."),
            };
            text += " You can cancel at any time; what is written stays.";
        }
        text
    }
}

/// A collapsible section of a panel with a heading as its title.
fn section(ui: &mut egui::Ui, title: &str, id: &str, open: bool, add: impl FnOnce(&mut egui::Ui)) {
    egui::CollapsingHeader::new(RichText::new(title).heading())
        .id_salt(id)
        .default_open(open)
        .show(ui, add);
}

impl WorkstationApp {
    /// Creates the app on `ctx`, restoring settings from `storage` (eframe persistence)
    /// unless `options.state` is given, and starts the worker.
    pub fn new(
        ctx: &egui::Context,
        storage: Option<&dyn eframe::Storage>,
        options: AppOptions,
    ) -> Self {
        let state = options
            .state
            .or_else(|| storage.and_then(|s| eframe::get_value(s, STATE_KEY)))
            .unwrap_or_default();
        let repaint_ctx = ctx.clone();
        let waker: Waker = Arc::new(move || repaint_ctx.request_repaint());
        let mut app = Self {
            state,
            config_override: options.config,
            worker_options: options.worker.clone(),
            worker: WorkerLink::start(options.worker, waker.clone()),
            loader: ImageLoader::new(waker.clone()),
            exporter: HeatmapExporter::new(waker.clone()),
            waker,
            session: Session::default(),
            dialogs: Dialogs::default(),
            export_names: ExportNames::default(),
            export_dir: None,
            notices: Notices::default(),
            data_panel: DataPanel::default(),
            training_panel: TrainingPanel,
            results_panel: ResultsPanel::default(),
            gallery: Gallery::default(),
            part_view: PartView::default(),
            line: LinePanel::default(),
            commands: Vec::new(),
            frame_log: FrameLog::from_env(),
            export_plan: None,
            changes: None,
            heat_sent: None,
            inspect_sent: None,
            edits_dir: options.edits_dir,
            edits_saved: None,
            line_waits_for_save: None,
            close_asked: false,
            close_confirmed: false,
        };
        // The Line view's folders as the user left them.
        if let Some(input) = &app.state.line_input {
            app.line.input = path_text(input);
        }
        if let Some(output) = &app.state.line_output {
            app.line.output = path_text(output);
        }
        if let Some(e) = app.loader.take_error() {
            app.notices.error(e);
        }
        if let Some(data) = options.data {
            app.apply(AppCommand::OpenData(data));
        }
        app
    }

    /// What the workstation knows (for tests).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The settings (for tests).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The settings, to change (for tests: what a user types into a field).
    pub fn state_mut(&mut self) -> &mut State {
        &mut self.state
    }

    /// The opened part's view (for tests).
    pub fn part_view(&self) -> &PartView {
        &self.part_view
    }

    /// The Decide panel (for tests).
    pub fn results_panel(&self) -> &ResultsPanel {
        &self.results_panel
    }

    /// The Line view (for tests).
    pub fn line(&self) -> &LinePanel {
        &self.line
    }

    /// Error messages shown (for tests).
    pub fn errors(&self) -> &[String] {
        &self.notices.errors
    }

    /// The status line (for tests).
    pub fn status(&self) -> Option<&str> {
        self.notices.status.as_deref()
    }

    /// Whether the worker has a job queued or running.
    pub fn is_busy(&self) -> bool {
        self.worker.is_busy()
    }

    /// Takes worker events (within a time budget), dropped files, dialog answers and
    /// decoded images. Draws nothing.
    pub fn logic(&mut self, ctx: &egui::Context) {
        let mut more = false;
        for (job, event) in self.worker.drain(EVENT_BUDGET, &mut more) {
            self.handle_event(job, event);
        }
        if more {
            ctx.request_repaint();
        }
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .collect()
        });
        if !dropped.is_empty() {
            self.on_drop(dropped);
        }
        if let Some(answer) = self.dialogs.poll()
            && let Some(command) = answer
        {
            self.apply(command);
        }
        if self.loader.upload(ctx) {
            ctx.request_repaint();
        }
        let written = self.exporter.written;
        self.exporter.poll();
        for e in self.exporter.errors.drain(..) {
            self.notices.error(e);
        }
        if self.exporter.written != written
            && let Some(dir) = &self.export_dir
        {
            self.notices.status(format!(
                "Wrote {} heatmap images to {}",
                self.exporter.written,
                path_text(dir)
            ));
        }
        if let Some(e) = self.line.poll() {
            self.notices.error(e);
        }
        // Closing while a model trains loses it: ask first.
        if ctx.input(|i| i.viewport().close_requested())
            && !self.close_confirmed
            && self.worker.current_job() == Some(&Job::Train)
        {
            ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
            self.close_asked = true;
        }
        if self.worker.is_busy() || self.line.is_running() {
            // Keep the time estimate moving between events.
            ctx.request_repaint_after(Duration::from_millis(500));
        }
    }

    /// Draws the window and applies the commands recorded while drawing.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        let mut commands = std::mem::take(&mut self.commands);
        let job = self.worker.current_job().cloned();
        let worker_ok = self.worker.dead_reason().is_none();
        let busy = self.worker.is_busy();
        let max_side = ui.ctx().input(|i| i.max_texture_side).min(MAX_VIEW_SIDE) as u32;
        self.keys_ui(ui.ctx(), &mut commands);
        if self.close_asked {
            self.close_ui(ui.ctx());
        }

        egui::Panel::top("top_bar").show(ui, |ui| {
            self.top_bar_ui(ui, busy, &mut commands);
        });
        let window_width = ui.available_width();
        let left = egui::Panel::left("left_panel")
            .default_size(if window_width < 1200.0 { 300.0 } else { 340.0 })
            .min_size(220.0)
            .resizable(true)
            .show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .id_salt("left_scroll")
                    .show(ui, |ui| {
                        section(ui, "1. Images", "images", true, |ui| {
                            self.data_panel.ui(
                                ui,
                                &self.session,
                                &mut self.state,
                                busy,
                                &mut commands,
                            );
                        });
                        ui.separator();
                        section(ui, "2. Train", "train", true, |ui| {
                            self.training_panel.ui(
                                ui,
                                &self.session,
                                &mut self.state,
                                job.as_ref(),
                                worker_ok,
                                &mut commands,
                            );
                        });
                        ui.separator();
                        let running = self.line.is_running();
                        section(ui, "4. Line", "line", running, |ui| {
                            let unsaved =
                                self.session.model.is_some() && self.session.model_path.is_none();
                            self.line.ui(
                                ui,
                                self.session.model_path.as_ref(),
                                unsaved,
                                &mut self.loader,
                                &mut commands,
                            );
                        });
                    });
            });
        // An opened part goes beside the gallery when there is room for both, else it
        // takes the gallery's place until it is closed (Esc).
        let central_width = window_width - left.response.rect.width();
        let side_by_side = central_width >= SIDE_BY_SIDE_WIDTH;
        let heat_pending = self
            .part_view
            .opened()
            .is_some_and(|p| self.worker.has_job(|j| *j == Job::Heatmap(p.to_path_buf())));
        let heat_behind = self
            .worker
            .current_job()
            .filter(|j| !matches!(j, Job::Heatmap(_)))
            .map(Job::describe);
        if self.part_view.opened().is_some() && side_by_side {
            egui::Panel::right("part_panel")
                .default_size(central_width * 0.45)
                .min_size(320.0)
                .resizable(true)
                .show(ui, |ui| {
                    // Fill the panel: a panel keeps the width of what it holds, and a
                    // part's controls must not make it shrink from one frame to the next.
                    ui.set_min_width(ui.available_width());
                    self.part_view.ui(
                        ui,
                        &self.session,
                        &mut self.state,
                        &mut self.loader,
                        heat_pending,
                        heat_behind,
                        max_side,
                        &mut commands,
                    );
                });
        }
        egui::CentralPanel::default_margins().show(ui, |ui| {
            self.notices
                .ui(ui, self.worker.dead_reason(), &mut commands);
            if self.session.data.is_none() && self.session.parts.is_empty() {
                self.welcome_ui(ui, &mut commands);
                return;
            }
            if self.part_view.opened().is_some() && !side_by_side {
                self.part_view.ui(
                    ui,
                    &self.session,
                    &mut self.state,
                    &mut self.loader,
                    heat_pending,
                    heat_behind,
                    max_side,
                    &mut commands,
                );
                return;
            }
            self.changes_ui(ui, busy, worker_ok, &mut commands);
            if self.session.thresholds.is_some() {
                // The Decide panel never takes the whole column: past a share of it, it
                // scrolls, and the gallery keeps the rest.
                let max_height = (ui.available_height() * DECIDE_SHARE).max(160.0);
                egui::Frame::group(ui.style()).show(ui, |ui| {
                    ui.set_width(ui.available_width());
                    section(ui, "3. Decide", "decide", true, |ui| {
                        egui::ScrollArea::vertical()
                            .id_salt("decide_scroll")
                            .max_height(max_height)
                            .show(ui, |ui| {
                                self.results_panel.ui(
                                    ui,
                                    &self.session,
                                    &mut self.state,
                                    &mut commands,
                                );
                            });
                    });
                });
                ui.add_space(4.0);
            }
            self.gallery.ui(
                ui,
                &self.session,
                &mut self.loader,
                self.part_view.opened(),
                self.state.train_count,
                self.state.val_count,
                &mut commands,
            );
        });
        if let Some(plan) = &self.export_plan {
            let mut answer = None;
            egui::Window::new("Export heatmaps")
                .collapsible(false)
                .resizable(false)
                .anchor(egui::Align2::CENTER_CENTER, egui::Vec2::ZERO)
                .show(ui.ctx(), |ui| {
                    ui.label(plan.text());
                    ui.horizontal(|ui| {
                        if ui.button("Export").clicked() {
                            answer = Some(true);
                        }
                        if ui.button("Cancel").clicked() {
                            answer = Some(false);
                        }
                    });
                });
            match answer {
                Some(true) => {
                    let dir = plan.dir.clone();
                    self.export_plan = None;
                    commands.push(AppCommand::ExportHeatmaps(dir));
                }
                Some(false) => self.export_plan = None,
                None => {}
            }
        }
        if ui.ctx().input(|i| !i.raw.hovered_files.is_empty()) {
            drop_hint(ui.ctx());
        }
        for command in commands {
            self.apply(command);
        }
    }

    /// Keys that work anywhere but in a text field: arrows step through the parts, Esc
    /// closes the opened one, Ctrl+Z undoes the last edit of the images.
    fn keys_ui(&mut self, ctx: &egui::Context, commands: &mut Vec<AppCommand>) {
        // Typing, or choosing in an open list, keeps its keys.
        if ctx.text_edit_focused() || ctx.any_popup_open() {
            return;
        }
        let (next, previous, escape, undo) = ctx.input(|i| {
            (
                i.key_pressed(egui::Key::ArrowRight) || i.key_pressed(egui::Key::ArrowDown),
                i.key_pressed(egui::Key::ArrowLeft) || i.key_pressed(egui::Key::ArrowUp),
                i.key_pressed(egui::Key::Escape),
                i.modifiers.command && i.key_pressed(egui::Key::Z),
            )
        });
        if next || previous {
            commands.push(AppCommand::StepPart(if next { 1 } else { -1 }));
            // A clicked tile or button keeps the focus, and egui moves the focus with the
            // arrows too: let the arrows belong to the parts.
            ctx.memory_mut(|m| {
                if let Some(id) = m.focused() {
                    m.surrender_focus(id);
                }
            });
        }
        if escape && self.part_view.opened().is_some() {
            commands.push(AppCommand::ClosePart);
        }
        if undo && !self.session.undo.is_empty() {
            commands.push(AppCommand::Undo);
        }
    }

    /// What changed since the model was trained: the good images (with one click to
    /// train again), and after a new model, which parts moved across the line.
    fn changes_ui(
        &mut self,
        ui: &mut egui::Ui,
        busy: bool,
        worker_ok: bool,
        commands: &mut Vec<AppCommand>,
    ) {
        let key = (
            self.session.version,
            self.state.train_count,
            self.state.val_count,
        );
        if self.changes.as_ref().is_none_or(|c| c.0 != key) {
            let text = self.training_changes();
            let moves = self.session.moves().map(|m| {
                let mut text = moves_summary(&m);
                if let (Some(was), Some(t)) = (self.session.previous_reject, self.session.thresholds)
                    && was != t.reject
                {
                    let by_scores = self.session.moved_by_scores().unwrap_or(0);
                    text += &format!(
                        " The reject line is at {} now, {} before: at the old line, {by_scores} part{} would have moved (the new model's scores), the rest moved with the line.",
                        style::format_score(t.reject),
                        style::format_score(was),
                        if by_scores == 1 { "" } else { "s" },
                    );
                }
                if let (Some(own), Some(t)) = (self.session.model_line, self.session.thresholds) {
                    text += &format!(
                        " Your reject line is kept at {}; the new model's own would be {}.",
                        style::format_score(t.reject),
                        style::format_score(own.reject)
                    );
                }
                text
            });
            self.changes = Some((key, text, moves));
        }
        let Some((_, training, moves)) = &self.changes else {
            return;
        };
        let frame = egui::Frame::new()
            .fill(style::GOOD.gamma_multiply(0.12))
            .inner_margin(6.0)
            .corner_radius(4.0);
        if let Some(text) = training {
            frame.show(ui, |ui| {
                ui.horizontal_wrapped(|ui| {
                    ui.label(text);
                    if ui
                        .add_enabled(!busy && worker_ok, egui::Button::new(RichText::new("Retrain").strong()))
                        .on_hover_text("Train a new model on the good images as they are now, then inspect the parts again and show which ones changed their call.")
                        .on_disabled_hover_text("Wait for the current job to finish.")
                        .clicked()
                    {
                        commands.push(AppCommand::Train);
                    }
                });
            });
            ui.add_space(4.0);
        }
        if let Some(text) = moves {
            frame.show(ui, |ui| {
                ui.horizontal_wrapped(|ui| {
                    ui.label(format!("Compared with the previous model: {text}"));
                    if text.starts_with(|c: char| c.is_ascii_digit())
                        && ui.button("Show them").clicked()
                    {
                        self.gallery.set_view(crate::gui::gallery::View::Parts);
                        self.gallery.set_filter(crate::gui::gallery::Filter::Moved);
                    }
                    if self.session.model_line.is_some()
                        && ui
                            .button("Use the new model's line")
                            .on_hover_text("Put the reject line (and the review band) where the new model puts them.")
                            .clicked()
                    {
                        commands.push(AppCommand::UseModelLine);
                    }
                    if ui.small_button("Dismiss").clicked() {
                        commands.push(AppCommand::ForgetPreviousCalls);
                    }
                });
            });
            ui.add_space(4.0);
        }
    }

    /// How the good images to train on differ from the ones the current model was trained
    /// here on; `None` when they do not or the model was not trained here.
    fn training_changes(&self) -> Option<String> {
        if self.session.model_source.as_deref() != Some("trained here") {
            return None;
        }
        let record = self.session.model.as_ref()?.trained_on.as_ref()?;
        let data = self.session.data.as_ref()?;
        let roles = data.roles(self.state.train_count, self.state.val_count);
        let was: std::collections::HashSet<&PathBuf> = record.train_files.iter().collect();
        let now: std::collections::HashSet<&PathBuf> = roles.train.iter().collect();
        let added = now.difference(&was).count();
        let removed = was.difference(&now).count();
        let held_was: std::collections::HashSet<&PathBuf> =
            record.validation_files.iter().collect();
        let held_now: std::collections::HashSet<&PathBuf> = roles.held_out.iter().collect();
        let held_changed = held_was != held_now;
        if added == 0 && removed == 0 && !held_changed {
            return None;
        }
        let mut what = Vec::new();
        if added > 0 {
            what.push(format!("{added} to train on added"));
        }
        if removed > 0 {
            what.push(format!("{removed} taken out"));
        }
        if held_changed {
            what.push(format!("{} held out now", held_now.len()));
        }
        Some(format!(
            "The good images changed since this model was trained: {}.",
            what.join(", ")
        ))
    }

    fn top_bar_ui(&mut self, ui: &mut egui::Ui, busy: bool, commands: &mut Vec<AppCommand>) {
        // One row at any width: the job's status takes what the buttons leave, and its
        // text is shortened (whole on hover) rather than wrapped under them.
        ui.horizontal(|ui| {
            let title = if ui.available_width() < 1200.0 {
                "DifferNet"
            } else {
                "DifferNet workstation"
            };
            ui.label(RichText::new(title).heading().strong());
            ui.separator();
            let has_model = self.session.model.is_some();
            let has_parts = !self.session.parts.is_empty() && self.session.thresholds.is_some();
            let dialog = !self.dialogs.is_open();
            if ui
                .add_enabled(dialog && !busy, egui::Button::new("Load model…"))
                .clicked()
            {
                commands.push(AppCommand::Dialog(DialogKind::LoadModel));
            }
            if ui
                .add_enabled(
                    dialog && !busy && has_model,
                    egui::Button::new("Save model…"),
                )
                .on_hover_text("Saves the model with the current reject threshold.")
                .clicked()
            {
                commands.push(AppCommand::Dialog(DialogKind::SaveModel));
            }
            if ui
                .add_enabled(dialog && has_parts, egui::Button::new("Export CSV…"))
                .on_hover_text("Every part's path, score and decision.")
                .clicked()
            {
                commands.push(AppCommand::Dialog(DialogKind::ExportCsv));
            }
            if ui
                .add_enabled(
                    dialog && !busy && has_parts && has_model,
                    egui::Button::new("Export heatmaps…"),
                )
                .on_hover_text("Heatmap images of the parts shown in the gallery.")
                .clicked()
            {
                commands.push(AppCommand::Dialog(DialogKind::ExportHeatmaps));
            }
            ui.separator();
            if let Some(job) = self.worker.current_job() {
                // Right to left: Stop at the far right, then the time left, the bar and
                // the job's name in what remains.
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    if ui
                        .small_button("Stop")
                        .on_hover_text("Cancel this job.")
                        .clicked()
                    {
                        commands.push(AppCommand::Cancel);
                    }
                    // Every job's progress, whichever panel is folded.
                    if let Some(p) = &self.session.progress {
                        if let Some(eta) = p.eta_secs() {
                            ui.label(format!("about {} left", style::format_duration(eta)));
                        }
                        ui.add(
                            egui::ProgressBar::new(p.job_fraction)
                                .desired_width(120.0)
                                .show_percentage(),
                        );
                    }
                    ui.with_layout(egui::Layout::left_to_right(egui::Align::Center), |ui| {
                        style::busy_indicator(ui);
                        let describe = job.describe();
                        ui.add(egui::Label::new(describe).truncate())
                            .on_hover_text(describe);
                    });
                });
            } else if let Some(status) = &self.notices.status {
                ui.add(egui::Label::new(RichText::new(status).weak()).truncate())
                    .on_hover_text(status);
            }
        });
    }

    /// Asks before the window closes on a model in training.
    fn close_ui(&mut self, ctx: &egui::Context) {
        if self.worker.current_job() != Some(&Job::Train) {
            // It finished meanwhile: nothing is lost any more.
            self.close_asked = false;
            return;
        }
        let unsaved = self.session.model.is_some() && self.session.model_path.is_none();
        egui::Modal::new(egui::Id::unique("close_while_training")).show(ctx, |ui| {
            ui.set_max_width(420.0);
            ui.heading("A model is training");
            ui.label(format!(
                "Closing the window stops the training: the model it is making is lost.{}",
                if unsaved {
                    " The current model was not saved either."
                } else {
                    ""
                }
            ));
            ui.horizontal(|ui| {
                if ui.button("Keep working").clicked() {
                    self.close_asked = false;
                }
                if ui.button("Stop training and close").clicked() {
                    self.close_asked = false;
                    self.close_confirmed = true;
                    self.worker.cancel();
                    ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                }
            });
        });
    }

    fn welcome_ui(&mut self, ui: &mut egui::Ui, commands: &mut Vec<AppCommand>) {
        ui.add_space(40.0);
        ui.vertical_centered(|ui| {
            ui.heading("Visual inspection with DifferNet");
            ui.add_space(8.0);
            ui.label("1. Open a folder of images (or drop images here).  2. Train on good parts.  3. Choose where to draw the line between good and bad.");
            ui.add_space(16.0);
            if ui.button("Open folder…").clicked() {
                commands.push(AppCommand::Dialog(DialogKind::OpenData));
            }
            if let Some(demo) = demo_folder()
                && ui.button("Open the demo data").on_hover_text(path_text(&demo)).clicked()
            {
                commands.push(AppCommand::OpenData(demo));
            }
            if let Some(last) = self.state.data_folder.clone()
                && last.is_dir()
                && ui.button(format!("Reopen {}", path_text(&last))).clicked()
            {
                commands.push(AppCommand::OpenData(last));
            }
        });
    }

    fn on_drop(&mut self, paths: Vec<PathBuf>) {
        if let [one] = paths.as_slice()
            && one.is_dir()
            && self.session.data.is_none()
        {
            self.apply(AppCommand::OpenData(one.clone()));
        } else {
            self.data_panel.offer_drop(paths);
        }
    }

    /// Applies one command (panels record them; tests may call this directly instead of
    /// going through a file dialog).
    pub fn apply(&mut self, command: AppCommand) {
        self.apply_one(command);
        self.keep_folder_edits();
    }

    /// Writes the opened folder's edits when they changed, so that closing the window
    /// (or a crash) loses none of them.
    fn keep_folder_edits(&mut self) {
        let (Some(dir), Some(edits)) = (
            self.edits_dir.as_ref(),
            self.session.data.as_ref().and_then(Workset::edits),
        ) else {
            return;
        };
        if self.edits_saved.as_ref() == Some(&edits) {
            return;
        }
        match edits.save(dir) {
            Ok(()) => self.edits_saved = Some(edits),
            Err(e) => {
                // Said once per change, not once per frame.
                self.edits_saved = Some(edits);
                self.notices
                    .error(format!("Your changes to the images are not kept: {e}"));
            }
        }
    }

    fn apply_one(&mut self, command: AppCommand) {
        match command {
            AppCommand::OpenData(path) => self.open_data(&path),
            AppCommand::AddImages { paths, role } => {
                let (images, skipped) = dataset::list_images(&paths);
                self.session.skipped.extend(skipped);
                self.session.data.get_or_insert_with(Workset::dropped);
                let what = match role {
                    ImageRole::Good => "good images",
                    ImageRole::Inspect => "images to inspect",
                };
                self.session
                    .push_undo(format!("add {} {what}", images.len()));
                let added = self
                    .session
                    .data
                    .as_mut()
                    .map_or(0, |d| d.add(images, role));
                self.notices.status(format!("Added {added} {what}"));
                self.session.version += 1;
            }
            AppCommand::OfferImages(paths) => self.data_panel.offer_drop(paths),
            AppCommand::PlainImagesAreGood => {
                self.session.push_undo("\"These are good parts\"");
                if let Some(d) = &mut self.session.data {
                    d.unlabelled_are_good();
                }
                self.session.clear_parts();
            }
            AppCommand::ChooseRole { path, choice } => {
                let what = match choice {
                    Some(RoleChoice::Train) => "train on",
                    Some(RoleChoice::HeldOut) => "hold out",
                    Some(RoleChoice::Exclude) => "exclude",
                    None => "let the split decide on",
                };
                self.session
                    .push_undo(format!("{what} {}", file_name(&path)));
                if let Some(d) = &mut self.session.data {
                    d.choose(&path, choice);
                }
                self.session.version += 1;
            }
            AppCommand::MarkGood(path) => {
                self.session
                    .push_undo(format!("call {} good", file_name(&path)));
                let marked = self
                    .session
                    .data
                    .as_mut()
                    .is_some_and(|d| d.mark_good(&path));
                if marked {
                    self.session.sync_labels();
                    self.notices.status(format!(
                        "{} is a good image now and will be trained on: press Retrain to use it.",
                        file_name(&path)
                    ));
                } else {
                    self.session.undo.pop();
                }
            }
            AppCommand::Relabel { path, label } => {
                self.session
                    .push_undo(format!("label {} {}", file_name(&path), label.type_name()));
                if let Some(d) = &mut self.session.data {
                    d.relabel(&path, label);
                }
                self.session.sync_labels();
            }
            AppCommand::Undo => match self.session.undo_edit() {
                Some(what) => self.notices.status(format!("Undid: {what}")),
                None => self.notices.status("Nothing to undo."),
            },
            AppCommand::ShowGallery(view) => self.gallery.set_view(view),
            AppCommand::ForgetPreviousCalls => {
                self.session.previous_calls = None;
                self.session.version += 1;
            }
            AppCommand::CloseData => {
                self.session.data = None;
                self.session.skipped.clear();
                self.session.undo.clear();
                self.session.previous_calls = None;
                self.session.clear_parts();
                self.part_view.close();
                self.loader.clear();
            }
            AppCommand::Dialog(kind) => {
                // Dialogs start where the work is: the folder used last for the same
                // thing, else the data folder, never the file chooser's "Recent".
                let data = self
                    .session
                    .data
                    .as_ref()
                    .and_then(|d| d.root.clone())
                    .or_else(|| self.state.data_folder.clone());
                let folder = match kind {
                    DialogKind::OpenData => self
                        .state
                        .data_folder
                        .as_ref()
                        .and_then(|p| p.parent())
                        .map(Path::to_path_buf),
                    DialogKind::AddImages => data,
                    DialogKind::LoadModel | DialogKind::SaveModel => {
                        self.state.model_folder.clone().or(data)
                    }
                    DialogKind::ExportCsv | DialogKind::ExportHeatmaps => {
                        self.state.export_folder.clone().or(data)
                    }
                }
                .filter(|f| f.is_dir())
                .or_else(home_folder);
                if let Err(e) = self.dialogs.show(kind, folder, self.waker.clone()) {
                    self.notices.error(e);
                }
            }
            AppCommand::Train => self.train(),
            AppCommand::Cancel => self.worker.cancel(),
            AppCommand::Inspect => self.inspect(),
            AppCommand::SetThresholds(t) => {
                self.session.set_thresholds(t);
                self.session.line_by_user = true;
                self.session.model_line = None;
                self.thresholds_changed();
            }
            AppCommand::SetReject(v) => {
                if self.session.thresholds.is_some() {
                    self.session.set_reject(v);
                    self.session.line_by_user = true;
                    self.session.model_line = None;
                    self.thresholds_changed();
                }
            }
            AppCommand::SetReview(v) => {
                self.session.set_review(v);
                self.session.line_by_user = true;
                self.session.model_line = None;
                self.thresholds_changed();
            }
            AppCommand::UseModelLine => {
                if let Some(t) = self.session.model_line.take() {
                    self.session.set_thresholds(t);
                    self.session.line_by_user = false;
                    self.thresholds_changed();
                }
            }
            AppCommand::StartLine {
                model,
                save_first,
                input,
                output,
            } => {
                // The fields show what runs, however it was started, and are kept for
                // the next run of the workstation.
                self.line.input = path_text(&input);
                self.line.output = path_text(&output);
                self.state.line_input = Some(input.clone());
                self.state.line_output = Some(output.clone());
                if save_first {
                    // A model trained here: saved into the sorted folder, then the line
                    // starts with that file (Event::Saved).
                    if let Err(e) = std::fs::create_dir_all(&output) {
                        self.notices
                            .error(format!("Cannot create {}: {e}", path_text(&output)));
                        return;
                    }
                    self.line_waits_for_save = Some((model.clone(), input, output));
                    self.apply_one(AppCommand::SaveModel(model));
                    return;
                }
                self.line.start(
                    model,
                    input,
                    output,
                    self.session.thresholds,
                    self.worker_options.clone(),
                    self.waker.clone(),
                );
            }
            AppCommand::StopLine => self.line.stop(),
            AppCommand::ProposeRecentGood(dir) => self.propose_recent_good(&dir),
            AppCommand::OpenPart(path) => self.open_part(path),
            AppCommand::ClosePart => self.part_view.close(),
            AppCommand::StepPart(step) => {
                let next = self.gallery.neighbour(
                    &self.session,
                    self.state.train_count,
                    self.state.val_count,
                    self.part_view.opened(),
                    step,
                );
                if let Some(path) = next
                    && self.part_view.opened() != Some(path.as_path())
                {
                    self.open_part(path);
                }
            }
            AppCommand::SaveModel(path) => {
                self.state.model_folder = path.parent().map(Path::to_path_buf);
                if self.session.model.is_none() {
                    self.notices
                        .error("There is no model to save yet: train or load one first.");
                    return;
                }
                let thresholds = self.session.thresholds.map(Thresholds::ordered);
                self.send(
                    Job::Save(path.clone()),
                    Command::SaveModel {
                        path,
                        threshold: thresholds.map(|t| t.reject),
                        review_threshold: thresholds.and_then(|t| t.review),
                    },
                );
            }
            AppCommand::LoadModel(path) => {
                self.state.model_folder = path.parent().map(Path::to_path_buf);
                self.send(Job::Load(path.clone()), Command::LoadModel { path });
            }
            AppCommand::ExportCsv(path) => self.export_csv(&path),
            AppCommand::PlanHeatmapExport(dir) => self.plan_heatmap_export(dir),
            AppCommand::ExportHeatmaps(dir) => self.export_heatmaps(dir),
            AppCommand::RestartWorker => {
                self.worker.restart();
                self.session.device = None;
                self.session.progress = None;
                self.session.model = None;
                self.session.model_source = None;
                self.notices
                    .status("Worker restarted: train or load a model again.");
            }
            AppCommand::DismissError(i) => {
                if i < self.notices.errors.len() {
                    self.notices.errors.remove(i);
                }
            }
        }
    }

    /// Adds a line's recent good parts to the good images (undoable) and shows them, so
    /// that the engineer looks through them, excludes any, and retrains.
    fn propose_recent_good(&mut self, dir: &std::path::Path) {
        let parts = crate::engine::watch::recent_good_parts(dir);
        if parts.is_empty() {
            self.notices.status(format!(
                "No recent good parts in {}",
                crate::core::message::path_text(dir)
            ));
            return;
        }
        self.session.data.get_or_insert_with(Workset::dropped);
        self.session
            .push_undo(format!("add {} recent good parts", parts.len()));
        let added = self
            .session
            .data
            .as_mut()
            .map_or(0, |d| d.add(parts, ImageRole::Good));
        self.session.version += 1;
        self.gallery.set_view(crate::gui::gallery::View::Good);
        self.notices.status(format!(
            "Added {added} recent good parts from the line to the good images: look through them (right-click to exclude any), then Train to retrain. Nothing is trained until you do."
        ));
    }

    /// The line takes new thresholds from its next part on.
    fn thresholds_changed(&mut self) {
        if let Some(t) = self.session.thresholds {
            self.line.set_thresholds(t);
        }
    }

    fn send(&mut self, job: Job, command: Command) {
        // Time jobs that start at once (queued ones would count their wait).
        let idle = !self.worker.is_busy();
        match &job {
            Job::Heatmap(p) if idle => self.heat_sent = Some((p.clone(), Instant::now())),
            // Sent as training ends: the wait is short.
            Job::Inspect => self.inspect_sent = Some(Instant::now()),
            _ => {}
        }
        if let Err(e) = self.worker.send(job, command) {
            self.notices.error(format!(
                "The engine is not running ({e}). Use \"Restart worker\"."
            ));
        }
    }

    fn open_data(&mut self, path: &Path) {
        // Absolute, so the folder shown and remembered is unambiguous.
        let path = &path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        match dataset::discover(path) {
            Ok(data) => {
                self.state.data_folder = Some(path.to_path_buf());
                // Listed once in the window: what the listing left out, then what jobs skip.
                self.session.skipped = data.skipped.clone();
                let mut workset = Workset::from_dataset(data);
                let restored = self.restore_folder_edits(&mut workset);
                self.edits_saved = workset.edits();
                self.session.data = Some(workset);
                self.session.clear_parts();
                self.part_view.close();
                self.loader.clear();
                self.notices
                    .status(format!("Opened {}{restored}", path_text(path)));
                if self.session.model.is_some() {
                    self.inspect();
                }
            }
            Err(e) => self.notices.error(e.to_string()),
        }
    }

    /// Applies the edits kept for the folder of `workset`; says what it restored.
    fn restore_folder_edits(&mut self, workset: &mut Workset) -> String {
        let (Some(dir), Some(root)) = (self.edits_dir.as_ref(), workset.root.as_ref()) else {
            return String::new();
        };
        match FolderEdits::load(dir, root) {
            Ok(Some(edits)) => {
                let skipped = workset.restore(&edits);
                let kept = edits.images().len() - skipped;
                let mut text = format!(
                    ": your changes to {kept} of its images (labels, roles, parts called good) restored",
                );
                if skipped > 0 {
                    text += &format!(", {skipped} left out (their images are gone)");
                }
                text
            }
            Ok(None) => String::new(),
            Err(e) => {
                self.notices.error(format!(
                    "Your earlier changes to this folder's images cannot be restored: {e}"
                ));
                String::new()
            }
        }
    }

    fn train(&mut self) {
        let Some(data) = &self.session.data else {
            self.notices.error("Open a folder of images first.");
            return;
        };
        let (train, validation) = data.split(self.state.train_count, self.state.val_count);
        if train.is_empty() {
            self.notices.error("There are no good images to train on: open a folder with good images, or mark images as good.");
            return;
        }
        let config = self
            .config_override
            .clone()
            .unwrap_or_else(|| match self.state.detector {
                DetectorKind::DifferNet => self
                    .state
                    .preset
                    .config(BackboneKind::EfficientnetLite0)
                    .into(),
                kind => kind.default_config(),
            });
        let defects = if self.state.train_on_defects && config.kind().learns_from_defects() {
            data.draw_defects(self.state.defects_per_type)
        } else {
            Vec::new()
        };
        // Only a flow has a loss to plot.
        self.session.training = config
            .loss_schedule(train.len())
            .map(|(epochs, steps)| TrainingLog::new(epochs, steps));
        self.session.progress = None;
        self.session.plan = JobPlan {
            held_out: validation.len(),
            flow: self.session.training.is_some(),
        };
        self.send(
            Job::Train,
            Command::Train(TrainRequest {
                train,
                validation,
                config,
                defects,
            }),
        );
    }

    fn inspect(&mut self) {
        let Some(data) = &self.session.data else {
            return;
        };
        if data.inspect.is_empty() {
            self.notices
                .status("Nothing to inspect: add images to inspect.");
            return;
        }
        let samples = data.inspect.clone();
        let labelled = data.labelled_count() > 0;
        self.session.clear_parts();
        self.session.inspect_total = samples.len();
        let command = if labelled {
            Command::Evaluate(EvaluateRequest {
                samples,
                pixel_metrics: false,
                rotations: None,
            })
        } else {
            Command::Score(ScoreRequest {
                paths: samples.into_iter().map(|s| s.path).collect(),
                heatmaps: false,
                rotations: None,
            })
        };
        self.send(Job::Inspect, command);
    }

    fn open_part(&mut self, path: PathBuf) {
        if self.part_view.opened() != Some(path.as_path()) {
            self.part_view.open(path.clone());
        }
        let wants_heat = self.session.model.is_some()
            && self
                .session
                .part(&path)
                .is_some_and(|p| p.heatmap.is_none())
            && !self.worker.has_job(|j| *j == Job::Heatmap(path.clone()));
        if wants_heat {
            self.send(
                Job::Heatmap(path.clone()),
                Command::Score(ScoreRequest {
                    paths: vec![path],
                    heatmaps: true,
                    rotations: None,
                }),
            );
        }
    }

    fn export_csv(&mut self, path: &Path) {
        self.state.export_folder = path.parent().map(Path::to_path_buf);
        let Some(t) = self.session.thresholds else {
            self.notices
                .error("Inspect some parts before exporting their scores.");
            return;
        };
        let rows: Vec<PartRow<'_>> = self
            .session
            .parts
            .iter()
            .map(|p| PartRow {
                path: &p.path,
                label: p.label.type_name(),
                score: p.score,
                decision: t.decide(p.score),
            })
            .collect();
        let model = self.session.model.as_ref();
        let context = CsvContext {
            thresholds: t.ordered(),
            model: match (self.session.model_source.as_deref(), model) {
                (Some(source), Some(m)) => format!("{source}: {}", m.config.describe()),
                (None, Some(m)) => m.config.describe(),
                _ => String::new(),
            },
            model_id: model
                .and_then(|m| m.trained_on.as_ref())
                .map(|r| r.id.clone()),
            time: provenance::utc_text(provenance::now_unix_secs()),
        };
        let text = parts_csv(&rows, &context);
        let n = rows.len();
        match write_atomic(path, text.as_bytes()) {
            Ok(()) => self
                .notices
                .status(format!("Wrote {n} parts to {}", path_text(path))),
            Err(e) => self
                .notices
                .error(format!("cannot write the CSV ({e}): {}", path_text(path))),
        }
    }

    /// Asks before exporting: how many heatmaps, how many are computed already, and how
    /// long the rest take.
    fn plan_heatmap_export(&mut self, dir: PathBuf) {
        let paths = self.shown_paths();
        if paths.is_empty() {
            self.notices.status("No parts shown: nothing to export.");
            return;
        }
        let ready = paths
            .iter()
            .filter(|p| self.session.part(p).is_some_and(|p| p.heatmap.is_some()))
            .count();
        self.export_plan = Some(ExportPlan {
            dir,
            total: paths.len(),
            ready,
            heat_secs: self.session.heat_secs,
            inspect_secs: self.session.inspect_secs,
        });
    }

    fn shown_paths(&mut self) -> Vec<PathBuf> {
        self.gallery
            .shown_paths(&self.session, self.state.train_count, self.state.val_count)
    }

    fn export_heatmaps(&mut self, dir: PathBuf) {
        self.state.export_folder = Some(dir.clone());
        if let Err(e) = std::fs::create_dir_all(&dir) {
            self.notices.error(format!(
                "cannot create the folder ({e}): {}",
                path_text(&dir)
            ));
            return;
        }
        let paths = self.shown_paths();
        if paths.is_empty() {
            self.notices.status("No parts shown: nothing to export.");
            return;
        }
        self.exporter.reset();
        self.export_names = ExportNames::default();
        self.export_dir = Some(dir.clone());
        // Heatmaps computed already are written at once; the worker computes the rest.
        let mut todo = Vec::new();
        for path in paths {
            let ready = self
                .session
                .part(&path)
                .and_then(|p| p.heatmap.as_ref().map(|h| ((**h).clone(), p.score)));
            match ready {
                Some((heatmap, score)) => self.write_heatmap(&dir, path, score, heatmap),
                None => todo.push(path),
            }
        }
        if todo.is_empty() {
            return;
        }
        self.send(
            Job::ExportHeatmaps(dir),
            Command::Score(ScoreRequest {
                paths: todo,
                heatmaps: true,
                rotations: None,
            }),
        );
    }

    /// Hands one heatmap image with its caption to the exporter's thread.
    fn write_heatmap(
        &mut self,
        dir: &Path,
        path: PathBuf,
        score: f64,
        heatmap: crate::core::protocol::Heatmap,
    ) {
        let s = &self.session;
        let name = self.export_names.heatmap_name(&path);
        let vmax = s
            .model
            .as_ref()
            .map_or(crate::core::heat_layer::DEFAULT_HEAT_VMAX, |m| {
                m.config.heat_vmax()
            });
        let caption = heatmap_caption(&path, score, s.thresholds, s.model_source.as_deref());
        self.exporter.write(
            path,
            heatmap,
            dir.join(name),
            self.state.colormap,
            self.state.heat_opacity,
            vmax,
            caption,
        );
    }

    fn handle_event(&mut self, job: Option<Job>, event: Event) {
        let s = &mut self.session;
        match event {
            Event::Ready { device } => s.device = Some(device),
            Event::Progress {
                phase, done, total, ..
            } => {
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
            Event::Trained(info) => {
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
            Event::Scored(scored) => match job {
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
            },
            // Listed once, however many jobs meet the file.
            Event::Skipped { path, reason } => {
                if !s.skipped.iter().any(|(p, _)| *p == path) {
                    s.skipped.push((path, reason));
                }
            }
            Event::ScoringDone { .. } | Event::Evaluated(_) => {
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
            Event::Saved { path } => {
                self.notices
                    .status(format!("Model saved to {}", path_text(&path)));
                s.model_path = Some(path.clone());
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
            Event::Loaded { path, info } => {
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
            Event::Cancelled { .. } => {
                s.progress = None;
                if job == Some(Job::Inspect) {
                    s.mark_partial("stopped");
                }
                let what = job.as_ref().map_or("job", Job::describe);
                self.notices.status(format!("Stopped {what}"));
            }
            Event::Failed { message } => {
                // A line waiting for its model file does not start.
                self.line_waits_for_save = None;
                s.progress = None;
                if job == Some(Job::Inspect) {
                    s.mark_partial("failed");
                }
                let what = job
                    .as_ref()
                    .map_or(String::new(), |j| format!("{} failed: ", j.describe()));
                self.notices.error(format!("{what}{message}"));
            }
            Event::Crashed { .. } => {
                s.progress = None;
                if job == Some(Job::Inspect) {
                    s.mark_partial("stopped by a crash");
                }
            }
        }
    }
}

/// The lines under an exported heatmap: the part, its score and decision, the lines and
/// the model.
fn heatmap_caption(
    path: &Path,
    score: f64,
    thresholds: Option<Thresholds>,
    model: Option<&str>,
) -> Vec<String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut first = format!("{name}  score {}", style::format_score(score));
    if let Some(t) = thresholds {
        first += &format!(
            "  {} (reject at {})",
            t.decide(score).name(),
            style::format_score(t.reject)
        );
    }
    let mut lines = vec![first];
    if let Some(m) = model {
        lines.push(format!("model: {m}"));
    }
    lines
}

/// The file name of a path, for messages.
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| path_text(Path::new(n)))
        .unwrap_or_else(|| path_text(path))
}

/// The user's home folder, where file dialogs start when nothing better is known.
fn home_folder() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_dir())
}

/// A reject threshold, with a review band below it when the user wants one.
fn thresholds_at(state: &State, reject: f64) -> Thresholds {
    Thresholds {
        reject,
        review: state.review_band.then_some(reject * REVIEW_FRACTION),
    }
}

/// Starts the review band where the model's held-out good scores put it
/// ([`Session::default_review`]), when the band is on and the model saved none of its own.
fn place_review_band(s: &mut Session, state: &State, saved_review: bool) {
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
fn saved_thresholds(state: &State, info: &ModelInfo) -> Option<Thresholds> {
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

/// A full-window hint while files are dragged over it.
fn drop_hint(ctx: &egui::Context) {
    let painter = ctx.layer_painter(egui::LayerId::new(
        egui::Order::Foreground,
        egui::Id::unique("drop_hint"),
    ));
    let rect = ctx.content_rect();
    painter.rect_filled(rect, 0.0, egui::Color32::from_black_alpha(160));
    painter.text(
        rect.center(),
        egui::Align2::CENTER_CENTER,
        "Drop images or folders to add them",
        egui::FontId::proportional(24.0),
        egui::Color32::WHITE,
    );
}

impl eframe::App for WorkstationApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        WorkstationApp::logic(self, ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        WorkstationApp::ui(self, ui);
        let busy = self.worker.is_busy();
        if let Some(log) = &mut self.frame_log {
            log.frame(ui.ctx(), frame.info().cpu_usage, busy);
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, STATE_KEY, &self.state);
    }
}
