//! Native file dialogs (rfd) shown from a helper thread, so the window keeps repainting
//! and draining worker events while a dialog is open. Tests never open one: they send the
//! path commands directly.

use crate::core::protocol::Waker;
use crate::gui::command::{AppCommand, DialogKind};
use crossbeam_channel::{Receiver, Sender, unbounded};
use std::path::PathBuf;

/// File extension of model files.
pub const MODEL_EXTENSION: &str = "differnet";

/// At most one open dialog and its answer.
pub struct Dialogs {
    tx: Sender<Option<AppCommand>>,
    rx: Receiver<Option<AppCommand>>,
    open: bool,
}

impl Default for Dialogs {
    fn default() -> Self {
        let (tx, rx) = unbounded();
        Self {
            tx,
            rx,
            open: false,
        }
    }
}

impl Dialogs {
    /// Whether a dialog is showing.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Shows a dialog of `kind` starting in `folder`; its answer comes from [`Self::poll`].
    /// Returns an error when the helper thread cannot start.
    pub fn show(
        &mut self,
        kind: DialogKind,
        folder: Option<PathBuf>,
        waker: Waker,
    ) -> Result<(), String> {
        if self.open {
            return Ok(());
        }
        let tx = self.tx.clone();
        std::thread::Builder::new()
            .name("differnet-dialog".into())
            .spawn(move || {
                let answer = ask(kind, folder);
                let _ = tx.send(answer);
                waker();
            })
            .map_err(|e| format!("cannot open a file dialog: {e}"))?;
        self.open = true;
        Ok(())
    }

    /// The command chosen in the dialog, once it closes (`None` inside when cancelled).
    pub fn poll(&mut self) -> Option<Option<AppCommand>> {
        let answer = self.rx.try_recv().ok()?;
        self.open = false;
        Some(answer)
    }
}

/// Shows the dialog and turns the chosen path into a command.
fn ask(kind: DialogKind, folder: Option<PathBuf>) -> Option<AppCommand> {
    let mut dialog = rfd::FileDialog::new();
    if let Some(f) = folder.filter(|f| f.is_dir()) {
        dialog = dialog.set_directory(f);
    }
    match kind {
        DialogKind::OpenData => dialog
            .set_title("Open a folder of images")
            .pick_folder()
            .map(AppCommand::OpenData),
        DialogKind::AddImages => dialog
            .set_title("Add images")
            .add_filter("Images", crate::core::image_io::IMAGE_EXTENSIONS)
            .pick_files()
            .map(AppCommand::OfferImages),
        DialogKind::LoadModel => dialog
            .set_title("Load a model")
            .add_filter("DifferNet model", &[MODEL_EXTENSION])
            .pick_file()
            .map(AppCommand::LoadModel),
        DialogKind::SaveModel => dialog
            .set_title("Save the model")
            .add_filter("DifferNet model", &[MODEL_EXTENSION])
            .set_file_name(format!("model.{MODEL_EXTENSION}"))
            .save_file()
            .map(AppCommand::SaveModel),
        DialogKind::ExportCsv => dialog
            .set_title("Export scores as CSV")
            .add_filter("CSV", &["csv"])
            .set_file_name("parts.csv")
            .save_file()
            .map(AppCommand::ExportCsv),
        DialogKind::ExportHeatmaps => dialog
            .set_title("Folder for heatmap images")
            .pick_folder()
            .map(AppCommand::PlanHeatmapExport),
    }
}
