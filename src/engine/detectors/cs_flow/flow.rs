//! The cross-scale flow of CS-Flow (Rudolph et al., WACV 2022): coupling blocks that act on
//! the feature maps of three scales at once. Each block permutes the channels of each
//! scale (a fixed random permutation), then applies a Glow-style affine coupling whose
//! subnetworks are "cross-convolutions": per scale, a convolution to the hidden width and
//! one back, with the scales exchanging their hidden activations (the coarser one
//! upsampled, the finer one convolved with stride 2). Each scale's subnetwork output is
//! multiplied by a learnt scalar that starts at 0, so every block starts as the identity.
//! Fully convolutional: the latents keep the maps' positions, which gives the anomaly map.

use crate::core::config::{CS_FLOW_SCALES, CsFlowConfig};
use crate::engine::backbone::{InitialWeights, zero_init};
use crate::engine::detectors::common::{
    check_permutation, inverse_permutation, random_permutations, soft_clamp,
};
use tch::Tensor;
use tch::nn;

/// The maps of the three scales, finest first: `[B, C, H_s, W_s]` each.
pub type Scales = [Tensor; CS_FLOW_SCALES];

/// Slope of the LeakyReLU between the convolutions (paper: 0.1).
const LEAKY_SLOPE: f64 = 0.1;

/// The cross-convolution subnetwork of one coupling: maps `c_in` channels per scale to
/// `c_out` channels per scale.
#[derive(Debug)]
struct CrossConvolutions {
    first: Vec<nn::Conv2D>,
    second: Vec<nn::Conv2D>,
    /// Scale 1's hidden map, upsampled, to scale 0; scale 2's to scale 1.
    up: Vec<nn::Conv2D>,
    /// Scale 0's hidden map, stride 2, to scale 1; scale 1's to scale 2.
    down: Vec<nn::Conv2D>,
    /// One learnt factor per scale, 0 at the start.
    gamma: Tensor,
}

impl CrossConvolutions {
    /// Weights from `init` (Kaiming uniform, tch's default), biases and gammas zero.
    fn new(
        p: nn::Path,
        c_in: i64,
        hidden: i64,
        c_out: i64,
        kernel: i64,
        init: &mut InitialWeights,
    ) -> Self {
        let same = zero_init(nn::ConvConfig {
            padding: kernel / 2,
            ..Default::default()
        });
        let strided = zero_init(nn::ConvConfig {
            padding: kernel / 2,
            stride: 2,
            ..Default::default()
        });
        let mut conv = |name: String, c_in: i64, c_out: i64, cfg: nn::ConvConfig| {
            let conv = nn::conv2d(&p / name, c_in, c_out, kernel, cfg);
            init.kaiming_uniform(&conv.ws);
            conv
        };
        let scales = 0..CS_FLOW_SCALES;
        Self {
            first: scales
                .clone()
                .map(|s| conv(format!("first{s}"), c_in, hidden, same))
                .collect(),
            second: scales
                .map(|s| conv(format!("second{s}"), hidden, c_out, same))
                .collect(),
            up: (0..CS_FLOW_SCALES - 1)
                .map(|s| conv(format!("up{s}"), hidden, c_out, same))
                .collect(),
            down: (0..CS_FLOW_SCALES - 1)
                .map(|s| conv(format!("down{s}"), hidden, c_out, strided))
                .collect(),
            gamma: p.zeros("gamma", &[CS_FLOW_SCALES as i64]),
        }
    }

    fn forward(&self, x: &[Tensor]) -> Vec<Tensor> {
        let hidden: Vec<Tensor> = x
            .iter()
            .zip(&self.first)
            .map(|(x, conv)| leaky_relu(&x.apply(conv)))
            .collect();
        let size = |t: &Tensor| {
            let s = t.size();
            [s[2], s[3]]
        };
        (0..CS_FLOW_SCALES)
            .map(|s| {
                let mut out = hidden[s].apply(&self.second[s]);
                if s + 1 < CS_FLOW_SCALES {
                    // The coarser scale, upsampled to this one's grid.
                    let up = hidden[s + 1].upsample_bilinear2d(size(&x[s]), false, None, None);
                    out += up.apply(&self.up[s]);
                }
                if s > 0 {
                    // The finer scale, strided down to this one's grid (cropped where
                    // an odd side leaves it one larger).
                    let down = hidden[s - 1].apply(&self.down[s - 1]);
                    let [h, w] = size(&x[s]);
                    out += down.narrow(2, 0, h).narrow(3, 0, w);
                }
                out * self.gamma.get(s as i64)
            })
            .collect()
    }
}

