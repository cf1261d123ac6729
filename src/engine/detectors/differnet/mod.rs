//! DifferNet (Rudolph, Wandt, Rosenhahn, WACV 2021): the frozen backbone's pooled
//! multi-scale features, a normalizing flow trained on good images, the mean z^2 over
//! rotated copies as the score and the gradient of the NLL as the map. Scoring and
//! localisation here; training in [`train`], the flow in [`flow`].

pub mod flow;
pub mod train;

use crate::core::config::DifferNetConfig;
use crate::core::protocol::Heatmap;
use crate::engine::backbone::Backbone;
use crate::engine::detectors::common::{ModelState, RawScore};
use crate::engine::lanes::{Lanes, ReadOnly};
use crate::engine::transforms::{gaussian_blur, image_to_tensor, normalize, resize_square, rotate};
use flow::Flow;
use image::RgbImage;
use std::rc::Rc;
use tch::{Device, Kind, Tensor, nn};

/// A DifferNet model on one device. Lives on the worker thread (tensors are not `Sync`).
pub struct DifferNet {
    /// Full configuration.
    pub config: DifferNetConfig,
    /// What validation taught us.
    pub state: ModelState,
    pub(crate) backbone: Rc<Backbone>,
    pub(crate) vs: nn::VarStore,
    pub(crate) flow: Flow,
    /// Images per backbone call (large batches of big images overflow CPU caches).
    pub backbone_batch: usize,
}

impl std::fmt::Debug for DifferNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DifferNet")
            .field("config", &self.config)
            .field("state", &self.state)
            .finish()
    }
}

/// Rows for one backbone call: `[1, 3, S, S]` views of the images and their angles.
pub struct FeatureChunk {
    images: Vec<Tensor>,
    degs: Vec<f64>,
}

impl DifferNet {
    /// A fresh, untrained model: seeded permutations, and flow weights from a generator
    /// seeded by them ([`Flow::new`]).
    pub fn new(
        config: DifferNetConfig,
        backbone: Rc<Backbone>,
        device: Device,
    ) -> Result<Self, String> {
        config.validate()?;
        if backbone.kind() != config.model.backbone {
            return Err(format!(
                "backbone {} given for a {} model",
                backbone.kind(),
                config.model.backbone
            ));
        }
        let perms = Flow::random_permutations(
            config.model.feature_dim(),
            config.model.n_blocks,
            config.train.seed,
        );
        Self::assemble(config, backbone, device, perms, true)
    }

    /// A model with the given permutations and its flow's variables at zero, for a model
    /// file to fill.
    pub(crate) fn for_checkpoint(
        config: DifferNetConfig,
        backbone: Rc<Backbone>,
        device: Device,
        permutations: Vec<Vec<i64>>,
    ) -> Result<Self, String> {
        Self::assemble(config, backbone, device, permutations, false)
    }

    fn assemble(
        config: DifferNetConfig,
        backbone: Rc<Backbone>,
        device: Device,
        permutations: Vec<Vec<i64>>,
        fresh: bool,
    ) -> Result<Self, String> {
        config.validate()?;
        let backbone_batch = default_backbone_batch(device, config.model.image_size);
        let vs = nn::VarStore::new(device);
        let root = vs.root() / "flow";
        let flow = if fresh {
            Flow::new(&root, &config.model, permutations)?
        } else {
            Flow::for_checkpoint(&root, &config.model, permutations)?
        };
        Ok(Self {
            config,
            state: ModelState::untrained(),
            backbone,
            vs,
            flow,
            backbone_batch,
        })
    }

    /// Device of the model.
    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// The flow.
    pub fn flow(&self) -> &Flow {
        &self.flow
    }

    /// An image as the network's square input `[1, 3, S, S]` in [0, 1] on the device.
    pub fn prepare(&self, img: &RgbImage) -> Tensor {
        let x = image_to_tensor(img, self.device());
        resize_square(&x, i64::from(self.config.model.image_size))
    }

    /// Features `[N * A, D]` of square images `[N, 3, S, S]`, each rotated by the angles
    /// `angles[i]` (A per image), computed in chunks of `backbone_batch`. Rows are
    /// image-major. Gradients flow to `x` if it requires them.
    pub fn features(&self, x: &Tensor, angles: &[Vec<f64>]) -> Tensor {
        let out: Vec<Tensor> = self
            .feature_chunks(x, angles)
            .into_iter()
            .map(|chunk| self.chunk_features(&chunk))
            .collect();
        Tensor::cat(&out, 0)
    }

    /// [`DifferNet::features`] without gradients, the chunks spread over `lanes`, with
    /// `progress(done, total)` after each chunk. `None` when `stop` ended it early.
    pub(crate) fn features_in_lanes(
        &self,
        lanes: Lanes,
        x: &Tensor,
        angles: &[Vec<f64>],
        stop: &(dyn Fn() -> bool + Sync),
        progress: &mut dyn FnMut(usize, usize),
    ) -> Option<Tensor> {
        let chunks = self.feature_chunks(x, angles);
        let total = chunks.len();
        // SAFETY: only `chunk_features` runs through it, a forward pass of the frozen backbone
        // under `no_grad` (grad mode is per thread, so each lane sets its own) that builds
        // new tensors; it mutates nothing and clones no `Rc`.
        let shared = unsafe { ReadOnly::new(self) };
        let mut out = Vec::with_capacity(total);
        lanes.map(
            chunks,
            &|chunk| tch::no_grad(|| shared.get().chunk_features(&chunk)),
            stop,
            &mut |i, f| {
                out.push(f);
                progress(i + 1, total);
            },
        );
        (out.len() == total).then(|| Tensor::cat(&out, 0))
    }

