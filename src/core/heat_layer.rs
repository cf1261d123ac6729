//! A heatmap as a see-through colour layer, to draw over its image.
//!
//! The colours and alphas are those of [`crate::core::overlay::overlay`] at full opacity:
//! heat is mapped on a log scale (1, as hot as a good part gets, to the bottom of the
//! colormap; `vmax` to its top) and fades out below 1 so good regions stay readable. A
//! front end draws the layer with its own opacity, without recomputing it.

use crate::core::colormap::Colormap;
use crate::core::overlay::heat_level;
use crate::core::protocol::Heatmap;

/// The default heat scale (see [`crate::core::config::DEFAULT_HEAT_VMAX`]).
pub use crate::core::config::DEFAULT_HEAT_VMAX;

/// The heats to mark on a legend of a scale from 1 to `vmax`: the powers of ten up to
/// `vmax` when it spans a decade or more, else 1, 2, 3... up to `vmax`; `vmax` itself is
/// always the last.
pub fn legend_ticks(vmax: f32) -> Vec<f32> {
    let vmax = vmax.max(1.0);
    let step = if vmax >= 10.0 { 10.0 } else { 1.0 };
    let mut ticks = vec![1.0f32];
    loop {
        let last = *ticks.last().expect("never empty");
        let next = if step == 10.0 {
            last * 10.0
        } else {
            last + 1.0
        };
        if next > vmax * 1.0001 {
            break;
        }
        ticks.push(next);
    }
    if *ticks.last().expect("never empty") < vmax * 0.9999 {
        ticks.push(vmax);
    }
    ticks
}

