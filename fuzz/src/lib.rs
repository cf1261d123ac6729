//! The parsers of `differnet` that read untrusted bytes, compiled from the main crate's own
//! source files (see [`core`]) so that the fuzz targets run exactly the shipped code
//! without linking libtorch or egui, and the checks that fuzz targets share.

pub mod core;

use crate::core::config::DifferNetConfig;
use crate::core::message::MAX_QUOTED_CHARS;
use crate::core::model_header::{FORMAT_NAME, metadata_json};

/// Reads `bytes` as a model file does (`model_header::metadata_json`, the byte-level part
/// of `engine::model_file::read_meta` and `load`), then does what loading does with the
/// configuration before any tensor exists: deserialise it and validate it, and, when it
/// is valid, derive the feature dimension, the scales and the test angles from it.
/// Panics when an error message is not one line of bounded length.
pub fn check_model_file(bytes: &[u8]) {
    let value = match metadata_json(bytes) {
        Ok(value) => value,
        Err(message) => {
            // One line of bounded length, though the parsers quote the file.
            assert!(!message.is_empty(), "{message}");
            assert!(!message.contains(['\n', '\r']), "{message}");
            assert!(message.chars().count() <= 2 * MAX_QUOTED_CHARS, "{message}");
            return;
        }
    };
    assert_eq!(value["format"], FORMAT_NAME);
    let Some(config) = value.get("config") else {
        return;
    };
    let Ok(config) = serde_json::from_value::<DifferNetConfig>(config.clone()) else {
        return;
    };
    // `model_file::load` validates the configuration; scoring then takes the test angles
    // from it.
    if config.validate().is_ok() {
        let dim = config.model.feature_dim();
        assert!(dim >= 2);
        assert_eq!(config.model.scale_sizes().len(), config.model.n_scales);
        // `black_box`: the optimiser would otherwise drop the unused allocation.
        let angles = std::hint::black_box(config.score.angles_deg());
        assert!(!angles.is_empty());
    }
}

/// A model file without tensors whose DifferNet metadata entry is `json`, laid out as
/// safetensors writes it: the header's length (8 bytes, little-endian), then the header.
pub fn model_file_with_metadata(json: &str) -> Vec<u8> {
    let header = serde_json::json!({ "__metadata__": { "differnet": json } }).to_string();
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes
}
