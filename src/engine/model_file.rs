//! The model file: one safetensors file holding a detector's tensors (a DifferNet's flow
//! weights, a PatchCore's memory bank), with a JSON metadata entry (format version, the
//! detector's kind and settings, DifferNet's permutations, validation statistics,
//! threshold, heat scale). Loading parses data only and never executes code. Saving is
//! atomic: a temporary file in the same folder, flushed to disk, then renamed.

use crate::core::atomic_file::write_atomic;
use crate::core::config::{
    CsFlowConfig, DetectorConfig, DifferNetConfig, FusionConfig, MAX_BANK_PATCHES, PatchCoreConfig,
};
use crate::core::message::one_line;
use crate::core::model_header::{self, META_KEY};
use crate::engine::backbone::{Backbone, copy_named};
use crate::engine::detector::{Detector, ModelState};
use crate::engine::detectors::common::check_permutation;
use crate::engine::detectors::cs_flow::CsFlow;
use crate::engine::detectors::differnet::DifferNet;
use crate::engine::detectors::fusion::Fusion;
use crate::engine::detectors::patchcore::PatchCore;
use crate::engine::error::{EngineError, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;
use tch::{Device, Kind, Tensor};

pub use crate::core::model_header::{FORMAT_NAME, FORMAT_VERSION};

/// Name of a PatchCore's memory bank `[M, D]` in the file.
pub const BANK_TENSOR: &str = "bank";
/// Name of a PatchCore's patches of confirmed defects `[K, D]`, when it learnt from any.
pub const DEFECT_BANK_TENSOR: &str = "defect_bank";
/// Name of the scale of a PatchCore's defect boost `[1]`, beside its defect bank.
pub const DEFECT_SCALE_TENSOR: &str = "defect_scale";

/// The JSON metadata of a model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// File format version.
    pub format_version: u32,
    /// The detector's kind and settings (the backbone among them).
    pub detector: DetectorConfig,
    /// The flows' channel permutations: DifferNet, one of 0..D per coupling block;
    /// CS-Flow, one of its channels per block and scale (block-major). Empty for PatchCore.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permutations: Vec<Vec<i64>>,
    /// Validation statistics, threshold, heat scale.
    pub state: ModelState,
    /// A fusion's members, in its order: their permutations and states (their tensors are
    /// named `m<index>/<name>`). Empty for every other kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberMeta>,
    /// The program that wrote the file.
    pub written_by: String,
}

/// What a fusion's member keeps in the metadata besides its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberMeta {
    /// Its flows' channel permutations, as [`ModelMeta::permutations`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permutations: Vec<Vec<i64>>,
    /// Its held-out statistics (which standardise its score) and heat scale.
    pub state: ModelState,
}

/// Prefix of the tensors of a fusion's member `index` in the file.
fn member_prefix(index: usize) -> String {
    format!("m{index}/")
}

/// The permutations and named tensors of a detector that is not a fusion.
type Parts = (Vec<Vec<i64>>, Vec<(String, Tensor)>);

/// A detector's permutations and tensors, as the file holds them.
fn parts(model: &Detector) -> (Parts, Vec<MemberMeta>) {
    match model {
        Detector::DifferNet(m) => (
            (
                m.flow().permutations().to_vec(),
                m.vs.variables().into_iter().collect(),
            ),
            Vec::new(),
        ),
        Detector::CsFlow(m) => (
            (
                m.flow().permutations().to_vec(),
                m.vs.variables().into_iter().collect(),
            ),
            Vec::new(),
        ),
        Detector::PatchCore(m) => {
            let mut tensors = vec![(BANK_TENSOR.to_owned(), m.bank().shallow_clone())];
            if let Some((rows, scale)) = m.defect_bank() {
                tensors.push((DEFECT_BANK_TENSOR.to_owned(), rows.shallow_clone()));
                tensors.push((
                    DEFECT_SCALE_TENSOR.to_owned(),
                    Tensor::from_slice(&[scale as f32]),
                ));
            }
            ((Vec::new(), tensors), Vec::new())
        }
        Detector::Fusion(f) => {
            let mut tensors = Vec::new();
            let mut members = Vec::new();
            for (i, member) in f.members().iter().enumerate() {
                let ((permutations, named), _) = parts(member);
                tensors.extend(
                    named
                        .into_iter()
                        .map(|(n, t)| (format!("{}{n}", member_prefix(i)), t)),
                );
                members.push(MemberMeta {
                    permutations,
                    state: member.state().clone(),
                });
            }
            ((Vec::new(), tensors), members)
        }
    }
}

