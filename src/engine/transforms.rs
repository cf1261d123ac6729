//! Image tensor operations of the DifferNet pipeline, all as tensor ops so they run on the
//! GPU too: conversion from decoded images, resizing, rotation, ImageNet normalisation,
//! multi-scale downsampling and Gaussian blur.

use image::RgbImage;
use tch::{Device, Kind, Tensor};

/// ImageNet channel means (torchvision's, which the ImageNet backbones were trained with
/// and the DifferNet authors' code normalises with).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// An 8-bit RGB image as a float tensor `[1, 3, H, W]` in [0, 1] on `device`.
pub fn image_to_tensor(img: &RgbImage, device: Device) -> Tensor {
    let (w, h) = img.dimensions();
    // The raw buffer is HWC, row-major: view as [H, W, 3] and move channels first.
    Tensor::from_slice(img.as_raw())
        .to_device(device)
        .view([i64::from(h), i64::from(w), 3])
        .permute([2, 0, 1])
        .to_kind(Kind::Float)
        .g_div_scalar(255.0)
        .unsqueeze(0)
}

/// Resizes `[N, 3, H, W]` to `[N, 3, size, size]` (aspect ratio not kept, as the paper does)
/// with antialiased bilinear interpolation, like torchvision's `Resize` on PIL images.
pub fn resize_square(x: &Tensor, size: i64) -> Tensor {
    let (_, _, h, w) = x.size4().expect("image tensors are 4-D");
    if h == size && w == size {
        return x.shallow_clone();
    }
    x.internal_upsample_bilinear2d_aa([size, size], false, None, None)
        .clamp(0.0, 1.0)
}

/// Resizes `[N, 3, H, W]` to `[N, 3, height, width]` with antialiased bilinear
/// interpolation, like [`resize_square`] but to any shape (an aspect-kept input).
pub fn resize_to(x: &Tensor, height: i64, width: i64) -> Tensor {
    let (_, _, h, w) = x.size4().expect("image tensors are 4-D");
    if (h, w) == (height, width) {
        return x.shallow_clone();
    }
    x.internal_upsample_bilinear2d_aa([height, width], false, None, None)
        .clamp(0.0, 1.0)
}

/// Grey-level standardisation of each image of `[N, C, H, W]` in [0, 1]: one mean and one
/// standard deviation per image, over all its pixels and channels (so a colour keeps its
/// ratio to the others), mapped to the mean and spread of ImageNet's images (0.45 and
/// 0.225, what the backbone was trained on). A brighter or flatter photograph of the same
/// part comes out the same; a flat image (spread under 1/255) is only shifted.
pub fn standardise(x: &Tensor) -> Tensor {
    let (n, ..) = x.size4().expect("image tensors are 4-D");
    let flat = x.reshape([n, -1]);
    let mean = flat.mean_dim([1i64].as_slice(), true, Kind::Float);
    let std = flat
        .std_dim([1i64].as_slice(), false, true)
        .clamp_min(1.0 / 255.0);
    let out = (flat - &mean) / std * STANDARD_SPREAD + STANDARD_MEAN;
    out.view_as(x)
}

/// Mean grey level [`standardise`] maps every image to (ImageNet's, about).
pub const STANDARD_MEAN: f64 = 0.45;
/// Standard deviation of the grey levels [`standardise`] maps every image to.
pub const STANDARD_SPREAD: f64 = 0.225;

/// Rotates each image of `[N, C, S, S]` by its angle in degrees (counter-clockwise), with
/// nearest interpolation and zeros outside the source, as the paper's `RandomRotation`.
/// `angles_deg` has N entries. Differentiable with respect to `x`.
pub fn rotate(x: &Tensor, angles_deg: &[f64]) -> Tensor {
    let (n, c, h, w) = x.size4().expect("image tensors are 4-D");
    assert_eq!(n as usize, angles_deg.len(), "one angle per image");
    if angles_deg.iter().all(|a| a.rem_euclid(360.0) == 0.0) {
        return x.shallow_clone();
    }
    // interpolation 1 = nearest, padding 0 = zeros.
    x.grid_sampler(
        &rotation_grid(angles_deg, [n, c, h, w], x.device()),
        1,
        0,
        false,
    )
}

