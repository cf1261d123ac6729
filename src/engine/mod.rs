//! Everything that touches libtorch (through tch). Front ends use it only through the
//! [`worker`]'s command and event enums.
//!
//! The detectors share one interface, [`detector::Detector`], which the worker, the
//! scoring lanes and the model file use; each kind lives under [`detectors`].

pub mod alexnet;
pub mod backbone;
pub mod choose;
pub mod detector;
pub mod detectors;
pub mod device;
pub mod efficientnet;
pub mod environment;
pub mod error;
pub mod init;
pub mod lanes;
pub mod model_file;
pub mod synthetic;
pub mod transforms;

pub mod weights;
pub mod worker;
