//! What the UI asks for. Panels record [`AppCommand`]s while drawing; the app applies them
//! after the frame, so no panel ever mutates another one's state.

use crate::core::dataset::Label;
use crate::core::decision::Thresholds;
use crate::core::training_set::RoleChoice;
pub use crate::gui::workset::ImageRole;
use std::path::PathBuf;

/// What the gallery shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The parts to inspect (scored or not).
    Parts,
    /// The good images, with their role in training.
    Good,
}

/// Which file dialog to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogKind {
    /// Pick a data folder.
    OpenData,
    /// Pick image files to add.
    AddImages,
    /// Pick a model file to load.
    LoadModel,
    /// Pick where to save the model.
    SaveModel,
    /// Pick where to write the CSV of parts.
    ExportCsv,
    /// Pick a folder for heatmap images.
    ExportHeatmaps,
    /// Pick one of the Line view's folders.
    LineFolder(LineFolder),
}

/// The Line view's folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFolder {
    /// Where the camera writes new images.
    Camera,
    /// Where the parts are sorted into.
    Sorted,
}

/// A request recorded by UI code and applied after the frame.
#[must_use]
#[derive(Debug, Clone, PartialEq)]
pub enum AppCommand {
    /// Open a data folder (MVTec AD layout or a plain folder of images).
    OpenData(PathBuf),
    /// Add image files or folders (dropped on the window) with a role.
    AddImages {
        /// Files and folders, expanded with [`crate::core::dataset::list_images`].
        paths: Vec<PathBuf>,
        /// What they are.
        role: ImageRole,
    },
    /// Ask what these files and folders are (good parts or parts to inspect), as when
    /// they are dropped on the window.
    OfferImages(Vec<PathBuf>),
    /// Declare the images to inspect of a plain folder good, to train on them.
    PlainImagesAreGood,
    /// Set (or with `None` clear) the user's choice for one good image: train on it, hold
    /// it out or exclude it.
    ChooseRole {
        /// The good image.
        path: PathBuf,
        /// The choice; `None` leaves it to the seeded split.
        choice: Option<RoleChoice>,
    },
    /// Say an inspected part is good: label it good and train on it next time.
    MarkGood(PathBuf),
    /// Change the label of an image to inspect.
    Relabel {
        /// The image.
        path: PathBuf,
        /// Its new label.
        label: Label,
    },
    /// Undo the last edit of the images.
    Undo,
    /// Do the last undone edit again.
    Redo,
    /// Show the parts or the good images in the gallery.
    ShowGallery(View),
    /// Stop comparing the parts' calls with the previous model's.
    ForgetPreviousCalls,
    /// Put the lines where the new model puts them, after a retrain kept the user's.
    UseModelLine,
    /// Forget the data set and the results.
    CloseData,
    /// Show a file dialog (off the UI thread); its answer becomes another command.
    Dialog(DialogKind),
    /// Train a model on the good images.
    Train,
    /// Cancel the running job.
    Cancel,
    /// Score the images to inspect with the current model.
    Inspect,
    /// Set the reject threshold and review band.
    SetThresholds(Thresholds),
    /// Move the reject line only (the review line stays where the user put it).
    SetReject(f64),
    /// Move the review line only; `None` removes the band.
    SetReview(Option<f64>),
    /// Open a part large, computing its heatmap when needed.
    OpenPart(PathBuf),
    /// Close the opened part.
    ClosePart,
    /// Open the part `n` places after (or, negative, before) the opened one, in the
    /// gallery's order.
    StepPart(isize),
    /// Save the model (with the current reject threshold) to this file.
    SaveModel(PathBuf),
    /// Load a model file.
    LoadModel(PathBuf),
    /// Write every part's path, score and decision to this CSV file.
    ExportCsv(PathBuf),
    /// Say how many heatmaps of the parts shown would be written to this folder and how
    /// long that takes, and ask to go on.
    PlanHeatmapExport(PathBuf),
    /// Write heatmap overlays of the parts shown in the gallery to this folder: the ones
    /// already computed at once, the others as the worker computes them.
    ExportHeatmaps(PathBuf),
    /// Fill in one of the Line view's folders.
    SetLineFolder {
        /// Which folder.
        which: LineFolder,
        /// The folder chosen.
        path: PathBuf,
    },
    /// Start the line: sort parts from `input` into `output` with the model file `model`.
    StartLine {
        /// The model file.
        model: PathBuf,
        /// Save the current model as that file first (a model trained here, not saved).
        save_first: bool,
        /// The folder the camera writes to.
        input: PathBuf,
        /// The folder parts are sorted into.
        output: PathBuf,
    },
    /// Stop the line after the part in flight.
    StopLine,
    /// Add the parts of a line's recent-good folder to the good images, to look through
    /// and retrain with (nothing is trained until the user clicks Train).
    ProposeRecentGood(PathBuf),
    /// Start a fresh worker after a crash.
    RestartWorker,
    /// Remove the error message with this index.
    DismissError(usize),
}