/// The sampling grid that turns each of `size[0]` images by its angle of `angles_deg`
/// (counter-clockwise): affine_grid maps output coordinates to input coordinates in
/// [-1, 1], so a rotation of the image by +a samples the input at the output position
/// rotated by -a.
fn rotation_grid(angles_deg: &[f64], size: [i64; 4], device: tch::Device) -> Tensor {
    let theta: Vec<f32> = angles_deg
        .iter()
        .flat_map(|a| {
            let r = a.to_radians();
            let (s, co) = (r.sin() as f32, r.cos() as f32);
            [co, -s, 0.0, s, co, 0.0]
        })
        .collect();
    let theta = Tensor::from_slice(&theta)
        .view([size[0], 2, 3])
        .to_device(device);
    Tensor::affine_grid_generator(&theta, size, false)
}

/// Copies of each square image of `[N, C, S, S]` turned by every `360 / n` degrees that
/// is not a quarter turn (those are [`dihedral`]'s), bilinear, with the corners a turn
/// uncovers filled by reflection rather than black: `[k N, C, S, S]`, image-major, or
/// `None` when there are none (`n` of 4 or less, or images that are not square).
pub fn turned_copies(x: &Tensor, n: u32) -> Option<Tensor> {
    let (count, c, h, w) = x.size4().expect("image tensors are 4-D");
    if h != w || n <= 4 {
        return None;
    }
    let angles: Vec<f64> = (1..n)
        .map(|k| f64::from(k) * 360.0 / f64::from(n))
        .filter(|a| a.rem_euclid(90.0).abs() > 1e-9)
        .collect();
    if angles.is_empty() {
        return None;
    }
    let k = angles.len() as i64;
    let per_copy: Vec<f64> = (0..count).flat_map(|_| angles.iter().copied()).collect();
    let repeated = x
        .unsqueeze(1)
        .expand([count, k, c, h, w], false)
        .reshape([count * k, c, h, w]);
    let grid = rotation_grid(&per_copy, [count * k, c, h, w], x.device());
    // interpolation 0 = bilinear, padding 2 = reflection.
    Some(repeated.grid_sampler(&grid, 0, 2, false))
}

/// ImageNet normalisation of `[N, 3, H, W]` images in [0, 1].
pub fn normalize(x: &Tensor) -> Tensor {
    let dev = x.device();
    let mean = Tensor::from_slice(&IMAGENET_MEAN)
        .view([1, 3, 1, 1])
        .to_device(dev);
    let std = Tensor::from_slice(&IMAGENET_STD)
        .view([1, 3, 1, 1])
        .to_device(dev);
    (x - mean) / std
}

/// Nearest-neighbour downsampling to `[N, C, size, size]`, the paper's smaller scales.
pub fn downsample_nearest(x: &Tensor, size: i64) -> Tensor {
    let (_, _, h, w) = x.size4().expect("image tensors are 4-D");
    if h == size && w == size {
        return x.shallow_clone();
    }
    x.upsample_nearest2d([size, size], None, None)
}

/// Separable Gaussian blur of `[N, C, H, W]` with standard deviation `sigma` pixels and
/// reflected borders (like scipy's `gaussian_filter` the reference uses).
pub fn gaussian_blur(x: &Tensor, sigma: f64) -> Tensor {
    if sigma <= 0.0 {
        return x.shallow_clone();
    }
    let (n, c, h, w) = x.size4().expect("image tensors are 4-D");
    let radius = ((3.0 * sigma).ceil() as i64).min(h.min(w) - 1).max(1);
    let taps: Vec<f32> = (-radius..=radius)
        .map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp() as f32)
        .collect();
    let total: f32 = taps.iter().sum();
    let taps: Vec<f32> = taps.iter().map(|t| t / total).collect();
    let k = Tensor::from_slice(&taps).to_device(x.device());
    let len = taps.len() as i64;
    let flat = x.reshape([n * c, 1, h, w]);
    let padded = flat.reflection_pad2d([radius, radius, radius, radius]);
    let horizontal =
        padded.conv2d::<Tensor>(&k.view([1, 1, 1, len]), None, [1, 1], [0, 0], [1, 1], 1);
    let vertical =
        horizontal.conv2d::<Tensor>(&k.view([1, 1, len, 1]), None, [1, 1], [0, 0], [1, 1], 1);
    vertical.reshape([n, c, h, w])
}

