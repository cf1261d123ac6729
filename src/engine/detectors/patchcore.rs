//! PatchCore (Roth et al., "Towards Total Recall in Industrial Anomaly Detection", CVPR
//! 2022): the frozen backbone's maps of two mid-level stages, each averaged
//! over its neighbourhood, the deeper upsampled to the finer grid and concatenated, give
//! one feature per patch. "Training" is one pass over the good images: their patch
//! features (with their rotations and flips, optionally) make a memory bank, thinned by
//! greedy coreset subsampling. A patch of a new image scores its distance to the nearest
//! bank entry; the image scores its most unusual patch; the map is the patch distances,
//! upsampled and blurred. No gradients anywhere, so the map costs nothing extra.

use crate::core::config::{
    INPUT_MULTIPLE, PHOTOMETRIC_CONTRASTS, PHOTOMETRIC_GAINS, PatchCoreConfig,
};
use crate::core::protocol::Phase;
use crate::core::rng::SplitMix64;
use crate::engine::backbone::Backbone;
use crate::engine::detectors::common::{
    BatchScores, ModelState, RawScore, Report, TrainJob, TrainProgress, heat_scale_of, load_images,
    load_training_images, maps_from_grids_at, run_phase, score_decoded, top_scores,
};
use crate::engine::error::{EngineError, Result};
use crate::engine::lanes::{Lanes, ReadOnly};
use crate::engine::synthetic::{self, SyntheticKind};
use crate::engine::transforms::{
    dihedral_groups, image_to_tensor, normalize, photometric_copies, resize_to, standardise,
    turned_copies,
};
use image::RgbImage;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Bank rows compared with the query patches at once: bounds the distance matrix
/// (query patches x rows) to a few tens of megabytes.
const BANK_CHUNK: i64 = 8192;

/// Images whose maps calibrate the heat scale when no validation images are held out.
const HEAT_SCALE_IMAGES: usize = 4;

/// A PatchCore detector on one device. Lives on the worker thread.
pub struct PatchCore {
    /// Settings.
    pub config: PatchCoreConfig,
    /// What validation taught it.
    pub state: ModelState,
    backbone: Rc<Backbone>,
    /// The memory bank `[M, D]`.
    bank: Tensor,
    /// Squared norms of the bank rows `[M]`, for distances by one matrix product.
    bank_sq: Tensor,
    /// Images per backbone call.
    pub backbone_batch: usize,
    /// Patches of confirmed defects, when the model learnt from any.
    defects: Option<DefectBank>,
}

/// Patches of images confirmed defective, and how far from the good bank they lie.
struct DefectBank {
    /// The defect patches `[K, D]`.
    rows: Tensor,
    /// Their squared norms `[K]`.
    sq: Tensor,
    /// The mean distance of these patches to their nearest good patch: a patch that looks
    /// like a confirmed defect scores up to this much more (see [`boost`]).
    scale: f64,
}

impl std::fmt::Debug for PatchCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PatchCore")
            .field("config", &self.config)
            .field("state", &self.state)
            .field("bank", &self.bank.size())
            .field("defect_bank", &self.defects.as_ref().map(|d| d.rows.size()))
            .finish()
    }
}

impl PatchCore {
    /// A detector with the given memory bank `[M, D]` (moved to the backbone's device).
    pub fn new(
        config: PatchCoreConfig,
        backbone: Rc<Backbone>,
        bank: Tensor,
    ) -> Result<Self, String> {
        config.validate()?;
        if backbone.kind() != config.backbone {
            return Err(format!(
                "backbone {} given for a {} model",
                backbone.kind(),
                config.backbone
            ));
        }
        let dim = config.feature_dim() as i64;
        match bank.size().as_slice() {
            [m, d] if *m > 0 && *d == dim => {}
            shape => {
                return Err(format!(
                    "memory bank of shape {shape:?}, expected [rows > 0, {dim}]"
                ));
            }
        }
        let device = backbone.device();
        let bank = bank.to_device(device).to_kind(Kind::Float).contiguous();
        let bank_sq = bank
            .square()
            .sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
        Ok(Self {
            backbone_batch: default_backbone_batch(device),
            config,
            state: ModelState::untrained(),
            backbone,
            bank,
            bank_sq,
            defects: None,
        })
    }

