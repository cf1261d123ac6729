//! Colours and number formats shared by the panels, so a decision looks the same
//! everywhere.

use crate::core::decision::Decision;
use egui::Color32;

/// Accepted parts.
pub const ACCEPT: Color32 = Color32::from_rgb(80, 180, 100);
/// Parts in review.
pub const REVIEW: Color32 = Color32::from_rgb(235, 160, 40);
/// Rejected parts and the reject threshold.
pub const REJECT: Color32 = Color32::from_rgb(225, 70, 70);
/// Known good parts in the histogram.
pub const GOOD: Color32 = Color32::from_rgb(90, 160, 230);
/// Known defective parts in the histogram.
pub const DEFECT: Color32 = Color32::from_rgb(230, 110, 60);
/// Unlabelled parts in the histogram.
pub const UNKNOWN: Color32 = Color32::from_rgb(150, 150, 150);

/// The colour of a decision.
pub fn decision_color(d: Decision) -> Color32 {
    match d {
        Decision::Accept => ACCEPT,
        Decision::Review => REVIEW,
        Decision::Reject => REJECT,
    }
}

/// A percentage without needless decimals: "12", "1", "0.5".
pub fn format_pct(pct: f64) -> String {
    if pct >= 10.0 || pct == pct.round() {
        format!("{pct:.0}")
    } else {
        format!("{pct:.1}")
    }
}

/// A rate (a fraction) as a percentage for people: "12 %", "0.3 %", "< 0.1 %".
pub fn format_rate(rate: f64) -> String {
    let pct = rate * 100.0;
    if !pct.is_finite() {
        "–".to_owned()
    } else if pct > 0.0 && pct < 0.1 {
        "< 0.1 %".to_owned()
    } else {
        format!("{} %", format_pct(pct))
    }
}

pub use crate::core::message::format_score;

/// Seconds as "12 s", "3 min 5 s" or "1 h 2 min".
pub fn format_duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s < 60 {
        format!("{s} s")
    } else if s < 3600 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{} h {} min", s / 3600, (s % 3600) / 60)
    }
}

/// Frames per second of [`busy_indicator`]'s animation. egui's own spinner repaints at the
/// display rate, which keeps a software-rendered window (remote desktop, Xvfb) busy for
/// the whole of a long job; a few steps a second show the same "still working".
const BUSY_STEPS_PER_SEC: f64 = 4.0;

/// A small turning arc that shows a job is running, repainting only a few times a second.
pub fn busy_indicator(ui: &mut egui::Ui) -> egui::Response {
    let side = ui.spacing().interact_size.y;
    let (rect, response) = ui.allocate_exact_size(egui::vec2(side, side), egui::Sense::hover());
    if ui.is_rect_visible(rect) {
        let step = (ui.input(|i| i.time) * BUSY_STEPS_PER_SEC).floor();
        let start = step * std::f64::consts::TAU / 8.0;
        let radius = rect.height() / 2.0 - 2.0;
        let points: Vec<egui::Pos2> = (0..=16)
            .map(|k| {
                let a = (start + f64::from(k) / 16.0 * std::f64::consts::TAU * 0.7) as f32;
                rect.center() + radius * egui::vec2(a.cos(), a.sin())
            })
            .collect();
        let stroke = egui::Stroke::new(2.0, ui.visuals().strong_text_color());
        ui.painter().add(egui::Shape::line(points, stroke));
        ui.ctx()
            .request_repaint_after(std::time::Duration::from_secs_f64(1.0 / BUSY_STEPS_PER_SEC));
    }
    response.on_hover_text("Working…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(format_duration(65.0), "1 min 5 s");
        assert_eq!(format_duration(3725.0), "1 h 2 min");
    }
}
