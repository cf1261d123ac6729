//! The normalizing flow of DifferNet (Rudolph et al., WACV 2021): blocks of a fixed random
//! permutation followed by a GLOW/RealNVP affine coupling with a soft-clamped scale.
//!
//! The log-determinant is accumulated in the forward pass (the reference recomputes the
//! subnetworks for it, doubling the cost).

use crate::core::config::ModelConfig;
use crate::engine::backbone::InitialWeights;
use crate::engine::detectors::common::{
    check_permutation, inverse_permutation, random_permutations, soft_clamp,
};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

/// A fully connected subnetwork: Linear, ReLU, ..., Linear (no activation at the end).
#[derive(Debug)]
struct Subnet {
    layers: Vec<nn::Linear>,
}

impl Subnet {
    fn new(
        p: nn::Path,
        c_in: i64,
        hidden: i64,
        c_out: i64,
        n_layers: usize,
        init: &mut InitialWeights,
    ) -> Self {
        let layers = (0..n_layers)
            .map(|i| {
                let fan_in = if i == 0 { c_in } else { hidden };
                let out = if i + 1 == n_layers { c_out } else { hidden };
                let cfg = nn::LinearConfig {
                    ws_init: nn::Init::Const(0.0),
                    bs_init: Some(nn::Init::Const(0.0)),
                    bias: true,
                };
                let layer = nn::linear(&p / i, fan_in, out, cfg);
                // PyTorch's nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for
                // weights and biases.
                let bound = 1.0 / (fan_in as f64).sqrt();
                init.uniform(&layer.ws, -bound, bound);
                if let Some(bias) = &layer.bs {
                    init.uniform(bias, -bound, bound);
                }
                layer
            })
            .collect();
        Self { layers }
    }
}

impl Module for Subnet {
    fn forward(&self, x: &Tensor) -> Tensor {
        let last = self.layers.len() - 1;
        let mut y = x.shallow_clone();
        for (i, layer) in self.layers.iter().enumerate() {
            y = y.apply(layer);
            if i < last {
                y = y.relu();
            }
        }
        y
    }
}

/// One GLOW coupling: x = [x1 | x2] with len1 = D / 2, len2 = D - len1.
#[derive(Debug)]
struct Coupling {
    /// (s1, t1) = f1(y1), each of len2.
    f1: Subnet,
    /// (s2, t2) = f2(x2), each of len1.
    f2: Subnet,
    len1: i64,
    len2: i64,
}

/// The flow: `n_blocks` of (permutation, coupling).
#[derive(Debug)]
pub struct Flow {
    blocks: Vec<Coupling>,
    /// Permutation applied before each coupling: `y[:, i] = x[:, perm[i]]`.
    permutations: Vec<Vec<i64>>,
    perm_tensors: Vec<Tensor>,
    inverse_tensors: Vec<Tensor>,
    dim: i64,
    alpha: f64,
}

impl Flow {
    /// Builds a flow for `cfg` with variables under `p` and the given permutations (one
    /// per block, each a permutation of 0..D). Its initial weights are drawn from a
    /// generator of its own seeded by the permutations ([`InitialWeights::from_permutations`]),
    /// so the training seed that drew them decides the flow, whatever other threads draw.
    pub fn new(
        p: &nn::Path,
        cfg: &ModelConfig,
        permutations: Vec<Vec<i64>>,
    ) -> Result<Self, String> {
        let init = InitialWeights::from_permutations(&permutations);
        Self::build(p, cfg, permutations, init)
    }

    /// [`Flow::new`] with its variables left at zero, for a model file to fill: loading
    /// draws no initial weights it would throw away.
    pub fn for_checkpoint(
        p: &nn::Path,
        cfg: &ModelConfig,
        permutations: Vec<Vec<i64>>,
    ) -> Result<Self, String> {
        Self::build(p, cfg, permutations, InitialWeights::none())
    }

