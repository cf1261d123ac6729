//! Rendering a heatmap over its image, for export (CLI, GUI) and display.

use crate::core::colormap::Colormap;
use crate::core::protocol::Heatmap;
use image::{GrayImage, RgbImage};

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

/// Position of heat `v` on the colormap: 0 at or below 1 (and for NaN), 1 at `exp(log_max)`
/// and above. The one mapping of heat to colour, shared with
/// [`crate::core::heat_layer::HeatLayer`].
pub fn heat_level(v: f32, log_max: f32) -> f32 {
    if v.is_nan() || v <= 1.0 {
        return 0.0;
    }
    (v.ln() / log_max).clamp(0.0, 1.0)
}

/// The outline of a ground-truth mask: mask pixels with a non-mask pixel (or the image
/// border) within `thickness` pixels, row-major. Drawn over a part, it shows where the
/// defect really is without hiding the heat inside it.
pub fn mask_outline(mask: &GrayImage, thickness: u32) -> Vec<bool> {
    let (w, h) = mask.dimensions();
    let inside = |x: i64, y: i64| {
        x >= 0
            && y >= 0
            && x < i64::from(w)
            && y < i64::from(h)
            && mask.get_pixel(x as u32, y as u32)[0] > 0
    };
    let r = i64::from(thickness.max(1));
    let mut out = vec![false; (w as usize) * (h as usize)];
    for y in 0..i64::from(h) {
        for x in 0..i64::from(w) {
            if !inside(x, y) {
                continue;
            }
            // An edge within r along a row or a column: a band r pixels wide inside.
            let near_edge = (1..=r).any(|d| {
                !inside(x - d, y) || !inside(x + d, y) || !inside(x, y - d) || !inside(x, y + d)
            });
            out[(y as usize) * (w as usize) + x as usize] = near_edge;
        }
    }
    out
}

/// The line of a known defect's outline: white, the lightest colour, with a dark edge on
/// both sides, so that it stands out on every colour of every colormap (cyan vanished in
/// the cyan of jet).
pub const OUTLINE_LINE: [u8; 3] = [255, 255, 255];
/// The dark edge either side of [`OUTLINE_LINE`].
pub const OUTLINE_EDGE: [u8; 3] = [16, 16, 16];

/// The colour of each pixel of a two-tone outline of `mask`: the band of
/// [`mask_outline`] in [`OUTLINE_LINE`], and the pixels within about half its thickness
/// of that band (inside and outside the mask) in [`OUTLINE_EDGE`]; `None` elsewhere.
pub fn two_tone_outline(mask: &GrayImage, thickness: u32) -> Vec<Option<[u8; 3]>> {
    let (w, h) = (mask.width() as i64, mask.height() as i64);
    let line = mask_outline(mask, thickness);
    let on_line = |x: i64, y: i64| x >= 0 && y >= 0 && x < w && y < h && line[(y * w + x) as usize];
    let d = i64::from(thickness.max(1)).div_euclid(2).max(1);
    let mut out = vec![None; line.len()];
    for y in 0..h {
        for x in 0..w {
            let i = (y * w + x) as usize;
            out[i] = if line[i] {
                Some(OUTLINE_LINE)
            } else if (1..=d).any(|k| {
                on_line(x - k, y) || on_line(x + k, y) || on_line(x, y - k) || on_line(x, y + k)
            }) {
                Some(OUTLINE_EDGE)
            } else {
                None
            };
        }
    }
    out
}

/// Paints `outline` (from [`two_tone_outline`], same size as `img`) over it.
pub fn draw_outline(img: &mut RgbImage, outline: &[Option<[u8; 3]>]) {
    if outline.len() != img.as_raw().len() / 3 {
        return;
    }
    for (px, colour) in img.pixels_mut().zip(outline) {
        if let Some(c) = colour {
            px.0 = *c;
        }
    }
}

/// The outline thickness for an image of this size: about 1/200 of its larger side.
pub fn outline_thickness(width: u32, height: u32) -> u32 {
    (width.max(height) / 200).max(1)
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

    #[test]
    fn a_mask_outline_is_its_edge_band() {
        let mut mask = GrayImage::new(7, 7);
        for y in 1..6 {
            for x in 1..6 {
                mask.put_pixel(x, y, image::Luma([255]));
            }
        }
        let o = mask_outline(&mask, 1);
        let at = |x: usize, y: usize| o[y * 7 + x];
        assert!(at(1, 1) && at(5, 3) && at(3, 1));
        assert!(!at(3, 3), "the inside stays clear");
        assert!(!at(0, 0), "outside the mask");
        assert_eq!(o.iter().filter(|v| **v).count(), 16);
        let thick = mask_outline(&mask, 2);
        assert_eq!(thick.iter().filter(|v| **v).count(), 24);
        let two = two_tone_outline(&mask, 1);
        let mut img = RgbImage::from_pixel(7, 7, image::Rgb([90, 90, 90]));
        draw_outline(&mut img, &two);
        assert_eq!(img.get_pixel(1, 1).0, OUTLINE_LINE);
        assert_eq!(img.get_pixel(0, 1).0, OUTLINE_EDGE, "dark outside the line");
        assert_eq!(img.get_pixel(2, 2).0, OUTLINE_EDGE, "and inside it");
        assert_eq!(
            img.get_pixel(3, 3).0,
            [90, 90, 90],
            "the middle stays clear"
        );
        assert_eq!(
            img.get_pixel(6, 6).0,
            [90, 90, 90],
            "a corner away from the line"
        );
        assert!(mask_outline(&GrayImage::new(3, 3), 1).iter().all(|v| !v));
    }

    /// WCAG's contrast ratio of two sRGB colours (1 to 21).
    fn contrast(a: [u8; 3], b: [u8; 3]) -> f64 {
        let lum = |c: [u8; 3]| {
            let lin = |v: u8| {
                let v = f64::from(v) / 255.0;
                if v <= 0.039_28 {
                    v / 12.92
                } else {
                    ((v + 0.055) / 1.055).powf(2.4)
                }
            };
            0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2])
        };
        let (x, y) = (lum(a), lum(b));
        (x.max(y) + 0.05) / (x.min(y) + 0.05)
    }

    #[test]
    fn the_outline_stands_out_on_every_colour_of_every_map() {
        use crate::core::colormap::Colormap;
        for map in Colormap::ALL {
            for i in 0..=255 {
                let c = map.map(f32::from(i as u8) / 255.0);
                let best = contrast(OUTLINE_LINE, c).max(contrast(OUTLINE_EDGE, c));
                // WCAG asks 3:1 for graphics that must be seen.
                assert!(best >= 3.0, "{map:?} at {i}: {c:?} gives {best:.2}");
            }
        }
        // The old cyan did not: jet's cyan band hid it.
        let jet_cyan = Colormap::Jet.map(0.375);
        assert!(contrast([0, 255, 255], jet_cyan) < 1.5);
    }
}
