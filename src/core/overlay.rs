//! Rendering a heatmap over its image, for export (CLI, GUI) and display.

use crate::core::colormap::Colormap;
use crate::core::protocol::Heatmap;
use image::RgbImage;

/// Blends `heat` over `img` with `colormap`. Heat values are in units of the good images'
/// 99th percentile and are squared gradients, so their range is wide: they are mapped on a
/// log scale, 1 (as hot as a good part gets) to the bottom of the colormap and `vmax` to
/// its top. `opacity` in [0, 1] is the weight of the colour; below 1 (normal) the colour
/// fades out so good regions stay readable.
pub fn overlay(
    img: &RgbImage,
    heat: &Heatmap,
    colormap: Colormap,
    opacity: f32,
    vmax: f32,
) -> RgbImage {
    let (w, h) = img.dimensions();
    let mut out = img.clone();
    if (heat.width, heat.height) != (w, h) || heat.values.len() != (w as usize) * (h as usize) {
        return out;
    }
    let log_max = if vmax > 1.0 { vmax.ln() } else { 1.0 };
    for (i, px) in out.pixels_mut().enumerate() {
        let v = heat.values[i];
        let t = heat_level(v, log_max);
        let alpha = opacity.clamp(0.0, 1.0) * v.clamp(0.0, 1.0);
        let c = colormap.map(t);
        for k in 0..3 {
            let blended = f32::from(px[k]) * (1.0 - alpha) + f32::from(c[k]) * alpha;
            px[k] = blended.round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// Position of heat `v` on the colormap: 0 at or below 1, 1 at `exp(log_max)` and above.
fn heat_level(v: f32, log_max: f32) -> f32 {
    if v.is_nan() || v <= 1.0 {
        return 0.0;
    }
    (v.ln() / log_max).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hot_pixels_take_the_colormap_colour() {
        let img = RgbImage::from_pixel(2, 1, image::Rgb([100, 100, 100]));
        let heat = Heatmap {
            width: 2,
            height: 1,
            values: vec![0.0, 10.0],
        };
        let out = overlay(&img, &heat, Colormap::Grey, 1.0, 10.0);
        assert_eq!(out.get_pixel(0, 0).0, [100, 100, 100]);
        assert_eq!(out.get_pixel(1, 0).0, Colormap::Grey.map(1.0));
        assert!((heat_level(10f32.sqrt(), 10f32.ln()) - 0.5).abs() < 1e-6);
        assert_eq!(heat_level(0.5, 1.0), 0.0);
        // A size mismatch leaves the image as it is.
        let bad = Heatmap {
            width: 1,
            height: 1,
            values: vec![5.0],
        };
        assert_eq!(overlay(&img, &bad, Colormap::Grey, 1.0, 4.0), img);
    }
}
