//! CS-Flow (Rudolph, Wandt, Rosenhahn, "Fully Convolutional Cross-Scale-Flows for
//! Image-based Defect Detection", WACV 2022): the frozen backbone's map of
//! one stage at three input scales (the image at S, S / 2 and S / 4), modelled jointly by
//! a fully convolutional normalizing flow trained on good images. The score is the mean
//! of z^2 / 2; the map is z^2 / 2 averaged over the channels at each position, the three
//! scales upsampled to the finest and averaged. No backward pass: the map is a by-product
//! of scoring. Scoring here; the flow in [`flow`], training in [`train`].

pub mod flow;
pub mod train;

use crate::core::config::{CS_FLOW_SCALES, CsFlowConfig, FlowScore};
use crate::engine::backbone::Backbone;
use crate::engine::detectors::common::{
    BatchScores, ModelState, RawScore, maps_from_grids, score_decoded, top_scores,
};
use crate::engine::transforms::{downsample_nearest, image_to_tensor, normalize, resize_square};
use flow::{CrossScaleFlow, Scales};
use image::RgbImage;
use std::rc::Rc;
use tch::{Device, Kind, Tensor, nn};

/// A CS-Flow detector on one device. Lives on the worker thread.
pub struct CsFlow {
    /// Settings.
    pub config: CsFlowConfig,
    /// What validation taught it.
    pub state: ModelState,
    backbone: Rc<Backbone>,
    pub(crate) vs: nn::VarStore,
    flow: CrossScaleFlow,
    /// Images per backbone call.
    pub backbone_batch: usize,
}

impl std::fmt::Debug for CsFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsFlow")
            .field("config", &self.config)
            .field("state", &self.state)
            .finish()
    }
}

impl CsFlow {
    /// A fresh, untrained detector: seeded permutations, and flow weights from a generator
    /// seeded by them ([`CrossScaleFlow::new`]).
    pub fn new(
        config: CsFlowConfig,
        backbone: Rc<Backbone>,
        device: Device,
    ) -> Result<Self, String> {
        config.validate()?;
        let perms = CrossScaleFlow::random_permutations(
            config.channels(),
            config.kernel_sizes.len(),
            config.seed,
        );
        Self::assemble(config, backbone, device, perms, true)
    }

    /// A detector with the given permutations and its flow's variables at zero, for a
    /// model file to fill.
    pub(crate) fn for_checkpoint(
        config: CsFlowConfig,
        backbone: Rc<Backbone>,
        device: Device,
        permutations: Vec<Vec<i64>>,
    ) -> Result<Self, String> {
        Self::assemble(config, backbone, device, permutations, false)
    }

    fn assemble(
        config: CsFlowConfig,
        backbone: Rc<Backbone>,
        device: Device,
        permutations: Vec<Vec<i64>>,
        fresh: bool,
    ) -> Result<Self, String> {
        config.validate()?;
        if backbone.kind() != config.backbone {
            return Err(format!(
                "backbone {} given for a {} model",
                backbone.kind(),
                config.backbone
            ));
        }
        let vs = nn::VarStore::new(device);
        let root = vs.root() / "flow";
        let flow = if fresh {
            CrossScaleFlow::new(&root, &config, permutations)?
        } else {
            CrossScaleFlow::for_checkpoint(&root, &config, permutations)?
        };
        Ok(Self {
            backbone_batch: match device {
                Device::Cpu => 8,
                _ => 64,
            },
            config,
            state: ModelState::untrained(),
            backbone,
            vs,
            flow,
        })
    }

    /// Device of the detector.
    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// The flow.
    pub fn flow(&self) -> &CrossScaleFlow {
        &self.flow
    }

    /// An image as the largest input `[1, 3, S, S]` in [0, 1] on the device.
    pub fn prepare(&self, img: &RgbImage) -> Tensor {
        prepare(img, &self.config, self.device())
    }

    /// The stage's maps of the three scales of images `[N, 3, S, S]` in [0, 1], without
    /// gradients.
    pub fn scale_features(&self, x: &Tensor) -> Scales {
        scale_features(&self.backbone, &self.config, x, self.backbone_batch)
    }

    /// Score and, with `map_size = Some((w, h))`, the anomaly map at that size, of a
    /// prepared image `[1, 3, S, S]`.
    pub fn score_prepared(
        &self,
        x: &Tensor,
        map_size: Option<(u32, u32)>,
    ) -> (f64, Option<Tensor>) {
        let (scores, mut maps) = self.score_prepared_batch(x, &[map_size]);
        (scores.double_value(&[0]), maps.pop().flatten())
    }

