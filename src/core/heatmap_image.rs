//! A part's heatmap as the user sees it, in one place for the window's part view and export,
//! `differnet score --heatmaps` and the line's heatmaps: on the decision scale when there
//! is a reject line (heat in "x the reject line", the line at a fixed colour, see
//! [`against_line`]), else on the good-part scale (1 = as hot as a good part gets).

use crate::core::caption::{Legend, with_caption};
use crate::core::colormap::Colormap;
use crate::core::heat_layer::{LINE_SCALE_HIGH, against_line, hot_area, line_scale_input};
use crate::core::overlay::overlay;
use crate::core::protocol::Heatmap;
use image::RgbImage;

/// What a drawn map is measured against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HeatScale {
    /// "x the reject line": the line three quarters up the colours, twice the line at the
    /// top.
    Line,
    /// The good-part scale: 1 (as hot as a good part gets) at the bottom, `vmax` at the
    /// top (the model's).
    Good {
        /// The top of the colours.
        vmax: f32,
    },
}

/// A map ready to draw: its values with the bottom of the colours at 1, the top of the
/// colours, and what they are measured against.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaledHeat {
    /// Values for [`overlay`] and [`crate::core::heat_layer::HeatLayer`].
    pub values: Heatmap,
    /// The top of the colours in those values.
    pub vmax: f32,
    /// The scale.
    pub scale: HeatScale,
    /// Pixels at or above the reject line's level, on the decision scale.
    pub hot_area: Option<usize>,
}

impl ScaledHeat {
    /// `heat` of a part scored `score`: on the decision scale when `reject` is a line the
    /// ratio is defined for, else on the good-part scale with the model's `good_vmax`.
    pub fn new(heat: &Heatmap, score: f64, reject: Option<f64>, good_vmax: f32) -> Self {
        match reject.and_then(|line| against_line(heat, score, line)) {
            Some(in_line) => {
                let (values, vmax) = line_scale_input(&in_line);
                Self {
                    hot_area: Some(hot_area(&in_line)),
                    values,
                    vmax,
                    scale: HeatScale::Line,
                }
            }
            None => Self {
                values: heat.clone(),
                vmax: good_vmax,
                scale: HeatScale::Good { vmax: good_vmax },
                hot_area: None,
            },
        }
    }

    /// A value of [`Self::values`] back in the scale's own unit ("x the reject line", or
    /// "x a good part's hottest 1 %").
    pub fn in_scale_units(&self, value: f32) -> f32 {
        match self.scale {
            HeatScale::Line => value * (LINE_SCALE_HIGH / self.vmax),
            HeatScale::Good { .. } => value,
        }
    }

    /// The legend of the scale under an exported image.
    pub fn legend(&self) -> Legend {
        match self.scale {
            HeatScale::Line => Legend::Line,
            HeatScale::Good { vmax } => Legend::Good { vmax },
        }
    }
}

/// `img` with the heat blended over it at `opacity` and a strip under it: the caption
/// `lines`, then the colour scale.
pub fn heatmap_image(
    img: &RgbImage,
    heat: &ScaledHeat,
    colormap: Colormap,
    opacity: f32,
    lines: &[String],
) -> RgbImage {
    with_caption(
        &overlay(img, &heat.values, colormap, opacity, heat.vmax),
        lines,
        colormap,
        heat.legend(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_puts_the_map_on_the_decision_scale_and_none_keeps_the_good_part_scale() {
        let heat = Heatmap {
            width: 2,
            height: 1,
            values: vec![1.0, 4.0],
        };
        let on_line = ScaledHeat::new(&heat, 6.0, Some(3.0), 4.0);
        assert_eq!(on_line.scale, HeatScale::Line);
        assert_eq!(on_line.hot_area, Some(1));
        // The hottest pixel reads 2 x the line: the top of the colours.
        assert!((on_line.in_scale_units(on_line.values.values[1]) - 2.0).abs() < 1e-6);
        assert!((on_line.values.values[1] - on_line.vmax).abs() < 1e-4);
        let without = ScaledHeat::new(&heat, 6.0, None, 4.0);
        assert_eq!(without.scale, HeatScale::Good { vmax: 4.0 });
        assert_eq!(without.values, heat);
        assert_eq!(without.hot_area, None);
        let img = RgbImage::from_pixel(2, 1, image::Rgb([10, 10, 10]));
        let out = heatmap_image(&img, &on_line, Colormap::Jet, 1.0, &["SCORE 6".into()]);
        assert!(out.height() > 1);
        assert_eq!(out.get_pixel(1, 0).0, Colormap::Jet.map(1.0));
    }
}
