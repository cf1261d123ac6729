//! The header of a model file, read without libtorch.
//!
//! A model file (written and loaded by `engine::model_file`) is a safetensors file whose
//! metadata holds one JSON entry, under the key [`META_KEY`], with the format name, the
//! format version, the configuration and what training learnt. This module finds that
//! entry and checks the format name and version; turning it into typed metadata and the
//! tensors into a network is the engine's job. Being pure, it is what `fuzz/` runs.

use crate::core::message::one_line;
use safetensors::SafeTensors;

/// Value of the `format` field.
pub const FORMAT_NAME: &str = "differnet-model";
/// The newest format version this build reads and the one it writes.
///
/// - 1: DifferNet only; its settings under `config`.
/// - 2: any detector; its kind and settings under `detector` (tagged by `kind`), the
///   DifferNet permutations only for DifferNet, a PatchCore's memory bank as the tensor
///   `bank`. Version 1 files are read as version 2 DifferNet files.
pub const FORMAT_VERSION: u32 = 2;
/// Key of the JSON entry in the safetensors metadata.
pub const META_KEY: &str = "differnet";

/// The DifferNet metadata of a model file, given its bytes: the safetensors header is
/// parsed (which checks that the tensor table matches the file's length), the JSON entry
/// found and parsed, and its format name and version checked.
///
/// # Errors
/// A one-line message of bounded length without the file's path, for the caller to
/// attach (the parsers' messages quote the file, so they go through
/// [`one_line`]): not a
/// safetensors file, no DifferNet entry, JSON that does not parse, another format, a
/// missing version, or a version newer than [`FORMAT_VERSION`].
pub fn metadata_json(bytes: &[u8]) -> Result<serde_json::Value, String> {
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| format!("not a model file ({})", one_line(&e.to_string())))?;
    let json = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(META_KEY))
        .ok_or("not a DifferNet model file (no differnet metadata)")?;
    let value: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| format!("bad metadata: {}", one_line(&e.to_string())))?;
    if value.get("format").and_then(|v| v.as_str()) != Some(FORMAT_NAME) {
        return Err("not a DifferNet model file (wrong format name)".to_owned());
    }
    let version = value
        .get("format_version")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    if version > u64::from(FORMAT_VERSION) {
        return Err(format!(
            "format version {version} is newer than this program reads ({FORMAT_VERSION}); \
             update the workstation"
        ));
    }
    if version == 0 {
        return Err("missing format version".to_owned());
    }
    Ok(upgrade(value, version))
}

/// Metadata of an older version in the shape of the current one.
fn upgrade(mut value: serde_json::Value, version: u64) -> serde_json::Value {
    if version == 1
        && let Some(object) = value.as_object_mut()
        && let Some(mut config) = object.remove("config")
    {
        // Version 1 held DifferNet settings only, untagged.
        if let Some(c) = config.as_object_mut() {
            c.insert("kind".into(), "differnet".into());
        }
        object.insert("detector".into(), config);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A safetensors file without tensors whose metadata entry is `json`.
    fn header_only(json: &str) -> Vec<u8> {
        let metadata = HashMap::from([(META_KEY.to_owned(), json.to_owned())]);
        let no_tensors: Vec<(String, safetensors::tensor::TensorView<'_>)> = Vec::new();
        safetensors::serialize(no_tensors, Some(metadata)).expect("serialise")
    }

    #[test]
    fn finds_and_checks_the_metadata() {
        let value = metadata_json(&header_only(
            r#"{"format":"differnet-model","format_version":1}"#,
        ))
        .expect("parse");
        assert_eq!(value["format_version"], 1);
    }

    #[test]
    fn version_1_settings_become_a_tagged_differnet_detector() {
        let value = metadata_json(&header_only(
            r#"{"format":"differnet-model","format_version":1,"config":{"model":{"n_blocks":8}}}"#,
        ))
        .expect("parse");
        assert!(value.get("config").is_none());
        assert_eq!(value["detector"]["kind"], "differnet");
        assert_eq!(value["detector"]["model"]["n_blocks"], 8);
    }

    #[test]
    fn refuses_what_is_not_a_current_model_file() {
        let error = |bytes: &[u8]| metadata_json(bytes).unwrap_err();
        assert!(error(b"").starts_with("not a model file"));
        assert!(error(b"GIF89a this is not a model").starts_with("not a model file"));
        // A header length far beyond the file.
        assert!(error(&u64::MAX.to_le_bytes()).starts_with("not a model file"));
        assert!(error(&header_only("{")).starts_with("bad metadata"));
        assert!(
            error(&header_only(r#"{"format":"other","format_version":1}"#))
                .contains("wrong format name")
        );
        assert_eq!(
            error(&header_only(r#"{"format":"differnet-model"}"#)),
            "missing format version"
        );
        assert!(
            error(&header_only(
                r#"{"format":"differnet-model","format_version":3}"#
            ))
            .contains("newer")
        );
        let other_key = {
            let metadata = HashMap::from([("other".to_owned(), "{}".to_owned())]);
            let none: Vec<(String, safetensors::tensor::TensorView<'_>)> = Vec::new();
            safetensors::serialize(none, Some(metadata)).expect("serialise")
        };
        assert!(error(&other_key).contains("no differnet metadata"));
    }

    #[test]
    fn messages_that_quote_the_file_stay_on_one_short_line() {
        // Found by fuzz/ model_meta: safetensors quotes an unknown dtype, line breaks and
        // all, in its error.
        let header = format!(
            r#"{{"t":{{"dtype":"F\n{}","shape":[],"data_offsets":[0,0]}}}}"#,
            "3".repeat(5000)
        );
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        let message = metadata_json(&bytes).unwrap_err();
        assert!(message.starts_with("not a model file ("), "{message}");
        assert!(!message.contains('\n'), "{message}");
        assert!(message.chars().count() < 300, "{message}");
        // The same for serde_json's messages about the metadata entry.
        let json = format!("{{\"format\": \"{}\n", "z".repeat(5000));
        let message = metadata_json(&header_only(&json)).unwrap_err();
        assert!(message.starts_with("bad metadata: "), "{message}");
        assert!(message.chars().count() < 300, "{message}");
    }
}
