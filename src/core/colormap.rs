//! Colour maps that turn an anomaly value in `[0, 1]` into an RGB colour.
//!
//! Inferno and viridis are matplotlib's perceptually uniform maps (van der Walt and Smith,
//! 2015), from the `colorous` crate: its B-spline through matplotlib's 256-entry tables,
//! sampled once at t = i / 255 into tables of 256 colours that every lookup indexes. Each
//! colour is within one level (of 255) of matplotlib's own table. Jet is MATLAB's classic
//! rainbow, computed from its piecewise-linear formula.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

/// A colour map for heatmaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Colormap {
    /// Dark blue, cyan, yellow, dark red. The default: its hot end stands out on both light
    /// and dark parts, and it is how anomaly maps are usually drawn in the literature.
    #[default]
    Jet,
    /// Black, purple, orange, pale yellow; perceptually uniform.
    Inferno,
    /// Dark purple, teal, yellow; perceptually uniform and readable with colour blindness.
    Viridis,
    /// Black to white.
    Grey,
}

/// Matplotlib's inferno at t = 0, 1/255, ..., 1.
static INFERNO: LazyLock<[[u8; 3]; 256]> = LazyLock::new(|| table(colorous::INFERNO));

/// Matplotlib's viridis at t = 0, 1/255, ..., 1.
static VIRIDIS: LazyLock<[[u8; 3]; 256]> = LazyLock::new(|| table(colorous::VIRIDIS));

/// The 256 colours of `gradient` at t = i / 255: one lookup per pixel, not a spline each.
fn table(gradient: colorous::Gradient) -> [[u8; 3]; 256] {
    std::array::from_fn(|i| {
        let colour = gradient.eval_rational(i, 256);
        [colour.r, colour.g, colour.b]
    })
}

impl Colormap {
    /// All colour maps, for menus.
    pub const ALL: [Colormap; 4] = [
        Colormap::Jet,
        Colormap::Inferno,
        Colormap::Viridis,
        Colormap::Grey,
    ];

    /// The name used on the command line, in settings files and in menus.
    pub fn name(self) -> &'static str {
        match self {
            Colormap::Jet => "jet",
            Colormap::Inferno => "inferno",
            Colormap::Viridis => "viridis",
            Colormap::Grey => "grey",
        }
    }

    /// The colour of `t`, where 0 is normal and 1 the most anomalous. Values outside
    /// `[0, 1]` are clamped and NaN is treated as 0.
    pub fn map(self, t: f32) -> [u8; 3] {
        // `clamp` keeps NaN, so it is replaced first.
        let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
        match self {
            Colormap::Jet => {
                // MATLAB's jet: each channel is a trapezoid 0 -> 1 -> 0 over the range,
                // red centred at 3/4, green at 1/2, blue at 1/4.
                let channel = |centre: f32| to_u8(1.5 - (4.0 * t - 4.0 * centre).abs());
                [channel(0.75), channel(0.5), channel(0.25)]
            }
            // The nearest of the 256 colours: t rounded to an 8-bit level, as grey's.
            Colormap::Inferno => INFERNO[usize::from(to_u8(t))],
            Colormap::Viridis => VIRIDIS[usize::from(to_u8(t))],
            Colormap::Grey => {
                let level = to_u8(t);
                [level, level, level]
            }
        }
    }
}

/// A fraction in `[0, 1]` (clamped) as an 8-bit level, rounded.
fn to_u8(fraction: f32) -> u8 {
    (fraction.clamp(0.0, 1.0) * 255.0).round() as u8
}