/// LeakyReLU with the paper's slope (below 1, so the larger of x and slope x).
fn leaky_relu(x: &Tensor) -> Tensor {
    x.maximum(&(x * LEAKY_SLOPE))
}

/// One coupling block: x = [x1 | x2] per scale, with c1 = C / 2 channels in x1.
#[derive(Debug)]
struct Coupling {
    /// (s1, t1) = f1(y1), each of c2 channels.
    f1: CrossConvolutions,
    /// (s2, t2) = f2(x2), each of c1 channels.
    f2: CrossConvolutions,
    /// Per scale, the channel permutation applied first.
    perms: Vec<Tensor>,
    inverse_perms: Vec<Tensor>,
}

/// The cross-scale flow.
#[derive(Debug)]
pub struct CrossScaleFlow {
    blocks: Vec<Coupling>,
    permutations: Vec<Vec<i64>>,
    channels: i64,
    c1: i64,
    c2: i64,
    alpha: f64,
}

impl CrossScaleFlow {
    /// Builds the flow of `cfg` with variables under `p` and the given permutations (one
    /// per block and scale, block-major, each a permutation of the channels). Its initial
    /// weights are drawn from a generator of its own seeded by the permutations
    /// ([`InitialWeights::from_permutations`]), so the seed that drew them decides the flow.
    pub fn new(
        p: &nn::Path,
        cfg: &CsFlowConfig,
        permutations: Vec<Vec<i64>>,
    ) -> Result<Self, String> {
        let init = InitialWeights::from_permutations(&permutations);
        Self::build(p, cfg, permutations, init)
    }

    /// [`CrossScaleFlow::new`] with its variables left at zero, for a model file to fill:
    /// loading draws no initial weights it would throw away.
    pub fn for_checkpoint(
        p: &nn::Path,
        cfg: &CsFlowConfig,
        permutations: Vec<Vec<i64>>,
    ) -> Result<Self, String> {
        Self::build(p, cfg, permutations, InitialWeights::none())
    }

    fn build(
        p: &nn::Path,
        cfg: &CsFlowConfig,
        permutations: Vec<Vec<i64>>,
        mut init: InitialWeights,
    ) -> Result<Self, String> {
        let channels = cfg.channels() as i64;
        let n_blocks = cfg.kernel_sizes.len();
        if permutations.len() != n_blocks * CS_FLOW_SCALES {
            return Err(format!(
                "{} permutations for {n_blocks} blocks of {CS_FLOW_SCALES} scales",
                permutations.len()
            ));
        }
        for perm in &permutations {
            check_permutation(perm, channels as usize)?;
        }
        let c1 = channels / 2;
        let c2 = channels - c1;
        let hidden = cfg.hidden as i64;
        let device = p.device();
        let to_tensor = |v: &Vec<i64>| Tensor::from_slice(v).to_device(device);
        let blocks = cfg
            .kernel_sizes
            .iter()
            .enumerate()
            .map(|(k, &kernel)| {
                let b = p / "blocks" / k;
                let perms = &permutations[k * CS_FLOW_SCALES..(k + 1) * CS_FLOW_SCALES];
                let kernel = kernel as i64;
                Coupling {
                    f1: CrossConvolutions::new(&b / "f1", c1, hidden, 2 * c2, kernel, &mut init),
                    f2: CrossConvolutions::new(&b / "f2", c2, hidden, 2 * c1, kernel, &mut init),
                    perms: perms.iter().map(to_tensor).collect(),
                    inverse_perms: perms
                        .iter()
                        .map(|p| to_tensor(&inverse_permutation(p)))
                        .collect(),
                }
            })
            .collect();
        Ok(Self {
            blocks,
            permutations,
            channels,
            c1,
            c2,
            alpha: cfg.clamp_alpha,
        })
    }

