//! Defects drawn on copies of good images, for a detector to learn what departs from a
//! good part when no confirmed defect is at hand: a scratch (a thin line darker or
//! brighter than the part), a spot (a soft patch of shifted grey level over the part's
//! own texture) and a patch moved from elsewhere on the part (CutPaste's idea, Li et al.,
//! CVPR 2021). Each comes with its mask, so it is learnt as a confirmed defect with a
//! mask is.

use crate::core::rng::SplitMix64;
use tch::{Kind, Tensor};

/// The kinds of drawn defects, taken in turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyntheticKind {
    /// A thin straight line, darker or brighter than the part.
    Scratch,
    /// A soft ellipse over which the grey level is shifted.
    Spot,
    /// A rectangle of the part copied elsewhere on it, mirrored and in other contrast.
    MovedPatch,
}

impl SyntheticKind {
    /// The `i`-th kind, in turn.
    pub fn nth(i: usize) -> Self {
        [Self::Scratch, Self::Spot, Self::MovedPatch][i % 3]
    }
}

fn uniform(rng: &mut SplitMix64, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.next_f64()
}

fn sign(rng: &mut SplitMix64) -> f64 {
    if rng.next_f64() < 0.5 { -1.0 } else { 1.0 }
}

/// A copy of the prepared image `x` `[1, C, H, W]` with a defect of `kind` drawn on it at
/// a place, size and contrast drawn from `rng`, and the defect's mask `[1, 1, H, W]` (1 on
/// it, 0 elsewhere; never empty). Grey levels stay within those of the image and [0, 1].
pub fn draw(x: &Tensor, kind: SyntheticKind, rng: &mut SplitMix64) -> (Tensor, Tensor) {
    let (_, _, h, w) = x.size4().expect("prepared images are 4-D");
    let device = x.device();
    let (hf, wf) = (h as f64, w as f64);
    let side = hf.min(wf);
    let ys = Tensor::arange(h, (Kind::Float, device)).view([1, 1, h, 1]);
    let xs = Tensor::arange(w, (Kind::Float, device)).view([1, 1, 1, w]);
    let mean = x.mean(Kind::Float);
    let lo = x.min().double_value(&[]).min(0.0);
    let hi = x.max().double_value(&[]).max(1.0);
    let (out, mask) = match kind {
        SyntheticKind::Scratch => {
            let (cx, cy) = (uniform(rng, 0.15, 0.85) * wf, uniform(rng, 0.15, 0.85) * hf);
            let angle = uniform(rng, 0.0, std::f64::consts::PI);
            let (c, s) = (angle.cos(), angle.sin());
            let half_len = side * uniform(rng, 0.08, 0.22);
            let half_width = side * uniform(rng, 0.003, 0.012) + 0.5;
            let along = ((&xs - cx) * c + (&ys - cy) * s).clamp(-half_len, half_len);
            let dx = &xs - cx - &along * c;
            let dy = &ys - cy - &along * s;
            let d = (&dx * &dx + &dy * &dy).sqrt();
            let alpha = (-d + (half_width + 0.5)).clamp(0.0, 1.0);
            let target = &mean + sign(rng) * uniform(rng, 0.15, 0.4);
            let out = x * (-&alpha + 1.0) + &alpha * target;
            (out, alpha.ge(0.5))
        }
        SyntheticKind::Spot => {
            let (cx, cy) = (uniform(rng, 0.1, 0.9) * wf, uniform(rng, 0.1, 0.9) * hf);
            let angle = uniform(rng, 0.0, std::f64::consts::PI);
            let (c, s) = (angle.cos(), angle.sin());
            let rx = side * uniform(rng, 0.03, 0.1);
            let ry = rx * uniform(rng, 0.4, 1.0);
            let u = ((&xs - cx) * c + (&ys - cy) * s) / rx;
            let v = ((&ys - cy) * c - (&xs - cx) * s) / ry;
            let r2 = &u * &u + &v * &v;
            let alpha = ((-r2 + 1.0) * 2.0).clamp(0.0, 1.0);
            let out = x + &alpha * (sign(rng) * uniform(rng, 0.1, 0.3));
            (out, alpha.ge(0.3))
        }
        SyntheticKind::MovedPatch => {
            let pw = ((wf.min(side) * uniform(rng, 0.06, 0.2)).round() as i64).clamp(2, w);
            let ph = ((hf.min(side) * uniform(rng, 0.06, 0.2)).round() as i64).clamp(2, h);
            let at = |rng: &mut SplitMix64, room: i64| rng.below((room + 1) as usize) as i64;
            let (sx, sy) = (at(rng, w - pw), at(rng, h - ph));
            let (dx, dy) = (at(rng, w - pw), at(rng, h - ph));
            let mut patch = x.narrow(2, sy, ph).narrow(3, sx, pw);
            if rng.next_f64() < 0.5 {
                patch = patch.flip([3i64]);
            } else {
                patch = patch.flip([2i64]);
            }
            let contrast = uniform(rng, 0.7, 1.3);
            let shift = sign(rng) * uniform(rng, 0.03, 0.12);
            let patch_mean = patch.mean(Kind::Float);
            let patch = (&patch - &patch_mean) * contrast + patch_mean + shift;
            let out = x.copy();
            out.narrow(2, dy, ph).narrow(3, dx, pw).copy_(&patch);
            let mask = Tensor::zeros([1, 1, h, w], (Kind::Bool, device));
            let _ = mask.narrow(2, dy, ph).narrow(3, dx, pw).fill_(1);
            (out, mask)
        }
    };
    (out.clamp(lo, hi), mask.to_kind(Kind::Float))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn plain(h: i64, w: i64) -> Tensor {
        Tensor::full([1, 3, h, w], 0.5, (Kind::Float, Device::Cpu))
    }

    #[test]
    fn each_kind_changes_the_image_inside_its_mask_only() {
        for (i, &(h, w)) in [(64i64, 64i64), (48, 128)].iter().enumerate() {
            for k in 0..6 {
                let kind = SyntheticKind::nth(k);
                let x = plain(h, w);
                // A texture, for the moved patch to have something to move.
                let x =
                    x + Tensor::arange(w, (Kind::Float, Device::Cpu)).view([1, 1, 1, w]) * 0.003;
                let mut rng = SplitMix64::new((i * 10 + k) as u64);
                let (out, mask) = draw(&x, kind, &mut rng);
                assert_eq!(out.size(), x.size());
                assert_eq!(mask.size(), vec![1, 1, h, w]);
                let on = mask.sum(Kind::Float).double_value(&[]);
                assert!(on >= 1.0, "{kind:?}: empty mask");
                assert!(
                    on < (h * w) as f64 / 4.0,
                    "{kind:?}: mask covers {on} pixels"
                );
                let changed = (&out - &x).abs().amax([1i64].as_slice(), true).gt(0.02);
                let inside = (&changed.to_kind(Kind::Float) * &mask).sum(Kind::Float);
                let all = changed.to_kind(Kind::Float).sum(Kind::Float);
                // Most of the mask is changed, and little is changed outside it (the
                // soft rims of scratches and spots).
                assert!(
                    inside.double_value(&[]) >= 0.5 * on,
                    "{kind:?}: {} of {on} mask pixels changed",
                    inside.double_value(&[])
                );
                let outside = all.double_value(&[]) - inside.double_value(&[]);
                assert!(
                    outside <= 2.0 * on + 4.0 * (h + w) as f64,
                    "{kind:?}: {outside}"
                );
                assert!(out.min().double_value(&[]) >= 0.0 && out.max().double_value(&[]) <= 1.0);
            }
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_defect() {
        let x = plain(32, 32);
        let a = draw(&x, SyntheticKind::Scratch, &mut SplitMix64::new(3));
        let b = draw(&x, SyntheticKind::Scratch, &mut SplitMix64::new(3));
        let c = draw(&x, SyntheticKind::Scratch, &mut SplitMix64::new(4));
        assert!(a.0.equal(&b.0) && a.1.equal(&b.1));
        assert!(!a.1.equal(&c.1));
    }
}