    fn build(
        p: &nn::Path,
        cfg: &ModelConfig,
        permutations: Vec<Vec<i64>>,
        mut init: InitialWeights,
    ) -> Result<Self, String> {
        let dim = cfg.feature_dim() as i64;
        if permutations.len() != cfg.n_blocks {
            return Err(format!(
                "{} permutations for {} blocks",
                permutations.len(),
                cfg.n_blocks
            ));
        }
        for perm in &permutations {
            check_permutation(perm, dim as usize)?;
        }
        let len1 = dim / 2;
        let len2 = dim - len1;
        let hidden = cfg.hidden as i64;
        let layers = cfg.subnet_layers;
        let blocks = (0..cfg.n_blocks)
            .map(|k| {
                let b = p / "blocks" / k;
                let f1 = Subnet::new(&b / "f1", len1, hidden, 2 * len2, layers, &mut init);
                let f2 = Subnet::new(&b / "f2", len2, hidden, 2 * len1, layers, &mut init);
                Coupling { f1, f2, len1, len2 }
            })
            .collect();
        let device = p.device();
        let perm_tensors: Vec<Tensor> = permutations
            .iter()
            .map(|perm| Tensor::from_slice(perm).to_device(device))
            .collect();
        let inverse_tensors = permutations
            .iter()
            .map(|perm| Tensor::from_slice(&inverse_permutation(perm)).to_device(device))
            .collect();
        Ok(Self {
            blocks,
            permutations,
            perm_tensors,
            inverse_tensors,
            dim,
            alpha: cfg.clamp_alpha,
        })
    }

    /// Seeded random permutations, one per block (salt "PERMUTE ").
    pub fn random_permutations(dim: usize, n_blocks: usize, seed: u64) -> Vec<Vec<i64>> {
        random_permutations(dim, n_blocks, seed, 0x5045_524d_5554_4520)
    }

    /// The permutations, for the model file.
    pub fn permutations(&self) -> &[Vec<i64>] {
        &self.permutations
    }

    /// Dimension D of the modelled vectors.
    pub fn dim(&self) -> i64 {
        self.dim
    }

    /// Maps features `[B, D]` to latents `z` `[B, D]` and log|det J| `[B]`.
    pub fn forward(&self, x: &Tensor) -> (Tensor, Tensor) {
        let b = x.size()[0];
        let mut y = x.shallow_clone();
        let mut log_det = Tensor::zeros([b], (Kind::Float, x.device()));
        for (block, perm) in self.blocks.iter().zip(&self.perm_tensors) {
            y = y.index_select(1, perm);
            let x1 = y.narrow(1, 0, block.len1);
            let x2 = y.narrow(1, block.len1, block.len2);
            let r2 = block.f2.forward(&x2);
            let s2 = soft_clamp(&r2.narrow(1, 0, block.len1), self.alpha);
            let t2 = r2.narrow(1, block.len1, block.len1);
            let y1 = s2.exp() * x1 + t2;
            let r1 = block.f1.forward(&y1);
            let s1 = soft_clamp(&r1.narrow(1, 0, block.len2), self.alpha);
            let t1 = r1.narrow(1, block.len2, block.len2);
            let y2 = s1.exp() * x2 + t1;
            log_det = log_det
                + s1.sum_dim_intlist(1, false, Kind::Float)
                + s2.sum_dim_intlist(1, false, Kind::Float);
            y = Tensor::cat(&[y1, y2], 1);
        }
        (y, log_det)
    }

    /// The inverse map: latents `[B, D]` back to features.
    pub fn inverse(&self, z: &Tensor) -> Tensor {
        let mut y = z.shallow_clone();
        for (block, inv) in self.blocks.iter().zip(&self.inverse_tensors).rev() {
            let y1 = y.narrow(1, 0, block.len1);
            let y2 = y.narrow(1, block.len1, block.len2);
            let r1 = block.f1.forward(&y1);
            let s1 = soft_clamp(&r1.narrow(1, 0, block.len2), self.alpha);
            let t1 = r1.narrow(1, block.len2, block.len2);
            let x2 = (y2 - t1) * (-s1).exp();
            let r2 = block.f2.forward(&x2);
            let s2 = soft_clamp(&r2.narrow(1, 0, block.len1), self.alpha);
            let t2 = r2.narrow(1, block.len1, block.len1);
            let x1 = (y1 - t2) * (-s2).exp();
            y = Tensor::cat(&[x1, x2], 1).index_select(1, inv);
        }
        y
    }

