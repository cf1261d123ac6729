//! Choosing which good images to train on for coverage: each image described by a small
//! grey thumbnail (its layout and grey levels) and its aspect ratio, and the training
//! images picked by greedy k-centre, so that every good image has a training image close
//! to it. The held-out images are drawn as before (seeded, first): they stay a fair
//! sample of the parts, which their scores must be to set the line.

use crate::core::dataset::seeded_order;
use image::RgbImage;
use image::imageops::FilterType;
use std::path::PathBuf;

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
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>().sqrt()
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

/// Splits `good` as [`crate::core::dataset::split_train_val`] does, the same held-out
/// images (the first `val_count` of the seeded order), but the training images chosen
/// from the rest by [`k_centre`] on their [`describe`]ptions rather than taken in the
/// seeded order. Images that cannot be read are left out of the choice. Both lists sorted.
pub fn split_diverse(
    good: &[PathBuf],
    train_count: Option<usize>,
    val_count: usize,
    seed: u64,
) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut shuffled = seeded_order(good, seed);
    let val_len = val_count.min(shuffled.len() / 2);
    let rest = shuffled.split_off(val_len);
    let mut val = shuffled;
    val.sort();
    let wanted = train_count.map_or(rest.len(), |c| c.min(rest.len()));
    if wanted >= rest.len() {
        let mut train = rest;
        train.sort();
        return (train, val);
    }
    let described = describe_all(&rest);
    let (paths, items): (Vec<&PathBuf>, Vec<Vec<f32>>) = described.into_iter().unzip();
    let mut train: Vec<PathBuf> = k_centre(&items, wanted)
        .into_iter()
        .map(|i| paths[i].clone())
        .collect();
    train.sort();
    (train, val)
}

/// The descriptions of the readable images among `paths`, decoded on two threads.
fn describe_all(paths: &[PathBuf]) -> Vec<(&PathBuf, Vec<f32>)> {
    fn one(p: &PathBuf) -> Option<(&PathBuf, Vec<f32>)> {
        crate::core::image_io::load_rgb(p).ok().map(|img| (p, describe(&img)))
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
    fn an_image_is_described_by_its_thumbnail_and_shape() {
        let img = RgbImage::from_fn(64, 32, |x, _| image::Rgb([if x < 32 { 0 } else { 255 }; 3]));
        let d = describe(&img);
        assert_eq!(d.len(), (THUMB * THUMB) as usize + 1);
        assert!(d[0] < 0.05 && d[THUMB as usize - 1] > 0.95);
        assert!((d[d.len() - 1] - 2f32.ln()).abs() < 1e-6);
    }
}
