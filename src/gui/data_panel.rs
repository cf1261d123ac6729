//! The images: where they come from, what they are, and how many good ones to train on
//! and hold out for validation.

use crate::core::message::path_text;
use crate::gui::command::{AppCommand, DialogKind, ImageRole};
use crate::gui::session::Session;
use crate::gui::state::State;
use crate::gui::workset::{Layout, Workset};
use egui::RichText;
use std::path::PathBuf;

/// The data panel's own state: dropped files waiting for the user to say what they are.
#[derive(Default)]
pub struct DataPanel {
    pending_drop: Option<Vec<PathBuf>>,
}

impl DataPanel {
    /// Files and folders were dropped on the window; ask what they are.
    pub fn offer_drop(&mut self, paths: Vec<PathBuf>) {
        self.pending_drop = Some(paths);
    }

    /// Shows the panel.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        session: &Session,
        state: &mut State,
        busy: bool,
        commands: &mut Vec<AppCommand>,
    ) {
        ui.horizontal_wrapped(|ui| {
            if ui
                .add_enabled(!busy, egui::Button::new("Open folder…"))
                .on_hover_text(
                    "A folder in MVTec AD layout (train/good, test/…), or any folder of images.",
                )
                .clicked()
            {
                commands.push(AppCommand::Dialog(DialogKind::OpenData));
            }
            if ui
                .add_enabled(!busy, egui::Button::new("Add images…"))
                .on_hover_text("Add image files: good parts to train on, or parts to inspect.")
                .clicked()
            {
                commands.push(AppCommand::Dialog(DialogKind::AddImages));
            }
            if session.data.is_some()
                && ui
                    .add_enabled(!busy, egui::Button::new("Close"))
                    .on_hover_text("Forget these images and the results.")
                    .clicked()
            {
                commands.push(AppCommand::CloseData);
            }
        });
        ui.small("…or drop image files or folders on the window.");
        ui.horizontal_wrapped(|ui| {
            if let Some((what, _)) = session.undo.last()
                && ui
                    .add_enabled(!busy, egui::Button::new(format!("Undo {what}")))
                    .on_hover_text("Ctrl+Z")
                    .clicked()
            {
                commands.push(AppCommand::Undo);
            }
            if let Some((what, _)) = session.redo.last()
                && ui
                    .add_enabled(!busy, egui::Button::new(format!("Redo {what}")))
                    .on_hover_text("Ctrl+Shift+Z or Ctrl+Y")
                    .clicked()
            {
                commands.push(AppCommand::Redo);
            }
        });
        self.drop_ui(ui, commands);
        let Some(data) = &session.data else {
            return;
        };
        ui.add_space(4.0);
        if data.is_demo {
            egui::Frame::new()
                .fill(ui.visuals().warn_fg_color.gamma_multiply(0.12))
                .inner_margin(4.0)
                .corner_radius(4.0)
                .show(ui, |ui| {
                    ui.label(RichText::new("Demo data: a brick texture with drawn scratches and stains. It shows how the workstation works; it is not real inspection data.").color(ui.visuals().warn_fg_color));
                });
        }
        if let Some(root) = &data.root {
            ui.label(RichText::new(path_text(root)).monospace().small())
                .on_hover_text("The folder opened.");
        }
        summary_ui(ui, data);
        if data.layout != Layout::Mvtec && data.unlabelled_count() > 0 && data.good.is_empty() {
            ui.label(format!(
                "What are these {} images?",
                data.unlabelled_count()
            ));
            ui.horizontal_wrapped(|ui| {
                if ui.button("These are good parts (train on them)").clicked() {
                    commands.push(AppCommand::PlainImagesAreGood);
                }
                ui.label("or keep them to inspect and add good ones.");
            });
        }
        if !data.good.is_empty() {
            split_ui(ui, data, state, commands);
        }
        if !session.skipped.is_empty() {
            egui::CollapsingHeader::new(format!("Skipped files ({})", session.skipped.len()))
                .id_salt("skipped")
                .show(ui, |ui| {
                    egui::ScrollArea::vertical()
                        .max_height(120.0)
                        .id_salt("skipped_list")
                        .show(ui, |ui| {
                            for (path, reason) in &session.skipped {
                                ui.label(
                                    RichText::new(crate::core::message::skipped_line(path, reason))
                                        .small(),
                                );
                            }
                        });
                });
        }
    }

    fn drop_ui(&mut self, ui: &mut egui::Ui, commands: &mut Vec<AppCommand>) {
        let Some(paths) = &self.pending_drop else {
            return;
        };
        let mut done = false;
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.label(if paths.len() == 1 {
                "You dropped 1 file or folder. What is in it?".to_string()
            } else {
                format!(
                    "You dropped {} files or folders. What are they?",
                    paths.len()
                )
            });
            ui.horizontal_wrapped(|ui| {
                if ui.button("Good parts (train on them)").clicked() {
                    commands.push(AppCommand::AddImages {
                        paths: paths.clone(),
                        role: ImageRole::Good,
                    });
                    done = true;
                }
                if ui.button("Parts to inspect").clicked() {
                    commands.push(AppCommand::AddImages {
                        paths: paths.clone(),
                        role: ImageRole::Inspect,
                    });
                    done = true;
                }
                if ui.button("Ignore").clicked() {
                    done = true;
                }
            });
        });
        if done {
            self.pending_drop = None;
        }
    }
}

