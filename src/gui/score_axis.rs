//! The score axis of the histogram and of the line's recent scores: `log10` of the score
//! on the plot, real scores at round values on the axis, as many as have room for their
//! labels at the plot's size.

use egui_plot::{GridInput, GridMark};

/// `log10` of a score for the histogram axis.
pub fn log_score(s: f64) -> f64 {
    s.max(crate::core::histogram::MIN_LOG_SCORE).log10()
}

/// The plot's smallest grid spacing in points: a grid spacer's `base_step_size` is this
/// many points in the axis's units.
const GRID_MIN_PX: f64 = 8.0;

/// The grid spacing to give a plot with a score axis (what [`x_marks`] and [`y_marks`]
/// assume).
pub const GRID_SPACING: egui::Rangef = egui::Rangef {
    min: GRID_MIN_PX as f32,
    max: 300.0,
};

/// The least room between two score labels across the plot, in points: egui_plot draws
/// no label closer than 60 points to the next, and "0.500" is about 40 points wide.
const LABEL_GAP_PX: f64 = 66.0;

/// The least room between two score labels up the plot, in points: egui_plot draws none
/// closer than 20 points.
const LABEL_GAP_Y_PX: f64 = 24.0;

/// How much of an axis's value `points` points on screen take, from a grid spacer's
/// input (its `base_step_size` is the value of the plot's smallest grid spacing).
pub fn value_for_points(input: &GridInput, points: f64) -> f64 {
    input.base_step_size / GRID_MIN_PX * points
}

/// Grid marks for a score axis across a plot (the histogram's).
pub fn x_marks(input: GridInput) -> Vec<GridMark> {
    log_marks(input, LABEL_GAP_PX)
}

/// Grid marks for a score axis up a plot (the line's recent scores).
pub fn y_marks(input: GridInput) -> Vec<GridMark> {
    log_marks(input, LABEL_GAP_Y_PX)
}

/// Grid marks for a `log10` score axis, as many as leave room for their labels at the
/// plot's width: 1, 2 and 5 times the powers of ten when there is room; round scores in
/// even steps on a range too narrow for those; 1 and 3, 1, or every few powers of ten on
/// a narrow plot.
fn log_marks(input: GridInput, label_gap: f64) -> Vec<GridMark> {
    let (lo, hi) = input.bounds;
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return Vec::new();
    }
    let px = if input.base_step_size > 0.0 {
        GRID_MIN_PX / input.base_step_size
    } else {
        f64::INFINITY
    };
    let gap = |values: &[f64]| {
        values
            .windows(2)
            .map(|w| w[1] - w[0])
            .fold(hi - lo, f64::min)
    };
    let fits = |values: &[f64]| !values.is_empty() && gap(values) * px >= label_gap;
    let per_decade = |mantissas: &[f64], every: i32| -> Vec<f64> {
        let mut values = Vec::new();
        for k in (lo.floor() as i32 - 1)..=(hi.ceil() as i32) {
            if k.rem_euclid(every) != 0 {
                continue;
            }
            for m in mantissas {
                let v = (m * 10f64.powi(k)).log10();
                if (lo..=hi).contains(&v) {
                    values.push(v);
                }
            }
        }
        values
    };
    let dense = per_decade(&[1.0, 2.0, 5.0], 1);
    let values = if dense.len() >= 3 && fits(&dense) {
        dense
    } else if let Some(even) = (dense.len() < 3)
        .then(|| even_steps(lo, hi, &fits))
        .flatten()
    {
        even
    } else {
        let mut sparser = [(&[1.0, 3.0][..], 1), (&[1.0][..], 1)]
            .into_iter()
            .chain([2, 5, 10, 20, 50].map(|every| (&[1.0][..], every)))
            .map(|(m, every)| per_decade(m, every));
        sparser.find(|v| fits(v)).unwrap_or_default()
    };
    let step_size = gap(&values);
    values
        .into_iter()
        .map(|value| GridMark { value, step_size })
        .collect()
}

/// Round scores in even steps (1, 2 or 5 times a power of ten) between `10^lo` and
/// `10^hi`, as `log10`: the finest step of at least two marks that `fits`.
fn even_steps(lo: f64, hi: f64, fits: &dyn Fn(&[f64]) -> bool) -> Option<Vec<f64>> {
    let (s_lo, s_hi) = (10f64.powf(lo), 10f64.powf(hi));
    let magnitude = 10f64.powf(((s_hi - s_lo) / 10.0).log10().floor());
    (0..8)
        .flat_map(|k| [1.0, 2.0, 5.0].map(|m| m * magnitude * 10f64.powi(k)))
        .map(|step| {
            (((s_lo / step).ceil() as i64)..=((s_hi / step).floor() as i64))
                .map(|i| i as f64 * step)
                .filter(|s| *s > 0.0)
                .map(f64::log10)
                .collect::<Vec<f64>>()
        })
        .take_while(|v| v.len() >= 2)
        .find(|v| fits(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gui::style;

    /// The score labels on a plot `width` points wide from score `lo` to `hi`.
    fn marks_at(lo: f64, hi: f64, width: f64) -> Vec<String> {
        let (a, b) = (lo.log10(), hi.log10());
        let marks = x_marks(GridInput {
            bounds: (a, b),
            base_step_size: GRID_MIN_PX * (b - a) / width,
        });
        // Each label has its room: egui_plot would hide it otherwise.
        for m in &marks {
            assert!(m.step_size * width / (b - a) >= LABEL_GAP_PX, "{marks:?}");
        }
        marks
            .into_iter()
            .map(|m| style::format_score(10f64.powf(m.value)))
            .collect()
    }

    fn marks(lo: f64, hi: f64) -> Vec<String> {
        marks_at(lo, hi, 800.0 * (hi / lo).log10())
    }

    #[test]
    fn the_score_axis_keeps_numbers_on_a_narrow_plot() {
        // The full range of a magnetic tile inspection on the 1024 px window's plot
        // (about 330 points) and on a wide one.
        let narrow = marks_at(0.3, 120.0, 330.0);
        assert!(narrow.len() >= 3, "{narrow:?}");
        assert_eq!(
            marks_at(0.3, 120.0, 1200.0).len(),
            8,
            "1-2-5 when there is room"
        );
        assert!(marks_at(0.01, 1e6, 330.0).len() >= 2);
        assert!(marks_at(9.0, 11.0, 200.0).len() >= 2);
    }

    #[test]
    fn the_score_axis_gets_round_labels() {
        assert_eq!(
            marks(3.0, 300.0),
            ["5.00", "10.0", "20.0", "50.0", "100", "200"]
        );
        // A narrow range gets even steps, as many as have room for their labels.
        assert_eq!(marks(2.35, 4.4), ["3.00", "4.00"]);
        assert_eq!(marks(2.35, 9.4), ["4.00", "6.00", "8.00"]);
    }

    #[test]
    fn a_score_axis_up_a_short_plot_keeps_numbers() {
        // The line's plot is about 80 points tall.
        let (a, b) = (0.5f64.log10(), 40f64.log10());
        let marks = y_marks(GridInput {
            bounds: (a, b),
            base_step_size: GRID_MIN_PX * (b - a) / 80.0,
        });
        assert!(marks.len() >= 2, "{marks:?}");
        assert!(
            marks
                .iter()
                .all(|m| m.step_size * 80.0 / (b - a) >= LABEL_GAP_Y_PX)
        );
    }
}