    /// Per-sample negative log-likelihood per dimension under N(0, I), without the
    /// constant: (0.5 ||z||^2 - log|det J|) / D, shape `[B]`. The training loss is its mean.
    pub fn nll(&self, z: &Tensor, log_det: &Tensor) -> Tensor {
        (z.square().sum_dim_intlist(1, false, Kind::Float) * 0.5 - log_det) / self.dim as f64
    }

    /// Device of the flow's tensors.
    pub fn device(&self) -> Device {
        self.perm_tensors
            .first()
            .map(|t| t.device())
            .unwrap_or(Device::Cpu)
    }
}

/// The number of trainable parameters of a flow with this configuration.
pub fn parameter_count(cfg: &ModelConfig) -> usize {
    let d = cfg.feature_dim();
    let (l1, l2) = (d / 2, d - d / 2);
    let h = cfg.hidden;
    let subnet = |c_in: usize, c_out: usize| {
        let mut n = 0;
        for i in 0..cfg.subnet_layers {
            let fi = if i == 0 { c_in } else { h };
            let fo = if i + 1 == cfg.subnet_layers { c_out } else { h };
            n += fi * fo + fo;
        }
        n
    };
    cfg.n_blocks * (subnet(l1, 2 * l2) + subnet(l2, 2 * l1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::{BackboneKind, Preset};
    use crate::core::rng::SplitMix64;

    fn small_config(dim_stages: Vec<usize>) -> ModelConfig {
        let mut cfg = Preset::Fast.config(BackboneKind::EfficientnetLite0).model;
        cfg.feature_stages = dim_stages;
        cfg.n_scales = 1;
        cfg.n_blocks = 3;
        cfg.hidden = 16;
        cfg.subnet_layers = 3;
        cfg
    }

    fn flow(cfg: &ModelConfig, seed: u64) -> (nn::VarStore, Flow) {
        let vs = nn::VarStore::new(Device::Cpu);
        let perms = Flow::random_permutations(cfg.feature_dim(), cfg.n_blocks, seed);
        let f = Flow::new(&(vs.root() / "flow"), cfg, perms).unwrap();
        (vs, f)
    }

    /// Standard normal values of `shape`, from a generator of their own.
    fn randn(shape: &[i64], seed: u64) -> Tensor {
        let mut rng = SplitMix64::new(seed);
        let n: i64 = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|_| rng.normal_f32()).collect();
        Tensor::from_slice(&values).view(shape)
    }

    #[test]
    fn a_seed_gives_one_flow_and_another_seed_another() {
        let cfg = small_config(vec![1]);
        let weights = |seed| {
            let (vs, _f) = flow(&cfg, seed);
            let mut named: Vec<(String, Vec<f32>)> = vs
                .variables()
                .into_iter()
                .map(|(n, t)| (n, Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()))
                .collect();
            named.sort_by(|a, b| a.0.cmp(&b.0));
            named
        };
        let a = weights(5);
        assert_eq!(a, weights(5));
        assert_ne!(a, weights(6));
        // nn.Linear's default: weights and biases within ±1/sqrt(fan_in), not all alike.
        let (name, w) = a.iter().find(|(n, _)| n.ends_with("0.weight")).unwrap();
        let bound = 1.0 / 8f32.sqrt(); // fan_in D / 2 = 8
        assert!(w.iter().all(|v| v.abs() <= bound), "{name}");
        let spread = w.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(spread > 0.5 * bound, "{name}: {spread}");
    }

    #[test]
    fn inverse_recovers_the_input() {
        let cfg = small_config(vec![1]); // 16 channels x 1 scale = 16 (even split)
        let (_vs, f) = flow(&cfg, 3);
        let x = randn(&[5, 16], 30);
        let (z, _) = f.forward(&x);
        let back = f.inverse(&z);
        let err = (back - &x).abs().max().double_value(&[]);
        assert!(err < 1e-4, "max error {err}");
    }

    #[test]
    fn log_det_matches_numerical_jacobian() {
        // Stage 1 of one scale: D = 16, small enough for a numerical Jacobian.
        let cfg = small_config(vec![1]);
        let (vs, f) = flow(&cfg, 7);
        let _ = vs; // keep the variables alive
        let d = cfg.feature_dim() as i64;
        let x = randn(&[1, d], 70);
        let (_, log_det) = f.forward(&x);
        // Central differences, column by column.
        let eps = 1e-2;
        let mut jac = vec![0f64; (d * d) as usize];
        for j in 0..d {
            let dx = Tensor::zeros([1, d], (Kind::Float, Device::Cpu));
            let _ = dx.get(0).get(j).fill_(eps);
            let (zp, _) = f.forward(&(&x + &dx));
            let (zm, _) = f.forward(&(&x - &dx));
            let col = Vec::<f32>::try_from((zp - zm).flatten(0, -1) / (2.0 * eps)).unwrap();
            for i in 0..d as usize {
                jac[i * d as usize + j as usize] = col[i] as f64;
            }
        }
        let jt = Tensor::from_slice(&jac).view([d, d]);
        let (_sign, logabs) = Tensor::linalg_slogdet(&jt);
        let numeric = logabs.double_value(&[]);
        let analytic = log_det.double_value(&[0]);
        assert!(
            (numeric - analytic).abs() < 2e-2 * analytic.abs().max(1.0),
            "numeric {numeric} vs analytic {analytic}"
        );
    }

    #[test]
    fn soft_clamp_stays_within_bounds() {
        let cfg = small_config(vec![1]);
        let (_vs, f) = flow(&cfg, 1);
        let s = Tensor::from_slice(&[-1e9f32, -10.0, -1.0, 0.0, 0.5, 3.0, 1e9]);
        let c = Vec::<f32>::try_from(soft_clamp(&s, f.alpha)).unwrap();
        for v in &c {
            assert!(v.abs() <= 3.0, "{v}");
        }
        assert!(c[6] > 2.99 && c[0] < -2.99);
        assert_eq!(c[3], 0.0);
        // c(s) = alpha * 2/pi * atan(s / alpha), checked at one point.
        let expected = 3.0 * std::f64::consts::FRAC_2_PI * (0.5f64 / 3.0).atan();
        assert!((f64::from(c[4]) - expected).abs() < 1e-6);
    }

    #[test]
    fn parameter_count_matches_paper() {
        let cfg = Preset::Paper.config(BackboneKind::Alexnet).model;
        let n = parameter_count(&cfg);
        assert!((171_000_000..173_000_000).contains(&n), "{n}");
        let small = small_config(vec![1]);
        let (vs, _f) = flow(&small, 0);
        let counted: i64 = vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum();
        assert_eq!(counted as usize, parameter_count(&small));
    }

    #[test]
    fn a_seed_draws_the_permutations_it_always_drew() {
        // Saved models depend on them (and the initial weights are seeded by them).
        assert_eq!(
            Flow::random_permutations(8, 2, 42),
            vec![vec![5, 6, 2, 3, 0, 7, 4, 1], vec![3, 0, 1, 4, 6, 2, 7, 5]]
        );
    }

    #[test]
    fn permutations_are_checked() {
        assert!(check_permutation(&[1, 0, 2], 3).is_ok());
        assert!(check_permutation(&[1, 1, 2], 3).is_err());
        assert!(check_permutation(&[0, 1], 3).is_err());
        assert!(check_permutation(&[0, 1, 3], 3).is_err());
    }
}
