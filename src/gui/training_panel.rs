//! Training: the detector and its settings, Train and Cancel, the device, a progress bar with the
//! time left, and the loss curve growing as the worker reports steps.

use crate::core::config::{DetectorKind, Preset};
use crate::core::message::path_text;
use crate::core::protocol::ModelInfo;
use crate::gui::command::AppCommand;
use crate::gui::session::Session;
use crate::gui::state::State;
use crate::gui::style;
use crate::gui::worker_link::Job;
use egui::RichText;
use egui_plot::{Legend, Line, Plot, PlotPoints};

/// The training panel (no state of its own beyond what it draws).
#[derive(Default)]
pub struct TrainingPanel;

impl TrainingPanel {
    /// Shows the panel. `job` is the worker's current job; `worker_ok` whether a worker
    /// is running.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        session: &Session,
        state: &mut State,
        job: Option<&Job>,
        worker_ok: bool,
        commands: &mut Vec<AppCommand>,
    ) {
        detector_ui(ui, state);
        defects_ui(ui, session, state);
        train_buttons_ui(ui, session, job.is_some(), worker_ok, commands);
        ui.label(format!(
            "Runs on: {}",
            session.device.as_deref().unwrap_or("starting…")
        ));
        if let Some(job) = job {
            progress_ui(ui, session, job);
        }
        loss_plot_ui(ui, session);
        if let Some(m) = &session.model {
            model_ui(ui, session, m);
        }
    }
}

/// The detector to train and its settings: a list of detectors with a summary of the
/// chosen one, and DifferNet's presets.
fn detector_ui(ui: &mut egui::Ui, state: &mut State) {
    ui.horizontal(|ui| {
        ui.label("Detector:");
        egui::ComboBox::from_id_salt("detector")
            .width(200.0)
            .selected_text(detector_label(state.detector))
            .show_ui(ui, |ui| {
                for k in DetectorKind::ALL {
                    ui.selectable_value(&mut state.detector, k, detector_label(k))
                        .on_hover_text(k.summary());
                }
            })
            .response
            .widget_info(|| egui::WidgetInfo::labeled(egui::Role::ComboBox, true, "Detector"));
    });
    ui.label(RichText::new(state.detector.summary()).small().weak());
    // The same rows whatever the detector, so the panel does not jump.
    ui.horizontal(|ui| {
        ui.label("Settings:");
        let differnet = state.detector == DetectorKind::DifferNet;
        let response = ui.add_enabled_ui(differnet, |ui| {
            // A fixed width: the panel does not move when the choice changes.
            egui::ComboBox::from_id_salt("preset")
                .width(200.0)
                .truncate()
                .selected_text(if differnet {
                    preset_label(state.preset)
                } else {
                    detector_name(state.detector)
                })
                .show_ui(ui, |ui| {
                    for p in [Preset::Fast, Preset::Paper] {
                        ui.selectable_value(&mut state.preset, p, preset_label(p));
                    }
                })
                .response
        });
        let response = response.inner;
        response.widget_info(|| {
            egui::WidgetInfo::labeled(egui::Role::ComboBox, true, "Training settings")
        });
        // The whole settings on hover, once.
        response.on_disabled_hover_text(format!(
            "{}'s settings: {}. Only DifferNet has presets to choose.",
            detector_name(state.detector),
            state.detector.default_config().describe()
        ));
    });
}

/// Train, Cancel and, once there is a model and parts to inspect, Inspect again.
fn train_buttons_ui(
    ui: &mut egui::Ui,
    session: &Session,
    busy: bool,
    worker_ok: bool,
    commands: &mut Vec<AppCommand>,
) {
    let good = session.data.as_ref().map_or(0, |d| d.good.len());
    ui.horizontal(|ui| {
        let can_train = good > 0 && !busy && worker_ok;
        let train = ui
            .add_enabled(can_train, egui::Button::new(RichText::new("Train").strong()).min_size(egui::vec2(90.0, 28.0)))
            .on_hover_text("Learn what good parts look like from the good images, then inspect the other images.");
        let train = if good == 0 {
            train.on_disabled_hover_text("Open a folder with good images first.")
        } else {
            train.on_disabled_hover_text("Wait for the current job to finish.")
        };
        if train.clicked() {
            commands.push(AppCommand::Train);
        }
        if ui.add_enabled(busy, egui::Button::new("Cancel")).clicked() {
            commands.push(AppCommand::Cancel);
        }
        if session.model.is_some()
            && session.data.as_ref().is_some_and(|d| !d.inspect.is_empty())
            && ui
                .add_enabled(!busy && worker_ok, egui::Button::new("Inspect again"))
                .on_hover_text("Score the images to inspect with the current model.")
                .clicked()
        {
            commands.push(AppCommand::Inspect);
        }
    });
}

/// The loss curve of the training, per step and per epoch, once steps are reported.
fn loss_plot_ui(ui: &mut egui::Ui, session: &Session) {
    if let Some(log) = &session.training
        && !log.steps.is_empty()
    {
        Plot::new("loss_plot")
            .height(150.0)
            .allow_drag(false)
            .allow_zoom(false)
            .allow_scroll(false)
            .allow_boxed_zoom(false)
            .include_x(0.0)
            .include_x(log.epochs.max(1) as f64)
            // Epoch marks every 1, 5, 25...: enough labels on a narrow plot.
            .x_grid_spacer(egui_plot::log_grid_spacer(5))
            .x_axis_label("epoch")
            .y_axis_label("loss")
            .legend(Legend::default())
            .show(ui, |plot_ui| {
                if let Some((lo, hi)) = log.loss_range() {
                    plot_ui.set_plot_bounds_x(0.0..=log.epochs.max(1) as f64);
                    plot_ui.set_plot_bounds_y(lo..=hi);
                }
                plot_ui.line(
                    Line::new("step loss", PlotPoints::Borrowed(&log.steps))
                        .color(style::UNKNOWN)
                        .width(1.0),
                );
                plot_ui.line(
                    Line::new("epoch mean", PlotPoints::Borrowed(&log.epochs_done))
                        .color(style::GOOD)
                        .width(2.0),
                );
            })
            .response
            .on_hover_text("Training loss: it should fall and level off. Lower means the model describes the good images better.");
    }
}

