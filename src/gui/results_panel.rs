//! The score histogram with draggable threshold lines, the threshold controls and what
//! they do to the parts: accepted, review and rejected counts, mistakes, a confusion
//! matrix, precision and recall.

use crate::core::calibration::{GoodScoreFit, RateBasis, RatePrediction};
use crate::core::decision::{Decision, DecisionCounts, Thresholds};
use crate::core::histogram::LogHistogram;
use crate::core::metrics::{self, Confusion, CurvePoint};
use crate::gui::command::AppCommand;
use crate::gui::session::Session;
use crate::gui::state::State;
use crate::gui::{score_axis, style};
use egui::{Color32, RichText};
use egui_plot::{
    Bar, BarChart, GridInput, GridMark, Line, Plot, PlotPoint, PlotPoints, PlotResponse, Points,
    Span, VLine,
};

/// Bins of the histogram.
const BINS: usize = 40;
/// The room between two count labels up the histogram, in points: egui_plot draws them
/// in full from 30 points apart.
const COUNT_LABEL_GAP_PX: f64 = 30.0;
/// Pixels within which a press on the plot grabs a threshold line.
const GRAB_PX: f32 = 24.0;

/// The line a press grabs, from its distances (in pixels) to the reject line and the
/// review line: the nearer within reach; both when they lie on top of each other.
fn pick_line(d_reject: f32, d_review: Option<f32>) -> Option<Grab> {
    match d_review {
        Some(d) if d < GRAB_PX && (d - d_reject).abs() < 2.0 => Some(Grab::Either),
        Some(d) if d < GRAB_PX && d < d_reject => Some(Grab::Review),
        _ if d_reject < GRAB_PX || d_review.is_none() => Some(Grab::Reject),
        _ => None,
    }
}

/// Which threshold line is being dragged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grab {
    Reject,
    Review,
    /// Both lines under the pointer: the first move decides (left: the review line,
    /// which may only go below the reject line; right: the reject line).
    Either,
}

/// Derived values cached until the parts or thresholds change.
struct Cache {
    version: u64,
    histogram: Option<LogHistogram>,
    counts: Option<DecisionCounts>,
    confusion: Option<Confusion>,
    /// The ROC and precision-recall curves of the labelled parts.
    curve: Vec<CurvePoint>,
    /// Per defect type: caught at the reject line, and how many.
    by_type: Vec<(String, usize, usize)>,
    /// The fit of the held-out good scores, and what it predicts for the reject line.
    fit: Option<GoodScoreFit>,
    prediction: Option<RatePrediction>,
    /// Whether labelled good and defective parts were scored (the line choices' inputs).
    has_good: bool,
    has_defects: bool,
    /// How well the scores separate the labelled parts (with the labels as they are now).
    auroc: Option<f64>,
    /// Parts that are among the good images to train on (marked good here).
    training_parts: usize,
    /// Labelled good parts inspected, and how many of them the reject line rejects.
    good_seen: Option<(usize, usize)>,
    /// What the lines cost in labelled defects, when there are some.
    escapes: Option<Escapes>,
}

/// What the lines let through of the labelled defects, and the review band that would
/// catch [`REVIEW_RECALL`] of them.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Escapes {
    /// Labelled defective parts.
    defects: usize,
    /// Of them, accepted (no person sees them).
    through: usize,
    /// Of them, rejected.
    caught: usize,
    /// The review line that catches [`REVIEW_RECALL`] of them (rejected or reviewed), when
    /// it lies below the reject line, and how many of all the parts it sends to a person.
    band: Option<(f64, usize)>,
    /// Parts inspected.
    parts: usize,
}

/// The share of labelled defects that the suggested review band catches.
const REVIEW_RECALL: f64 = 0.90;

impl Escapes {
    fn new(session: &Session, t: Thresholds) -> Option<Self> {
        let (_, defects) = session.scores_by_class();
        if defects.is_empty() {
            return None;
        }
        let through = defects
            .iter()
            .filter(|s| t.decide(**s) == Decision::Accept)
            .count();
        let caught = defects.iter().filter(|s| **s >= t.reject).count();
        let band = metrics::threshold_for_recall(&defects, REVIEW_RECALL)
            .filter(|v| *v < t.reject)
            .map(|v| {
                let sent = session
                    .parts
                    .iter()
                    .filter(|p| p.score >= v && p.score < t.reject)
                    .count();
                (v, sent)
            });
        Some(Self {
            defects: defects.len(),
            through,
            caught,
            band,
            parts: session.parts.len(),
        })
    }

    /// "This line lets 355 of 392 labelled defects through (91 %) ...", and whether it
    /// catches fewer than half of them.
    fn statement(&self) -> (String, bool) {
        let share = |k: usize, n: usize| style::format_rate(k as f64 / n.max(1) as f64);
        let reviewed = self.defects - self.through - self.caught;
        let mut text = format!(
            "Defects: these lines let {} of the {} labelled defects through ({}); {} are rejected",
            self.through,
            self.defects,
            share(self.through, self.defects),
            self.caught
        );
        if reviewed > 0 {
            text += &format!(" and {reviewed} go to review");
        }
        text.push('.');
        let weak = 2 * (self.caught + reviewed) < self.defects;
        if weak {
            text +=
                " They catch fewer than half of them: the reject line is set for good parts alone.";
        }
        (text, weak)
    }
}

