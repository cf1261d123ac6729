//! A part's heatmap as the user sees it, in one place for the window's part view and export,
//! `differnet score --heatmaps` and the line's heatmaps: on the decision scale when there
//! is a reject line above a typical good part ([`DecisionScale`]: from a typical good part
//! to the line, the line at a fixed colour), else on the good-part scale (1 = as hot as a
//! good part gets).

use crate::core::atomic_file::write_atomic;
use crate::core::caption::{Legend, with_caption};
use crate::core::colormap::Colormap;
use crate::core::decision::Thresholds;
use crate::core::heat_layer::{DecisionScale, hot_area, levels_as_heat};
use crate::core::image_io::load_rgb;
use crate::core::message::{format_score, path_text};
use crate::core::overlay::overlay;
use crate::core::protocol::Heatmap;
use image::RgbImage;
use std::path::Path;

/// What a drawn map is measured against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HeatScale {
    /// The decision scale: a typical good part at the bottom, the reject line three
    /// quarters up.
    Line(DecisionScale),
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
    /// On the decision scale, each point's level (what [`Self::words`] says of it).
    pub levels: Option<Heatmap>,
    /// The top of the colours in those values.
    pub vmax: f32,
    /// The scale.
    pub scale: HeatScale,
    /// Pixels at or above the reject line's level, on the decision scale.
    pub hot_area: Option<usize>,
}

/// The hot area of `heat` (a part scored `score`) on the decision scale, without the
/// colours: what a CSV row needs. `None` where [`ScaledHeat::new`] would use the good-part
/// scale.
pub fn hot_area_of(
    heat: &Heatmap,
    score: f64,
    reject: Option<f64>,
    typical_good: Option<f64>,
) -> Option<usize> {
    let scale = DecisionScale::new(typical_good?, reject?)?;
    Some(hot_area(&scale.levels(heat, score)?))
}

impl ScaledHeat {
    /// `heat` of a part scored `score`: on the decision scale when there is a `reject`
    /// line above the `typical_good` score (the median held-out good score), else on the
    /// good-part scale with the model's `good_vmax`.
    pub fn new(
        heat: &Heatmap,
        score: f64,
        reject: Option<f64>,
        typical_good: Option<f64>,
        good_vmax: f32,
    ) -> Self {
        let scale = reject
            .zip(typical_good)
            .and_then(|(line, good)| DecisionScale::new(good, line));
        match scale.and_then(|scale| Some((scale, scale.levels(heat, score)?))) {
            Some((scale, levels)) => {
                let (values, vmax) = levels_as_heat(&levels, scale.level_of(score));
                Self {
                    hot_area: Some(hot_area(&levels)),
                    values,
                    levels: Some(levels),
                    vmax,
                    scale: HeatScale::Line(scale),
                }
            }
            None => Self {
                levels: None,
                values: heat.clone(),
                vmax: good_vmax,
                scale: HeatScale::Good { vmax: good_vmax },
                hot_area: None,
            },
        }
    }

    /// What the point at `index` says, in words: "1.3 × the reject line", or "2.1 × the
    /// most unusual 1 % of a good part".
    pub fn words(&self, index: usize) -> Option<String> {
        match (self.scale, &self.levels) {
            (HeatScale::Line(scale), Some(levels)) => {
                levels.values.get(index).map(|l| scale.words(*l))
            }
            _ => self.values.values.get(index).map(|v| {
                format!(
                    "{} × the most unusual 1 % of a good part",
                    crate::core::message::format_score(f64::from(*v))
                )
            }),
        }
    }

