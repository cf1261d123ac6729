//! DifferNet inspection workstation.
//!
//! The layers are visible in the tree:
//! - [`core`]: pure Rust (configuration, data set discovery, image decoding, the worker
//!   protocol, metrics, colormaps). No tch, no egui.
//! - [`engine`]: everything that touches libtorch through tch (backbones, the normalizing
//!   flow, training, scoring, localisation, the model file, the worker thread).
//! - [`line`]: the production line (a folder watch that sorts parts, journalled); it drives
//!   a worker and touches no tensor.
//! - [`gui`] (egui) and [`cli`] (the command line) come on top, side by side; the
//!   binaries in `src/bin` only call them.
//!
//! ARCHITECTURE.md at the root says what each may touch and where things go.

pub mod cli;
pub mod core;
pub mod engine;
pub mod gui;
pub mod line;
