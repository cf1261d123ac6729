//! The score histogram with draggable threshold lines, the threshold controls and what
//! they do to the parts: accepted, review and rejected counts, mistakes, a confusion
//! matrix, precision and recall.

use crate::core::decision::{DecisionCounts, Thresholds};
use crate::core::histogram::LogHistogram;
use crate::core::metrics::Confusion;
use crate::gui::command::AppCommand;
use crate::gui::session::Session;
use crate::gui::state::State;
use crate::gui::style;
use egui::{Color32, RichText};
use egui_plot::{Bar, BarChart, GridInput, GridMark, Plot, Span, VLine};

/// Bins of the histogram.
const BINS: usize = 40;
/// Pixels within which a press on the plot grabs a threshold line.
const GRAB_PX: f32 = 24.0;

/// Which threshold line is being dragged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grab {
    Reject,
    Review,
}

/// Derived values cached until the parts or thresholds change.
struct Cache {
    version: u64,
    histogram: Option<LogHistogram>,
    counts: Option<DecisionCounts>,
    confusion: Option<Confusion>,
}

/// The results panel's own state.
#[derive(Default)]
pub struct ResultsPanel {
    grab: Option<Grab>,
    cache: Option<Cache>,
}

impl ResultsPanel {
    fn refresh(&mut self, session: &Session) {
        if self
            .cache
            .as_ref()
            .is_some_and(|c| c.version == session.version)
        {
            return;
        }
        let parts: Vec<(f64, Option<bool>)> = session
            .parts
            .iter()
            .map(|p| (p.score, p.label.is_defect()))
            .collect();
        let (scores, truth) = session.labelled_scores();
        self.cache = Some(Cache {
            version: session.version,
            histogram: LogHistogram::new(&parts, BINS),
            counts: session.counts(),
            confusion: session
                .thresholds
                .filter(|_| !scores.is_empty())
                .map(|t| Confusion::at(&scores, &truth, t.reject)),
        });
    }