/// The 8 rotations by quarter turns and their mirror images of `[N, C, S, S]`, stacked
/// image-major: `[8 N, C, S, S]`.
pub fn dihedral(x: &Tensor) -> Tensor {
    let (n, c, h, w) = x.size4().expect("image tensors are 4-D");
    let flipped = x.flip([3i64]);
    let variants: Vec<Tensor> = [x, &flipped]
        .iter()
        .flat_map(|t| (0..4).map(move |k| t.rot90(k, [2i64, 3])))
        .collect();
    Tensor::stack(&variants, 1).view([n * 8, c, h, w])
}

/// The 8 rotations by quarter turns and mirror images of `[N, C, H, W]` images of any
/// shape, as batches of one shape each: one `[8 N, C, S, S]` batch for squares (as
/// [`dihedral`]), else `[4 N, C, H, W]` (itself, the half turn and the two mirror images)
/// and `[4 N, C, W, H]` (the quarter turns and the two transposes).
pub fn dihedral_groups(x: &Tensor) -> Vec<Tensor> {
    let (n, c, h, w) = x.size4().expect("image tensors are 4-D");
    if h == w {
        return vec![dihedral(x)];
    }
    let flipped = x.flip([3i64]);
    let group = |ks: [i64; 2], size: [i64; 2]| {
        let variants: Vec<Tensor> = [x, &flipped]
            .iter()
            .flat_map(|t| ks.iter().map(move |&k| t.rot90(k, [2i64, 3])))
            .collect();
        Tensor::stack(&variants, 1).view([n * 4, c, size[0], size[1]])
    };
    vec![group([0, 2], [h, w]), group([1, 3], [w, h])]
}

