//! Choosing which good images to train on rather than drawing them: each image described
//! by a small grey thumbnail (its layout and grey levels) and its aspect ratio, and the
//! training images picked greedily, for coverage (k-centre: every good image near a
//! chosen one) or as representatives (k-medoids: where the images are many). The
//! held-out images are drawn as before (seeded, first): they stay a fair sample of the
//! parts, which their scores must be to set the line.

use crate::core::dataset::seeded_order;
use image::RgbImage;
use image::imageops::FilterType;
use std::path::{Path, PathBuf};

/// Side of the grey thumbnail that describes an image.
pub const THUMB: u32 = 16;

/// How a good image looks, in a few numbers: its grey thumbnail (`THUMB` x `THUMB`, 0 to
/// 1) and the log of its aspect ratio.
pub fn describe(img: &RgbImage) -> Vec<f32> {
    let grey = image::imageops::grayscale(img);
    let small = image::imageops::resize(&grey, THUMB, THUMB, FilterType::Triangle);
    let mut d: Vec<f32> = small.pixels().map(|p| f32::from(p.0[0]) / 255.0).collect();
    let (w, h) = img.dimensions();
    d.push((w.max(1) as f32 / h.max(1) as f32).ln());
    d
}

fn distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
}

/// Greedy k-centre: `k` indices into `items`, the first the item closest to their mean
/// (a typical image, not an odd one), each next the item farthest from every one chosen
/// so far. Ties go to the lower index, so the same items give the same choice.
pub fn k_centre(items: &[Vec<f32>], k: usize) -> Vec<usize> {
    let n = items.len();
    if n == 0 || k == 0 {
        return Vec::new();
    }
    let dim = items[0].len();
    let mut mean = vec![0.0f32; dim];
    for it in items {
        for (m, v) in mean.iter_mut().zip(it) {
            *m += v / n as f32;
        }
    }
    let first = (0..n)
        .min_by(|&a, &b| distance(&items[a], &mean).total_cmp(&distance(&items[b], &mean)))
        .unwrap_or(0);
    let mut chosen = vec![first];
    let mut nearest: Vec<f32> = items.iter().map(|it| distance(it, &items[first])).collect();
    while chosen.len() < k.min(n) {
        let next = (0..n)
            .max_by(|&a, &b| nearest[a].total_cmp(&nearest[b]).then(b.cmp(&a)))
            .unwrap_or(0);
        if nearest[next] <= 0.0 && chosen.contains(&next) {
            break;
        }
        chosen.push(next);
        for (d, it) in nearest.iter_mut().zip(items) {
            *d = d.min(distance(it, &items[next]));
        }
    }
    chosen
}

/// How the training images are chosen from their descriptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// [`k_centre`]: every image near a chosen one.
    Coverage,
    /// [`k_medoids`]: the chosen ones where the images are many.
    Representatives,
}

/// The most good images put in a preferred order: a training set rarely has more, and
/// past it the seeded order takes over.
pub const MAX_PREFERRED: usize = 128;

/// The most good images described and chosen among (the first of the seeded order): it
/// bounds the time (decoding each one) and the memory (their distances, pairwise).
pub const MAX_CANDIDATES: usize = 1024;

/// The good images in the order to train on them (at most [`MAX_PREFERRED`]), by `choice`
/// on their [`describe`]ptions: the first `k` of it are the greedy choice of `k`, so a
/// larger training count only adds to a smaller one's. Among at most [`MAX_CANDIDATES`]
/// of them (the first in the order of `seed`); images that cannot be read are left out.
pub fn preferred_order(good: &[PathBuf], choice: Choice, seed: u64) -> Vec<PathBuf> {
    let candidates = candidates(good, seed);
    let described = describe_all(&candidates);
    let (paths, items): (Vec<&PathBuf>, Vec<Vec<f32>>) = described.into_iter().unzip();
    order_of(&paths, &items, choice)
}

/// The good images an order is chosen among: the first [`MAX_CANDIDATES`] of the seeded
/// order.
pub fn candidates(good: &[PathBuf], seed: u64) -> Vec<PathBuf> {
    let mut candidates = seeded_order(good, seed);
    candidates.truncate(MAX_CANDIDATES);
    candidates
}

/// The order to train on `paths` in (at most [`MAX_PREFERRED`]), by `choice` on their
/// descriptions `items` (one per path).
pub fn order_of<P: AsRef<Path>>(paths: &[P], items: &[Vec<f32>], choice: Choice) -> Vec<PathBuf> {
    let k = items.len().min(MAX_PREFERRED);
    let picked = match choice {
        Choice::Coverage => k_centre(items, k),
        Choice::Representatives => k_medoids(items, k),
    };
    picked
        .into_iter()
        .map(|i| paths[i].as_ref().to_path_buf())
        .collect()
}

