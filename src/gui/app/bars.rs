//! The top bar (the data, the model, the job and its Stop) and the banner of what changed
//! since the model was trained.

use super::*;
impl WorkstationApp {
    /// What changed since the model was trained: the good images (with one click to
    /// train again), and after a new model, which parts moved across the line.
    pub(super) fn changes_ui(
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
            busy,
        );
        if self.changes.as_ref().is_none_or(|c| c.0 != key) {
            let text = self.training_changes();
            // Which parts moved is said once every part has its new score, not while
            // the count still grows.
            let moves = (!busy).then(|| self.session.moves()).flatten().map(|m| {
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
        // On a short window each banner folds to one line (all of it on hover), so the
        // gallery keeps its rows.
        let fold = ui.available_height() < FOLD_BANNERS_BELOW;
        if let Some(text) = training {
            banner(ui, text, fold, |ui| {
                if ui
                    .add_enabled(!busy && worker_ok, egui::Button::new(RichText::new("Retrain").strong()))
                    .on_hover_text("Train a new model on the good images as they are now, then inspect the parts again and show which ones changed their call.")
                    .on_disabled_hover_text("Wait for the current job to finish.")
                    .clicked()
                {
                    commands.push(AppCommand::Train);
                }
            });
        }
        if let Some(text) = moves {
            let some_moved = text.starts_with(|c: char| c.is_ascii_digit());
            let text = format!("Compared with the previous model: {text}");
            let model_line = self.session.model_line.is_some();
            let mut show = false;
            banner(ui, &text, fold, |ui| {
                if some_moved && ui.button("Show them").clicked() {
                    show = true;
                }
                if model_line
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
            if show {
                self.gallery.set_view(crate::gui::gallery::View::Parts);
                self.gallery.set_filter(crate::gui::gallery::Filter::Moved);
            }
        }
    }

    /// How the good images to train on differ from the ones the current model was trained
    /// here on; `None` when they do not or the model was not trained here.
    pub(super) fn training_changes(&self) -> Option<String> {
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

    pub(super) fn top_bar_ui(
        &mut self,
        ui: &mut egui::Ui,
        busy: bool,
        commands: &mut Vec<AppCommand>,
    ) {
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
                        // Shortened to fit; a shortened label shows all of it on hover.
                        ui.add(egui::Label::new(job.describe()).truncate());
                    });
                });
            } else if let Some(status) = &self.notices.status {
                ui.add(egui::Label::new(RichText::new(status).weak()).truncate());
            }
        });
    }
}

/// Below this height of the central panel the banners fold to one line each.
const FOLD_BANNERS_BELOW: f32 = 800.0;

/// A banner of what changed: `text` with its buttons after it, wrapped; or, `fold`ed, on
/// one line with the buttons at the right and the text shortened (all of it on hover).
fn banner(ui: &mut egui::Ui, text: &str, fold: bool, buttons: impl FnOnce(&mut egui::Ui)) {
    egui::Frame::new()
        .fill(style::GOOD.gamma_multiply(0.12))
        .inner_margin(6.0)
        .corner_radius(4.0)
        .show(ui, |ui| {
            if fold {
                ui.horizontal(|ui| {
                    ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                        buttons(ui);
                        // The text from the left, in what the buttons leave.
                        ui.with_layout(egui::Layout::left_to_right(egui::Align::Center), |ui| {
                            ui.add(egui::Label::new(text).truncate());
                        });
                    });
                });
            } else {
                ui.horizontal_wrapped(|ui| {
                    ui.label(text);
                    buttons(ui);
                });
            }
        });
    ui.add_space(4.0);
}
