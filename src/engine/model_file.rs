//! The model file: one safetensors file holding the flow's weights, with a JSON metadata
//! entry (format version, backbone, configuration, permutations, validation statistics,
//! threshold, heat scale). Loading parses data only and never executes code. Saving is
//! atomic: a temporary file in the same folder, flushed to disk, then renamed.

use crate::core::config::DifferNetConfig;
use crate::core::message::one_line;
use crate::core::model_header::{self, META_KEY};
use crate::engine::backbone::{Backbone, copy_named};
use crate::engine::error::{EngineError, Result};
use crate::engine::flow::check_permutation;
use crate::engine::model::{DifferNet, ModelState};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use tch::{Device, Kind, Tensor};

pub use crate::core::model_header::{FORMAT_NAME, FORMAT_VERSION};

/// The JSON metadata of a model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// File format version.
    pub format_version: u32,
    /// Architecture, training and scoring settings (the backbone is in `config.model`).
    pub config: DifferNetConfig,
    /// One permutation of 0..D per coupling block.
    pub permutations: Vec<Vec<i64>>,
    /// Validation statistics, threshold, heat scale.
    pub state: ModelState,
    /// The program that wrote the file.
    pub written_by: String,
}

fn model_err(path: &Path, message: impl Into<String>) -> EngineError {
    EngineError::ModelFile {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Writes `model` to `path` atomically: either the new file is complete or the previous
/// file at `path` is untouched.
pub fn save(model: &DifferNet, path: &Path) -> Result<()> {
    let meta = ModelMeta {
        format: FORMAT_NAME.into(),
        format_version: FORMAT_VERSION,
        config: model.config.clone(),
        permutations: model.flow.permutations().to_vec(),
        state: model.state.clone(),
        written_by: format!("differnet {}", env!("CARGO_PKG_VERSION")),
    };
    let json = serde_json::to_string(&meta).map_err(|e| model_err(path, e.to_string()))?;
    let variables = model.vs.variables();
    let mut buffers: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(variables.len());
    for (name, t) in &variables {
        let t = t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        let values =
            Vec::<f32>::try_from(t.flatten(0, -1)).map_err(|e| model_err(path, e.to_string()))?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        buffers.push((name.clone(), shape, bytes));
    }
    let views = buffers
        .iter()
        .map(|(n, s, b)| Ok((n.clone(), TensorView::new(Dtype::F32, s.clone(), b)?)))
        .collect::<std::result::Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(|e| model_err(path, e.to_string()))?;
    let metadata = HashMap::from([(META_KEY.to_string(), json)]);
    let bytes = safetensors::serialize(views, Some(metadata))
        .map_err(|e| model_err(path, e.to_string()))?;
    write_atomic(path, &bytes).map_err(|e| model_err(path, format!("cannot write: {e}")))
}

/// Writes `bytes` to `path` through a temporary file in the same folder, flushed to disk
/// and renamed over the destination, then flushes the folder entry.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no file name"))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Reads only the metadata of a model file.
pub fn read_meta(path: &Path) -> Result<ModelMeta> {
    let bytes = std::fs::read(path).map_err(|e| model_err(path, format!("cannot read: {e}")))?;
    parse_meta(path, &bytes)
}

/// Parses the metadata of a model file from its bytes; `path` names it in errors. The
/// byte-level part is [`model_header::metadata_json`], which `fuzz/` exercises.
pub fn parse_meta(path: &Path, bytes: &[u8]) -> Result<ModelMeta> {
    let value = model_header::metadata_json(bytes).map_err(|message| model_err(path, message))?;
    // serde's messages quote the file (an unknown variant, a bad key): keep them short.
    serde_json::from_value(value)
        .map_err(|e| model_err(path, format!("bad metadata: {}", one_line(&e.to_string()))))
}

/// Loads a model file, checking every tensor's name, dtype and shape against the
/// metadata, on top of `backbone` (which must be the one the model was trained with).
pub fn load(path: &Path, backbone: Rc<Backbone>, device: Device) -> Result<DifferNet> {
    let bytes = std::fs::read(path).map_err(|e| model_err(path, format!("cannot read: {e}")))?;
    let meta = parse_meta(path, &bytes)?;
    meta.config
        .validate()
        .map_err(|e| model_err(path, format!("invalid configuration: {e}")))?;
    let dim = meta.config.model.feature_dim();
    if meta.permutations.len() != meta.config.model.n_blocks {
        return Err(model_err(
            path,
            "number of permutations does not match the blocks",
        ));
    }
    for perm in &meta.permutations {
        check_permutation(perm, dim).map_err(|e| model_err(path, e))?;
    }
    if backbone.kind() != meta.config.model.backbone {
        return Err(model_err(
            path,
            format!("model needs backbone {}", meta.config.model.backbone),
        ));
    }
    let st = SafeTensors::deserialize(&bytes).map_err(|e| model_err(path, e.to_string()))?;
    let mut model = DifferNet::with_permutations(
        meta.config.clone(),
        backbone,
        device,
        meta.permutations.clone(),
    )
    .map_err(|e| model_err(path, e))?;
    let expected = model.vs.variables();
    if st.len() != expected.len() {
        return Err(model_err(
            path,
            format!(
                "{} tensors in the file, {} expected by its metadata",
                st.len(),
                expected.len()
            ),
        ));
    }
    let mut named = Vec::with_capacity(st.len());
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(model_err(
                path,
                format!(
                    "tensor {} is {:?}, expected F32",
                    one_line(&name),
                    view.dtype()
                ),
            ));
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let t = Tensor::from_slice(&values).view(shape.as_slice());
        if values.iter().any(|v| !v.is_finite()) {
            return Err(model_err(
                path,
                format!("tensor {} holds NaN or infinite values", one_line(&name)),
            ));
        }
        named.push((name, t));
    }
    copy_named(&mut model.vs, &named).map_err(|e| model_err(path, e))?;
    model.vs.freeze();
    model.state = meta.state;
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_metadata_is_one_short_line() {
        // serde quotes an unknown backbone, line breaks and all.
        let meta = format!(
            r#"{{"format":"{FORMAT_NAME}","format_version":1,"config":{{"model":{{"backbone":"x\n{}"}}}}}}"#,
            "y".repeat(5000)
        );
        let metadata = HashMap::from([(META_KEY.to_owned(), meta)]);
        let no_tensors: Vec<(String, TensorView<'_>)> = Vec::new();
        let bytes = safetensors::serialize(no_tensors, Some(metadata)).expect("serialise");
        let message = parse_meta(Path::new("m.safetensors"), &bytes)
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("model file error (bad metadata: unknown variant `x; yyy"),
            "{message}"
        );
        assert!(message.ends_with(": m.safetensors"), "{message}");
        assert!(!message.contains('\n'));
        assert!(message.chars().count() < 300, "{message}");
    }
}
