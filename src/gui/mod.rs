//! The egui workstation: open images, train, inspect, set the threshold, review flagged
//! parts with their heatmaps, and keep the work.
//!
//! Nothing here names a tch type: all heavy work runs on the engine's worker
//! ([`crate::engine::worker`]) through the [`crate::core::protocol`] enums, and the worker
//! wakes the window through a closure. Panels own only their own state, read the
//! [`session::Session`] and record [`command::AppCommand`]s that [`app::WorkstationApp`]
//! applies after the frame.

#![warn(missing_docs)]

pub mod app;
pub mod command;
pub mod data_panel;
pub mod dialogs;
pub mod frame_log;
pub mod gallery;
pub mod heatmap_export;
pub mod image_loader;
pub mod line_panel;
pub mod notices;
pub mod part_view;
pub mod results_panel;
pub mod score_axis;
pub mod session;
pub mod state;
pub mod style;
pub mod training_log;
pub mod training_panel;
pub mod worker_link;
pub mod workset;

pub use app::{AppOptions, WorkstationApp};
