//! Native file dialogs (rfd) shown from a helper thread, so the window keeps repainting
//! and draining worker events while a dialog is open. Tests never open one: they send the
//! path commands directly.

use crate::core::protocol::Waker;
use crate::gui::command::{AppCommand, DialogKind, LineFolder};
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
/// The name a dialog starts with: `name` in `folder`. rfd passes the starting folder to
/// the desktop portal, but its fallback without one (zenity, where there is no session
/// bus) takes only a file name: there the name carries the folder (a trailing `/` for a
/// dialog that picks folders or opens files), so the dialog starts in it all the same.
fn start_name(folder: Option<&PathBuf>, name: Option<&str>, no_portal: bool) -> Option<String> {
    match (folder, name) {
        (Some(f), name) if no_portal => {
            Some(format!("{}/{}", f.display(), name.unwrap_or_default()))
        }
        (_, name) => name.map(str::to_owned),
    }
}

fn ask(kind: DialogKind, folder: Option<PathBuf>) -> Option<AppCommand> {
    let mut dialog = rfd::FileDialog::new();
    let folder = folder.filter(|f| f.is_dir());
    if let Some(f) = &folder {
        dialog = dialog.set_directory(f);
    }
    let name = match kind {
        DialogKind::SaveModel => Some(format!("model.{MODEL_EXTENSION}")),
        DialogKind::ExportCsv => Some("parts.csv".to_owned()),
        _ => None,
    };
    let no_portal = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none();
    if let Some(n) = start_name(folder.as_ref(), name.as_deref(), no_portal) {
        dialog = dialog.set_file_name(n);
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
            .save_file()
            .map(AppCommand::SaveModel),
        DialogKind::ExportCsv => dialog
            .set_title("Export scores as CSV")
            .add_filter("CSV", &["csv"])
            .save_file()
            .map(AppCommand::ExportCsv),
        DialogKind::ExportHeatmaps => dialog
            .set_title("Folder for heatmap images")
            .pick_folder()
            .map(AppCommand::PlanHeatmapExport),
        DialogKind::LineFolder(which) => dialog
            .set_title(match which {
                LineFolder::Camera => "The folder the camera writes into",
                LineFolder::Sorted => "The folder to sort parts into",
            })
            .pick_folder()
            .map(|path| AppCommand::SetLineFolder { which, path }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_portal_the_name_carries_the_folder() {
        let f = PathBuf::from("/data/tiles");
        assert_eq!(
            start_name(Some(&f), None, true).as_deref(),
            Some("/data/tiles/")
        );
        assert_eq!(
            start_name(Some(&f), Some("parts.csv"), true).as_deref(),
            Some("/data/tiles/parts.csv")
        );
        // The portal takes the folder itself: the name stays a name.
        assert_eq!(
            start_name(Some(&f), Some("parts.csv"), false).as_deref(),
            Some("parts.csv")
        );
        assert_eq!(start_name(Some(&f), None, false), None);
        assert_eq!(start_name(None, None, true), None);
    }
}