    /// Scores `[B]` (on the device) and, where `sizes[i]` is `Some((w, h))`, the anomaly
    /// map `[h, w]` of prepared images `[B, 3, S, S]`, in one pass of the backbone and the
    /// flow.
    pub fn score_prepared_batch(&self, x: &Tensor, sizes: &[Option<(u32, u32)>]) -> BatchScores {
        tch::no_grad(|| {
            let (z, _) = self.flow.forward(&self.scale_features(x));
            let positions = position_map(&z); // [B, 1, H0, W0]
            let scores = match self.config.score {
                FlowScore::Mean => mean_half_square(&z),
                FlowScore::TopMean { fraction } => {
                    top_scores(&positions.flatten(1, -1), Some(fraction))
                }
            };
            let maps = maps_from_grids(
                &positions,
                self.config.image_size,
                self.config.blur_sigma,
                sizes,
                self.state.heat_scale,
            );
            (scores, maps)
        })
    }

    /// Scores decoded images in one batch; with `heatmaps[i]`, also image i's map at its
    /// size. Images of any sizes; results in their order.
    pub fn score_batch(&self, imgs: &[&RgbImage], heatmaps: &[bool]) -> Vec<RawScore> {
        score_decoded(
            imgs,
            heatmaps,
            &|img| self.prepare(img),
            |x: &Tensor, sizes: &[Option<(u32, u32)>]| self.score_prepared_batch(x, sizes),
        )
    }

    /// Scores one decoded image; with `heatmap`, also its map at the image's size.
    pub fn score_image(&self, img: &RgbImage, heatmap: bool) -> RawScore {
        self.score_batch(&[img], &[heatmap])
            .pop()
            .expect("one image in, one score out")
    }
}

/// An image as the largest input `[1, 3, S, S]` in [0, 1] on `device`.
fn prepare(img: &RgbImage, config: &CsFlowConfig, device: Device) -> Tensor {
    resize_square(&image_to_tensor(img, device), i64::from(config.image_size))
}

/// The stage's maps `[N, C, h_s, w_s]` of the three scales of images `[N, 3, S, S]` in
/// [0, 1]: the normalised image resized (nearest, as the reference) to S, S / 2 and S / 4,
/// each through the backbone, in batches of `batch`, without gradients.
fn scale_features(backbone: &Backbone, config: &CsFlowConfig, x: &Tensor, batch: usize) -> Scales {
    let n = x.size()[0];
    let sizes = config.scale_sizes();
    let mut parts: [Vec<Tensor>; CS_FLOW_SCALES] = Default::default();
    tch::no_grad(|| {
        for start in (0..n).step_by(batch.max(1)) {
            let len = (batch as i64).min(n - start);
            let xs = normalize(&x.narrow(0, start, len));
            for (s, size) in sizes.iter().enumerate() {
                let input = downsample_nearest(&xs, *size);
                let map = backbone
                    .stage_maps(&input, &[config.stage])
                    .pop()
                    .expect("one stage asked, one map");
                parts[s].push(map);
            }
        }
    });
    parts.map(|p| Tensor::cat(&p, 0))
}

/// Per sample, the mean of z^2 / 2 over every latent value of every scale: `[B]`.
fn mean_half_square(z: &Scales) -> Tensor {
    let values: i64 = z
        .iter()
        .map(|t| t.size()[1..].iter().product::<i64>())
        .sum();
    z.iter()
        .map(|t| {
            t.square()
                .sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Float)
        })
        .reduce(|a, b| a + b)
        .expect("three scales")
        / (2.0 * values as f64)
}

/// z^2 / 2 averaged over the channels at each position, each scale upsampled to the
/// finest grid, the three averaged: `[B, 1, H0, W0]` (anomalib's map, which it reports
/// better than the finest scale's alone).
fn position_map(z: &Scales) -> Tensor {
    let size = {
        let s = z[0].size();
        [s[2], s[3]]
    };
    z.iter()
        .map(|t| {
            let m = t.square().mean_dim([1i64].as_slice(), true, Kind::Float) * 0.5;
            if m.size()[2..] == size {
                m
            } else {
                m.upsample_bilinear2d(size, false, None, None)
            }
        })
        .reduce(|a, b| a + b)
        .expect("three scales")
        / CS_FLOW_SCALES as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_score_is_the_mean_half_square_and_the_map_averages_the_scales() {
        // One sample: z = 2 everywhere at scale 0 (2 channels, 2x2), 0 at the others.
        let z: Scales = [
            Tensor::full([1, 2, 2, 2], 2.0, (Kind::Float, Device::Cpu)),
            Tensor::zeros([1, 2, 1, 1], (Kind::Float, Device::Cpu)),
            Tensor::zeros([1, 2, 1, 1], (Kind::Float, Device::Cpu)),
        ];
        // 8 values of 4 / 2 among 12 values.
        let mean = mean_half_square(&z).double_value(&[0]);
        assert!((mean - 8.0 * 2.0 / 12.0).abs() < 1e-6, "{mean}");
        let map = position_map(&z);
        assert_eq!(map.size(), vec![1, 1, 2, 2]);
        // (2 + 0 + 0) / 3 at every position.
        assert!(map.allclose(
            &Tensor::full([1, 1, 2, 2], 2.0 / 3.0, (Kind::Float, Device::Cpu)),
            1e-6,
            1e-6,
            false
        ));
    }
}
