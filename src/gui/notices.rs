//! Messages for the user: errors that stay until dismissed, and a one-line status.

use crate::gui::command::AppCommand;

/// Errors and the latest status line.
#[derive(Debug, Default)]
pub struct Notices {
    /// Errors not yet dismissed, oldest first.
    pub errors: Vec<String>,
    /// What happened last (saved, exported, cancelled...).
    pub status: Option<String>,
}

impl Notices {
    /// Adds an error message (a repeat of the last one is not shown twice).
    pub fn error(&mut self, message: impl Into<String>) {
        let message = message.into();
        if self.errors.last() != Some(&message) {
            self.errors.push(message);
        }
    }

    /// Replaces the status line.
    pub fn status(&mut self, message: impl Into<String>) {
        self.status = Some(message.into());
    }

    /// Shows the errors, each with a dismiss button, and a dead worker with a restart
    /// button.
    pub fn ui(&self, ui: &mut egui::Ui, worker_dead: Option<&str>, commands: &mut Vec<AppCommand>) {
        let error_frame = egui::Frame::new()
            .fill(ui.visuals().error_fg_color.gamma_multiply(0.15))
            .stroke(egui::Stroke::new(1.0, ui.visuals().error_fg_color))
            .corner_radius(4.0)
            .inner_margin(6.0);
        if let Some(reason) = worker_dead {
            error_frame.show(ui, |ui| {
                ui.horizontal_wrapped(|ui| {
                    ui.colored_label(
                        ui.visuals().error_fg_color,
                        format!("The engine stopped ({reason}). The trained model is lost; your images and results are kept."),
                    );
                    if ui.button("Restart worker").clicked() {
                        commands.push(AppCommand::RestartWorker);
                    }
                });
            });
        }
        for (i, message) in self.errors.iter().enumerate() {
            error_frame.show(ui, |ui| {
                ui.horizontal_wrapped(|ui| {
                    ui.colored_label(ui.visuals().error_fg_color, message);
                    if ui.button("Dismiss").clicked() {
                        commands.push(AppCommand::DismissError(i));
                    }
                });
            });
        }
    }
}