impl fmt::Display for Colormap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A colour map name that is not one of [`Colormap::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown colour map {name:?}; expected jet, inferno, viridis or grey")]
pub struct UnknownColormap {
    /// The name that was given.
    pub name: String,
}

impl FromStr for Colormap {
    type Err = UnknownColormap;

    /// Parses a [`Colormap::name`], without regard to case; `gray` is accepted for `grey`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        if lower == "gray" {
            return Ok(Colormap::Grey);
        }
        Colormap::ALL
            .into_iter()
            .find(|map| map.name() == lower)
            .ok_or_else(|| UnknownColormap { name: s.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rec. 709 luma of an 8-bit colour.
    fn luma([r, g, b]: [u8; 3]) -> f32 {
        0.2126 * f32::from(r) + 0.7152 * f32::from(g) + 0.0722 * f32::from(b)
    }

    #[test]
    fn endpoints() {
        assert_eq!(Colormap::Jet.map(0.0), [0, 0, 128]);
        assert_eq!(Colormap::Jet.map(1.0), [128, 0, 0]);
        assert_eq!(Colormap::Inferno.map(0.0), INFERNO[0]);
        assert_eq!(Colormap::Inferno.map(1.0), [252, 255, 164]);
        assert_eq!(Colormap::Viridis.map(0.0), [68, 1, 84]);
        assert_eq!(Colormap::Viridis.map(1.0), [253, 231, 37]);
        assert_eq!(Colormap::Grey.map(0.0), [0, 0, 0]);
        assert_eq!(Colormap::Grey.map(1.0), [255, 255, 255]);
    }

    #[test]
    fn midpoints() {
        assert_eq!(Colormap::Jet.map(0.5), [128, 255, 128]);
        assert_eq!(Colormap::Jet.map(0.25), [0, 128, 255]);
        assert_eq!(Colormap::Jet.map(0.75), [255, 128, 0]);
        // matplotlib: inferno(0.5) = #bc3754, viridis(0.5) = #21918c; colorous's spline
        // through matplotlib's table is one level below in red.
        assert_eq!(Colormap::Inferno.map(0.5), [187, 55, 84]);
        assert_eq!(Colormap::Viridis.map(0.5), [32, 145, 140]);
        assert_eq!(Colormap::Grey.map(0.5), [128, 128, 128]);
        // Where the nine control points used before were furthest out, 16 and 19 levels
        // (matplotlib has #fca309 and #dae319 there).
        assert_eq!(Colormap::Inferno.map(203.0 / 255.0), [252, 163, 9]);
        assert_eq!(Colormap::Viridis.map(241.0 / 255.0), [218, 226, 24]);
        // Between two table entries: the nearer one (matplotlib's #48186a).
        assert_eq!(Colormap::Viridis.map(16.4 / 255.0), [72, 24, 106]);
    }

    #[test]
    fn out_of_range_and_nan_are_clamped() {
        for map in Colormap::ALL {
            assert_eq!(map.map(-3.0), map.map(0.0), "{map}");
            assert_eq!(map.map(7.0), map.map(1.0), "{map}");
            assert_eq!(map.map(f32::NAN), map.map(0.0), "{map}");
            assert_eq!(map.map(f32::INFINITY), map.map(1.0), "{map}");
            assert_eq!(map.map(f32::NEG_INFINITY), map.map(0.0), "{map}");
        }
    }

    #[test]
    fn luminance_rises_for_sequential_maps() {
        for map in [Colormap::Grey, Colormap::Inferno, Colormap::Viridis] {
            let mut previous = luma(map.map(0.0));
            for i in 1..=1000 {
                let current = luma(map.map(i as f32 / 1000.0));
                // Rounding each channel to 8 bits may wobble the luma by half a level.
                assert!(
                    current >= previous - 0.5,
                    "{map} at {i}: {current} < {previous}"
                );
                previous = current;
            }
            assert!(luma(map.map(1.0)) - luma(map.map(0.0)) > 150.0, "{map}");
        }
    }

    #[test]
    fn names_are_distinct_and_parse_back() {
        for map in Colormap::ALL {
            assert_eq!(map.name().parse::<Colormap>(), Ok(map));
            assert_eq!(map.to_string(), map.name());
            let json = serde_json::to_string(&map).expect("serialise");
            assert_eq!(json, format!("\"{}\"", map.name()));
            assert_eq!(serde_json::from_str::<Colormap>(&json).expect("parse"), map);
        }
        assert_eq!("Gray".parse::<Colormap>(), Ok(Colormap::Grey));
        assert_eq!(" INFERNO ".parse::<Colormap>(), Ok(Colormap::Inferno));
        let error = "rainbow".parse::<Colormap>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown colour map \"rainbow\"; expected jet, inferno, viridis or grey"
        );
        assert_eq!(Colormap::default(), Colormap::Jet);
    }
}