    /// Sets the patches of confirmed defects `[K, D]` and their mean distance to the good
    /// bank, `scale` (see [`boost`]); `K = 0` removes them.
    pub fn set_defects(&mut self, rows: Tensor, scale: f64) -> Result<(), String> {
        let dim = self.config.feature_dim() as i64;
        match rows.size().as_slice() {
            [0, _] => {
                self.defects = None;
                return Ok(());
            }
            [_, d] if *d == dim => {}
            shape => {
                return Err(format!(
                    "defect bank of shape {shape:?}, expected [rows, {dim}]"
                ));
            }
        }
        if !(scale.is_finite() && scale >= 0.0) {
            return Err(format!("defect scale {scale} is not a distance"));
        }
        let rows = rows
            .to_device(self.device())
            .to_kind(Kind::Float)
            .contiguous();
        let sq = rows
            .square()
            .sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
        self.defects = Some(DefectBank { rows, sq, scale });
        Ok(())
    }

    /// The patches of confirmed defects `[K, D]` and their scale, when there are any.
    pub fn defect_bank(&self) -> Option<(&Tensor, f64)> {
        self.defects.as_ref().map(|d| (&d.rows, d.scale))
    }

    /// Distance of each query patch `[P, D]` to the good bank, raised where the patch
    /// lies nearer a confirmed defect than any good patch: `[P]`.
    fn patch_scores(&self, queries: &Tensor) -> Tensor {
        let good = self.nearest_distances(queries);
        match &self.defects {
            None => good,
            Some(d) => {
                let near_defect = nearest_distances(queries, &d.rows, &d.sq);
                boost(&good, &near_defect, d.scale * self.config.defect_weight)
            }
        }
    }

    /// Device of the detector.
    pub fn device(&self) -> Device {
        self.bank.device()
    }

    /// The memory bank `[M, D]`.
    pub fn bank(&self) -> &Tensor {
        &self.bank
    }

    /// Rows of the memory bank.
    pub fn bank_len(&self) -> usize {
        self.bank.size()[0] as usize
    }

    /// An image as the network's input `[1, 3, H, W]` on the device (a square, or the
    /// image's own shape with `keep_aspect`; grey levels standardised with
    /// `standardise`).
    pub fn prepare(&self, img: &RgbImage) -> Tensor {
        prepare(img, &self.config, self.device())
    }

    /// Patch features `[N, H, W, D]` of prepared images `[N, 3, S, S]`, computed
    /// in backbone batches without gradients.
    pub fn patch_features(&self, x: &Tensor) -> Tensor {
        patch_features(&self.backbone, &self.config, x, self.backbone_batch)
    }