/// The results panel's own state.
#[derive(Default)]
pub struct ResultsPanel {
    grab: Option<Grab>,
    /// The histogram's score axis while a line is dragged: it stays put under the pointer.
    drag_axis: Option<(f64, f64)>,
    /// Where the reject and review lines were drawn last, in screen points.
    lines_x: Option<(f32, Option<f32>)>,
    cache: Option<Cache>,
    /// What is typed into the reject and review fields while they have the focus.
    reject_text: Option<String>,
    review_text: Option<String>,
    /// A short window: the histogram is drawn shorter.
    pub compact: bool,
}

impl ResultsPanel {
    /// Where the histogram drew the reject line and the review line last, in screen
    /// points (for tests that drag them).
    pub fn lines_x(&self) -> Option<(f32, Option<f32>)> {
        self.lines_x
    }

    fn refresh(&mut self, session: &Session) {
        if self
            .cache
            .as_ref()
            .is_some_and(|c| c.version == session.version)
        {
            return;
        }
        let parts: Vec<(f64, Option<bool>)> =
            session.parts.iter().map(|p| (p.score, p.truth())).collect();
        let (scores, truth) = session.labelled_scores();
        let labelled: Vec<(f64, &str)> = session
            .parts
            .iter()
            .filter(|p| p.truth().is_some())
            .map(|p| (p.score, p.label.type_name()))
            .collect();
        let (type_scores, types): (Vec<f64>, Vec<&str>) = labelled.into_iter().unzip();
        let fit = session.good_fit();
        self.cache = Some(Cache {
            prediction: fit
                .as_ref()
                .zip(session.thresholds)
                .map(|(f, t)| f.predict(t.reject)),
            fit,
            auroc: metrics::auroc(&scores, &truth),
            training_parts: session.data.as_ref().map_or(0, |d| {
                session
                    .parts
                    .iter()
                    .filter(|p| d.is_training_image(&p.path))
                    .count()
            }),
            has_good: truth.iter().any(|d| !d),
            good_seen: session.thresholds.map(|t| {
                let good: Vec<f64> = scores
                    .iter()
                    .zip(&truth)
                    .filter(|(_, d)| !**d)
                    .map(|(s, _)| *s)
                    .collect();
                (good.len(), good.iter().filter(|s| **s >= t.reject).count())
            }),
            has_defects: truth.iter().any(|d| *d),
            escapes: session.thresholds.and_then(|t| Escapes::new(session, t)),
            curve: metrics::curve(&scores, &truth),
            by_type: session.thresholds.map_or_else(Vec::new, |t| {
                metrics::caught_by_type(&type_scores, &types, t.reject)
            }),
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
        if let Some(p) = &session.partial {
            ui.label(
                RichText::new(format!(
                    "Partial results: {} of {} parts were scored before the inspection {}. Every count, rate and curve here covers only those; inspect again for the whole set.",
                    p.scored, p.total, p.why
                ))
                .color(style::REVIEW)
                .strong(),
            );
        }
        if let Some(w) = &session.model_warning {
            ui.label(
                RichText::new(format!("Warning: {w}"))
                    .color(style::REVIEW)
                    .strong(),
            );
        }
        let width = ui.available_width();
        if width >= 820.0 {
            ui.horizontal_top(|ui| {
                ui.vertical(|ui| {
                    ui.set_width(width * 0.55);
                    self.histogram_ui(ui, thresholds, state, commands);
                    self.curves_section(ui, thresholds);
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
            self.curves_section(ui, thresholds);
        }
    }

    /// The ROC and precision-recall curves and the defect types, folded by default.
    fn curves_section(&self, ui: &mut egui::Ui, t: Thresholds) {
        let Some(cache) = &self.cache else { return };
        if !cache.curve.is_empty() {
            egui::CollapsingHeader::new("Curves and defect types")
                .id_salt("curves")
                .show(ui, |ui| curves_ui(ui, &cache.curve, &cache.by_type, t));
        }
    }

    /// Draws the score histogram with its key and threshold lines, and moves a line
    /// dragged on it.
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
        histogram_key_ui(ui, hist, state.review_band);
        let reject_x = score_axis::log_score(t.reject);
        let review_x = t
            .review
            .filter(|_| state.review_band)
            .map(score_axis::log_score);
        let response = self.histogram_plot(ui, hist, reject_x, review_x);
        let r = &response.response;
        r.widget_info(|| {
            egui::WidgetInfo::labeled(
                egui::Role::Slider,
                true,
                "Score histogram with threshold lines",
            )
        });
        let on_screen = |x: f64| response.transform.position_from_point_x(x);
        self.lines_x = Some((on_screen(reject_x), review_x.map(on_screen)));
        self.drag_line(&response, t, reject_x, review_x, commands);
        if r.hovered() {
            ui.ctx().set_cursor_icon(egui::CursorIcon::ResizeHorizontal);
        }
        self.bin_hover_ui(r, response.inner);
        ui.horizontal_wrapped(|ui| {
            ui.small("Drag the red line (reject) or the orange line (review) to move them.");
        });
    }

    /// Draws the histogram's bars, bands and threshold lines; the plot answers with the
    /// pointer's position on it.
    fn histogram_plot(
        &self,
        ui: &mut egui::Ui,
        hist: &LogHistogram,
        reject_x: f64,
        review_x: Option<f64>,
    ) -> PlotResponse<Option<PlotPoint>> {
        let (good, defect, unknown) = histogram_bars(hist);
        let tallest = hist
            .bins
            .iter()
            .map(|b| b.good + b.defect + b.unknown)
            .max()
            .unwrap_or(1);
        let lines_lo = review_x.map_or(reject_x, |r| r.min(reject_x));
        let (lo, hi) = (hist.log_min.min(lines_lo), hist.log_max().max(reject_x));
        let span_hi = hi + (hi - lo) * 0.1 + 1.0;
        let frozen = self.drag_axis.filter(|_| self.grab.is_some());
        Plot::new("score_histogram")
            .height(if self.compact { 130.0 } else { 200.0 })
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
            .include_y(tallest as f64 * 1.1)
            .y_grid_spacer(count_marks)
            .y_axis_formatter(|mark, _| format!("{:.0}", mark.value))
            .y_axis_min_width(28.0)
            .grid_spacing(score_axis::GRID_SPACING)
            .x_grid_spacer(score_axis::x_marks)
            .x_axis_formatter(|mark, _| style::format_score(10f64.powf(mark.value)))
            .x_axis_label("score (log scale)")
            .y_axis_label("parts")
            .show(ui, |plot_ui| {
                if let Some((a, b)) = frozen {
                    plot_ui.set_plot_bounds_x(a..=b);
                }
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
            })
    }

    /// Grabs the threshold line a press on the histogram is near, moves it with the
    /// pointer and lets it go.
    fn drag_line(
        &mut self,
        response: &PlotResponse<Option<PlotPoint>>,
        t: Thresholds,
        reject_x: f64,
        review_x: Option<f64>,
        commands: &mut Vec<AppCommand>,
    ) {
        let r = &response.response;
        let pointer = response.inner;
        if r.drag_started() || r.clicked() {
            let press_x = r.interact_pointer_pos().map(|p| p.x);
            let dist = |x: f64| {
                press_x.map_or(f32::INFINITY, |px| {
                    (response.transform.position_from_point_x(x) - px).abs()
                })
            };
            self.grab = pick_line(dist(reject_x), review_x.map(dist));
            let range = response.transform.bounds().range_x();
            self.drag_axis = Some((*range.start(), *range.end()));
        }
        if self.grab == Some(Grab::Either) && r.dragged() {
            let dx = r.drag_delta().x;
            if dx < 0.0 {
                self.grab = Some(Grab::Review);
            } else if dx > 0.0 {
                self.grab = Some(Grab::Reject);
            }
        }
        if let (Some(grab), Some(p)) = (self.grab, pointer)
            && (r.dragged() || r.clicked())
        {
            let value = 10f64.powf(p.x);
            match grab {
                Grab::Reject if value != t.reject => commands.push(AppCommand::SetReject(value)),
                Grab::Review if Some(value.min(t.reject)) != t.review => {
                    commands.push(AppCommand::SetReview(Some(value.min(t.reject))));
                }
                _ => {}
            }
        }
        if r.drag_stopped() || r.clicked() {
            self.grab = None;
            self.drag_axis = None;
        }
    }

    /// Hovering a bar says how many parts of each kind it holds (not while a line is
    /// dragged: the line's own numbers are what matter then).
    fn bin_hover_ui(&self, r: &egui::Response, pointer: Option<PlotPoint>) {
        let Some(hist) = self.cache.as_ref().and_then(|c| c.histogram.as_ref()) else {
            return;
        };
        if self.grab.is_none()
            && r.hovered()
            && let Some(x) = pointer.map(|p| p.x)
            && let Some(text) = bin_at(hist, x).map(|i| {
                let half = hist.log_width / 2.0;
                bin_text(
                    &hist.bins[i],
                    kinds_present(hist),
                    10f64.powf(hist.center(i) - half),
                    10f64.powf(hist.center(i) + half),
                )
            })
        {
            r.clone().on_hover_ui_at_pointer(|ui| {
                ui.label(text);
            });
        }
    }

    /// Draws the threshold controls, the ways to place the reject line, and what the
    /// lines do to the parts.
    fn controls_ui(
        &mut self,
        ui: &mut egui::Ui,
        session: &Session,
        t: Thresholds,
        state: &mut State,
        commands: &mut Vec<AppCommand>,
    ) {
        let range = slider_range(session, t);
        self.reject_slider_ui(ui, t, range, commands);
        self.review_band_ui(ui, session, t, state, range, commands);

        prediction_ui(
            ui,
            self.cache.as_ref().and_then(|c| c.prediction),
            self.cache.as_ref().and_then(|c| c.good_seen),
        );
        if let Some(e) = self.cache.as_ref().and_then(|c| c.escapes) {
            escapes_ui(ui, &e, state, commands);
        }
        ui.add_space(4.0);
        ui.label(RichText::new("Put the reject line where it").strong());
        self.by_good_parts_ui(ui, session, state, commands);
        self.by_defects_ui(ui, session, state, commands);
        self.by_cost_ui(ui, session, state, commands);
        ui.separator();
        self.figures_ui(ui, session, state.review_band);
    }

    /// The reject line's slider and its typed score.
    fn reject_slider_ui(
        &mut self,
        ui: &mut egui::Ui,
        t: Thresholds,
        (lo, hi): (f64, f64),
        commands: &mut Vec<AppCommand>,
    ) {
        let mut reject = t.reject;
        ui.horizontal(|ui| {
            let slider = ui
                .add(
                    egui::Slider::new(&mut reject, lo..=hi)
                        .logarithmic(true)
                        .show_value(false)
                        .text("Reject at score"),
                )
                .on_hover_text("Parts scoring at or above this are rejected.");
            if slider.changed() {
                commands.push(AppCommand::SetReject(reject));
            }
            if let Some(v) = typed_score(ui, &mut self.reject_text, t.reject, slider.id) {
                commands.push(AppCommand::SetReject(v));
            }
        });
    }

    /// The review band's checkbox, the share of parts it sends to a person, and its
    /// line's slider and typed score.
    fn review_band_ui(
        &mut self,
        ui: &mut egui::Ui,
        session: &Session,
        t: Thresholds,
        state: &mut State,
        (lo, hi): (f64, f64),
        commands: &mut Vec<AppCommand>,
    ) {
        let mut band = state.review_band;
        if ui
            .checkbox(&mut band, "Review band (send borderline parts to a person)")
            .changed()
        {
            state.review_band = band;
            let wanted = session
                .review_wanted
                .filter(|w| *w < t.reject)
                .unwrap_or_else(|| session.default_review(t.reject));
            commands.push(AppCommand::SetReview(band.then_some(wanted)));
        }
        if state.review_band
            && let Some(c) = self.cache.as_ref().and_then(|c| c.counts.as_ref())
        {
            let total = c.accepted + c.review + c.rejected;
            if total > 0 {
                ui.label(
                    RichText::new(format!(
                        "The band sends {} of {total} parts ({:.1} %) to a person.",
                        c.review,
                        100.0 * c.review as f64 / total as f64
                    ))
                    .small(),
                );
            }
        }
        if state.review_band {
            let mut review = t.review.unwrap_or_else(|| session.default_review(t.reject));
            ui.horizontal(|ui| {
                let slider = ui
                    .add(
                        egui::Slider::new(&mut review, lo..=hi)
                            .logarithmic(true)
                            .show_value(false)
                            .text("Review from score"),
                    )
                    .on_hover_text("Parts between this and the reject score go to review.");
                if slider.changed() {
                    commands.push(AppCommand::SetReview(Some(review.min(t.reject))));
                }
                let shown = t.review.unwrap_or(review);
                if let Some(v) = typed_score(ui, &mut self.review_text, shown, slider.id) {
                    commands.push(AppCommand::SetReview(Some(v)));
                }
            });
            if session.review_wanted.is_some_and(|w| w > t.reject) {
                ui.label(
                    RichText::new(format!(
                        "The review line waits at {}, above the reject line; it comes back when the reject line goes above it.",
                        style::format_score(session.review_wanted.unwrap_or_default())
                    ))
                    .small()
                    .weak(),
                );
            }
        }
    }

    /// Puts the reject line by the good parts held out from training: the target share
    /// of good parts rejected, its button, and a note when the target cannot be counted.
    fn by_good_parts_ui(
        &self,
        ui: &mut egui::Ui,
        session: &Session,
        state: &mut State,
        commands: &mut Vec<AppCommand>,
    ) {
        ui.horizontal_wrapped(|ui| {
            let label = ui.label("rejects at most").id;
            ui.add(
                egui::DragValue::new(&mut state.target_false_reject_pct)
                    .range(0.1..=50.0)
                    .speed(0.1)
                    .max_decimals(1)
                    .suffix(" %"),
            )
            .labelled_by(label)
            .on_hover_text("Of good parts, predicted from the good images held out from training.");
            ui.label("of good parts");
            let has_fit = self.cache.as_ref().is_some_and(|c| c.fit.is_some());
            if ui
                .add_enabled(has_fit, egui::Button::new("Set by good parts").small())
                .on_hover_text("The lowest line that rejects at most this share of good parts, with 75 % confidence, by a fit to the scores of the good images held out from training.")
                .on_disabled_hover_text("Needs a model trained with at least 4 held-out good images.")
                .clicked()
                && let Some(v) = session.threshold_for_false_reject_pct(state.target_false_reject_pct)
            {
                commands.push(AppCommand::SetReject(v));
            }
        });
        if let Some(fit) = self.cache.as_ref().and_then(|c| c.fit.as_ref()) {
            let countable = fit.smallest_countable_rate();
            if state.target_false_reject_pct / 100.0 < countable {
                ui.label(
                    RichText::new(format!(
                        "Note: a target of {} % rests on the fitted curve alone: counting {} held-out good images can only check rates down to about {:.0} %. To check it by counting, hold out {} good images.",
                        style::format_pct(state.target_false_reject_pct),
                        fit.count(),
                        countable * 100.0,
                        GoodScoreFit::needed_to_confirm(state.target_false_reject_pct / 100.0)
                    ))
                    .color(style::REVIEW),
                );
            }
        }
    }

    /// Puts the reject line by the labelled defects: the target share caught and its
    /// button.
    fn by_defects_ui(
        &self,
        ui: &mut egui::Ui,
        session: &Session,
        state: &mut State,
        commands: &mut Vec<AppCommand>,
    ) {
        ui.horizontal_wrapped(|ui| {
            let label = ui.label("catches").id;
            ui.add(
                egui::DragValue::new(&mut state.target_recall_pct)
                    .range(1.0..=100.0)
                    .speed(0.5)
                    .max_decimals(1)
                    .suffix(" %"),
            )
            .labelled_by(label);
            ui.label("of the labelled defects");
            let has_defects = self.cache.as_ref().is_some_and(|c| c.has_defects);
            if ui
                .add_enabled(has_defects, egui::Button::new("Set by defects").small())
                .on_hover_text("The highest line that catches at least this share of the defective parts labelled here.")
                .on_disabled_hover_text("Needs labelled defective parts.")
                .clicked()
                && let Some(v) = session.threshold_for_recall_pct(state.target_recall_pct)
            {
                commands.push(AppCommand::SetReject(v));
            }
        });
    }

    /// Puts the reject line by weighing a false reject against an escape: the cost of an
    /// escape, the share of defective parts, and its button.
    fn by_cost_ui(
        &self,
        ui: &mut egui::Ui,
        session: &Session,
        state: &mut State,
        commands: &mut Vec<AppCommand>,
    ) {
        ui.horizontal_wrapped(|ui| {
            let label = ui.label("costs least, when an escape costs").id;
            ui.add(
                egui::DragValue::new(&mut state.escape_cost)
                    .range(0.1..=10_000.0)
                    .speed(0.5)
                    .max_decimals(1),
            )
            .labelled_by(label);
            let share_label = ui.label("false rejects and").id;
            ui.add(
                egui::DragValue::new(&mut state.defect_share_pct)
                    .range(0.01..=50.0)
                    .speed(0.05)
                    .max_decimals(2)
                    .suffix(" %"),
            )
            .labelled_by(share_label);
            ui.label("of parts are defective");
            // Weighing tries every score as the line: done on the click, not every frame.
            let both = self.cache.as_ref().is_some_and(|c| c.has_good && c.has_defects);
            if ui
                .add_enabled(both, egui::Button::new("Set by cost").small())
                .on_hover_text("The line with the lowest expected cost per part, from the rates of false rejects and escapes on the labelled parts: it does not depend on how many of each were labelled.")
                .on_disabled_hover_text("Needs labelled good and defective parts.")
                .clicked()
                && let Some(c) = session.threshold_for_cost(state.escape_cost, state.defect_share_pct)
            {
                commands.push(AppCommand::SetReject(c.threshold));
            }
        });
    }

    /// What the lines do to the parts: the decision counts, the confusion matrix, a
    /// warning about parts trained on, and the separation (AUROC).
    fn figures_ui(&self, ui: &mut egui::Ui, session: &Session, review_band: bool) {
        let Some(cache) = &self.cache else { return };
        if let Some(c) = cache.counts {
            counts_ui(ui, &c, review_band);
        }
        if let Some(conf) = cache.confusion {
            ui.add_space(4.0);
            confusion_ui(
                ui,
                &conf,
                session.partial.as_ref().map(|p| (p.scored, p.total)),
            );
        }

        if cache.training_parts > 0 {
            ui.label(
                RichText::new(if cache.training_parts == 1 {
                    "1 of these parts is now a good image to train on: after retraining it scores lower than a new part would, and the figures here are flattered by it.".to_owned()
                } else {
                    format!(
                        "{} of these parts are now good images to train on: after retraining they score lower than new parts would, and the figures here are flattered by them.",
                        cache.training_parts
                    )
                })
                .color(style::REVIEW),
            );
        }
        if let Some(auroc) = cache.auroc {
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

/// The sliders' range: the parts' scores and the reject line, with a margin.
fn slider_range(session: &Session, t: Thresholds) -> (f64, f64) {
    let (lo, hi) = session
        .score_range()
        .unwrap_or((t.reject * 0.5, t.reject * 2.0));
    (lo.min(t.reject).max(1e-6) * 0.8, hi.max(t.reject) * 1.25)
}

/// A score typed into a field next to a slider, applied only on Enter: typing "10" never
/// applies "1" on the way. Shows `value` while the field is not being edited.
fn typed_score(
    ui: &mut egui::Ui,
    text: &mut Option<String>,
    value: f64,
    labelled_by: egui::Id,
) -> Option<f64> {
    let mut buffer = text.clone().unwrap_or_else(|| style::format_score(value));
    let response = ui
        .add(egui::TextEdit::singleline(&mut buffer).desired_width(64.0))
        .labelled_by(labelled_by)
        .on_hover_text("Type a score and press Enter; Esc leaves it as it was.");
    let mut typed = None;
    if response.has_focus() {
        *text = Some(buffer);
    } else {
        if response.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
            // Anything but a positive number leaves the line where it was.
            typed = buffer
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v > 0.0);
        }
        *text = None;
    }
    typed
}

/// One statement of what the line does to good parts: the prediction from the held-out
/// good images with its range and what it rests on, and, where good parts were
/// inspected with labels, how many of them the line rejects, said to disagree when the
/// count falls outside the predicted range.
fn rate_statement(p: &RatePrediction, seen: Option<(usize, usize)>) -> String {
    let mut text = match p.basis {
        RateBasis::Fit => format!(
            "Good parts rejected at this line: about {} (90 % sure: {} to {}), by a fit to {} held-out good images, {} of them at or above the line. The range is what both the fitted curve ({} to {}) and that count allow.",
            style::format_rate(p.rate),
            style::format_rate(p.low),
            style::format_rate(p.high),
            p.held_out,
            p.held_out_rejected,
            style::format_rate(p.fit_low),
            style::format_rate(p.fit_high)
        ),
        // The fit was too pessimistic: said the other way round.
        RateBasis::Count if p.held_out_rejected == 0 => format!(
            "Good parts rejected at this line: at most {} (90 % sure), counted: none of {} held-out good images is at or above the line, fewer than the fitted curve expects (it said {}), so the count is used.",
            style::format_rate(p.high),
            p.held_out,
            style::format_rate(p.fit_rate)
        ),
        RateBasis::Count => format!(
            "Good parts rejected at this line: about {} (90 % sure: {} to {}), counted: {} of {} held-out good images are at or above the line, more than the fitted curve allows (it said {}), so the count is used.",
            style::format_rate(p.rate),
            style::format_rate(p.low),
            style::format_rate(p.high),
            p.held_out_rejected,
            p.held_out,
            style::format_rate(p.fit_rate)
        ),
    };
    if let Some((good, rejected)) = seen.filter(|(good, _)| *good > 0) {
        let share = rejected as f64 / good as f64;
        text += &format!(
            " Of the {good} good parts inspected here, {rejected} ({}).",
            style::format_rate(share)
        );
        // Disagreement only where the count itself is sure of it: its own 90 % range
        // (Wilson's) misses the predicted one.
        let (lo, hi) = wilson_90(rejected, good);
        if hi < p.low || lo > p.high {
            text += " They disagree with the prediction: the held-out images may not look like these parts; the count of inspected parts is the firmer figure.";
        }
    }
    text
}

/// Wilson's 90 % interval of a share `k` of `n`.
fn wilson_90(k: usize, n: usize) -> (f64, f64) {
    let (k, n, z) = (k as f64, n as f64, 1.645_f64);
    let p = k / n;
    let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / (1.0 + z * z / n);
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

fn prediction_ui(
    ui: &mut egui::Ui,
    prediction: Option<RatePrediction>,
    seen: Option<(usize, usize)>,
) {
    let Some(p) = prediction else {
        ui.label(
            RichText::new(
                "The share of good parts this line rejects is not known: the model has too few held-out good images (at least 4).",
            )
            .small()
            .weak(),
        );
        return;
    };
    ui.add(egui::Label::new(rate_statement(&p, seen)).wrap())
        .on_hover_text(
            "Predicted by a fit to the scores of the good images held out from training (a log-normal curve, unusual ones set aside), checked against how many of them are at or above the line: the range spans what the curve and that count (its exact 90 % range) allow, and where the count is outside what the curve allows, the count and its range are shown instead. The fewer the images, the wider the range.",
        );
}

/// What the lines let through of the labelled defects; where they catch fewer than half,
/// a plain warning and one click to the review band that catches 90 % of them.
fn escapes_ui(ui: &mut egui::Ui, e: &Escapes, state: &mut State, commands: &mut Vec<AppCommand>) {
    let (text, weak) = e.statement();
    let colour = if weak {
        style::REVIEW
    } else {
        ui.visuals().text_color()
    };
    ui.add(egui::Label::new(RichText::new(text).color(colour)).wrap());
    if let Some((line, sent)) = e.band.filter(|_| weak || e.through > 0) {
        let label = format!(
            "Review from {}: catches {:.0} % of the defects, sends {} of the parts to a person",
            style::format_score(line),
            REVIEW_RECALL * 100.0,
            style::format_rate(sent as f64 / e.parts.max(1) as f64)
        );
        if ui
            .button(label)
            .on_hover_text(format!(
                "Sends the parts scored from {} up to the reject line to a person: {} of the {} parts inspected ({}).",
                style::format_score(line),
                sent,
                e.parts,
                style::format_rate(sent as f64 / e.parts.max(1) as f64)
            ))
            .clicked()
        {
            state.review_band = true;
            commands.push(AppCommand::SetReview(Some(line)));
        }
    }
}

/// The histogram's title and its key, outside the plot so that it never hides a bar.
fn histogram_key_ui(ui: &mut egui::Ui, hist: &LogHistogram, review_band: bool) {
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
            (review_band, style::REVIEW, "review line", false),
        ] {
            if present {
                key_ui(ui, colour, name, bar);
            }
        }
    });
}

/// The histogram's good, defective and unlabelled bars, stacked in that order.
fn histogram_bars(hist: &LogHistogram) -> (BarChart, BarChart, BarChart) {
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
    (good, defect, unknown)
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
fn confusion_ui(ui: &mut egui::Ui, c: &Confusion, partial: Option<(usize, usize)>) {
    let heading = match partial {
        None => "At the reject threshold (labelled parts)".to_owned(),
        Some((scored, total)) => {
            format!("At the reject threshold (labelled parts among the {scored} of {total} scored)")
        }
    };
    ui.label(RichText::new(heading).strong());
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

/// The ROC and precision-recall curves with the current lines marked, and how many of
/// each defect type the reject line catches.
fn curves_ui(
    ui: &mut egui::Ui,
    curve: &[CurvePoint],
    by_type: &[(String, usize, usize)],
    t: Thresholds,
) {
    // The curve's point of a line: the lowest threshold at or above it.
    let at = |line: f64| {
        curve
            .iter()
            .rev()
            .find(|p| p.threshold >= line)
            .copied()
            .unwrap_or(curve[0])
    };
    let marks: Vec<(CurvePoint, Color32, &str)> =
        std::iter::once((at(t.reject), style::REJECT, "reject line"))
            .chain(t.review.map(|r| (at(r), style::REVIEW, "review line")))
            .collect();
    let width = ((ui.available_width() - 16.0) / 2.0).max(160.0);
    let plot = |id: &'static str, x: &'static str, y: &'static str| {
        Plot::new(id)
            .width(width)
            .height(170.0)
            .allow_drag(false)
            .allow_zoom(false)
            .allow_scroll(false)
            .allow_boxed_zoom(false)
            .include_x(0.0)
            .include_x(100.0)
            .include_y(0.0)
            .include_y(100.0)
            .x_axis_label(x)
            .y_axis_label(y)
    };
    ui.horizontal_top(|ui| {
        plot("roc_curve", "good parts rejected %", "defects caught %")
            .show(ui, |p| {
                let pts: PlotPoints = curve
                    .iter()
                    .map(|c| [100.0 * c.false_reject_rate, 100.0 * c.recall])
                    .collect();
                p.line(Line::new("ROC", pts).color(style::DEFECT));
                for (m, colour, name) in &marks {
                    p.points(
                        Points::new(*name, vec![[100.0 * m.false_reject_rate, 100.0 * m.recall]])
                            .radius(5.0)
                            .color(*colour),
                    );
                }
            })
            .response
            .widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, "ROC curve"));
        plot("pr_curve", "defects caught % (recall)", "precision %")
            .show(ui, |p| {
                let pts: PlotPoints = curve
                    .iter()
                    .skip(1)
                    .map(|c| [100.0 * c.recall, 100.0 * c.precision])
                    .collect();
                p.line(Line::new("precision-recall", pts).color(style::DEFECT));
                for (m, colour, name) in &marks {
                    p.points(
                        Points::new(*name, vec![[100.0 * m.recall, 100.0 * m.precision]])
                            .radius(5.0)
                            .color(*colour),
                    );
                }
            })
            .response
            .widget_info(|| {
                egui::WidgetInfo::labeled(egui::Role::Image, true, "Precision-recall curve")
            });
    });
    ui.small("Dots: where the current lines are. Precision depends on the share of defects among the labelled parts; the ROC curve does not.");
    if !by_type.is_empty() {
        ui.label(RichText::new("Caught at the reject line, by defect type").strong());
        egui::Grid::new("caught_by_type")
            .striped(true)
            .show(ui, |ui| {
                for (name, caught, total) in by_type {
                    ui.label(name);
                    ui.label(format!("{caught} of {total}"));
                    ui.label(style::format_rate(*caught as f64 / (*total).max(1) as f64));
                    ui.end_row();
                }
            });
    }
}

/// The bin of the histogram under `x` (a `log10` score), if any.
fn bin_at(hist: &crate::core::histogram::LogHistogram, x: f64) -> Option<usize> {
    let i = ((x - hist.log_min) / hist.log_width).floor();
    (i >= 0.0 && (i as usize) < hist.bins.len()).then_some(i as usize)
}

/// Which kinds of part the histogram holds: good, defective, unlabelled.
fn kinds_present(hist: &crate::core::histogram::LogHistogram) -> [bool; 3] {
    let any = |pick: fn(&crate::core::histogram::BinCounts) -> usize| {
        hist.bins.iter().any(|b| pick(b) > 0)
    };
    [any(|b| b.good), any(|b| b.defect), any(|b| b.unknown)]
}

/// What a hovered histogram bar says: its range of scores and how many parts of each kind
/// the histogram holds fall in it (`kinds`: good, defective, unlabelled present at all).
fn bin_text(bin: &crate::core::histogram::BinCounts, kinds: [bool; 3], lo: f64, hi: f64) -> String {
    let counts: Vec<String> = [
        (bin.good, "good"),
        (bin.defect, "defective"),
        (bin.unknown, "unlabelled"),
    ]
    .into_iter()
    .zip(kinds)
    .filter(|(_, present)| *present)
    .map(|((n, what), _)| format!("{n} {what}"))
    .collect();
    format!(
        "scores {} to {}\n{}",
        style::format_score(lo),
        style::format_score(hi),
        counts.join(", ")
    )
}

/// Grid marks for a count axis: whole numbers in steps of 1, 2 or 5 times a power of ten,
/// at most about five of them, and far enough apart for their labels to be drawn in full
/// on a short plot.
fn count_marks(input: GridInput) -> Vec<GridMark> {
    let (lo, hi) = input.bounds;
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return Vec::new();
    }
    let room = score_axis::value_for_points(&input, COUNT_LABEL_GAP_PX);
    let raw = ((hi - lo) / 5.0).max(1.0).max(room);
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    (((lo.max(0.0) / step).ceil() as i64)..=((hi / step).floor() as i64))
        .map(|i| GridMark {
            value: i as f64 * step,
            step_size: step,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hovered_bar_names_the_count_of_each_kind() {
        let bin = crate::core::histogram::BinCounts {
            good: 12,
            defect: 1,
            unknown: 0,
        };
        assert_eq!(
            bin_text(&bin, [true, true, true], 50.0, 52.5),
            "scores 50.0 to 52.5\n12 good, 1 defective, 0 unlabelled"
        );
        assert_eq!(
            bin_text(&bin, [true, true, false], 100.0, 110.0),
            "scores 100 to 110\n12 good, 1 defective"
        );
    }

    #[test]
    fn the_count_axis_gets_a_few_whole_numbers() {
        let marks = |lo: f64, hi: f64| -> Vec<f64> {
            count_marks(GridInput {
                bounds: (lo, hi),
                base_step_size: 0.01,
            })
            .into_iter()
            .map(|m| m.value)
            .collect()
        };
        assert_eq!(marks(-1.0, 110.0), [0.0, 50.0, 100.0]);
        assert_eq!(marks(0.0, 3.3), [0.0, 1.0, 2.0, 3.0]);
        assert_eq!(marks(0.0, 12.0), [0.0, 5.0, 10.0]);
        // A short plot: 4.4 parts over 95 points leave room for every other count.
        let short = count_marks(GridInput {
            bounds: (0.0, 4.4),
            // The value of the plot's smallest grid spacing, 8 points.
            base_step_size: 8.0 * 4.4 / 95.0,
        });
        let values: Vec<f64> = short.iter().map(|m| m.value).collect();
        assert_eq!(values, [0.0, 2.0, 4.0]);
    }

    /// A prediction from 16 held-out images, as many of them above the line as the rate
    /// says.
    fn prediction(rate: f64, low: f64, high: f64) -> RatePrediction {
        let rejected = (rate * 16.0).round() as usize;
        RatePrediction::reconciled(rate, low, high, rejected, 16)
    }

    #[test]
    fn the_lines_say_what_they_let_through_and_warn_below_half() {
        let tiles = Escapes {
            defects: 392,
            through: 355,
            caught: 37,
            band: Some((2.62, 160)),
            parts: 583,
        };
        let (text, weak) = tiles.statement();
        assert!(weak);
        assert!(
            text.contains("let 355 of the 392 labelled defects through"),
            "{text}"
        );
        assert!(text.contains("fewer than half"), "{text}");
        let band = Escapes {
            through: 100,
            caught: 200,
            ..tiles
        };
        let (text, weak) = band.statement();
        assert!(!weak, "{text}");
        assert!(text.contains("and 92 go to review"), "{text}");
    }

    #[test]
    fn one_statement_says_what_it_rests_on_and_when_the_parts_disagree() {
        let t = rate_statement(&prediction(0.008, 0.002, 0.019), None);
        assert!(
            t.contains("about 0.8 %") && t.contains("16 held-out good images"),
            "{t}"
        );
        assert!(!t.contains("inspected"), "{t}");
        let agree = rate_statement(&prediction(0.008, 0.002, 0.019), Some((100, 1)));
        assert!(
            agree.contains("Of the 100 good parts inspected here, 1 (1 %)"),
            "{agree}"
        );
        assert!(!agree.contains("disagree"), "{agree}");
        let disagree = rate_statement(&prediction(0.43, 0.3, 0.55), Some((191, 0)));
        assert!(disagree.contains("They disagree"), "{disagree}");
        // 0 of 6 is what a rate of 3 % usually gives: no disagreement.
        let few = rate_statement(&prediction(0.03, 0.0005, 0.18), Some((6, 0)));
        assert!(!few.contains("disagree"), "{few}");
        // 4 of 64 held out above a line the fit puts at 0.8 %: the count is shown.
        let tail = RatePrediction::reconciled(0.008, 0.002, 0.019, 4, 64);
        let t = rate_statement(&tail, None);
        assert!(
            t.contains("about 6.2 %")
                && t.contains("counted: 4 of 64")
                && t.contains("it said 0.8 %"),
            "{t}"
        );
    }
}