    /// Seeded random permutations of `channels`, one per block and scale (salt "CS-FLOWP").
    pub fn random_permutations(channels: usize, n_blocks: usize, seed: u64) -> Vec<Vec<i64>> {
        random_permutations(
            channels,
            n_blocks * CS_FLOW_SCALES,
            seed,
            0x4353_2d46_4c4f_5750,
        )
    }

    /// The permutations, for the model file.
    pub fn permutations(&self) -> &[Vec<i64>] {
        &self.permutations
    }

    /// Maps the three scales' features to latents of the same shapes and log|det J| `[B]`.
    pub fn forward(&self, x: &Scales) -> (Scales, Tensor) {
        let b = x[0].size()[0];
        let mut y: Vec<Tensor> = x.iter().map(Tensor::shallow_clone).collect();
        let mut log_det = Tensor::zeros([b], (x[0].kind(), x[0].device()));
        let sum = |t: &Tensor| t.sum_dim_intlist([1i64, 2, 3].as_slice(), false, t.kind());
        for block in &self.blocks {
            let permuted: Vec<Tensor> = y
                .iter()
                .zip(&block.perms)
                .map(|(t, p)| t.index_select(1, p))
                .collect();
            let x1: Vec<Tensor> = permuted.iter().map(|t| t.narrow(1, 0, self.c1)).collect();
            let x2: Vec<Tensor> = permuted
                .iter()
                .map(|t| t.narrow(1, self.c1, self.c2))
                .collect();
            let r2 = block.f2.forward(&x2);
            let mut y1 = Vec::with_capacity(CS_FLOW_SCALES);
            for (x1, r) in x1.iter().zip(&r2) {
                let s = soft_clamp(&r.narrow(1, 0, self.c1), self.alpha);
                let t = r.narrow(1, self.c1, self.c1);
                y1.push(s.exp() * x1 + t);
                log_det += sum(&s);
            }
            let r1 = block.f1.forward(&y1);
            y = Vec::with_capacity(CS_FLOW_SCALES);
            for ((x2, r), y1) in x2.iter().zip(&r1).zip(y1) {
                let s = soft_clamp(&r.narrow(1, 0, self.c2), self.alpha);
                let t = r.narrow(1, self.c2, self.c2);
                let y2 = s.exp() * x2 + t;
                log_det += sum(&s);
                y.push(Tensor::cat(&[y1, y2], 1));
            }
        }
        (to_scales(y), log_det)
    }

    /// The inverse map: latents back to features.
    pub fn inverse(&self, z: &Scales) -> Scales {
        let mut y: Vec<Tensor> = z.iter().map(Tensor::shallow_clone).collect();
        for block in self.blocks.iter().rev() {
            let y1: Vec<Tensor> = y.iter().map(|t| t.narrow(1, 0, self.c1)).collect();
            let y2: Vec<Tensor> = y.iter().map(|t| t.narrow(1, self.c1, self.c2)).collect();
            let r1 = block.f1.forward(&y1);
            let x2: Vec<Tensor> = y2
                .iter()
                .zip(&r1)
                .map(|(y2, r)| {
                    let s = soft_clamp(&r.narrow(1, 0, self.c2), self.alpha);
                    let t = r.narrow(1, self.c2, self.c2);
                    (y2 - t) * (-s).exp()
                })
                .collect();
            let r2 = block.f2.forward(&x2);
            y = y1
                .iter()
                .zip(&r2)
                .zip(x2)
                .zip(&block.inverse_perms)
                .map(|(((y1, r), x2), inv)| {
                    let s = soft_clamp(&r.narrow(1, 0, self.c1), self.alpha);
                    let t = r.narrow(1, self.c1, self.c1);
                    let x1 = (y1 - t) * (-s).exp();
                    Tensor::cat(&[x1, x2], 1).index_select(1, inv)
                })
                .collect();
        }
        to_scales(y)
    }