    /// Distance of each query patch `[P, D]` to its nearest bank row: `[P]`.
    pub fn nearest_distances(&self, queries: &Tensor) -> Tensor {
        nearest_distances(queries, &self.bank, &self.bank_sq)
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
    /// map `[h, w]` of prepared images `[B, 3, H, W]` of one shape: one pass of the
    /// backbone and one nearest-neighbour search for the whole batch.
    pub fn score_prepared_batch(&self, x: &Tensor, sizes: &[Option<(u32, u32)>]) -> BatchScores {
        let (_, _, input_h, input_w) = x.size4().expect("prepared images are 4-D");
        tch::no_grad(|| {
            let feats = self.patch_features(x); // [B, H, W, D]
            let (b, h, w, d) = feats.size4().expect("patch features are 4-D");
            let dist = self
                .patch_scores(&feats.reshape([b * h * w, d]))
                .view([b, h * w]);
            let scores = top_scores(&dist, self.config.score.top_fraction());
            let maps = maps_from_grids_at(
                &dist.view([b, 1, h, w]),
                (input_h, input_w),
                self.config.blur_sigma,
                sizes,
                self.state.heat_scale,
            );
            (scores, maps)
        })
    }

    /// Scores decoded images in one batch per input shape (one batch in all for square
    /// inputs); with `heatmaps[i]`, also image i's map at its size. Images of any sizes;
    /// results in their order.
    pub fn score_batch(&self, imgs: &[&RgbImage], heatmaps: &[bool]) -> Vec<RawScore> {
        let shapes: Vec<(u32, u32)> = imgs
            .iter()
            .map(|img| {
                let (w, h) = img.dimensions();
                self.config.input_shape(w, h)
            })
            .collect();
        let mut out: Vec<Option<RawScore>> = imgs.iter().map(|_| None).collect();
        let mut todo: Vec<usize> = (0..imgs.len()).collect();
        while let Some(&first) = todo.first() {
            let (group, rest): (Vec<usize>, Vec<usize>) =
                todo.iter().partition(|&&i| shapes[i] == shapes[first]);
            let group_imgs: Vec<&RgbImage> = group.iter().map(|&i| imgs[i]).collect();
            let group_maps: Vec<bool> = group.iter().map(|&i| heatmaps[i]).collect();
            let scored = score_decoded(
                &group_imgs,
                &group_maps,
                &|img| self.prepare(img),
                |x: &Tensor, sizes: &[Option<(u32, u32)>]| self.score_prepared_batch(x, sizes),
            );
            for (i, s) in group.into_iter().zip(scored) {
                out[i] = Some(s);
            }
            todo = rest;
        }
        out.into_iter()
            .map(|s| s.expect("every image is in one group"))
            .collect()
    }

    /// Scores one decoded image; with `heatmap`, also its map at the image's size.
    pub fn score_image(&self, img: &RgbImage, heatmap: bool) -> RawScore {
        self.score_batch(&[img], &[heatmap])
            .pop()
            .expect("one image in, one score out")
    }
}

/// Images per backbone call: the 8 rotations and flips of an image at once on the CPU
/// (the lanes keep every core busy), larger batches on a GPU.
fn default_backbone_batch(device: Device) -> usize {
    match device {
        Device::Cpu => 8,
        _ => 64,
    }
}

/// An image as the network's input `[1, 3, H, W]` on `device`: resized to
/// [`PatchCoreConfig::input_shape`], then standardised when the settings say so.
fn prepare(img: &RgbImage, config: &PatchCoreConfig, device: Device) -> Tensor {
    let (w, h) = img.dimensions();
    let (input_h, input_w) = config.input_shape(w, h);
    let x = resize_to(
        &image_to_tensor(img, device),
        i64::from(input_h),
        i64::from(input_w),
    );
    if config.standardise {
        standardise(&x)
    } else {
        x
    }
}

/// Patch features `[N, H, W, D]` of prepared images `[N, 3, S, S]`: each chosen stage's
/// map averaged over its `neighbourhood` (borders averaged over the pixels that exist),
/// upsampled bilinearly to the first stage's grid, concatenated along the channels.
fn patch_features(
    backbone: &Backbone,
    config: &PatchCoreConfig,
    x: &Tensor,
    batch: usize,
) -> Tensor {
    let (_, _, h, w) = x.size4().expect("prepared images are 4-D");
    let tile = i64::from(config.tile);
    if tile == 0 || (h <= tile && w <= tile) {
        return whole_patch_features(backbone, config, x, batch);
    }
    let stride = config.patch_stride() as i64;
    let (th, tw) = (tile.min(h), tile.min(w));
    let mut sum: Option<Tensor> = None;
    // How many tiles cover each patch, to average where they overlap.
    let count = Tensor::zeros([1, h / stride, w / stride, 1], (Kind::Float, x.device()));
    for y in tile_starts(h, tile) {
        for x0 in tile_starts(w, tile) {
            let f = whole_patch_features(
                backbone,
                config,
                &x.narrow(2, y, th).narrow(3, x0, tw),
                batch,
            );
            let (n, fh, fw, d) = f.size4().expect("patch features are 4-D");
            let acc = sum.get_or_insert_with(|| {
                Tensor::zeros([n, h / stride, w / stride, d], (Kind::Float, x.device()))
            });
            let _ = acc
                .narrow(1, y / stride, fh)
                .narrow(2, x0 / stride, fw)
                .g_add_(&f.to_kind(Kind::Float));
            let _ = count
                .narrow(1, y / stride, fh)
                .narrow(2, x0 / stride, fw)
                .g_add_scalar_(1.0);
        }
    }
    sum.expect("at least one tile") / count.clamp_min(1.0)
}

/// Where the tiles of side `tile` start along an input side `len` (multiples of
/// [`INPUT_MULTIPLE`]): overlapping by about a quarter, the last one ending at the side's
/// end.
fn tile_starts(len: i64, tile: i64) -> Vec<i64> {
    if len <= tile {
        return vec![0];
    }
    let m = i64::from(INPUT_MULTIPLE);
    let step = ((tile * 3 / 4) / m * m).max(m);
    let mut starts: Vec<i64> = (0..)
        .map(|k| k * step)
        .take_while(|&s| s + tile < len)
        .collect();
    starts.push((len - tile) / m * m);
    starts.dedup();
    starts
}

/// [`patch_features`] of the whole input at once.
fn whole_patch_features(
    backbone: &Backbone,
    config: &PatchCoreConfig,
    x: &Tensor,
    batch: usize,
) -> Tensor {
    let n = x.size()[0];
    let k = config.neighbourhood as i64;
    let mut out = Vec::new();
    tch::no_grad(|| {
        for start in (0..n).step_by(batch.max(1)) {
            let len = (batch as i64).min(n - start);
            let xs = normalize(&x.narrow(0, start, len));
            let maps = backbone.stage_maps_fast(&xs, &config.stages);
            let (_, _, h, w) = maps[0].size4().expect("feature maps are 4-D");
            let parts: Vec<Tensor> = maps
                .iter()
                .map(|m| {
                    let m = if k > 1 {
                        m.avg_pool2d([k, k], [1, 1], [k / 2, k / 2], false, false, None::<i64>)
                    } else {
                        m.shallow_clone()
                    };
                    let (_, _, mh, mw) = m.size4().expect("feature maps are 4-D");
                    if (mh, mw) == (h, w) {
                        m
                    } else {
                        m.upsample_bilinear2d([h, w], false, None, None)
                    }
                })
                .collect();
            // [B, D, H, W] -> [B, H, W, D]: one row per patch once flattened.
            out.push(Tensor::cat(&parts, 1).permute([0, 2, 3, 1]).contiguous());
        }
    });
    Tensor::cat(&out, 0)
}

/// Distance of each query `[P, D]` to its nearest row of `bank` `[M, D]` (whose squared
/// row norms are `bank_sq` `[M]`): `[P]`. Squared distances come from one matrix product
/// per chunk of the bank, `|q|^2 + |b|^2 - 2 q.b`, clamped at 0 against rounding.
pub fn nearest_distances(queries: &Tensor, bank: &Tensor, bank_sq: &Tensor) -> Tensor {
    let q_sq = queries
        .square()
        .sum_dim_intlist([1i64].as_slice(), true, Kind::Float); // [P, 1]
    let m = bank.size()[0];
    let mut best: Option<Tensor> = None;
    for start in (0..m).step_by(BANK_CHUNK as usize) {
        let len = BANK_CHUNK.min(m - start);
        let rows = bank.narrow(0, start, len);
        let d2 =
            queries.mm(&rows.tr()) * -2.0 + &q_sq + bank_sq.narrow(0, start, len).view([1, len]);
        let chunk_min = d2.amin([1i64].as_slice(), false);
        best = Some(match best {
            None => chunk_min,
            Some(b) => b.minimum(&chunk_min),
        });
    }
    best.expect("the bank is never empty").clamp_min(0.0).sqrt()
}

/// Patch scores `good` (distances to the good bank) raised by up to `amount` where a
/// patch lies nearer a confirmed defect (`near_defect`) than any good patch: by
/// `amount * (good - near_defect) / (good + near_defect)` when that is positive. A patch
/// unlike every confirmed defect keeps its distance, so a defect type never labelled is
/// found as before; a patch just like a confirmed one scores about `amount` more, the
/// typical distance of a confirmed defect.
pub fn boost(good: &Tensor, near_defect: &Tensor, amount: f64) -> Tensor {
    let closer = (good - near_defect) / (good + near_defect).clamp_min(1e-12);
    good + closer.clamp_min(0.0) * amount
}

/// Greedy coreset selection (k-center greedy, PatchCore's Algorithm 1): starting from row
/// `start`, repeatedly adds the row of `points` `[P, d]` farthest from everything chosen
/// so far, until `m` rows are chosen. Returns their indices in the order chosen.
/// `progress(done, m)` is called every 1 % of the steps; returning `false` from
/// `keep_going` stops early (the caller then discards the result).
pub fn greedy_coreset(
    points: &Tensor,
    m: usize,
    start: i64,
    keep_going: &dyn Fn() -> bool,
    progress: &mut dyn FnMut(usize, usize),
) -> Vec<i64> {
    let p = points.size()[0];
    let m = m.min(p as usize);
    let mut chosen = Vec::with_capacity(m);
    if m == 0 {
        return chosen;
    }
    tch::no_grad(|| {
        let sq = points
            .square()
            .sum_dim_intlist([1i64].as_slice(), false, Kind::Float); // [P]
        let mut min_d = Tensor::full([p], f64::INFINITY, (Kind::Float, points.device()));
        let mut next = start.clamp(0, p - 1);
        let step = (m / 100).max(1);
        for i in 0..m {
            chosen.push(next);
            if i + 1 == m {
                break;
            }
            // Squared distances of every row to the newly chosen one.
            let row = points.get(next);
            let d = points.mv(&row) * -2.0 + &sq + sq.get(next);
            min_d = min_d.minimum(&d);
            // Chosen rows never again, even where duplicates leave every distance at 0.
            let _ = min_d.get(next).fill_(-1.0);
            next = min_d.argmax(0, false).int64_value(&[]);
            if i % step == 0 {
                if !keep_going() {
                    break;
                }
                progress(i + 1, m);
            }
        }
    });
    chosen
}

/// A random projection `[D, d]` with entries drawn from the seed (not from libtorch's
/// global generator, which another worker may be drawing from).
fn random_projection(rows: usize, cols: usize, seed: u64, device: Device) -> Tensor {
    let mut rng = SplitMix64::new(seed ^ 0x9e37_79b9_7f4a_7c15);
    let values: Vec<f32> = (0..rows * cols)
        .map(|_| (rng.next_f64() * 2.0 - 1.0) as f32)
        .collect();
    Tensor::from_slice(&values)
        .view([rows as i64, cols as i64])
        .to_device(device)
}

/// The most good images synthetic defects are drawn on.
const MAX_SYNTHETIC_SOURCES: usize = 16;

/// Builds the memory bank from the good images, then scores the held-out good images for
/// the score statistics, the default threshold and the heat scale.
///
/// The coreset is chosen image by image, among the patches of the image and its rotated
/// and flipped copies, as each image's features come out of a lane: the work and the
/// memory grow linearly with the images (one greedy pass over all the patches of a large
/// training set would take hours on a CPU), and near-duplicates, which a good part's own
/// copies are full of, are what the coreset removes. Measured on 16 magnetic tiles, a
/// global bank without coreset scored as well as the per-image coreset of an eighth
/// (BENCHMARKS.md).
pub fn train(config: PatchCoreConfig, job: TrainJob<'_>, report: Report<'_>) -> Result<PatchCore> {
    let started = Instant::now();
    config.validate().map_err(EngineError::Config)?;
    let mut config = config;
    if config.scale_to_training && config.keep_aspect {
        config.input_scale = training_scale(job.train, config.image_size);
    }
    let device = job.device;
    let (_, images) = load_training_images(&job, report, &|img| prepare(img, &config, device))?;
    let n_images = images.len();
    // The good images the synthetic defects are drawn on: at most
    // `MAX_SYNTHETIC_SOURCES`, spread over the training set.
    let drawn_on: Vec<Tensor> = if config.synthetic_defects > 0 && n_images > 0 {
        let k = n_images.min(MAX_SYNTHETIC_SOURCES);
        (0..k)
            .map(|i| images[i * n_images / k].shallow_clone())
            .collect()
    } else {
        Vec::new()
    };
    let lanes = Lanes::for_device(device);
    let batch = default_backbone_batch(device);
    let projection = (config.coreset_fraction < 1.0).then(|| {
        random_projection(
            config.feature_dim(),
            config.coreset_projection,
            config.seed,
            device,
        )
    });

    // Patch features of every image (and its rotations and flips) and their coreset, in
    // lanes.
    let per_image: Vec<Tensor> = {
        let backbone = &*job.backbone;
        let cfg = &config;
        let projection = projection.as_ref();
        let extract = |(i, x): (usize, Tensor)| {
            let mut copies = if cfg.dihedral_bank {
                dihedral_groups(&x)
            } else {
                vec![x.shallow_clone()]
            };
            if cfg.photometric_bank && !cfg.standardise {
                copies.push(photometric_copies(
                    &x,
                    &PHOTOMETRIC_GAINS,
                    &PHOTOMETRIC_CONTRASTS,
                ));
            }
            copies.extend(turned_copies(&x, cfg.bank_rotations));
            let f = Tensor::cat(
                &copies
                    .iter()
                    .map(|x| {
                        let f = patch_features(backbone, cfg, x, batch);
                        let d = f.size()[3];
                        f.reshape([-1, d])
                    })
                    .collect::<Vec<_>>(),
                0,
            );
            let Some(projection) = projection else {
                return f;
            };
            let p = f.size()[0];
            let keep = ((p as f64 * cfg.coreset_fraction).ceil() as usize).clamp(1, p as usize);
            let projected = tch::no_grad(|| f.mm(projection));
            let start = (SplitMix64::new(cfg.seed ^ i as u64).next_u64() % p as u64) as i64;
            let chosen = greedy_coreset(&projected, keep, start, &|| true, &mut |_, _| {});
            f.index_select(0, &Tensor::from_slice(&chosen).to_device(f.device()))
        };
        // SAFETY: `extract` runs the frozen backbone forward and builds new tensors from its
        // features (copies, projection, coreset with a generator of its own); it mutates
        // nothing and holds the backbone by reference, not by its `Rc`.
        let shared = unsafe { ReadOnly::new(&extract) };
        run_phase(
            &lanes,
            images.into_iter().enumerate().collect(),
            &|item| shared.get()(item),
            job.cancel,
            Phase::CachingFeatures,
            (0, n_images),
            report,
        )?
    };
    // Which image each row comes from, for the heat scale without validation images.
    let owners: Vec<i64> = per_image
        .iter()
        .enumerate()
        .flat_map(|(i, f)| std::iter::repeat_n(i as i64, f.size()[0] as usize))
        .collect();
    let bank = Tensor::cat(&per_image, 0); // [M, D]
    drop(per_image);
    let mut model =
        PatchCore::new(config, job.backbone.clone(), bank).map_err(EngineError::Config)?;
    model.state.train_count = n_images;
    if !job.defects.is_empty() || !drawn_on.is_empty() {
        learn_defects(&mut model, &job, &drawn_on, report)?;
    }

    let fitted = Instant::now();
    validate(&mut model, lanes, &job, &owners, report)?;
    model.state.validation_secs = fitted.elapsed().as_secs_f64();
    model.state.train_secs = started.elapsed().as_secs_f64();
    Ok(model)
}

/// The factor that brings the median short side of the images at `paths` to `size`
/// (their headers only; unreadable ones are left for the loading to report), or `None`
/// when none can be read.
fn training_scale(paths: &[std::path::PathBuf], size: u32) -> Option<f64> {
    let shorts: Vec<f64> = paths
        .iter()
        .filter_map(|p| image::image_dimensions(p).ok())
        .filter(|&(w, h)| w > 0 && h > 0)
        .map(|(w, h)| f64::from(w.min(h)))
        .collect();
    if shorts.is_empty() {
        return None;
    }
    let median = crate::core::calibration::median(&shorts);
    Some(f64::from(size) / median)
}

/// The patches of the confirmed defects of `job` and their copies (turned and mirrored,
/// as the good bank's), and of the defects drawn on the prepared good images `drawn_on`
/// ([`PatchCoreConfig::synthetic_defects`] of each; drawn at random places and angles,
/// so without copies): where a defect has a mask, the patches at least a third covered
/// by it; otherwise its patches farthest from the good bank (the image score's top share,
/// at least one). Their distances to the good bank set the scale of the boost. Returns
/// how many images were used; unreadable ones are reported and skipped.
fn learn_defects(
    model: &mut PatchCore,
    job: &TrainJob<'_>,
    drawn_on: &[Tensor],
    report: &mut dyn FnMut(TrainProgress),
) -> Result<usize> {
    let per_image = model.config.synthetic_defects as usize;
    let total = job.defects.len() + drawn_on.len() * per_image;
    let mut rows = Vec::new();
    let mut distances = Vec::new();
    let mut used = 0;
    let progress = |report: &mut dyn FnMut(TrainProgress), done: usize| -> Result<()> {
        if job.cancel.load(Ordering::Relaxed) {
            return Err(EngineError::Cancelled);
        }
        report(TrainProgress::Phase {
            phase: Phase::CachingFeatures,
            done,
            total,
        });
        Ok(())
    };
    for (i, defect) in job.defects.iter().enumerate() {
        progress(report, i)?;
        let img = match crate::core::image_io::load_rgb(&defect.path) {
            Ok(img) => img,
            Err(e) => {
                report(TrainProgress::Skipped {
                    path: defect.path.clone(),
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let x = model.prepare(&img);
        let (_, _, input_h, input_w) = x.size4().expect("prepared images are 4-D");
        let mask = match &defect.mask {
            None => None,
            Some(path) => match crate::core::image_io::load_mask(path) {
                Ok(m) => {
                    let (w, h) = m.dimensions();
                    let t = Tensor::from_slice(m.as_raw())
                        .to_device(x.device())
                        .view([1, 1, i64::from(h), i64::from(w)])
                        .to_kind(Kind::Float)
                        .gt(0.0)
                        .to_kind(Kind::Float);
                    Some(t.upsample_nearest2d([input_h, input_w], None, None))
                }
                Err(e) => {
                    report(TrainProgress::Skipped {
                        path: path.clone(),
                        reason: format!("mask not used: {e}"),
                    });
                    None
                }
            },
        };
        let with_mask = match &mask {
            Some(m) => Tensor::cat(&[&x, m], 1),
            None => x.shallow_clone(),
        };
        let copies = if model.config.dihedral_bank {
            dihedral_groups(&with_mask)
        } else {
            vec![with_mask]
        };
        for c in copies {
            let (r, d) = defect_patches(
                model,
                &c.narrow(1, 0, 3),
                mask.is_some().then(|| c.narrow(1, 3, 1)),
                false,
            );
            rows.push(r);
            distances.push(d);
        }
        used += 1;
    }
    let mut rng = SplitMix64::new(model.config.seed ^ 0x05ee_ddef_ec75);
    for (i, x) in drawn_on.iter().enumerate() {
        for j in 0..per_image {
            progress(report, job.defects.len() + i * per_image + j)?;
            let kind = SyntheticKind::nth(i * per_image + j);
            let (drawn, mask) = synthetic::draw(x, kind, &mut rng);
            let (r, d) = defect_patches(model, &drawn, Some(mask), true);
            rows.push(r);
            distances.push(d);
            used += 1;
        }
    }
    progress(report, total)?;
    if rows.iter().all(|r| r.size()[0] == 0) {
        return Ok(0);
    }
    let rows = Tensor::cat(&rows, 0);
    let scale = Tensor::cat(&distances, 0)
        .mean(Kind::Float)
        .double_value(&[]);
    model
        .set_defects(rows, scale)
        .map_err(EngineError::Config)?;
    Ok(used)
}

/// The patches of the defect in the prepared images `x` `[N, 3, H, W]` and their
/// distances to the good bank: with its mask `[N, 1, H, W]`, the patches at least a third
/// covered by it (or, for a defect smaller than a patch, the patch holding most of it);
/// without, the image score's top share of patches. With `only_outliers` (a drawn
/// defect), only those of the covered patches that lie farther from the good bank than
/// 95 % of the patches the mask does not touch, possibly none.
fn defect_patches(
    model: &PatchCore,
    x: &Tensor,
    mask: Option<Tensor>,
    only_outliers: bool,
) -> (Tensor, Tensor) {
    let feats = model.patch_features(x); // [N, h, w, D]
    let (n, h, w, d) = feats.size4().expect("patch features are 4-D");
    let flat = feats.reshape([n * h * w, d]);
    let dist = tch::no_grad(|| model.nearest_distances(&flat)); // [N h w]
    let chosen = match mask {
        Some(mask) => {
            // Share of each patch's cell covered by the mask.
            let cover = mask.adaptive_avg_pool2d([h, w]).reshape([n * h * w]);
            let on = cover.ge(1.0 / 3.0);
            if only_outliers {
                // Farther from the good bank than nearly every untouched patch of the
                // image (its 95th percentile): a drawn defect that came out like the
                // good part teaches nothing, and would mark good patches as defects.
                let untouched = dist.masked_select(&cover.eq(0.0));
                let on = if untouched.numel() > 0 {
                    let bar = untouched.quantile_scalar(0.95, None, false, "linear");
                    on.logical_and(&dist.gt_tensor(&bar))
                } else {
                    on
                };
                on.nonzero().view([-1])
            } else {
                let on = on.nonzero().view([-1]);
                if on.size()[0] > 0 {
                    on
                } else {
                    // A defect smaller than a patch: the patch that holds most of it.
                    cover.view([n, h * w]).argmax(1, false)
                        + Tensor::arange(n, (Kind::Int64, x.device())) * (h * w)
                }
            }
        }
        None => {
            let k = ((h * w) as f64 * model.config.score.top_fraction().unwrap_or(0.0))
                .ceil()
                .max(1.0) as i64;
            let top = dist.view([n, h * w]).topk(k.min(h * w), 1, true, false).1;
            (top + Tensor::arange(n, (Kind::Int64, x.device())).view([n, 1]) * (h * w)).view([-1])
        }
    };
    (flat.index_select(0, &chosen), dist.index_select(0, &chosen))
}

/// Scores the held-out good images (with maps, which cost PatchCore nothing extra) to
/// set the score statistics, the default threshold and the heat scale. Without
/// validation images there is no default threshold, and the heat scale comes from a few
/// training images scored against the bank rows of the other training images (their own
/// patches are in the bank, at distance 0).
fn validate(
    model: &mut PatchCore,
    lanes: Lanes,
    job: &TrainJob<'_>,
    owners: &[i64],
    report: &mut dyn FnMut(TrainProgress),
) -> Result<()> {
    let device = model.device();
    // Loading is reported as loading, before the images are scored.
    let (_, val) = load_images(job.validation, Phase::Loading, report, job.cancel, &|img| {
        model.prepare(img)
    })?;
    let total = val.len();
    // A map at the input's own size, for the heat scale.
    let input_size = |x: &Tensor| {
        let (_, _, h, w) = x.size4().expect("prepared images are 4-D");
        (w as u32, h as u32)
    };
    let mut maps = Vec::with_capacity(total);
    if !val.is_empty() {
        // SAFETY: only `score_prepared` runs through it: forward passes over the weights and
        // the bank that build new tensors; it mutates nothing and clones no `Rc`.
        let shared = unsafe { ReadOnly::new(&*model) };
        let scored = run_phase(
            &lanes,
            val,
            &|x| shared.get().score_prepared(&x, Some(input_size(&x))),
            job.cancel,
            Phase::Validating,
            (0, total),
            report,
        )?;
        let scores: Vec<f64> = scored
            .into_iter()
            .map(|(score, map)| {
                maps.extend(map);
                score
            })
            .collect();
        model.state.set_validation(&scores);
    } else {
        report(TrainProgress::Phase {
            phase: Phase::Validating,
            done: 0,
            total,
        });
        // Leave-one-out maps of a few training images.
        let (_, train) = load_images(
            &job.train[..job.train.len().min(HEAT_SCALE_IMAGES)],
            Phase::Validating,
            report,
            job.cancel,
            &|img| model.prepare(img),
        )?;
        let owners_t = Tensor::from_slice(owners).to_device(device);
        for (i, x) in train.iter().enumerate() {
            let others = owners_t.ne(i as i64).nonzero().view([-1]);
            if others.size()[0] == 0 {
                break;
            }
            let bank = model.bank.index_select(0, &others);
            let bank_sq = model.bank_sq.index_select(0, &others);
            let map = tch::no_grad(|| {
                let feats = model.patch_features(x);
                let (_, h, w, d) = feats.size4().expect("patch features are 4-D");
                let dist = nearest_distances(&feats.reshape([h * w, d]), &bank, &bank_sq);
                let (input_w, input_h) = input_size(x);
                maps_from_grids_at(
                    &dist.view([1, 1, h, w]),
                    (i64::from(input_h), i64::from(input_w)),
                    model.config.blur_sigma,
                    &[Some((input_w, input_h))],
                    None,
                )
                .pop()
                .flatten()
            });
            maps.extend(map);
        }
    }
    model.state.heat_scale = heat_scale_of(&maps);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::PatchScore;

    #[test]
    fn top_mean_averages_the_largest_patches_of_each_image() {
        let d = Tensor::from_slice(&[1.0f32, 5.0, 3.0, 4.0, 2.0, 0.0, 8.0, 6.0]).view([2, 4]);
        let scores =
            |rule: PatchScore| Vec::<f32>::try_from(top_scores(&d, rule.top_fraction())).unwrap();
        assert_eq!(scores(PatchScore::Max), [5.0, 8.0]);
        assert_eq!(scores(PatchScore::TopMean { fraction: 0.5 }), [4.5, 7.0]);
        // At least one patch.
        assert_eq!(scores(PatchScore::TopMean { fraction: 0.01 }), [5.0, 8.0]);
    }

    #[test]
    fn tiles_cover_the_side_overlap_and_start_on_the_grid() {
        assert_eq!(tile_starts(256, 256), [0]);
        assert_eq!(tile_starts(200, 256), [0]);
        // Steps of 192 (three quarters of 256), the last tile ending at the side's end.
        assert_eq!(tile_starts(384, 256), [0, 128]);
        assert_eq!(tile_starts(512, 256), [0, 192, 256]);
        assert_eq!(tile_starts(1024, 256), [0, 192, 384, 576, 768]);
        for len in (256..=2048).step_by(32) {
            let starts = tile_starts(len, 256);
            assert_eq!(starts[0], 0);
            assert_eq!(starts.last().unwrap() + 256, len, "{len}: {starts:?}");
            assert!(starts.iter().all(|s| s % 32 == 0), "{len}: {starts:?}");
            // Every pair of neighbours overlaps.
            assert!(
                starts.windows(2).all(|w| w[1] > w[0] && w[1] - w[0] < 256),
                "{len}: {starts:?}"
            );
        }
    }
}