    /// The legend of the scale under an exported image.
    pub fn legend(&self) -> Legend {
        match self.scale {
            HeatScale::Line(_) => Legend::Line,
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

/// How much of the heat colours cover the part in a heatmap file (the window's default;
/// `differnet score` and the line always use it).
pub const HEATMAP_OPACITY: f32 = 0.6;

/// The caption of a heatmap file: the part's file name (of `part`), its score and, with a line, the
/// decision and where the line is; then the model that scored it. The one caption of the
/// window's export, `differnet score --heatmaps` and the line.
pub fn heatmap_caption(
    part: &Path,
    score: f64,
    thresholds: Option<Thresholds>,
    model: Option<&str>,
) -> Vec<String> {
    let name = part.file_name().unwrap_or_default().to_string_lossy();
    let mut first = format!("{name}  score {}", format_score(score));
    if let Some(t) = thresholds {
        first += &format!(
            "  {} (reject line at {})",
            t.decide(score).name(),
            format_score(t.reject)
        );
    }
    let mut lines = vec![first];
    if let Some(m) = model.filter(|m| !m.is_empty()) {
        lines.push(format!("model: {m}"));
    }
    lines
}

/// The one writer of heatmap files: the image at `source` with `heat` over it at
/// `opacity`, the caption `lines` and the colour scale under it, as a PNG written
/// atomically to `dest`. The error names the file it is about.
pub fn write_heatmap_file(
    source: &Path,
    heat: &ScaledHeat,
    colormap: Colormap,
    opacity: f32,
    lines: &[String],
    dest: &Path,
) -> Result<(), String> {
    let img = load_rgb(source).map_err(|e| e.to_string())?;
    let out = heatmap_image(&img, heat, colormap, opacity, lines);
    let mut bytes = Vec::new();
    out.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .map_err(|e| format!("cannot encode PNG ({e}): {}", path_text(dest)))?;
    write_atomic(dest, &bytes).map_err(|e| format!("cannot write ({e}): {}", path_text(dest)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_puts_the_map_on_the_decision_scale_and_none_keeps_the_good_part_scale() {
        let heat = Heatmap {
            width: 3,
            height: 1,
            values: vec![1.0, 1.0, 4.0],
        };
        // Typical good 1, line 3, the part at 9: its hot spot reads 3 x the line.
        let on_line = ScaledHeat::new(&heat, 9.0, Some(3.0), Some(1.0), 4.0);
        assert!(matches!(on_line.scale, HeatScale::Line(_)));
        assert_eq!(on_line.hot_area, Some(1));
        assert!(
            on_line
                .words(2)
                .unwrap()
                .starts_with("3.00 × the reject line")
        );
        assert_eq!(
            hot_area_of(&heat, 9.0, Some(3.0), Some(1.0)),
            on_line.hot_area
        );
        assert_eq!(hot_area_of(&heat, 9.0, None, Some(1.0)), None);
        let without = ScaledHeat::new(&heat, 9.0, None, Some(1.0), 4.0);
        assert_eq!(without.scale, HeatScale::Good { vmax: 4.0 });
        assert_eq!(without.values, heat);
        assert_eq!(without.hot_area, None);
        // A line below the typical good part: the good-part scale.
        let low = ScaledHeat::new(&heat, 9.0, Some(0.5), Some(1.0), 4.0);
        assert_eq!(low.scale, HeatScale::Good { vmax: 4.0 });
        let img = RgbImage::from_pixel(3, 1, image::Rgb([10, 10, 10]));
        let out = heatmap_image(&img, &on_line, Colormap::Jet, 1.0, &["SCORE 9".into()]);
        assert!(out.height() > 1);
        assert_eq!(out.get_pixel(2, 0).0, Colormap::Jet.map(1.0));
    }

    #[test]
    fn the_one_caption_says_the_part_its_score_the_decision_and_the_model() {
        let t = Thresholds {
            reject: 44.7,
            review: Some(10.0),
        };
        let part = Path::new("/data/test/stain/001.png");
        assert_eq!(
            heatmap_caption(part, 313.2, Some(t), Some("tiles.differnet")),
            [
                "001.png  score 313  reject (reject line at 44.7)",
                "model: tiles.differnet"
            ]
        );
        assert_eq!(
            heatmap_caption(part, 12.0, Some(t), None),
            ["001.png  score 12.0  review (reject line at 44.7)"]
        );
        assert_eq!(
            heatmap_caption(part, 0.5, None, Some("")),
            ["001.png  score 0.500"]
        );
    }

    #[test]
    fn a_heatmap_file_is_written_whole_and_a_missing_image_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("part.png");
        RgbImage::from_pixel(8, 6, image::Rgb([90, 90, 90]))
            .save(&source)
            .unwrap();
        let heat = ScaledHeat::new(
            &Heatmap {
                width: 8,
                height: 6,
                values: vec![1.0; 48],
            },
            1.0,
            None,
            None,
            4.0,
        );
        let dest = dir.path().join("part_heatmap.png");
        let caption = heatmap_caption(&source, 1.0, None, None);
        write_heatmap_file(&source, &heat, Colormap::Jet, 0.6, &caption, &dest).unwrap();
        let written = image::open(&dest).unwrap();
        assert!(written.width() >= 8, "the part is all there");
        assert!(written.height() > 6, "the caption strip is under the part");
        let missing = dir.path().join("gone.png");
        let e =
            write_heatmap_file(&missing, &heat, Colormap::Jet, 0.6, &caption, &dest).unwrap_err();
        assert!(e.contains("gone.png"), "{e}");
    }
}
