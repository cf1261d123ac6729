//! Which good images to train on, chosen by how they look to the backbone: each image
//! summed up by [`Backbone::image_summary`] at 224 px, and the order to train on them
//! given by greedy k-medoids ([`crate::core::diverse::k_medoids`]): first the image most
//! like all the others, then each next one the image that best stands for the ones not
//! yet near a chosen image. 16 images chosen so cover the good parts as they are, seed
//! after seed, where a random draw of 16 moves a category by several points
//! (BENCHMARKS.md, "Accuracy, round 3").

use crate::core::diverse::{Choice, candidates, order_of};
use crate::core::image_io::load_rgb;
use crate::engine::backbone::Backbone;
use crate::engine::error::{EngineError, Result};
use crate::engine::transforms::{image_to_tensor, normalize, resize_square};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

/// Side of the square each image is summed up at.
pub const SUMMARY_SIZE: i64 = 224;

/// Images through the backbone at once.
const BATCH: usize = 16;

/// The good images in the order to train on them (at most
/// [`crate::core::diverse::MAX_PREFERRED`]), among at most
/// [`crate::core::diverse::MAX_CANDIDATES`] of them (the first in the order of `seed`);
/// images that cannot be read are left out. `report(done, total)` after each batch.
pub fn preferred_order(
    backbone: &Backbone,
    good: &[PathBuf],
    seed: u64,
    cancel: &AtomicBool,
    report: &mut dyn FnMut(usize, usize),
) -> Result<Vec<PathBuf>> {
    let candidates = candidates(good, seed);
    let total = candidates.len();
    let mut paths = Vec::with_capacity(total);
    let mut items: Vec<Vec<f32>> = Vec::with_capacity(total);
    report(0, total);
    for (i, chunk) in candidates.chunks(BATCH).enumerate() {
        if cancel.load(Ordering::Relaxed) {
            return Err(EngineError::Cancelled);
        }
        let mut batch = Vec::with_capacity(chunk.len());
        for path in chunk {
            if let Ok(img) = load_rgb(path) {
                batch.push(resize_square(
                    &image_to_tensor(&img, backbone.device()),
                    SUMMARY_SIZE,
                ));
                paths.push(path.clone());
            }
        }
        if !batch.is_empty() {
            let summary = backbone.image_summary(&normalize(&tch::Tensor::cat(&batch, 0)));
            let rows = Vec::<Vec<f32>>::try_from(summary.to_device(tch::Device::Cpu))?;
            items.extend(rows);
        }
        report((i * BATCH + chunk.len()).min(total), total);
    }
    Ok(order_of(&paths, &items, Choice::Representatives))
}