/// Straight (not premultiplied) RGBA pixels of a heat layer.
#[derive(Debug, Clone, PartialEq)]
pub struct HeatLayer {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 4` bytes, row-major RGBA.
    pub rgba: Vec<u8>,
}

impl HeatLayer {
    /// The layer of `heat`, shrunk by an integer factor (each output pixel the hottest of
    /// its block, so a thin defect stays visible) until neither side exceeds `max_side`.
    /// An empty layer when the heatmap's size does not match its values.
    pub fn new(heat: &Heatmap, colormap: Colormap, vmax: f32, max_side: u32) -> Self {
        let (w, h) = (heat.width, heat.height);
        if heat.values.len() != (w as usize) * (h as usize) || w == 0 || h == 0 {
            return Self {
                width: 0,
                height: 0,
                rgba: Vec::new(),
            };
        }
        let factor = w.max(h).div_ceil(max_side.max(1)).max(1);
        let (ow, oh) = (w.div_ceil(factor), h.div_ceil(factor));
        let log_max = if vmax > 1.0 { vmax.ln() } else { 1.0 };
        let mut rgba = Vec::with_capacity((ow * oh * 4) as usize);
        for oy in 0..oh {
            for ox in 0..ow {
                let mut v = f32::NEG_INFINITY;
                for y in oy * factor..((oy + 1) * factor).min(h) {
                    let row = (y * w) as usize;
                    for x in ox * factor..((ox + 1) * factor).min(w) {
                        v = v.max(heat.values[row + x as usize]);
                    }
                }
                let [r, g, b] = colormap.map(heat_level(v, log_max));
                let alpha = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
                rgba.extend_from_slice(&[r, g, b, (alpha * 255.0).round() as u8]);
            }
        }
        Self {
            width: ow,
            height: oh,
            rgba,
        }
    }
}

/// Where the reject line sits on the colormap on the decision scale (see
/// [`DecisionScale`]): three quarters of the way up (orange on the default jet and on
/// inferno, light green on viridis).
pub const LINE_LEVEL: f32 = 0.75;
/// How fast the colour fades out below a typical good part on the decision scale: the
/// drawn values are `exp(LEVEL_SPAN x level)`, as the good-part scale's are from 1 to 16.
const LEVEL_SPAN: f32 = 2.772_588_7; // ln 16

/// The decision scale of heatmaps: heat in units of the decision, shared by the window,
/// `differnet score` and the line.
///
/// A part's map says where it is unusual but not how much in the units of its score
/// (PatchCore's score is its hottest patch; a fusion's is the exponential of a standard
/// score; a flow's map is a gradient). So each point is given the score of a part as
/// unusual as it is: the part's typical point (its median heat) the score of a typical
/// good part (the median held-out good score), its hottest point the part's own score,
/// and the points between in proportion, on a log scale of scores where they are
/// positive. Colours run from a typical good part (the bottom, clear below it) to the
/// reject line ([`LINE_LEVEL`], a fixed colour) and on above it at the same pace. So a
/// rejected part always shows where it is worst at or above the line's colour, an
/// accepted one never reaches it, and a part's hot area is the pixels at or above it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecisionScale {
    /// Whether scores are compared on a log scale (every one positive).
    log: bool,
    /// A typical good part's score, in the scale's coordinate.
    good: f64,
    /// The reject line, in the scale's coordinate.
    line: f64,
}

impl DecisionScale {
    /// The scale from a typical good part's score to the reject line; `None` unless the
    /// line lies above the typical good score (a line below most good parts has no
    /// calm end to draw from).
    pub fn new(typical_good: f64, line: f64) -> Option<Self> {
        if !(typical_good.is_finite() && line.is_finite() && line > typical_good) {
            return None;
        }
        let log = typical_good > 0.0;
        let at = |v: f64| if log { v.ln() } else { v };
        Some(Self {
            log,
            good: at(typical_good),
            line: at(line),
        })
    }

    fn coordinate(&self, score: f64) -> f64 {
        if !self.log {
            score
        } else if score > 0.0 {
            score.ln()
        } else {
            f64::NEG_INFINITY
        }
    }

    /// The level on the colormap (0 a typical good part, [`LINE_LEVEL`] the line; not
    /// clamped) of a part scored `score`.
    pub fn level_of(&self, score: f64) -> f32 {
        (f64::from(LINE_LEVEL) * (self.coordinate(score) - self.good) / (self.line - self.good))
            as f32
    }

    /// The score of a part as unusual as `level` says.
    pub fn score_at(&self, level: f32) -> f64 {
        let u = self.good + f64::from(level) / f64::from(LINE_LEVEL) * (self.line - self.good);
        if self.log { u.exp() } else { u }
    }

    /// What a level says in words: "1.3 × the reject line" on a log scale, else "as
    /// unusual as a part scoring 5.2 (reject line 4.0)".
    pub fn words(&self, level: f32) -> String {
        let score = self.score_at(level);
        if self.log {
            let line = self.line.exp();
            format!(
                "{} × the reject line",
                crate::core::message::format_score(score / line)
            )
        } else {
            format!(
                "as unusual as a part scoring {} (reject line {})",
                crate::core::message::format_score(score),
                crate::core::message::format_score(self.line)
            )
        }
    }

    /// Every point of `heat` (a part scored `score`) as its level on this scale; `None`
    /// without a finite value.
    pub fn levels(&self, heat: &Heatmap, score: f64) -> Option<Heatmap> {
        let median = finite_quantile(heat, 0.5)?;
        let peak = finite_quantile(heat, 1.0)?;
        let top = self.level_of(score);
        // From the part's typical point (level 0) to its hottest (the part's own level).
        let span = peak - median;
        let values = heat
            .values
            .iter()
            .map(|v| {
                let t = if span > 0.0 { (v - median) / span } else { 1.0 };
                t * top
            })
            .collect();
        Some(Heatmap {
            width: heat.width,
            height: heat.height,
            values,
        })
    }
}

/// Levels on the decision scale of a part whose hottest point is at level `top`, as the
/// layer and the overlay take heat: 1 at a typical good part (the bottom of the colours,
/// fading out below), the returned top at colour 1. Below the line the scale is fixed;
/// above it, for a part beyond the top of the colours, the colours from the line up
/// stretch to the part's own hottest point, so a part far over the line still shows
/// where it is worst instead of one flat colour.
pub fn levels_as_heat(levels: &Heatmap, top: f32) -> (Heatmap, f32) {
    let stretch = top > 1.0;
    let colour = |l: f32| {
        if stretch && l > LINE_LEVEL {
            LINE_LEVEL + (1.0 - LINE_LEVEL) * (l - LINE_LEVEL) / (top - LINE_LEVEL)
        } else {
            l
        }
    };
    (
        Heatmap {
            width: levels.width,
            height: levels.height,
            values: levels
                .values
                .iter()
                .map(|l| (LEVEL_SPAN * colour(*l)).exp())
                .collect(),
        },
        LEVEL_SPAN.exp(),
    )
}

/// The part's hot area: pixels at or above the reject line's level.
pub fn hot_area(levels: &Heatmap) -> usize {
    levels.values.iter().filter(|l| **l >= LINE_LEVEL).count()
}

/// A heatmap re-expressed against its own part instead of against good parts: 1.0 is the
/// part's median heat, and the returned `vmax` its hottest value. For a part that is far
/// from every good one (hot all over on the good-part scale), this shows where it is
/// hottest. `vmax` is at least a little above 1 so the colour scale is never empty.
pub fn relative_to_part(heat: &Heatmap) -> (Heatmap, f32) {
    let (Some(median), Some(max)) = (finite_quantile(heat, 0.5), finite_quantile(heat, 1.0)) else {
        return (heat.clone(), DEFAULT_HEAT_VMAX);
    };
    let median = median.max(f32::MIN_POSITIVE);
    let scaled = Heatmap {
        width: heat.width,
        height: heat.height,
        values: heat.values.iter().map(|v| v / median).collect(),
    };
    (scaled, (max / median).max(1.01))
}

/// Whether a part is hot all over on the good-part scale: three quarters of it are
/// [`HOT_ALL_OVER`] times hotter than the hottest 1 % of a good part, so the good-part
/// colours would paint it nearly one colour. Such a part is better shown against itself
/// ([`relative_to_part`]). `vmax` (the top of the scale) bounds the test from above.
pub fn hot_all_over(heat: &Heatmap, vmax: f32) -> bool {
    finite_quantile(heat, 0.25).is_some_and(|q| q >= HOT_ALL_OVER.min(vmax.max(1.0)))
}

/// The `q` quantile (0..1, by rank) of a heatmap's finite values; `None` without any.
fn finite_quantile(heat: &Heatmap, q: f64) -> Option<f32> {
    let mut finite: Vec<f32> = heat
        .values
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    if finite.is_empty() {
        return None;
    }
    let rank = ((finite.len() as f64 * q) as usize).min(finite.len() - 1);
    let (_, value, _) = finite.select_nth_unstable_by(rank, f32::total_cmp);
    Some(*value)
}

/// See [`hot_all_over`].
pub const HOT_ALL_OVER: f32 = 4.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legend_ticks_fit_the_scale() {
        assert_eq!(legend_ticks(1000.0), vec![1.0, 10.0, 100.0, 1000.0]);
        assert_eq!(legend_ticks(4.0), vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(legend_ticks(2.5), vec![1.0, 2.0, 2.5]);
        assert_eq!(legend_ticks(300.0), vec![1.0, 10.0, 100.0, 300.0]);
        assert_eq!(legend_ticks(0.5), vec![1.0]);
    }

    #[test]
    fn relative_scale_spans_the_part_from_its_median_to_its_hottest() {
        // A part hot all over (100x to 1000x a good part) with one hotter spot.
        let mut values = vec![100.0f32; 100];
        values[55] = 1000.0;
        values[3] = f32::NAN;
        let heat = Heatmap {
            width: 10,
            height: 10,
            values,
        };
        // Against good parts nearly every pixel is at the same, saturated colour.
        let absolute = HeatLayer::new(&heat, Colormap::Jet, DEFAULT_HEAT_VMAX, 64);
        assert_eq!(absolute.rgba[0..4], absolute.rgba[10 * 4..10 * 4 + 4]);
        let (scaled, vmax) = relative_to_part(&heat);
        assert!((vmax - 10.0).abs() < 1e-4, "{vmax}");
        assert!((scaled.values[0] - 1.0).abs() < 1e-6);
        let layer = HeatLayer::new(&scaled, Colormap::Jet, vmax, 64);
        // The background sits at the bottom of the colormap, the spot at its top.
        assert_eq!(&layer.rgba[0..3], &Colormap::Jet.map(0.0));
        assert_eq!(&layer.rgba[55 * 4..55 * 4 + 3], &Colormap::Jet.map(1.0));
        // A flat map still gives a usable scale.
        let flat = Heatmap {
            width: 2,
            height: 1,
            values: vec![5.0, 5.0],
        };
        assert!(relative_to_part(&flat).1 > 1.0);
    }
    #[test]
    fn on_the_decision_scale_a_rejected_part_is_hot_where_it_is_worst_and_an_accepted_one_is_not() {
        // A part with a calm background (heat 1) and a spot (heat 9 and 5).
        let mut values = vec![1.0f32; 100];
        values[44] = 9.0;
        values[45] = 5.0;
        values[0] = 0.0;
        let heat = Heatmap {
            width: 10,
            height: 10,
            values,
        };
        // Typical good parts score 1, the line is at 4.
        let scale = DecisionScale::new(1.0, 4.0).unwrap();
        assert!((scale.level_of(1.0)).abs() < 1e-6);
        assert!((scale.level_of(4.0) - LINE_LEVEL).abs() < 1e-6);
        // Rejected at 16 (the line squared, on a log scale: level 1.5): the spot reads the
        // part's score, its background a typical good part, the half-way point the line.
        let rejected = scale.levels(&heat, 16.0).unwrap();
        assert!((rejected.values[44] - 1.5).abs() < 1e-5);
        assert!((rejected.values[45] - LINE_LEVEL).abs() < 1e-5);
        assert!(rejected.values[10].abs() < 1e-6);
        assert_eq!(hot_area(&rejected), 2);
        assert!(
            scale
                .words(rejected.values[44])
                .starts_with("4.00 × the reject line")
        );
        let (input, vmax) = levels_as_heat(&rejected, scale.level_of(16.0));
        let layer = HeatLayer::new(&input, Colormap::Jet, vmax, 64);
        let at = |i: usize| {
            [
                layer.rgba[i * 4],
                layer.rgba[i * 4 + 1],
                layer.rgba[i * 4 + 2],
            ]
        };
        // The line at its named level, the spot at the top, the background at the bottom,
        // and colder than a typical good part fades out.
        let line = at(45);
        let want = Colormap::Jet.map(LINE_LEVEL);
        assert!(
            line.iter().zip(want).all(|(a, b)| a.abs_diff(b) <= 2),
            "{line:?} {want:?}"
        );
        assert_eq!(at(44), Colormap::Jet.map(1.0));
        // A part far over the line: from the line up, the colours reach its own worst
        // point, so the half-way point above the line is half-way up the hot colours.
        let far = scale.levels(&heat, 4096.0).unwrap();
        let top = scale.level_of(4096.0);
        assert!((top - 4.5).abs() < 1e-4, "{top}");
        let mut probe = far.clone();
        probe.values[46] = (LINE_LEVEL + top) / 2.0;
        let (input, _) = levels_as_heat(&probe, top);
        let colour = input.values[46].ln() / LEVEL_SPAN;
        assert!((colour - (LINE_LEVEL + 1.0) / 2.0).abs() < 1e-4, "{colour}");
        assert!((input.values[44].ln() / LEVEL_SPAN - 1.0).abs() < 1e-4);
        assert_eq!(at(10), Colormap::Jet.map(0.0));
        assert!(layer.rgba[3] < 255);
        // Accepted at 2: nothing reaches the line.
        let accepted = scale.levels(&heat, 2.0).unwrap();
        assert_eq!(hot_area(&accepted), 0);
        assert!(accepted.values[44] < LINE_LEVEL);
        // Scores that can be negative: the same on a linear scale.
        let flow = DecisionScale::new(-2.0, 2.0).unwrap();
        let l = flow.levels(&heat, 6.0).unwrap();
        assert!((l.values[45] - LINE_LEVEL).abs() < 1e-5);
        assert!(flow.words(l.values[45]).contains("reject line 2"));
        // A line below the typical good part has no calm end.
        assert!(DecisionScale::new(4.0, 1.0).is_none());
    }

    use crate::core::overlay::overlay;
    use image::RgbImage;

    #[test]
    fn the_layer_blends_like_the_exported_overlay() {
        let heat = Heatmap {
            width: 3,
            height: 1,
            values: vec![0.0, 0.5, 40.0],
        };
        let layer = HeatLayer::new(&heat, Colormap::Jet, DEFAULT_HEAT_VMAX, 64);
        assert_eq!((layer.width, layer.height), (3, 1));
        let img = RgbImage::from_pixel(3, 1, image::Rgb([90, 120, 30]));
        let expected = overlay(&img, &heat, Colormap::Jet, 1.0, DEFAULT_HEAT_VMAX);
        for x in 0..3usize {
            let px = &layer.rgba[x * 4..x * 4 + 4];
            let a = f32::from(px[3]) / 255.0;
            for (k, &colour) in px.iter().take(3).enumerate() {
                let under = f32::from(img.get_pixel(x as u32, 0)[k]);
                let blended = under * (1.0 - a) + f32::from(colour) * a;
                let want = f32::from(expected.get_pixel(x as u32, 0)[k]);
                assert!((blended - want).abs() <= 1.0, "pixel {x} channel {k}");
            }
        }
    }

    #[test]
    fn shrinking_keeps_the_hottest_pixel() {
        let mut values = vec![0.0; 100 * 10];
        values[5 * 100 + 57] = 500.0;
        let heat = Heatmap {
            width: 100,
            height: 10,
            values,
        };
        let layer = HeatLayer::new(&heat, Colormap::Grey, 1000.0, 25);
        assert_eq!((layer.width, layer.height), (25, 3));
        let hot = (25 + 14) * 4;
        assert_eq!(layer.rgba[hot + 3], 255);
        assert!(layer.rgba[hot] > 200);
        let bad = Heatmap {
            width: 2,
            height: 2,
            values: vec![1.0],
        };
        assert_eq!(HeatLayer::new(&bad, Colormap::Jet, 10.0, 8).width, 0);
    }

    #[test]
    fn a_part_hot_all_over_is_recognised() {
        let map = |values: Vec<f32>| Heatmap {
            width: values.len() as u32,
            height: 1,
            values,
        };
        assert!(
            !hot_all_over(&map(vec![0.2, 0.5, 0.8, 30.0]), 20.0),
            "a hot spot on a good part"
        );
        assert!(
            hot_all_over(&map(vec![6.0, 9.0, 12.0, 40.0]), 20.0),
            "hot everywhere"
        );
        assert!(!hot_all_over(&map(vec![]), 20.0));
    }
}
