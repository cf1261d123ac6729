//! One module per kind of detector, each behind [`crate::engine::detector::Detector`], and
//! [`common`]: what the kinds and the interface share (the kinds import from it, never
//! from the interface, which dispatches to them).

pub mod common;
pub mod cs_flow;
pub mod differnet;
pub mod fusion;
pub mod patchcore;
