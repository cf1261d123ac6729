//! Everything that touches libtorch (through tch). Front ends use it only through the
//! [`worker`]'s command and event enums.

pub mod alexnet;
pub mod backbone;
pub mod device;
pub mod efficientnet;
pub mod error;
pub mod flow;
pub mod lanes;
pub mod model;
pub mod model_file;
pub mod openmp;
pub mod train;
pub mod transforms;
pub mod weights;
pub mod worker;
