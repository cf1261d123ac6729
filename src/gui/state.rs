//! The settings the workstation remembers between runs (eframe persistence). Runtime
//! handles (the worker, textures, results) live elsewhere and are never saved.

use crate::core::colormap::Colormap;
use crate::core::config::{DetectorKind, Preset};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Key of [`State`] in eframe's storage.
pub const STATE_KEY: &str = "differnet-workstation";

/// Good images to train on unless the user says otherwise.
pub const DEFAULT_TRAIN_COUNT: usize = 16;

/// Persisted user settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    /// The data folder opened last.
    pub data_folder: Option<PathBuf>,
    /// The folder a model was last saved to or loaded from.
    pub model_folder: Option<PathBuf>,
    /// The folder a CSV or heatmaps were last exported to.
    pub export_folder: Option<PathBuf>,
    /// Good images to train on.
    pub train_count: usize,
    /// Good images held out for validation; `None` picks
    /// [`crate::core::dataset::default_val_count`].
    pub val_count: Option<usize>,
    /// Which detector to train.
    pub detector: DetectorKind,
    /// DifferNet's settings bundle.
    pub preset: Preset,
    /// Colormap of the heatmap overlay.
    pub colormap: Colormap,
    /// Opacity of the heatmap overlay in `[0, 1]`.
    pub heat_opacity: f32,
    /// Whether the heatmap is drawn over the opened part.
    pub show_heat: bool,
    /// Whether the known defect's outline (the ground-truth mask) is drawn over it.
    pub show_mask: bool,
    /// Heat colours from the part's own median to its hottest pixel, instead of against
    /// the good parts.
    pub heat_within_part: bool,
    /// Whether a review band is used below the reject threshold.
    pub review_band: bool,
    /// Target false-reject rate for the automatic threshold, in percent of good parts.
    pub target_false_reject_pct: f64,
    /// Share of the labelled defects a line should catch, in percent.
    pub target_recall_pct: f64,
    /// What an escape (a defect accepted) costs, in false rejects.
    pub escape_cost: f64,
    /// Share of the parts on the line that are defective, in percent.
    pub defect_share_pct: f64,
    /// Train on confirmed defective parts too (detectors that can learn from them).
    pub train_on_defects: bool,
    /// How many confirmed defective parts of each defect type to learn from.
    pub defects_per_type: usize,
    /// The Line view's camera folder, as last started.
    pub line_input: Option<PathBuf>,
    /// The Line view's sorted folder, as last started.
    pub line_output: Option<PathBuf>,
    /// Choose the good images to train on by how they look to the backbone (so they cover
    /// the good parts); off: a seeded draw.
    pub choose_training: bool,
}

impl Default for State {
    fn default() -> Self {
        Self {
            data_folder: None,
            model_folder: None,
            export_folder: None,
            train_count: DEFAULT_TRAIN_COUNT,
            val_count: None,
            detector: DetectorKind::default(),
            preset: Preset::Fast,
            colormap: Colormap::default(),
            heat_opacity: crate::core::heatmap_image::HEATMAP_OPACITY,
            show_heat: true,
            show_mask: true,
            heat_within_part: false,
            review_band: false,
            target_false_reject_pct: 1.0,
            target_recall_pct: 90.0,
            escape_cost: 10.0,
            defect_share_pct: 2.0,
            train_on_defects: false,
            defects_per_type: 5,
            line_input: None,
            line_output: None,
            choose_training: true,
        }
    }
}
