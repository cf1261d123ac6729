//! The workstation application: owns the persisted [`State`], the runtime handles (worker,
//! image loader, dialogs, exporter) and the panels; turns worker events into the
//! [`Session`] in `logic`, draws in `ui`, and applies the commands the panels recorded
//! after the frame. Its parts live in `app/`: the top bar and the changes banner
//! ([`bars`]), the commands ([`commands`]), the worker's events ([`events`]) and the
//! exports ([`exports`]).

mod bars;
mod commands;
mod events;
mod exports;

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
/// The Decide panel's frame and heading around its scrolling part, in points.
const DECIDE_CHROME: f32 = 50.0;
/// The least the Decide panel's scrolling part shows, in points.
const MIN_DECIDE_HEIGHT: f32 = 100.0;
/// Below this height of its scrolling part, the Decide panel draws a shorter histogram.
const COMPACT_DECIDE_BELOW: f32 = 300.0;

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

/// What [`WorkstationApp::choose_training_images`] depends on besides the images: the
/// session version, the training and held-out counts, the setting, and whether the worker
/// is busy or dead.
type ChooseKey = (u64, usize, Option<usize>, bool, bool, bool);

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
    /// The good images a [`Job::Choose`] was sent for (its answer is chosen among them).
    choose_sent: Option<Vec<PathBuf>>,
    /// The last answer: the good images it was chosen among, and the order to train on
    /// them (kept to give back to images an undo restored).
    chosen: Option<(Vec<PathBuf>, Vec<PathBuf>)>,
    /// What the last look at whether to choose saw (session version, counts, the setting,
    /// the worker busy or dead): nothing to look at again until one of them changes.
    choose_checked: Option<ChooseKey>,
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
    /// The window was asked to close while a model trains, or with a model trained here
    /// and not saved: the user is asked first.
    close_asked: bool,
    /// The user said to close anyway.
    close_confirmed: bool,
    /// The user chose to save the model and then close: the window closes once it is
    /// saved (a cancelled dialog clears it).
    close_after_save: bool,
    /// The model was saved on the way out: close with the next frame.
    close_now: bool,
}