    /// Shows the histogram and the controls side by side.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        session: &Session,
        state: &mut State,
        commands: &mut Vec<AppCommand>,
    ) {
        self.refresh(session);
        let Some(thresholds) = session.thresholds else {
            ui.label("Scores appear here once the parts are inspected.");
            return;
        };
        let width = ui.available_width();
        if width >= 820.0 {
            ui.horizontal_top(|ui| {
                ui.vertical(|ui| {
                    ui.set_width(width * 0.55);
                    self.histogram_ui(ui, thresholds, state, commands);
                });
                ui.add_space(12.0);
                ui.vertical(|ui| {
                    self.controls_ui(ui, session, thresholds, state, commands);
                });
            });
        } else {
            // Narrow (a part is open beside it): the controls go under the histogram.
            self.histogram_ui(ui, thresholds, state, commands);
            self.controls_ui(ui, session, thresholds, state, commands);
        }
    }

    fn histogram_ui(
        &mut self,
        ui: &mut egui::Ui,
        t: Thresholds,
        state: &State,
        commands: &mut Vec<AppCommand>,
    ) {
        let Some(hist) = self.cache.as_ref().and_then(|c| c.histogram.as_ref()) else {
            return;
        };
        ui.horizontal_wrapped(|ui| {
            ui.label(RichText::new("Score histogram").strong())
                .on_hover_text("How many parts got each score. Higher scores look less like the good parts. Drag a vertical line to move a threshold.");
            // The key, outside the plot so it never hides a bar.
            let has = |pick: fn(&crate::core::histogram::BinCounts) -> usize| hist.bins.iter().any(|b| pick(b) > 0);
            for (present, colour, name, bar) in [
                (has(|b| b.good), style::GOOD, "good", true),
                (has(|b| b.defect), style::DEFECT, "defective", true),
                (has(|b| b.unknown), style::UNKNOWN, "unlabelled", true),
                (true, style::REJECT, "reject line", false),
                (state.review_band, style::REVIEW, "review line", false),
            ] {
                if present {
                    key_ui(ui, colour, name, bar);
                }
            }
        });
        let bars = |pick: fn(&crate::core::histogram::BinCounts) -> usize| -> Vec<Bar> {
            hist.bins
                .iter()
                .enumerate()
                .map(|(i, b)| Bar::new(hist.center(i), pick(b) as f64).width(hist.log_width * 0.9))
                .collect()
        };
        let good = BarChart::new("good", bars(|b| b.good)).color(style::GOOD);
        let defect = BarChart::new("defective", bars(|b| b.defect))
            .color(style::DEFECT)
            .stack_on(&[&good]);
        let unknown = BarChart::new("unlabelled", bars(|b| b.unknown))
            .color(style::UNKNOWN)
            .stack_on(&[&good, &defect]);
        let reject_x = log_score(t.reject);
        let review_x = t.review.filter(|_| state.review_band).map(log_score);
        let (lo, hi) = (hist.log_min.min(reject_x), hist.log_max().max(reject_x));
        let span_hi = hi + (hi - lo) * 0.1 + 1.0;
        let response = Plot::new("score_histogram")
            .height(200.0)
            .allow_drag(false)
            .allow_zoom(false)
            .allow_scroll(false)
            .allow_boxed_zoom(false)
            .allow_double_click_reset(false)
            .show_x(false)
            .show_y(false)
            .include_x(lo)
            .include_x(hi)
            .include_y(0.0)
            .x_grid_spacer(log_marks)
            .x_axis_formatter(|mark, _| style::format_score(10f64.powf(mark.value)))
            .x_axis_label("score (log scale)")
            .y_axis_label("parts")
            .show(ui, |plot_ui| {
                let reject_span = Span::new("", reject_x..=span_hi)
                    .fill(style::REJECT.gamma_multiply(0.12))
                    .border_width(0.0);
                plot_ui.span(reject_span);
                if let Some(rx) = review_x {
                    plot_ui.span(
                        Span::new("", rx..=reject_x)
                            .fill(style::REVIEW.gamma_multiply(0.15))
                            .border_width(0.0),
                    );
                }
                plot_ui.bar_chart(good);
                plot_ui.bar_chart(defect);
                plot_ui.bar_chart(unknown);
                plot_ui.vline(
                    VLine::new("reject threshold", reject_x)
                        .color(style::REJECT)
                        .width(2.5),
                );
                if let Some(rx) = review_x {
                    plot_ui.vline(
                        VLine::new("review threshold", rx)
                            .color(style::REVIEW)
                            .width(2.5),
                    );
                }
                plot_ui.pointer_coordinate()
            });
        let r = &response.response;
        r.widget_info(|| {
            egui::WidgetInfo::labeled(
                egui::Role::Slider,
                true,
                "Score histogram with threshold lines",
            )
        });
        let pointer = response.inner;
        if r.drag_started() || r.clicked() {
            let press_x = r.interact_pointer_pos().map(|p| p.x);
            let dist = |x: f64| {
                press_x.map_or(f32::INFINITY, |px| {
                    (response.transform.position_from_point_x(x) - px).abs()
                })
            };
            let d_reject = dist(reject_x);
            let d_review = review_x.map_or(f32::INFINITY, dist);
            self.grab = if d_review < d_reject && d_review < GRAB_PX {
                Some(Grab::Review)
            } else if d_reject < GRAB_PX || review_x.is_none() {
                Some(Grab::Reject)
            } else {
                None
            };
        }
        if let (Some(grab), Some(p)) = (self.grab, pointer)
            && (r.dragged() || r.clicked())
        {
            let value = 10f64.powf(p.x);
            let new = match grab {
                Grab::Reject => Thresholds {
                    reject: value,
                    review: t.review.map(|rv| rv.min(value)),
                },
                Grab::Review => Thresholds {
                    reject: t.reject,
                    review: Some(value.min(t.reject)),
                },
            };
            if new != t {
                commands.push(AppCommand::SetThresholds(new));
            }
        }
        if r.drag_stopped() || r.clicked() {
            self.grab = None;
        }
        if r.hovered() {
            ui.ctx().set_cursor_icon(egui::CursorIcon::ResizeHorizontal);
        }
        ui.horizontal_wrapped(|ui| {
            ui.small("Drag the red line (reject) or the orange line (review) to move them.");
        });
    }

    fn controls_ui(
        &mut self,
        ui: &mut egui::Ui,
        session: &Session,
        t: Thresholds,
        state: &mut State,
        commands: &mut Vec<AppCommand>,
    ) {
        let (lo, hi) = session
            .score_range()
            .unwrap_or((t.reject * 0.5, t.reject * 2.0));
        let (lo, hi) = (lo.min(t.reject).max(1e-6) * 0.8, hi.max(t.reject) * 1.25);
        let mut reject = t.reject;
        let changed_reject = ui
            .add(
                egui::Slider::new(&mut reject, lo..=hi)
                    .logarithmic(true)
                    .text("Reject at score")
                    .custom_formatter(|v, _| style::format_score(v)),
            )
            .on_hover_text("Parts scoring at or above this are rejected.")
            .changed();
        let mut band = state.review_band;
        let band_toggled = ui
            .checkbox(&mut band, "Review band (send borderline parts to a person)")
            .changed();
        if band_toggled {
            state.review_band = band;
        }
        let mut review = t.review.unwrap_or(t.reject * 0.7);
        let mut changed_review = false;
        if state.review_band {
            changed_review = ui
                .add(
                    egui::Slider::new(&mut review, lo..=hi)
                        .logarithmic(true)
                        .text("Review from score")
                        .custom_formatter(|v, _| style::format_score(v)),
                )
                .on_hover_text("Parts between this and the reject score go to review.")
                .changed();
        }
        if changed_reject || changed_review || (band_toggled && band && t.review.is_none()) {
            commands.push(AppCommand::SetThresholds(
                Thresholds {
                    reject,
                    review: state.review_band.then_some(review.min(reject)),
                }
                .ordered(),
            ));
        }

        ui.add_space(4.0);
        ui.horizontal_wrapped(|ui| {
            let best = session.best_f1();
            if ui
                .add_enabled(best.is_some(), egui::Button::new("Best balance (max F1)"))
                .on_hover_text("The threshold that best balances catching defects against rejecting good parts, on the labelled parts.")
                .on_disabled_hover_text("Needs labelled good and defective parts.")
                .clicked()
                && let Some(b) = best
            {
                commands.push(AppCommand::SetThresholds(Thresholds {
                    reject: b.threshold,
                    review: t.review.map(|r| r.min(b.threshold)),
                }));
            }
        });
        ui.horizontal_wrapped(|ui| {
            ui.add(
                egui::Slider::new(&mut state.target_false_reject_pct, 0.0..=20.0)
                    .text("% good parts rejected at most")
                    .step_by(0.5),
            );
            let target = session.threshold_for_false_reject_pct(state.target_false_reject_pct);
            if ui
                .add_enabled(target.is_some(), egui::Button::new("Set from held-out good parts"))
                .on_hover_text("The lowest threshold that rejects at most this share of the good images held out from training.")
                .on_disabled_hover_text("Needs a model trained with held-out good images.")
                .clicked()
                && let Some(v) = target
            {
                commands.push(AppCommand::SetThresholds(Thresholds {
                    reject: v,
                    review: t.review.map(|r| r.min(v)),
                }));
            }
        });
        ui.separator();
        let Some(cache) = &self.cache else { return };
        if let Some(c) = cache.counts {
            counts_ui(ui, &c, state.review_band);
        }
        if let Some(conf) = cache.confusion {
            ui.add_space(4.0);
            confusion_ui(ui, &conf);
        }
        if let Some(auroc) = session.eval.as_ref().and_then(|e| e.image_auroc) {
            ui.label(format!(
                "Separation of good and defective parts (AUROC): {:.1} %",
                auroc * 100.0
            ))
            .on_hover_text(
                "100 % = some threshold separates them perfectly; 50 % = no better than chance.",
            );
        }
    }
}

