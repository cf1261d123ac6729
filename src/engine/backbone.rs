//! The frozen feature extractor: a pretrained CNN run at several scales, each output map
//! global-average-pooled and concatenated (the multi-scale feature extractor of the
//! DifferNet paper, Rudolph, Wandt, Rosenhahn, WACV 2021).

use crate::core::config::{BackboneKind, ModelConfig};
use crate::engine::alexnet::AlexNetFeatures;
use crate::engine::efficientnet::{EfficientNetLite, Scaling};
use crate::engine::error::{EngineError, Result};
pub use crate::engine::init::{InitialWeights, zero_init};
use crate::engine::transforms::downsample_nearest;
use std::path::Path;
use tch::{Device, Kind, Tensor, nn};

enum Net {
    EfficientNet(Box<EfficientNetLite>),
    AlexNet(AlexNetFeatures),
}

/// A pretrained, frozen backbone on one device.
pub struct Backbone {
    kind: BackboneKind,
    vs: nn::VarStore,
    net: Net,
    /// Whether [`Backbone::stage_maps_fast`] runs in bfloat16 ([`fast_bf16`]).
    bf16: bool,
}

/// Whether this process runs the gradient-free backbone passes in bfloat16: on a CPU
/// with native bfloat16 arithmetic (AVX512-BF16, which oneDNN pairs with AMX where the
/// CPU has it), unless `DIFFERNET_BF16=0`. On 2 cores of such a Xeon, EfficientNet-Lite1
/// runs about 3 times as fast in bfloat16; PatchCore's scores move within the spread of
/// the seeds (BENCHMARKS.md). Elsewhere emulated bfloat16 would be slower, so float32.
pub fn fast_bf16() -> bool {
    if std::env::var("DIFFERNET_BF16").is_ok_and(|v| v == "0") {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl std::fmt::Debug for Backbone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backbone")
            .field("kind", &self.kind)
            .finish()
    }
}

impl Backbone {
    /// Builds the network with random weights (only useful in tests of the plumbing): the
    /// same weights every time, drawn from a generator of its own.
    pub fn new_untrained(kind: BackboneKind, device: Device) -> Self {
        Self::build(kind, device, &mut InitialWeights::seeded(UNTRAINED_SEED))
    }

    /// Builds the network with its initial weights from `init`, frozen.
    fn build(kind: BackboneKind, device: Device, init: &mut InitialWeights) -> Self {
        let vs = nn::VarStore::new(device);
        let lite = match kind {
            BackboneKind::EfficientnetLite0 => Some(Scaling::LITE0),
            BackboneKind::EfficientnetLite1 => Some(Scaling::LITE1),
            BackboneKind::EfficientnetLite2 => Some(Scaling::LITE2),
            BackboneKind::Alexnet => None,
        };
        let net = match lite {
            Some(scaling) => {
                Net::EfficientNet(Box::new(EfficientNetLite::new(&vs.root(), scaling, init)))
            }
            None => Net::AlexNet(AlexNetFeatures::new(&vs.root(), init)),
        };
        let mut b = Self {
            kind,
            vs,
            net,
            bf16: false,
        };
        b.vs.freeze();
        b
    }

    /// Builds the network and loads its ImageNet weights from `path`: a `.safetensors`
    /// file, or a PyTorch `.pth` state dict read by a restricted unpickler that executes
    /// no code. Every variable must be present with the right shape.
    pub fn load(kind: BackboneKind, path: &Path, device: Device) -> Result<Self> {
        // Every variable is overwritten: nothing to draw.
        let mut b = Self::build(kind, device, &mut InitialWeights::none());
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
            if device == Device::Cpu && fast_bf16() {
                net.add_bf16();
                b.bf16 = true;
            }
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

    /// [`Backbone::stage_maps`] for passes without gradients, in bfloat16 where that is
    /// fast ([`fast_bf16`]); the maps come back in float32 either way.
    pub fn stage_maps_fast(&self, x: &Tensor, stages: &[usize]) -> Vec<Tensor> {
        match &self.net {
            Net::EfficientNet(net) if self.bf16 => net
                .stage_outputs(&x.to_kind(Kind::BFloat16), stages)
                .into_iter()
                .map(|m| m.to_kind(Kind::Float))
                .collect(),
            _ => self.stage_maps(x, stages),
        }
    }

    /// Whether [`Backbone::stage_maps_fast`] runs in bfloat16.
    pub fn uses_bf16(&self) -> bool {
        self.bf16
    }

    /// One vector per normalised image `[N, 3, H, W]` that sums up how it looks, unit
    /// length, `[N, D]`: an EfficientNet-Lite's head features averaged over the image
    /// (AlexNet's last map averaged). Without gradients, in bfloat16 where that is fast.
    pub fn image_summary(&self, x: &Tensor) -> Tensor {
        let pooled = tch::no_grad(|| match &self.net {
            Net::EfficientNet(net) if self.bf16 => net
                .pooled_head(&x.to_kind(Kind::BFloat16))
                .to_kind(Kind::Float),
            Net::EfficientNet(net) => net.pooled_head(x),
            Net::AlexNet(net) => net
                .forward(x)
                .mean_dim([2i64, 3].as_slice(), false, Kind::Float),
        });
        let norm = pooled
            .norm_scalaropt_dim(2.0, [1i64].as_slice(), true)
            .clamp_min(1e-12);
        pooled / norm
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

/// The seed of [`Backbone::new_untrained`]'s weights.
const UNTRAINED_SEED: u64 = 0x4241_434b_424f_4e45;

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