/// Brightness and contrast copies of `[N, C, H, W]` images in [0, 1]: each image scaled
/// by every gain of `gains`, then by every factor of `contrasts` around its own mean grey
/// level, clipped to [0, 1]; `[(gains + contrasts) N, C, H, W]`, copy-major.
pub fn photometric_copies(x: &Tensor, gains: &[f64], contrasts: &[f64]) -> Tensor {
    let (n, ..) = x.size4().expect("image tensors are 4-D");
    let mean = x
        .reshape([n, -1])
        .mean_dim([1i64].as_slice(), true, Kind::Float)
        .view([n, 1, 1, 1]);
    let copies: Vec<Tensor> = gains
        .iter()
        .map(|&g| x * g)
        .chain(contrasts.iter().map(|&c| (x - &mean) * c + &mean))
        .map(|t| t.clamp(0.0, 1.0))
        .collect();
    Tensor::cat(&copies, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turned_copies_fill_their_corners_and_skip_quarter_turns() {
        let x = Tensor::full([2, 3, 32, 32], 0.5, (tch::Kind::Float, Device::Cpu));
        // 8: every 45 degrees but the quarter turns the dihedral copies have.
        let t = turned_copies(&x, 8).expect("copies");
        assert_eq!(t.size(), [8, 3, 32, 32]);
        // 16 turns: 12 are not quarter turns.
        assert_eq!(turned_copies(&x, 16).unwrap().size()[0], 24);
        // A grey image stays grey all over: the corners are reflected, not black.
        let min = t.min().double_value(&[]);
        assert!((min - 0.5).abs() < 1e-5, "{min}");
        assert!(turned_copies(&x, 4).is_none() && turned_copies(&x, 0).is_none());
        let long = Tensor::zeros([1, 3, 32, 64], (tch::Kind::Float, Device::Cpu));
        assert!(
            turned_copies(&long, 8).is_none(),
            "a long part keeps its frame"
        );
        // A bright corner turned by 45 degrees is no longer where it was.
        let img = Tensor::zeros([1, 1, 32, 32], (tch::Kind::Float, Device::Cpu));
        let _ = img.narrow(2, 0, 8).narrow(3, 0, 8).fill_(1.0);
        let turned = turned_copies(&img, 8).unwrap();
        let corner = |t: &Tensor| {
            t.narrow(2, 0, 8)
                .narrow(3, 0, 8)
                .mean(tch::Kind::Float)
                .double_value(&[])
        };
        assert_eq!(corner(&img), 1.0);
        assert!(corner(&turned.narrow(0, 0, 1)) < 0.5);
    }

    #[test]
    fn image_to_tensor_keeps_layout() {
        let mut img = RgbImage::new(3, 2);
        img.put_pixel(2, 1, image::Rgb([255, 0, 51]));
        let t = image_to_tensor(&img, Device::Cpu);
        assert_eq!(t.size(), vec![1, 3, 2, 3]);
        assert_eq!(t.double_value(&[0, 0, 1, 2]), 1.0);
        assert!((t.double_value(&[0, 2, 1, 2]) - 0.2).abs() < 1e-6);
        assert_eq!(t.double_value(&[0, 0, 0, 0]), 0.0);
    }

    #[test]
    fn rotation_by_90_degrees_moves_pixels_exactly() {
        // A 4x4 image with a single bright pixel at row 0, column 3 (top right).
        let x = Tensor::zeros([1, 1, 4, 4], (Kind::Float, Device::Cpu));
        let _ = x.get(0).get(0).get(0).get(3).fill_(1.0);
        let r = rotate(&x, &[90.0]);
        // Counter-clockwise by 90 degrees: top right goes to top left.
        assert_eq!(r.double_value(&[0, 0, 0, 0]), 1.0);
        assert_eq!(r.sum(Kind::Float).double_value(&[]), 1.0);
        // Four quarter turns are the identity.
        let back = rotate(&rotate(&rotate(&r, &[90.0]), &[90.0]), &[90.0]);
        assert!(back.allclose(&x, 0.0, 0.0, false));
    }

    #[test]
    fn rotation_fills_corners_with_zero() {
        let x = Tensor::ones([2, 3, 16, 16], (Kind::Float, Device::Cpu));
        let r = rotate(&x, &[45.0, 0.0]);
        assert_eq!(r.double_value(&[0, 0, 0, 0]), 0.0);
        assert_eq!(r.double_value(&[0, 1, 8, 8]), 1.0);
        assert_eq!(r.get(1).sum(Kind::Float).double_value(&[]), 3.0 * 256.0);
    }

    #[test]
    fn blur_preserves_mass_and_constants() {
        let x = Tensor::ones([1, 1, 20, 20], (Kind::Float, Device::Cpu));
        let b = gaussian_blur(&x, 2.0);
        assert!(b.allclose(&x, 1e-5, 1e-5, false));
        let spike = Tensor::zeros([1, 1, 21, 21], (Kind::Float, Device::Cpu));
        let _ = spike.get(0).get(0).get(10).get(10).fill_(1.0);
        let b = gaussian_blur(&spike, 1.5);
        assert!((b.sum(Kind::Float).double_value(&[]) - 1.0).abs() < 1e-5);
        assert!(b.double_value(&[0, 0, 10, 10]) < 0.2);
    }

    #[test]
    fn resize_and_normalize_shapes() {
        let x = Tensor::rand([1, 3, 30, 50], (Kind::Float, Device::Cpu));
        let r = resize_square(&x, 64);
        assert_eq!(r.size(), vec![1, 3, 64, 64]);
        assert_eq!(downsample_nearest(&r, 16).size(), vec![1, 3, 16, 16]);
        let z = normalize(&Tensor::zeros([1, 3, 2, 2], (Kind::Float, Device::Cpu)));
        assert!((z.double_value(&[0, 0, 0, 0]) + 0.485 / 0.229).abs() < 1e-5);
    }

    #[test]
    fn standardised_images_do_not_see_brightness_or_contrast() {
        let x = Tensor::rand([2, 3, 8, 8], (Kind::Float, Device::Cpu)) * 0.5 + 0.1;
        // The same images brighter and with more contrast.
        let y = &x * 1.6 + 0.05;
        let (sx, sy) = (standardise(&x), standardise(&y));
        assert!(sx.allclose(&sy, 1e-4, 1e-4, false));
        let m = sx.get(0).mean(Kind::Float).double_value(&[]);
        assert!((m - STANDARD_MEAN).abs() < 1e-4, "mean {m}");
        // A flat image stays flat, without NaN.
        let flat = standardise(&Tensor::full([1, 3, 4, 4], 0.8, (Kind::Float, Device::Cpu)));
        assert_eq!(flat.isnan().sum(Kind::Int64).int64_value(&[]), 0);
        assert!((flat.double_value(&[0, 1, 2, 2]) - STANDARD_MEAN).abs() < 1e-5);
    }

    #[test]
    fn photometric_copies_scale_brightness_and_contrast() {
        let x = Tensor::from_slice(&[0.2f32, 0.4, 0.6, 0.9]).view([1, 1, 2, 2]);
        let c = photometric_copies(&x, &[0.5, 2.0], &[0.5]);
        assert_eq!(c.size(), [3, 1, 2, 2]);
        let v = Vec::<f32>::try_from(c.flatten(0, -1)).unwrap();
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(a, b)| (a - b).abs() < 1e-6);
        assert!(close(&v[0..4], &[0.1, 0.2, 0.3, 0.45]), "{v:?}");
        // Doubled and clipped to 1.
        assert!(close(&v[4..8], &[0.4, 0.8, 1.0, 1.0]), "{v:?}");
        // Half the contrast around the image's mean, 0.525.
        assert!(close(&v[8..12], &[0.3625, 0.4625, 0.5625, 0.7125]), "{v:?}");
    }

    #[test]
    fn dihedral_groups_of_a_long_image_hold_all_eight_copies() {
        let x = Tensor::arange(2 * 6, (Kind::Float, Device::Cpu)).view([1, 1, 2, 6]);
        let groups = dihedral_groups(&x);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].size(), vec![4, 1, 2, 6]);
        assert_eq!(groups[1].size(), vec![4, 1, 6, 2]);
        assert!(groups[0].get(0).equal(&x.get(0)));
        let all: Vec<Tensor> = groups
            .iter()
            .flat_map(|g| (0..4).map(move |i| g.get(i).flatten(0, -1)))
            .collect();
        for a in 0..8 {
            for b in (a + 1)..8 {
                assert!(!all[a].equal(&all[b]), "{a} and {b} are equal");
            }
        }
        // A square image gives the one batch of `dihedral`.
        let sq = Tensor::rand([1, 3, 4, 4], (Kind::Float, Device::Cpu));
        assert!(dihedral_groups(&sq)[0].equal(&dihedral(&sq)));
    }

    #[test]
    fn dihedral_copies_are_the_eight_symmetries() {
        let x = Tensor::arange(2 * 9, (Kind::Float, Device::Cpu)).view([2, 1, 3, 3]);
        let d = dihedral(&x);
        assert_eq!(d.size(), vec![16, 1, 3, 3]);
        // Image-major: the first 8 rows are image 0's, starting with itself.
        assert!(d.get(0).equal(&x.get(0)));
        assert!(d.get(8).equal(&x.get(1)));
        // All 8 of image 0 differ (its values are all distinct).
        for a in 0..8 {
            for b in (a + 1)..8 {
                assert!(!d.get(a).equal(&d.get(b)), "{a} and {b} are equal");
            }
        }
        // Each is a permutation of the same values.
        let sorted = |t: Tensor| t.flatten(0, -1).sort(0, false).0;
        for a in 0..8 {
            assert!(sorted(d.get(a)).equal(&sorted(x.get(0))));
        }
    }
}