/// The changes banner's key (session version, training count, held-out count, a job
/// running), its text about the good images and its text about the parts that moved.
type ChangesCache = (
    (u64, usize, Option<usize>, bool),
    Option<String>,
    Option<String>,
);

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
            choose_sent: None,
            chosen: None,
            choose_checked: None,
            heat_sent: None,
            inspect_sent: None,
            edits_dir: options.edits_dir,
            edits_saved: None,
            line_waits_for_save: None,
            close_asked: false,
            close_confirmed: false,
            close_after_save: false,
            close_now: false,
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
        if let Some(answer) = self.dialogs.poll() {
            match answer {
                Some(command) => self.apply(command),
                // No file chosen: the window stays open.
                None => self.close_after_save = false,
            }
        }
        if self.loader.upload(ctx) {
            ctx.request_repaint();
        }
        self.choose_training_images();
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
        if std::mem::take(&mut self.close_now) {
            self.close_confirmed = true;
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
        // Closing while a model trains, or with a model trained here and not saved, loses
        // it: ask first.
        if ctx.input(|i| i.viewport().close_requested())
            && !self.close_confirmed
            && (self.worker.current_job() == Some(&Job::Train) || self.has_unsaved_model())
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
            self.close_ui(ui.ctx(), &mut commands);
        }

        egui::Panel::top("top_bar").show(ui, |ui| {
            self.top_bar_ui(ui, busy, &mut commands);
        });
        let window_width = ui.available_width();
        let left_width = self.left_panel_ui(
            ui,
            window_width,
            busy,
            job.as_ref(),
            worker_ok,
            &mut commands,
        );
        // An opened part goes beside the gallery when there is room for both, else it
        // takes the gallery's place until it is closed (Esc).
        let central_width = window_width - left_width;
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
                    self.part_ui(ui, heat_pending, heat_behind, max_side, &mut commands);
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
                self.part_ui(ui, heat_pending, heat_behind, max_side, &mut commands);
                return;
            }
            self.work_ui(ui, busy, worker_ok, &mut commands);
        });
        self.export_plan_ui(ui.ctx(), &mut commands);
        if ui.ctx().input(|i| !i.raw.hovered_files.is_empty()) {
            drop_hint(ui.ctx());
        }
        for command in commands {
            self.apply(command);
        }
    }

    /// Draws the left panel (the Images, Train and Line sections) and returns its width.
    fn left_panel_ui(
        &mut self,
        ui: &mut egui::Ui,
        window_width: f32,
        busy: bool,
        job: Option<&Job>,
        worker_ok: bool,
        commands: &mut Vec<AppCommand>,
    ) -> f32 {
        let left = egui::Panel::left("left_panel")
            .default_size(if window_width < 1200.0 { 300.0 } else { 340.0 })
            .min_size(220.0)
            .resizable(true)
            .show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .id_salt("left_scroll")
                    .show(ui, |ui| {
                        section(ui, "1. Images", "images", true, |ui| {
                            self.data_panel
                                .ui(ui, &self.session, &mut self.state, busy, commands);
                        });
                        ui.separator();
                        section(ui, "2. Train", "train", true, |ui| {
                            self.training_panel.ui(
                                ui,
                                &self.session,
                                &mut self.state,
                                job,
                                worker_ok,
                                commands,
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
                                commands,
                            );
                        });
                    });
            });
        left.response.rect.width()
    }

    /// Draws the opened part, beside the gallery or in its place.
    fn part_ui(
        &mut self,
        ui: &mut egui::Ui,
        heat_pending: bool,
        heat_behind: Option<&str>,
        max_side: u32,
        commands: &mut Vec<AppCommand>,
    ) {
        self.part_view.ui(
            ui,
            &self.session,
            &mut self.state,
            &mut self.loader,
            heat_pending,
            heat_behind,
            max_side,
            commands,
        );
    }

    /// Draws the central column's work: the changes banner, the Decide panel once there
    /// are lines, and the gallery.
    fn work_ui(
        &mut self,
        ui: &mut egui::Ui,
        busy: bool,
        worker_ok: bool,
        commands: &mut Vec<AppCommand>,
    ) {
        self.changes_ui(ui, busy, worker_ok, commands);
        if self.session.thresholds.is_some() {
            self.decide_ui(ui, commands);
        }
        self.gallery.ui(
            ui,
            &self.session,
            &mut self.loader,
            self.part_view.opened(),
            self.state.train_count,
            self.state.val_count,
            commands,
        );
    }

    /// Draws the Decide panel in a frame, scrolling past its share of the column.
    fn decide_ui(&mut self, ui: &mut egui::Ui, commands: &mut Vec<AppCommand>) {
        // The Decide panel never takes the whole column: past a share of it, it
        // scrolls, and the gallery keeps the rest.
        // Nor more than leaves two whole rows of the gallery in view: on a short
        // window it scrolls, and its histogram is shorter.
        let avail = ui.available_height();
        let max_height = (avail * DECIDE_SHARE)
            .min(avail - Gallery::height_for_rows(ui, 2) - DECIDE_CHROME)
            .max(MIN_DECIDE_HEIGHT);
        self.results_panel.compact = max_height < COMPACT_DECIDE_BELOW;
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.set_width(ui.available_width());
            section(ui, "3. Decide", "decide", true, |ui| {
                egui::ScrollArea::vertical()
                    .id_salt("decide_scroll")
                    .max_height(max_height)
                    .show(ui, |ui| {
                        self.results_panel
                            .ui(ui, &self.session, &mut self.state, commands);
                    });
            });
        });
        ui.add_space(4.0);
    }

    /// Asks whether to go on with a planned heatmap export, and goes on when told to.
    fn export_plan_ui(&mut self, ctx: &egui::Context, commands: &mut Vec<AppCommand>) {
        let Some(plan) = &self.export_plan else {
            return;
        };
        let mut answer = None;
        egui::Window::new("Export heatmaps")
            .collapsible(false)
            .resizable(false)
            .anchor(egui::Align2::CENTER_CENTER, egui::Vec2::ZERO)
            .show(ctx, |ui| {
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

    /// Keys that work anywhere but in a text field: arrows step through the parts, Esc
    /// closes the opened one, Ctrl+Z undoes the last edit of the images, Ctrl+Shift+Z and
    /// Ctrl+Y do it again.
    fn keys_ui(&mut self, ctx: &egui::Context, commands: &mut Vec<AppCommand>) {
        // Typing, or choosing in an open list, keeps its keys.
        if ctx.text_edit_focused() || ctx.any_popup_open() {
            return;
        }
        let (next, previous, escape, undo, redo) = ctx.input(|i| {
            let z = i.modifiers.command && i.key_pressed(egui::Key::Z);
            (
                i.key_pressed(egui::Key::ArrowRight) || i.key_pressed(egui::Key::ArrowDown),
                i.key_pressed(egui::Key::ArrowLeft) || i.key_pressed(egui::Key::ArrowUp),
                i.key_pressed(egui::Key::Escape),
                z && !i.modifiers.shift,
                (z && i.modifiers.shift) || (i.modifiers.command && i.key_pressed(egui::Key::Y)),
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
        if redo && !self.session.redo.is_empty() {
            commands.push(AppCommand::Redo);
        }
    }

    /// Whether a model trained here is in the window and not saved to a file.
    pub fn has_unsaved_model(&self) -> bool {
        self.session.model.is_some() && self.session.model_path.is_none()
    }

    /// Whether the user said to close the window (with nothing left to ask).
    pub fn close_confirmed(&self) -> bool {
        self.close_confirmed
    }

    /// Asks before the window closes on a model in training or a model not saved.
    fn close_ui(&mut self, ctx: &egui::Context, commands: &mut Vec<AppCommand>) {
        let training = self.worker.current_job() == Some(&Job::Train);
        let unsaved = self.has_unsaved_model();
        if !training && !unsaved {
            // Saved or finished meanwhile: nothing is lost any more.
            self.close_asked = false;
            return;
        }
        egui::Modal::new(egui::Id::unique("close_with_work")).show(ctx, |ui| {
            ui.set_max_width(440.0);
            if training {
                ui.heading("A model is training");
                ui.label(format!(
                    "Closing the window stops the training: the model it is making is lost.{}",
                    if unsaved {
                        " The current model was not saved either."
                    } else {
                        ""
                    }
                ));
            } else {
                ui.heading("The model is not saved");
                ui.label(
                    "The model trained here is not saved to a file: closing the window loses it, with its line (training it again takes minutes). Save it to load it again with File › Load model.",
                );
            }
            ui.horizontal(|ui| {
                if ui.button("Keep working").clicked() {
                    self.close_asked = false;
                }
                if !training
                    && ui
                        .button("Save model and close…")
                        .on_hover_text("Choose a file; the window closes once the model is saved.")
                        .clicked()
                {
                    self.close_asked = false;
                    self.close_after_save = true;
                    commands.push(AppCommand::Dialog(DialogKind::SaveModel));
                }
                let leave = if training {
                    "Stop training and close"
                } else {
                    "Close without saving"
                };
                if ui.button(leave).clicked() {
                    self.close_asked = false;
                    self.close_confirmed = true;
                    if training {
                        self.worker.cancel();
                    }
                    ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                }
            });
        });
    }

    /// Draws the welcome page shown while no images are open.
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

    /// Opens a folder dropped on an empty window; asks what anything else dropped is.
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
}

/// The user's home folder, where file dialogs start when nothing better is known.
fn home_folder() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_dir())
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

/// The file name of a path, for messages.
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| path_text(Path::new(n)))
        .unwrap_or_else(|| path_text(path))
}