    /// Per-sample negative log-likelihood per latent value under N(0, I), without the
    /// constant: (0.5 sum z^2 - log|det J|) / (number of latent values), shape `[B]`. The
    /// training loss is its mean (the paper's).
    pub fn nll(z: &Scales, log_det: &Tensor) -> Tensor {
        let values: i64 = z
            .iter()
            .map(|t| t.size()[1..].iter().product::<i64>())
            .sum();
        let sq: Tensor = z
            .iter()
            .map(|t| {
                t.square()
                    .sum_dim_intlist([1i64, 2, 3].as_slice(), false, t.kind())
            })
            .reduce(|a, b| a + b)
            .expect("three scales");
        (sq * 0.5 - log_det) / values as f64
    }

    /// Channels per scale.
    pub fn channels(&self) -> i64 {
        self.channels
    }
}

fn to_scales(v: Vec<Tensor>) -> Scales {
    v.try_into().expect("one tensor per scale")
}

/// The number of trainable parameters of a flow with this configuration.
pub fn parameter_count(cfg: &CsFlowConfig) -> usize {
    let c = cfg.channels();
    let (c1, c2) = (c / 2, c - c / 2);
    let h = cfg.hidden;
    let scales = CS_FLOW_SCALES;
    cfg.kernel_sizes
        .iter()
        .map(|&k| {
            let kk = k * k;
            let subnet = |c_in: usize, c_out: usize| {
                scales * (c_in * kk * h + h)
                    + scales * (h * kk * c_out + c_out)
                    + 2 * (scales - 1) * (h * kk * c_out + c_out)
                    + scales
            };
            subnet(c1, 2 * c2) + subnet(c2, 2 * c1)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::BackboneKind;
    use crate::core::rng::SplitMix64;
    use tch::{Device, Kind};

    /// A flow on 8 channels (stage 1 of AlexNet has 256: use a Lite stage and override).
    fn small() -> CsFlowConfig {
        CsFlowConfig {
            backbone: BackboneKind::EfficientnetLite0,
            stage: 1, // 16 channels
            kernel_sizes: vec![3, 5],
            hidden: 8,
            ..CsFlowConfig::default()
        }
    }

    fn flow(cfg: &CsFlowConfig, seed: u64) -> (nn::VarStore, CrossScaleFlow) {
        let vs = nn::VarStore::new(Device::Cpu);
        let perms =
            CrossScaleFlow::random_permutations(cfg.channels(), cfg.kernel_sizes.len(), seed);
        let f = CrossScaleFlow::new(&(vs.root() / "flow"), cfg, perms).unwrap();
        (vs, f)
    }

    /// Standard normal values of `shape`, from a generator of their own.
    fn randn(shape: &[i64], rng: &mut SplitMix64) -> Tensor {
        let n: i64 = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|_| rng.normal_f32()).collect();
        Tensor::from_slice(&values).view(shape)
    }

    /// Random features at three scales of sides `sides`.
    fn features(b: i64, c: i64, sides: [i64; 3]) -> Scales {
        let mut rng = SplitMix64::new((b * 1000 + c) as u64 ^ sides[0] as u64);
        sides.map(|s| randn(&[b, c, s, s], &mut rng))
    }

    /// Sets every gamma to a non-zero value, so the blocks are not the identity.
    fn wake(vs: &nn::VarStore) {
        tch::no_grad(|| {
            for (name, mut t) in vs.variables() {
                if name.ends_with("gamma") {
                    let _ = t.fill_(0.7);
                }
            }
        });
    }

    #[test]
    fn blocks_start_as_the_identity() {
        let cfg = small();
        let (_vs, f) = flow(&cfg, 1);
        let x = features(2, 16, [8, 4, 2]);
        let (z, log_det) = f.forward(&x);
        // Each block only permutes the channels at the start: z is x with its channels
        // permuted by the product of the permutations, and log|det J| is 0.
        for s in 0..3 {
            let sorted = |t: &Tensor| t.sort(1, false).0;
            assert!(sorted(&z[s]).allclose(&sorted(&x[s]), 1e-6, 1e-6, false));
        }
        assert_eq!(log_det.abs().max().double_value(&[]), 0.0);
        // And the gammas are what makes it so.
        let gammas: Vec<f64> = _vs
            .variables()
            .into_iter()
            .filter(|(n, _)| n.ends_with("gamma"))
            .flat_map(|(_, t)| Vec::<f32>::try_from(t).unwrap())
            .map(f64::from)
            .collect();
        assert_eq!(gammas.len(), 2 * 2 * 3);
        assert!(gammas.iter().all(|&g| g == 0.0));
    }

    #[test]
    fn inverse_recovers_the_input() {
        let cfg = small();
        let (mut vs, f) = flow(&cfg, 3);
        wake(&vs);
        vs.double();
        // Odd sides too: 7 -> 4 (stride 2 with padding) is cropped to the coarser grid.
        for sides in [[8, 4, 2], [7, 3, 2]] {
            let x = features(3, 16, sides).map(|t| t.to_kind(Kind::Double));
            let (z, log_det) = f.forward(&x);
            assert!(log_det.abs().max().double_value(&[]) > 1e-3, "not identity");
            let back = f.inverse(&z);
            for s in 0..3 {
                let err = (&back[s] - &x[s]).abs().max().double_value(&[]);
                assert!(err < 1e-9, "scale {s}: max error {err}");
            }
        }
    }

    #[test]
    fn log_det_matches_numerical_jacobian() {
        // 16 channels on 2x2, 1x1, 1x1 grids: 96 values, small enough for a numerical
        // Jacobian in double precision.
        let cfg = small();
        let (vs, f) = flow(&cfg, 5);
        wake(&vs);
        let mut vs = vs;
        vs.double();
        let sides = [2i64, 1, 1];
        let sizes: Vec<i64> = sides.iter().map(|s| 16 * s * s).collect();
        let n: i64 = sizes.iter().sum();
        let split = |v: &Tensor| -> Scales {
            let mut at = 0;
            to_scales(
                (0..3)
                    .map(|s| {
                        let t = v.narrow(1, at, sizes[s]).view([-1, 16, sides[s], sides[s]]);
                        at += sizes[s];
                        t
                    })
                    .collect(),
            )
        };
        let join =
            |z: &Scales| Tensor::cat(&z.iter().map(|t| t.flatten(1, -1)).collect::<Vec<_>>(), 1);
        let x = randn(&[1, n], &mut SplitMix64::new(5)).to_kind(Kind::Double);
        let (_, log_det) = f.forward(&split(&x));
        let eps = 1e-5;
        let mut cols = Vec::new();
        for j in 0..n {
            let dx = Tensor::zeros([1, n], (Kind::Double, Device::Cpu));
            let _ = dx.get(0).get(j).fill_(eps);
            let zp = join(&f.forward(&split(&(&x + &dx))).0);
            let zm = join(&f.forward(&split(&(&x - &dx))).0);
            cols.push((zp - zm).view([n]) / (2.0 * eps));
        }
        let jac = Tensor::stack(&cols, 1);
        let (_sign, logabs) = Tensor::linalg_slogdet(&jac);
        let numeric = logabs.double_value(&[]);
        let analytic = log_det.double_value(&[0]);
        assert!(
            (numeric - analytic).abs() < 1e-4 * analytic.abs().max(1.0),
            "numeric {numeric} vs analytic {analytic}"
        );
    }

    #[test]
    fn parameter_count_matches_the_variables() {
        let cfg = small();
        let (vs, _f) = flow(&cfg, 0);
        let counted: i64 = vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum();
        assert_eq!(counted as usize, parameter_count(&cfg));
    }

    #[test]
    fn a_seed_draws_the_permutations_it_always_drew() {
        // Saved models depend on them (and the initial weights are seeded by them).
        assert_eq!(
            CrossScaleFlow::random_permutations(6, 1, 42),
            vec![
                vec![1, 2, 5, 4, 0, 3],
                vec![5, 3, 2, 0, 1, 4],
                vec![5, 2, 1, 3, 4, 0]
            ]
        );
    }

    #[test]
    fn wrong_permutations_are_refused() {
        let cfg = small();
        let vs = nn::VarStore::new(Device::Cpu);
        let mut perms = CrossScaleFlow::random_permutations(16, 2, 0);
        assert!(CrossScaleFlow::new(&vs.root(), &cfg, perms[..5].to_vec()).is_err());
        perms[3][0] = perms[3][1];
        assert!(CrossScaleFlow::new(&vs.root(), &cfg, perms).is_err());
    }
}