/// Splits `good` as [`crate::core::dataset::split_train_val`] does, with the same
/// held-out images (the first `val_count` of the seeded order), but the training images
/// taken in the [`preferred_order`] of `choice` rather than the seeded order. Both lists
/// sorted.
pub fn split_diverse(
    good: &[PathBuf],
    train_count: Option<usize>,
    val_count: usize,
    seed: u64,
    choice: Choice,
) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let val_len = val_count.min(good.len() / 2);
    let wanted = train_count.map_or(good.len(), |c| c.min(good.len() - val_len));
    let order = if wanted < good.len() - val_len {
        preferred_order(good, choice, seed)
    } else {
        Vec::new()
    };
    let roles = crate::core::training_set::assign_roles_preferring(
        good,
        &std::collections::BTreeMap::new(),
        wanted,
        Some(val_len),
        seed,
        &order,
    );
    (roles.train, roles.held_out)
}

/// The descriptions of the readable images among `paths`, decoded on two threads.
fn describe_all(paths: &[PathBuf]) -> Vec<(&PathBuf, Vec<f32>)> {
    fn one(p: &PathBuf) -> Option<(&PathBuf, Vec<f32>)> {
        crate::core::image_io::load_rgb(p)
            .ok()
            .map(|img| (p, describe(&img)))
    }
    let half = paths.len().div_ceil(2);
    let (a, b) = paths.split_at(half);
    std::thread::scope(|s| {
        let second = s.spawn(|| b.iter().filter_map(one).collect::<Vec<_>>());
        let mut out: Vec<_> = a.iter().filter_map(one).collect();
        out.extend(second.join().unwrap_or_default());
        out
    })
}

/// Greedy k-medoids (the BUILD step of PAM): `k` indices into `items`, each next the item
/// that most lowers the summed distance of every item to its nearest chosen one. Where
/// [`k_centre`] reaches for the odd images at the edges, this picks representatives of
/// where the images are many. Ties go to the lower index.
pub fn k_medoids(items: &[Vec<f32>], k: usize) -> Vec<usize> {
    let n = items.len();
    let mut chosen = Vec::new();
    let mut is_chosen = vec![false; n];
    let mut nearest = vec![f32::INFINITY; n];
    let pairwise: Vec<Vec<f32>> = items
        .iter()
        .map(|a| items.iter().map(|b| distance(a, b)).collect())
        .collect();
    while chosen.len() < k.min(n) {
        let gain = |c: usize| -> f32 {
            pairwise[c]
                .iter()
                .zip(&nearest)
                .map(|(d, best)| {
                    if best.is_infinite() {
                        -d
                    } else {
                        (best - d).max(0.0)
                    }
                })
                .sum()
        };
        // Each candidate's gain once (an O(n) sum), ties to the lower index.
        let (_, next) = (0..n)
            .filter(|&c| !is_chosen[c])
            .map(|c| (gain(c), c))
            .max_by(|(ga, a), (gb, b)| ga.total_cmp(gb).then(b.cmp(a)))
            .expect("fewer chosen than items");
        chosen.push(next);
        is_chosen[next] = true;
        for (best, d) in nearest.iter_mut().zip(&pairwise[next]) {
            *best = best.min(*d);
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k_centre_starts_typical_and_covers_the_spread() {
        // Points on a line: most near 0, a few far out.
        let items: Vec<Vec<f32>> = [0.0, 0.1, 0.2, 0.15, 5.0, 10.0, 0.05]
            .iter()
            .map(|v| vec![*v])
            .collect();
        let chosen = k_centre(&items, 3);
        // The mean is 2.21: the closest point to it is 0.2 (index 2); then the farthest
        // from it (10.0), then the farthest from both (5.0).
        assert_eq!(chosen, [2, 5, 4]);
        assert_eq!(k_centre(&items, 0), Vec::<usize>::new());
        assert_eq!(k_centre(&items, 20).len(), 7, "never more than there are");
    }

    #[test]
    fn k_medoids_picks_where_the_items_are_many() {
        // A crowd near 0, a smaller one near 5, one odd item at 10.
        let items: Vec<Vec<f32>> = [0.0, 0.1, 0.2, 0.15, 0.05, 5.0, 5.1, 10.0]
            .iter()
            .map(|v| vec![*v])
            .collect();
        let chosen = k_medoids(&items, 2);
        // The crowd's middle (0.15 or 0.2, as near as each other to the rest), then the
        // second crowd's member that also stands nearer the odd item: never the odd item.
        assert!([2, 3].contains(&chosen[0]), "{chosen:?}");
        assert_eq!(chosen[1], 6, "{chosen:?}");
        assert_eq!(k_medoids(&items, 20).len(), 8);
    }

    #[test]
    fn an_image_is_described_by_its_thumbnail_and_shape() {
        let img = RgbImage::from_fn(64, 32, |x, _| image::Rgb([if x < 32 { 0 } else { 255 }; 3]));
        let d = describe(&img);
        assert_eq!(d.len(), (THUMB * THUMB) as usize + 1);
        assert!(d[0] < 0.05 && d[THUMB as usize - 1] > 0.95);
        assert!((d[d.len() - 1] - 2f32.ln()).abs() < 1e-6);
    }
}