/// One entry of the histogram's key: a colour swatch (a square for bars, a thin bar for
/// lines) and its name.
fn key_ui(ui: &mut egui::Ui, colour: Color32, name: &str, bar: bool) {
    let size = if bar {
        egui::vec2(10.0, 10.0)
    } else {
        egui::vec2(3.0, 12.0)
    };
    let (rect, _) = ui.allocate_exact_size(size, egui::Sense::hover());
    ui.painter().rect_filled(rect, 1.0, colour);
    ui.label(RichText::new(name).color(colour));
}

/// The big numbers: where the parts go and the mistakes.
fn counts_ui(ui: &mut egui::Ui, c: &DecisionCounts, band: bool) {
    ui.horizontal_wrapped(|ui| {
        ui.label(
            RichText::new(format!("Accepted: {}", c.accepted))
                .color(style::ACCEPT)
                .strong(),
        );
        if band {
            ui.label(
                RichText::new(format!("Review: {}", c.review))
                    .color(style::REVIEW)
                    .strong(),
            );
        }
        ui.label(
            RichText::new(format!("Rejected: {}", c.rejected))
                .color(style::REJECT)
                .strong(),
        );
    });
    if c.labelled > 0 {
        ui.horizontal_wrapped(|ui| {
            ui.label(format!(
                "False rejects (good parts rejected): {}",
                c.false_rejects
            ));
            ui.label(format!("Escapes (defects accepted): {}", c.escapes));
        });
        if band {
            ui.label(format!(
                "In review: {} good, {} defective",
                c.good_in_review, c.defects_in_review
            ));
        }
    }
}

