//! DifferNet inspection workstation.
//!
//! The layers are visible in the tree:
//! - [`core`]: pure Rust (configuration, data set discovery, image decoding, the worker
//!   protocol, metrics, colormaps). No tch, no egui.
//! - [`engine`]: everything that touches libtorch through tch (backbones, the normalizing
//!   flow, training, scoring, localisation, the model file, the worker thread).
//! - `gui` (egui) comes on top; the binaries in `src/bin` are thin.

pub mod core;
pub mod engine;
pub mod gui;
