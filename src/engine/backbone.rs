//! The frozen feature extractor: a pretrained CNN run at several scales, each output map
//! global-average-pooled and concatenated (REFERENCE.md, step 3).

use crate::core::config::{BackboneKind, ModelConfig};
use crate::engine::alexnet::AlexNetFeatures;
use crate::engine::efficientnet::{EfficientNetLite, Scaling};
use crate::engine::error::{EngineError, Result};
use crate::engine::transforms::downsample_nearest;
use std::path::Path;
use tch::{Device, Tensor, nn};

enum Net {
    EfficientNet(Box<EfficientNetLite>),
    AlexNet(AlexNetFeatures),
}

/// A pretrained, frozen backbone on one device.
pub struct Backbone {
    kind: BackboneKind,
    vs: nn::VarStore,
    net: Net,
}

impl std::fmt::Debug for Backbone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backbone")
            .field("kind", &self.kind)
            .finish()
    }
}

impl Backbone {
    /// Builds the network with random weights (only useful in tests of the plumbing).
    pub fn new_untrained(kind: BackboneKind, device: Device) -> Self {
        let vs = nn::VarStore::new(device);
        let net = match kind {
            BackboneKind::EfficientnetLite0 => {
                Net::EfficientNet(Box::new(EfficientNetLite::new(&vs.root(), Scaling::LITE0)))
            }
            BackboneKind::EfficientnetLite1 => {
                Net::EfficientNet(Box::new(EfficientNetLite::new(&vs.root(), Scaling::LITE1)))
            }
            BackboneKind::EfficientnetLite2 => {
                Net::EfficientNet(Box::new(EfficientNetLite::new(&vs.root(), Scaling::LITE2)))
            }
            BackboneKind::Alexnet => Net::AlexNet(AlexNetFeatures::new(&vs.root())),
        };
        let mut b = Self { kind, vs, net };
        b.vs.freeze();
        b
    }

    /// Builds the network and loads its ImageNet weights from `path`: a `.safetensors`
    /// file, or a PyTorch `.pth` state dict read by a restricted unpickler that executes
    /// no code. Every variable must be present with the right shape.
    pub fn load(kind: BackboneKind, path: &Path, device: Device) -> Result<Self> {
        let mut b = Self::new_untrained(kind, device);
        let err = |message: String| EngineError::Weights {
            path: path.to_path_buf(),
            message,
        };
        if !path.is_file() {
            return Err(err(format!(
                "file not found; run `make setup` or pass the weights of {kind}"
            )));
        }
        let named: Vec<(String, Tensor)> = if path.extension().is_some_and(|e| e == "safetensors") {
            Tensor::read_safetensors(path).map_err(|e| err(e.to_string()))?
        } else {
            crate::core::torch_pickle::read_state_dict(path)
                .map_err(|e| err(e.to_string()))?
                .into_iter()
                .map(|t| {
                    let shape: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
                    (t.name, Tensor::from_slice(&t.data).view(shape.as_slice()))
                })
                .collect()
        };
        copy_named(&mut b.vs, &named).map_err(err)?;
        if let Net::EfficientNet(net) = &mut b.net {
            net.fold_batchnorm();
        }
        Ok(b)
    }

    /// The device its weights live on.
    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// Which network this is.
    pub fn kind(&self) -> BackboneKind {
        self.kind
    }

    /// Maps `[N, 3, H, W]` (normalised) to the feature maps of the requested stages.
    pub fn stage_maps(&self, x: &Tensor, stages: &[usize]) -> Vec<Tensor> {
        match &self.net {
            Net::EfficientNet(net) => net.stage_outputs(x, stages),
            Net::AlexNet(net) => vec![net.forward(x)],
        }
    }

    /// ImageNet logits, where the network has a classifier (the EfficientNet-Lites).
    pub fn classify(&self, x: &Tensor) -> Option<Tensor> {
        match &self.net {
            Net::EfficientNet(net) => Some(net.classify(x)),
            Net::AlexNet(_) => None,
        }
    }

    /// The DifferNet feature vector `[N, D]` of normalised square images `[N, 3, S, S]`:
    /// for each scale (S, S/2, ... by nearest downsampling), the chosen stages' maps are
    /// global-average-pooled; the vectors are concatenated scale by scale.
    pub fn features(&self, x: &Tensor, cfg: &ModelConfig) -> Tensor {
        let mut parts = Vec::with_capacity(cfg.n_scales * cfg.feature_stages.len());
        for size in cfg.scale_sizes() {
            let xs = downsample_nearest(x, size);
            for map in self.stage_maps(&xs, &cfg.feature_stages) {
                parts.push(map.mean_dim([2i64, 3].as_slice(), false, map.kind()));
            }
        }
        Tensor::cat(&parts, 1)
    }
}

/// Copies tensors into the variables of `vs` by name, checking that every variable is
/// present with its shape. Extra tensors in the file are ignored.
pub(crate) fn copy_named(vs: &mut nn::VarStore, named: &[(String, Tensor)]) -> Result<(), String> {
    let variables = vs.variables();
    let by_name: std::collections::HashMap<&str, &Tensor> =
        named.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut names: Vec<&String> = variables.keys().collect();
    names.sort();
    tch::no_grad(|| {
        for name in names {
            let var = &variables[name];
            let src = by_name
                .get(name.as_str())
                .ok_or_else(|| format!("tensor {name} is missing"))?;
            if src.size() != var.size() {
                return Err(format!(
                    "tensor {name} has shape {:?}, expected {:?}",
                    src.size(),
                    var.size()
                ));
            }
            let mut v = var.shallow_clone();
            v.f_copy_(&src.to_kind(var.kind()).to_device(var.device()))
                .map_err(|e| format!("tensor {name}: {e}"))?;
        }
        Ok(())
    })
}
