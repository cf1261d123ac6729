//! Rendering a heatmap over its image, for export (CLI, GUI) and display.

use crate::core::colormap::Colormap;
use crate::core::protocol::Heatmap;
use image::RgbImage;

/// Blends `heat` over `img` with `colormap`. Heat values are mapped linearly from
/// [0, `vmax`] to the colormap (values are in units of the good images' 99th percentile,
/// so `vmax` = 4 shows "four times hotter than a good part gets" at full colour).
/// `opacity` in [0, 1] is the weight of the colour; where the heat is below 1 (normal),
/// the colour fades out so good regions stay readable.
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
    let vmax = if vmax > 0.0 { vmax } else { 1.0 };
    for (i, px) in out.pixels_mut().enumerate() {
        let v = heat.values[i];
        let t = (v / vmax).clamp(0.0, 1.0);
        let alpha = opacity.clamp(0.0, 1.0) * v.clamp(0.0, 1.0).max(t);
        let c = colormap.map(t);
        for k in 0..3 {
            let blended = f32::from(px[k]) * (1.0 - alpha) + f32::from(c[k]) * alpha;
            px[k] = blended.round().clamp(0.0, 255.0) as u8;
        }
    }
    out
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
        let out = overlay(&img, &heat, Colormap::Grey, 1.0, 4.0);
        assert_eq!(out.get_pixel(0, 0).0, [100, 100, 100]);
        assert_eq!(out.get_pixel(1, 0).0, Colormap::Grey.map(1.0));
        // A size mismatch leaves the image as it is.
        let bad = Heatmap {
            width: 1,
            height: 1,
            values: vec![5.0],
        };
        assert_eq!(overlay(&img, &bad, Colormap::Grey, 1.0, 4.0), img);
    }
}