/// Actual class against the call at the reject threshold.
fn confusion_ui(ui: &mut egui::Ui, c: &Confusion) {
    ui.label(RichText::new("At the reject threshold (labelled parts)").strong());
    egui::Grid::new("confusion")
        .striped(true)
        .num_columns(3)
        .show(ui, |ui| {
            ui.label("");
            ui.label("called good");
            ui.label("called defective");
            ui.end_row();
            ui.label("good parts");
            ui.label(c.tn.to_string());
            ui.label(RichText::new(c.fp.to_string()).color(if c.fp > 0 {
                style::REJECT
            } else {
                Color32::GRAY
            }));
            ui.end_row();
            ui.label("defective parts");
            ui.label(RichText::new(c.fn_.to_string()).color(if c.fn_ > 0 {
                style::REJECT
            } else {
                Color32::GRAY
            }));
            ui.label(c.tp.to_string());
            ui.end_row();
        });
    let pct = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{:.0} %", v * 100.0));
    ui.label(format!(
        "Precision {} (of rejected parts, how many are defective) · Recall {} (of defective parts, how many are caught)",
        pct(c.precision()),
        pct(c.recall())
    ));
}

/// `log10` of a score for the histogram axis.
fn log_score(s: f64) -> f64 {
    s.max(crate::core::histogram::MIN_LOG_SCORE).log10()
}

/// Grid marks for a `log10` score axis: 1, 2 and 5 times the powers of ten when the
/// range spans enough of them, else evenly spaced round scores.
fn log_marks(input: GridInput) -> Vec<GridMark> {
    let (lo, hi) = input.bounds;
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return Vec::new();
    }
    let mut values = Vec::new();
    for k in (lo.floor() as i32 - 1)..=(hi.ceil() as i32) {
        for m in [1.0, 2.0, 5.0] {
            let v = (m * 10f64.powi(k)).log10();
            if (lo..=hi).contains(&v) {
                values.push(v);
            }
        }
    }
    if values.len() < 3 {
        // A narrow range: round steps of the score itself.
        let (s_lo, s_hi) = (10f64.powf(lo), 10f64.powf(hi));
        let raw = (s_hi - s_lo) / 5.0;
        let magnitude = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0]
            .into_iter()
            .map(|m| m * magnitude)
            .find(|s| *s >= raw)
            .unwrap_or(10.0 * magnitude);
        values = (((s_lo / step).ceil() as i64)..=((s_hi / step).floor() as i64))
            .map(|i| i as f64 * step)
            .filter(|s| *s > 0.0)
            .map(f64::log10)
            .collect();
    }
    // Label spacing is judged from the step size: use the narrowest gap.
    let gap = values
        .windows(2)
        .map(|w| w[1] - w[0])
        .fold(hi - lo, f64::min);
    values
        .into_iter()
        .map(|value| GridMark {
            value,
            step_size: gap,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks(lo: f64, hi: f64) -> Vec<String> {
        log_marks(GridInput {
            bounds: (lo.log10(), hi.log10()),
            base_step_size: 0.01,
        })
        .into_iter()
        .map(|m| style::format_score(10f64.powf(m.value)))
        .collect()
    }

    #[test]
    fn the_score_axis_gets_round_labels() {
        assert_eq!(
            marks(3.0, 300.0),
            ["5.00", "10.0", "20.0", "50.0", "100", "200"]
        );
        assert_eq!(marks(2.35, 4.4), ["2.50", "3.00", "3.50", "4.00"]);
    }
}
