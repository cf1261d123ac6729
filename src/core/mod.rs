//! Pure Rust parts shared by the engine and the front ends. Nothing here names a tch or
//! an egui type.

pub mod atomic_file;
pub mod calibration;
pub mod caption;
pub mod colormap;
pub mod config;
pub mod dataset;
pub mod decision;
pub mod diverse;
pub mod download;
pub mod drift;
pub mod folder_edits;
pub mod heat_layer;
pub mod heatmap_image;
pub mod histogram;
pub mod image_io;
pub mod journal;
pub mod message;
pub mod metrics;
pub mod model_header;
pub mod overlay;
pub mod protocol;
pub mod provenance;
pub mod report;
pub mod rng;
pub mod torch_pickle;
pub mod training_set;