/// Counts of the images by role and type.
fn summary_ui(ui: &mut egui::Ui, data: &Workset) {
    let layout = match data.layout {
        Layout::Mvtec => "MVTec AD layout",
        Layout::Plain => "a plain folder of images",
        Layout::Dropped => "dropped images",
    };
    ui.label(format!("Found {layout}:"));
    egui::Grid::new("data_counts")
        .num_columns(2)
        .show(ui, |ui| {
            ui.label("good images (to train on)");
            ui.label(data.good.len().to_string());
            ui.end_row();
            ui.label("images to inspect");
            ui.label(data.inspect.len().to_string());
            ui.end_row();
            for (kind, n) in data.type_counts() {
                ui.label(format!("   {kind}"));
                ui.label(n.to_string());
                ui.end_row();
            }
            let masks = data.mask_count();
            if masks > 0 {
                ui.label("defect masks");
                ui.label(masks.to_string());
                ui.end_row();
            }
        });
}

/// How many good images to train on and to hold out.
fn split_ui(ui: &mut egui::Ui, data: &Workset, state: &mut State, commands: &mut Vec<AppCommand>) {
    let good = data.good.len();
    ui.add_space(4.0);
    let mut train = state.train_count.clamp(1, good.max(1));
    if ui
        .add(
            // Logarithmic: the usual 10-50 of hundreds of images get most of the track.
            egui::Slider::new(&mut train, 1..=good.max(1))
                .logarithmic(true)
                .text("good images to train on"),
        )
        .on_hover_text("More images teach the model more variation, and take longer.")
        .changed()
    {
        state.train_count = train;
    }
    let (train_set, val_set) = data.split(state.train_count, state.val_count);
    let mut val = val_set.len();
    let max_val = good / 2;
    ui.horizontal(|ui| {
        if ui
            .add_enabled(
                max_val > 0,
                egui::Slider::new(&mut val, 0..=max_val)
                    .logarithmic(true)
                    .text("held out to check"),
            )
            .on_hover_text("Good images kept out of training and scored, to learn what a good part scores and set a first threshold.")
            .changed()
        {
            state.val_count = Some(val);
        }
        if state.val_count.is_some() && ui.small_button("auto").on_hover_text("Pick the number held out automatically.").clicked() {
            state.val_count = None;
        }
    });
    let excluded = data.excluded_count();
    let chosen = data.choices.len() - excluded;
    let mut text = format!(
        "Training on {} and checking on {} of {} good images",
        train_set.len(),
        val_set.len(),
        good
    );
    if excluded > 0 {
        text += &format!(" ({excluded} excluded)");
    }
    if chosen > 0 {
        text += &format!("; {chosen} chosen by hand");
    }
    let called = data.called_good_to_train();
    if called > 0 {
        text += &format!(
            ", of them {called} part{} called good, on top of the {} above",
            if called == 1 { "" } else { "s" },
            state.train_count
        );
    }
    ui.label(text + ".");
    // Only where there is a choice: more good images than are trained on and held out.
    if data.training_is_a_choice(state.train_count, state.val_count) {
        ui.checkbox(&mut state.choose_training, "Choose the ones to train on by how they look")
            .on_hover_text("On: the good images to train on are the ones that best stand for all of them, as the backbone sees each one (k-medoids), so a model does not depend on a lucky draw; the held-out ones stay a seeded draw, a fair sample to set the line with. Off: a seeded draw.");
        if state.choose_training {
            ui.small(if data.has_preferred_order() {
                "The ones to train on are chosen by how they look."
            } else {
                "Choosing the ones to train on…"
            });
        }
    }
    if ui
        .button("See and choose them…")
        .on_hover_text("Shows the good images with their role. Right-click one to train on it, hold it out or exclude it.")
        .clicked()
    {
        commands.push(AppCommand::ShowGallery(crate::gui::gallery::View::Good));
    }
}
