//! Initial weights of the networks the engine builds: drawn from seeded generators of
//! their own (never libtorch's global one), or left at zero for a checkpoint to fill.

use crate::core::rng::SplitMix64;
use tch::{Tensor, nn};

/// Where a network's initial weights come from: a seeded generator of its own, drawn on the
/// host, or nowhere (the variables stay zero) when a checkpoint fills them next. Never
/// libtorch's generator: there is one per process, every worker thread draws from it, and
/// a seed set on it decides nothing once two threads interleave their draws.
///
/// Layers are built with zero-initialised variables (`nn::Init::Const(0.0)`) and filled
/// from here, with the distributions of tch's defaults that they had before.
#[derive(Debug, Clone)]
pub struct InitialWeights {
    rng: Option<SplitMix64>,
}

impl InitialWeights {
    /// Weights drawn from a generator seeded with `seed`: one seed, one set of weights.
    pub fn seeded(seed: u64) -> Self {
        Self {
            rng: Some(SplitMix64::new(seed)),
        }
    }

    /// Weights seeded by `permutations` (a flow's, themselves drawn from the training
    /// seed): one training seed gives one flow, whichever thread builds it.
    pub fn from_permutations(permutations: &[Vec<i64>]) -> Self {
        let mut seed = SplitMix64::new(0x464c_4f57_5345_4544).next_u64();
        for &v in permutations.iter().flatten() {
            seed = SplitMix64::new(seed ^ v as u64).next_u64();
        }
        Self::seeded(seed)
    }

    /// No weights: the variables stay zero, for a checkpoint to fill.
    pub fn none() -> Self {
        Self { rng: None }
    }

    /// Fills `var` with values drawn uniformly between `lo` and `up` (as
    /// `nn::Init::Uniform`).
    pub fn uniform(&mut self, var: &Tensor, lo: f64, up: f64) {
        let Some(rng) = &mut self.rng else {
            return;
        };
        let values: Vec<f32> = (0..var.numel())
            .map(|_| (lo + (up - lo) * rng.next_f64()) as f32)
            .collect();
        let drawn = Tensor::from_slice(&values).view(var.size().as_slice());
        tch::no_grad(|| var.shallow_clone().copy_(&drawn));
    }

    /// Fills a weight `[C_out, C_in / groups, k...]` as tch's default, Kaiming uniform for
    /// a ReLU on the fan-in: uniform in ±sqrt(6 / fan_in), fan_in = `C_in / groups * k...`.
    pub fn kaiming_uniform(&mut self, var: &Tensor) {
        let dims = var.size();
        let fan_in: i64 = dims.iter().skip(1).product();
        let bound = (6.0 / fan_in.max(1) as f64).sqrt();
        self.uniform(var, -bound, bound);
    }
}

/// A convolution's config with zero-initialised variables, for [`InitialWeights`] to fill.
pub fn zero_init(cfg: nn::ConvConfig) -> nn::ConvConfig {
    nn::ConvConfig {
        ws_init: nn::Init::Const(0.0),
        bs_init: nn::Init::Const(0.0),
        ..cfg
    }
}