    /// The backbone's inputs for [`DifferNet::features`] in batches of `backbone_batch`
    /// rows: views of the images (one per angle, sharing their memory: a copy of every
    /// rotated row at once would take gigabytes for a large training set) and the angles.
    fn feature_chunks(&self, x: &Tensor, angles: &[Vec<f64>]) -> Vec<FeatureChunk> {
        let n = x.size()[0];
        assert_eq!(n as usize, angles.len());
        let mut rows: Vec<(i64, f64)> = Vec::new();
        for (i, a) in angles.iter().enumerate() {
            rows.extend(a.iter().map(|&deg| (i as i64, deg)));
        }
        rows.chunks(self.backbone_batch.max(1))
            .map(|chunk| FeatureChunk {
                images: chunk.iter().map(|r| x.narrow(0, r.0, 1)).collect(),
                degs: chunk.iter().map(|r| r.1).collect(),
            })
            .collect()
    }

    /// Features `[B, D]` of a chunk's B rows, row `i` rotated by `degs[i]`.
    pub(crate) fn chunk_features(&self, chunk: &FeatureChunk) -> Tensor {
        let batch = Tensor::cat(&chunk.images, 0);
        let rotated = rotate(&batch, &chunk.degs);
        self.backbone
            .features(&normalize(&rotated), &self.config.model)
    }

    /// Anomaly score of a prepared image `[1, 3, S, S]` at the given test angles:
    /// mean of z^2 over rotations and dimensions (the DifferNet paper's scoring function,
    /// Rudolph et al., WACV 2021: the mean of -log p_Z(z) over transformed copies).
    pub fn score_prepared(&self, x: &Tensor, angles: &[f64]) -> f64 {
        tch::no_grad(|| {
            let feats = self.features(x, &[angles.to_vec()]);
            let (z, _) = self.flow.forward(&feats);
            z.square().mean(Kind::Float).double_value(&[])
        })
    }

    /// Score and localisation map of a prepared image (the localization of the DifferNet
    /// paper, Rudolph et al., WACV 2021, gradients of the score on the input): for each
    /// rotation, the gradient of the NLL with respect to the unrotated input pixels
    /// (autograd rotates it back through the sampler), Gaussian blur (sigma 3 px at
    /// 448), |.| averaged over rotations and channels, squared; then resized to
    /// `out_w` x `out_h` and divided by the heat scale when known.
    pub fn localize_prepared(
        &self,
        x: &Tensor,
        angles: &[f64],
        out_w: u32,
        out_h: u32,
    ) -> (f64, Tensor) {
        let size = self.config.model.image_size;
        let mut acc = Tensor::zeros(
            [1, 1, i64::from(size), i64::from(size)],
            (Kind::Float, self.device()),
        );
        let mut z2_sum = 0.0;
        let mut count = 0usize;
        let sigma = 3.0 * f64::from(size) / 448.0;
        for chunk in angles.chunks(self.backbone_batch.max(1)) {
            let n = chunk.len() as i64;
            // One leaf per rotation, so each rotation's gradient is kept apart.
            let leaf = x.detach().repeat([n, 1, 1, 1]).set_requires_grad(true);
            let degs: Vec<Vec<f64>> = chunk.iter().map(|&a| vec![a]).collect();
            let feats = self.features(&leaf, &degs);
            let (z, log_det) = self.flow.forward(&feats);
            z2_sum += z.square().sum(Kind::Float).double_value(&[]);
            count += z.numel();
            let nll = self.flow.nll(&z, &log_det).sum(Kind::Float);
            let grads = Tensor::run_backward(&[nll], &[&leaf], false, false);
            let g = gaussian_blur(&grads[0], sigma).abs();
            acc += g.sum_dim_intlist([0i64, 1].as_slice(), true, Kind::Float);
        }
        let n = angles.len().max(1) as f64 * 3.0;
        let map = (acc / n).square();
        let mut map = map.internal_upsample_bilinear2d_aa(
            [i64::from(out_h), i64::from(out_w)],
            false,
            None,
            None,
        );
        if let Some(scale) = self.state.heat_scale.filter(|s| *s > 0.0) {
            map /= scale;
        }
        (
            z2_sum / count.max(1) as f64,
            map.view([i64::from(out_h), i64::from(out_w)]),
        )
    }

    /// Scores one decoded image; with `heatmap`, also localises.
    pub fn score_image(&self, img: &RgbImage, angles: &[f64], heatmap: bool) -> RawScore {
        let x = self.prepare(img);
        if !heatmap {
            return RawScore {
                score: self.score_prepared(&x, angles),
                heatmap: None,
            };
        }
        let (w, h) = img.dimensions();
        let (score, map) = self.localize_prepared(&x, angles, w, h);
        let values =
            Vec::<f32>::try_from(map.to_device(Device::Cpu).flatten(0, -1)).unwrap_or_default();
        RawScore {
            score,
            heatmap: Some(Heatmap {
                width: w,
                height: h,
                values,
            }),
        }
    }
}

/// Images per backbone call. On a GPU, large. On the CPU, where each scoring lane has one
/// core and its cache, small: measured on 2 cores with 2 lanes and channels-last
/// convolutions (BENCHMARKS.md), 4 was best at 160 px (1.15x the images per second of 8)
/// and 1 at 448 px (1.3x those of 4), as larger batches overflow the caches.
pub fn default_backbone_batch(device: Device, image_size: u32) -> usize {
    match device {
        Device::Cpu if image_size <= 224 => 4,
        Device::Cpu => 1,
        _ => 64,
    }
}