/// The current model: where it comes from, what it was trained on, and the scores of the
/// good images held out from its training.
fn model_ui(ui: &mut egui::Ui, session: &Session, m: &ModelInfo) {
    ui.label(format!(
        "Model: {} ({} good images, {}).",
        session.model_source.as_deref().unwrap_or("current"),
        m.train_count,
        m.config.describe()
    ));
    if let Some(r) = &m.trained_on {
        let folder = r
            .folder
            .as_deref()
            .map_or_else(|| "several folders".to_owned(), path_text);
        let learnt = match r.defect_files.len() {
            0 => String::new(),
            n => format!(" and {n} confirmed defective parts"),
        };
        ui.label(
            RichText::new(format!(
                "Trained on {} images{learnt} of {} from {} at {} (id {}).",
                r.train_files.len(),
                r.sizes_text(),
                folder,
                r.trained_at.replace('T', " ").replace('Z', " UTC"),
                r.id
            ))
            .small(),
        );
    }
    if let Some(v) = &m.validation {
        ui.label(format!(
            "Held-out good images: {}, scores {} to {} (mean {}).",
            v.count,
            style::format_score(v.scores.first().copied().unwrap_or(v.mean)),
            style::format_score(v.max),
            style::format_score(v.mean)
        ))
        .on_hover_text("Good images kept out of training, scored to see what a good part scores.");
    }
}

/// "Train on confirmed defects too": how many confirmed defective parts of each type the
/// model learns from, and how many that makes. Only for the detectors that can.
fn defects_ui(ui: &mut egui::Ui, session: &Session, state: &mut State) {
    let learns = state.detector.learns_from_defects();
    let confirmed = session.data.as_ref().map_or(0, |d| d.defect_count());
    let drawn = session
        .data
        .as_ref()
        .map_or(0, |d| d.draw_defects(state.defects_per_type).len());
    let response = ui
        .add_enabled_ui(learns && confirmed > 0, |ui| {
            ui.horizontal(|ui| {
                ui.checkbox(&mut state.train_on_defects, "Train on confirmed defects too")
                    .on_hover_text(
                        "Also learn from parts labelled defective: parts that look like them score higher. \
                         A defect type never labelled is still found as before. The parts learnt from \
                         count in no accuracy figure.",
                    );
                ui.add_enabled(
                    state.train_on_defects,
                    egui::Slider::new(&mut state.defects_per_type, 1..=20).text("per type"),
                );
            });
            if state.train_on_defects {
                ui.label(
                    RichText::new(format!(
                        "{drawn} of the {confirmed} confirmed defective parts, drawn per type."
                    ))
                    .small()
                    .weak(),
                );
            }
        })
        .response;
    if !learns {
        response.on_disabled_hover_text("This detector learns from good parts only.");
    } else if confirmed == 0 {
        response.on_disabled_hover_text("No part is labelled defective yet.");
    }
}

/// The detector's short name.
pub fn detector_name(k: DetectorKind) -> &'static str {
    match k {
        DetectorKind::PatchCore => "PatchCore",
        DetectorKind::CsFlow => "CS-Flow",
        DetectorKind::DifferNet => "DifferNet",
        DetectorKind::Fusion => "Fusion of two PatchCores",
    }
}

/// The detector as a user sees it in the list.
fn detector_label(k: DetectorKind) -> &'static str {
    match k {
        DetectorKind::PatchCore => "PatchCore (fast)",
        DetectorKind::CsFlow => "CS-Flow (flow on feature maps)",
        DetectorKind::DifferNet => "DifferNet (the paper)",
        DetectorKind::Fusion => "Fusion of two PatchCores (recommended)",
    }
}

/// The preset as a user sees it.
fn preset_label(p: Preset) -> &'static str {
    match p {
        Preset::Fast => "Fast (seconds to a minute on a laptop)",
        Preset::Paper => "Paper (slow: 15 minutes to hours on a CPU)",
    }
}

/// Phase, bar and time left.
fn progress_ui(ui: &mut egui::Ui, session: &Session, job: &Job) {
    let Some(p) = &session.progress else {
        ui.horizontal(|ui| {
            style::busy_indicator(ui);
            ui.label(format!("{}…", job.describe()));
        });
        return;
    };
    let step = if p.done >= p.total {
        // The next phase has not reported yet (its first unit can take a while).
        format!("{} done, next step starting…", p.phase.label())
    } else {
        p.step_text()
    };
    let eta = p.eta_secs().map_or(String::new(), |s| {
        format!(" · about {} left", style::format_duration(s))
    });
    let text = format!("{step}{eta}");
    // One bar for the whole job: it never goes back when a phase ends.
    ui.add(egui::ProgressBar::new(p.job_fraction).show_percentage());
    ui.label(format!("{}: {text}", job.describe()));
}
