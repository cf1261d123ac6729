//! One module per kind of detector, each behind [`crate::engine::detector::Detector`].

pub mod cs_flow;
pub mod differnet;
pub mod fusion;
pub mod patchcore;
