//! AlexNet `features` in torchvision's layout (`features.0/3/6/8/10`), the paper's
//! backbone: conv1..conv5 with ReLU and the three max-pools, 256 output channels.

use crate::engine::init::{InitialWeights, zero_init};
use tch::Tensor;
use tch::nn;

/// The convolutional part of torchvision's AlexNet.
#[derive(Debug)]
pub struct AlexNetFeatures {
    convs: Vec<nn::Conv2D>,
}

/// (checkpoint index, in, out, kernel, stride, padding, max-pool after the ReLU).
const LAYERS: [(usize, i64, i64, i64, i64, i64, bool); 5] = [
    (0, 3, 64, 11, 4, 2, true),
    (3, 64, 192, 5, 1, 2, true),
    (6, 192, 384, 3, 1, 1, false),
    (8, 384, 256, 3, 1, 1, false),
    (10, 256, 256, 3, 1, 1, true),
];

impl AlexNetFeatures {
    /// Builds the network; variables are named `features.<i>.weight` / `.bias` under `p`.
    /// Weights are drawn from `init` (Kaiming uniform), biases are zero.
    pub fn new(p: &nn::Path, init: &mut InitialWeights) -> Self {
        let features = p / "features";
        let convs = LAYERS
            .iter()
            .map(|&(i, c_in, c_out, k, stride, padding, _)| {
                let cfg = zero_init(nn::ConvConfig {
                    stride,
                    padding,
                    ..Default::default()
                });
                let conv = nn::conv2d(&features / i, c_in, c_out, k, cfg);
                init.kaiming_uniform(&conv.ws);
                conv
            })
            .collect();
        Self { convs }
    }

    /// The `features` output `[N, 256, H', W']` (the only stage, numbered 1).
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let mut y = x.shallow_clone();
        for (conv, layer) in self.convs.iter().zip(LAYERS) {
            y = y.apply(conv).relu();
            if layer.6 {
                y = y.max_pool2d([3, 3], [2, 2], [0, 0], [1, 1], false);
            }
        }
        y
    }
}