fn model_err(path: &Path, message: impl Into<String>) -> EngineError {
    EngineError::ModelFile {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Writes `model` to `path` atomically: either the new file is complete or the previous
/// file at `path` is untouched.
pub fn save(model: &Detector, path: &Path) -> Result<()> {
    let ((permutations, tensors), members) = parts(model);
    let meta = ModelMeta {
        format: FORMAT_NAME.into(),
        format_version: FORMAT_VERSION,
        detector: model.config(),
        permutations,
        state: model.state().clone(),
        members,
        written_by: format!("differnet {}", env!("CARGO_PKG_VERSION")),
    };
    let json = serde_json::to_string(&meta).map_err(|e| model_err(path, e.to_string()))?;
    let mut buffers: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for (name, t) in &tensors {
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

/// Loads a model file, checking every tensor's name, dtype, shape and values against the
/// metadata, on top of `backbone` (which must be the one the model was trained with).
pub fn load(path: &Path, backbone: Rc<Backbone>, device: Device) -> Result<Detector> {
    let bytes = std::fs::read(path).map_err(|e| model_err(path, format!("cannot read: {e}")))?;
    let meta = parse_meta(path, &bytes)?;
    meta.detector
        .validate()
        .map_err(|e| model_err(path, format!("invalid configuration: {e}")))?;
    if backbone.kind() != meta.detector.backbone() {
        return Err(model_err(
            path,
            format!("model needs backbone {}", meta.detector.backbone()),
        ));
    }
    let st = SafeTensors::deserialize(&bytes).map_err(|e| model_err(path, e.to_string()))?;
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
        if values.iter().any(|v| !v.is_finite()) {
            return Err(model_err(
                path,
                format!("tensor {} holds NaN or infinite values", one_line(&name)),
            ));
        }
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        named.push((name, Tensor::from_slice(&values).view(shape.as_slice())));
    }
    let mut model = build(
        path,
        meta.detector.clone(),
        &meta.permutations,
        &meta.members,
        named,
        backbone,
        device,
    )?;
    *model.state_mut() = meta.state;
    Ok(model)
}

/// A detector of `config` from its tensors `named` (a fusion's members from theirs, named
/// with their prefixes), checked against the metadata.
fn build(
    path: &Path,
    config: DetectorConfig,
    permutations: &[Vec<i64>],
    members: &[MemberMeta],
    named: Vec<(String, Tensor)>,
    backbone: Rc<Backbone>,
    device: Device,
) -> Result<Detector> {
    match config {
        DetectorConfig::Fusion(config) => {
            build_fusion(path, config, members, named, backbone, device)
        }
        DetectorConfig::DifferNet(config) => {
            build_differnet(path, config, permutations, &named, backbone, device)
        }
        DetectorConfig::CsFlow(config) => {
            build_cs_flow(path, config, permutations, &named, backbone, device)
        }
        DetectorConfig::PatchCore(config) => {
            build_patchcore(path, config, &named, backbone, device)
        }
    }
}

/// A fusion from its members' metadata and tensors (each under its member's prefix).
fn build_fusion(
    path: &Path,
    config: FusionConfig,
    members: &[MemberMeta],
    named: Vec<(String, Tensor)>,
    backbone: Rc<Backbone>,
    device: Device,
) -> Result<Detector> {
    if members.len() != config.members.len() {
        return Err(model_err(
            path,
            format!(
                "{} members in the metadata, {} in the fusion's settings",
                members.len(),
                config.members.len()
            ),
        ));
    }
    let mut rest = named;
    let mut built = Vec::with_capacity(members.len());
    for (i, (member_config, member)) in config.members.iter().zip(members).enumerate() {
        let prefix = member_prefix(i);
        let (mine, others): (Vec<_>, Vec<_>) =
            rest.into_iter().partition(|(n, _)| n.starts_with(&prefix));
        rest = others;
        let mine = mine
            .into_iter()
            .map(|(n, t)| (n[prefix.len()..].to_owned(), t))
            .collect();
        let mut m = build(
            path,
            member_config.clone(),
            &member.permutations,
            &[],
            mine,
            backbone.clone(),
            device,
        )?;
        *m.state_mut() = member.state.clone();
        built.push(m);
    }
    if let Some((name, _)) = rest.first() {
        return Err(model_err(
            path,
            format!("tensor {} belongs to no member", one_line(name)),
        ));
    }
    Ok(Detector::Fusion(
        Fusion::new(config, built).map_err(|e| model_err(path, e))?,
    ))
}

/// A DifferNet with the metadata's `permutations` and the file's flow tensors `named`.
fn build_differnet(
    path: &Path,
    config: DifferNetConfig,
    permutations: &[Vec<i64>],
    named: &[(String, Tensor)],
    backbone: Rc<Backbone>,
    device: Device,
) -> Result<Detector> {
    let dim = config.model.feature_dim();
    if permutations.len() != config.model.n_blocks {
        return Err(model_err(
            path,
            "number of permutations does not match the blocks",
        ));
    }
    for perm in permutations {
        check_permutation(perm, dim).map_err(|e| model_err(path, e))?;
    }
    let mut model = DifferNet::for_checkpoint(config, backbone, device, permutations.to_vec())
        .map_err(|e| model_err(path, e))?;
    check_tensor_count(path, named.len(), model.vs.variables().len())?;
    copy_named(&mut model.vs, named).map_err(|e| model_err(path, e))?;
    model.vs.freeze();
    Ok(Detector::DifferNet(model))
}

/// A CS-Flow with the metadata's `permutations` and the file's flow tensors `named`.
fn build_cs_flow(
    path: &Path,
    config: CsFlowConfig,
    permutations: &[Vec<i64>],
    named: &[(String, Tensor)],
    backbone: Rc<Backbone>,
    device: Device,
) -> Result<Detector> {
    let mut model = CsFlow::for_checkpoint(config, backbone, device, permutations.to_vec())
        .map_err(|e| model_err(path, e))?;
    check_tensor_count(path, named.len(), model.vs.variables().len())?;
    copy_named(&mut model.vs, named).map_err(|e| model_err(path, e))?;
    model.vs.freeze();
    Ok(Detector::CsFlow(model))
}

/// An error unless the file holds as many tensors (`found`) as the model has (`expected`).
fn check_tensor_count(path: &Path, found: usize, expected: usize) -> Result<()> {
    if found != expected {
        return Err(model_err(
            path,
            format!("{found} tensors in the file, {expected} expected by its metadata"),
        ));
    }
    Ok(())
}

/// A PatchCore from its memory bank and, when it learnt from defects, its defect bank.
fn build_patchcore(
    path: &Path,
    config: PatchCoreConfig,
    named: &[(String, Tensor)],
    backbone: Rc<Backbone>,
    device: Device,
) -> Result<Detector> {
    let (bank, defects) = patchcore_tensors(path, named)?;
    if bank
        .size()
        .first()
        .is_some_and(|&m| m as usize > MAX_BANK_PATCHES)
    {
        return Err(model_err(
            path,
            "memory bank larger than any this program makes",
        ));
    }
    let backbone = if backbone.device() == device {
        backbone
    } else {
        return Err(model_err(path, "backbone on another device than the model"));
    };
    let mut model =
        PatchCore::new(config, backbone, bank.shallow_clone()).map_err(|e| model_err(path, e))?;
    if let Some((rows, scale)) = defects {
        if rows
            .size()
            .first()
            .is_some_and(|&m| m as usize > MAX_BANK_PATCHES)
        {
            return Err(model_err(
                path,
                "defect bank larger than any this program makes",
            ));
        }
        model
            .set_defects(rows, scale)
            .map_err(|e| model_err(path, e))?;
    }
    Ok(Detector::PatchCore(model))
}

/// A PatchCore's bank and optional defect bank and scale, checked, from the file's tensors.
fn patchcore_tensors<'a>(
    path: &Path,
    named: &'a [(String, Tensor)],
) -> Result<(&'a Tensor, Option<(Tensor, f64)>)> {
    let find = |wanted: &str| named.iter().find(|(n, _)| n == wanted).map(|(_, t)| t);
    let unknown = named.iter().find(|(n, _)| {
        ![BANK_TENSOR, DEFECT_BANK_TENSOR, DEFECT_SCALE_TENSOR].contains(&n.as_str())
    });
    if let Some((name, _)) = unknown {
        return Err(model_err(
            path,
            format!(
                "tensor {} found, expected {BANK_TENSOR} (and {DEFECT_BANK_TENSOR}, {DEFECT_SCALE_TENSOR})",
                one_line(name)
            ),
        ));
    }
    let Some(bank) = find(BANK_TENSOR) else {
        return Err(model_err(
            path,
            format!(
                "{} tensors in the file, none of them {BANK_TENSOR}: a PatchCore model holds its bank",
                named.len()
            ),
        ));
    };
    let defects = match (find(DEFECT_BANK_TENSOR), find(DEFECT_SCALE_TENSOR)) {
        (None, None) => None,
        (Some(rows), Some(scale)) if scale.numel() == 1 => {
            Some((rows.shallow_clone(), scale.double_value(&[0])))
        }
        _ => {
            return Err(model_err(
                path,
                format!("{DEFECT_BANK_TENSOR} and a one-value {DEFECT_SCALE_TENSOR} come together"),
            ));
        }
    };
    Ok((bank, defects))
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
