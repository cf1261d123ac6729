//! One part opened large, with its heatmap over it: colormap, opacity (a tint on the heat
//! texture, never a re-upload), on/off, zoom and pan, its score and the decision.

use crate::core::colormap::Colormap;
use crate::core::dataset::Label;
use crate::core::heat_layer::{
    DEFAULT_HEAT_VMAX, HeatLayer, LINE_LEVEL, hot_all_over, legend_ticks, relative_to_part,
};
use crate::core::heatmap_image::{HeatScale, ScaledHeat};
use crate::core::image_io::load_mask;
use crate::core::message::path_text;
use crate::core::overlay::{outline_thickness, two_tone_outline};
use crate::core::protocol::Heatmap;
use crate::core::training_set::{GoodRole, RoleChoice};
use crate::gui::command::AppCommand;
use crate::gui::image_loader::{ImageLoader, Slot};
use crate::gui::session::{Part, Session};
use crate::gui::state::State;
use crate::gui::style;
use egui::{Color32, Rect, RichText, Sense, TextureHandle, TextureOptions, Vec2, pos2};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest zoom factor over the fitted image.
const MAX_ZOOM: f32 = 32.0;

/// What the heat texture was made from, to remake it only when that changes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HeatKey {
    /// Address of the shared heatmap (a new heatmap is a new allocation).
    heat: usize,
    colormap: Colormap,
    within_part: bool,
    /// The top of the colour scale (its bits: floats are not `Eq`).
    vmax_bits: u32,
}

/// The opened part and how it is viewed.
#[derive(Default)]
pub struct PartView {
    opened: Option<PathBuf>,
    zoom: f32,
    pan: Vec2,
    heat_texture: Option<(HeatKey, TextureHandle)>,
    /// The outline of the opened part's ground-truth mask: the mask file and its texture
    /// (`None` when it cannot be read or does not fit the image).
    mask_texture: Option<(PathBuf, Option<TextureHandle>)>,
    /// Whether the opened part's heat is shown against itself because it is hot all over.
    auto_contrast: bool,
    /// Which heatmap (its address) and colour scale top `hot_all_over` was judged for,
    /// and the answer: judged once, not every frame.
    hot_judged: Option<(usize, u32, bool)>,
    /// The opened part's heat on the scale it is drawn on, and what it was made from
    /// (heatmap address, the part's score, the reject line, the model's good-part top):
    /// made once per change, not every frame.
    scaled: Option<(ScaleKey, Arc<ScaledHeat>)>,
}

/// What a [`ScaledHeat`] was made from: the heatmap's address and the bits of the part's
/// score, the reject line, the typical good score and the model's good-part top.
type ScaleKey = (usize, u64, u64, u64, u32);

impl PartView {
    /// The part shown, if any.
    pub fn opened(&self) -> Option<&Path> {
        self.opened.as_deref()
    }

    /// Shows `path` (fitted, not zoomed).
    pub fn open(&mut self, path: PathBuf) {
        self.opened = Some(path);
        self.zoom = 1.0;
        self.pan = Vec2::ZERO;
        self.heat_texture = None;
        self.mask_texture = None;
    }

    /// Closes the view.
    pub fn close(&mut self) {
        self.opened = None;
        self.heat_texture = None;
        self.mask_texture = None;
    }

    /// Whether the opened part is shown against itself because it is hot all over (for
    /// tests).
    pub fn auto_contrast(&self) -> bool {
        self.auto_contrast
    }

    /// Whether the known defect's outline is uploaded for the opened part (for tests).
    pub fn has_mask_outline(&self) -> bool {
        self.mask_texture.as_ref().is_some_and(|(_, t)| t.is_some())
    }

    /// Uploads the outline of `mask` for an image of `size`, once per mask file.
    fn ensure_mask_texture(&mut self, ctx: &egui::Context, mask: &Path, size: [u32; 2]) {
        if self.mask_texture.as_ref().is_some_and(|(p, _)| p == mask) {
            return;
        }
        let texture = load_mask(mask)
            .ok()
            .filter(|m| m.dimensions() == (size[0], size[1]))
            .map(|m| {
                let outline = two_tone_outline(&m, outline_thickness(size[0], size[1]));
                let rgba: Vec<u8> = outline
                    .iter()
                    .flat_map(|c| c.map_or([0; 4], |[r, g, b]| [r, g, b, 255]))
                    .collect();
                let image = egui::ColorImage::from_rgba_unmultiplied(
                    [size[0] as usize, size[1] as usize],
                    &rgba,
                );
                ctx.load_texture("mask_outline", image, TextureOptions::NEAREST)
            });
        self.mask_texture = Some((mask.to_path_buf(), texture));
    }

    /// Whether a heat texture is uploaded for the opened part (for tests).
    pub fn has_heat_texture(&self) -> bool {
        self.heat_texture.is_some()
    }

    /// The opened part's heat as drawn by default (the decision scale where there is a
    /// reject line), when it has a map (for tests).
    pub fn shown_heat(&self) -> Option<&ScaledHeat> {
        self.scaled.as_ref().map(|(_, s)| s.as_ref())
    }

    /// `heat` of a part scored `score` on the scale it is drawn on, remade only when one
    /// of them, the line or the model's top changes.
    fn scaled_heat(
        &mut self,
        heat: &Arc<Heatmap>,
        score: f64,
        reject: Option<f64>,
        typical_good: Option<f64>,
        good_vmax: f32,
    ) -> Arc<ScaledHeat> {
        let key = (
            Arc::as_ptr(heat) as usize,
            score.to_bits(),
            reject.unwrap_or(f64::NAN).to_bits(),
            typical_good.unwrap_or(f64::NAN).to_bits(),
            good_vmax.to_bits(),
        );
        match &self.scaled {
            Some((k, s)) if *k == key => s.clone(),
            _ => {
                let s = Arc::new(ScaledHeat::new(
                    heat,
                    score,
                    reject,
                    typical_good,
                    good_vmax,
                ));
                self.scaled = Some((key, s.clone()));
                s
            }
        }
    }

    /// Shows the opened part. `heat_pending` says a heatmap is asked for it, and
    /// `heat_behind` names the job it waits for, if any;
    /// `max_side` is the largest texture side to upload.
    #[expect(clippy::too_many_arguments)]
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        session: &Session,
        state: &mut State,
        loader: &mut ImageLoader,
        heat_pending: bool,
        heat_behind: Option<&str>,
        max_side: u32,
        commands: &mut Vec<AppCommand>,
    ) {
        let Some(path) = self.opened.clone() else {
            return;
        };
        let part = session.part(&path);
        header_ui(ui, &path, commands);
        correct_ui(ui, session, state, &path, commands);
        score_ui(ui, session, part);
        let heat = part.and_then(|p| p.heatmap.clone());
        heat_controls_ui(ui, session, state, &path);
        self.zoom_ui(ui);
        heat_status_ui(
            ui,
            session,
            heat.as_ref(),
            heat_pending,
            heat_behind,
            &path,
            commands,
        );
        let (scaled, within_part) = self.scale_heat(session, state, part, heat.as_ref());
        if self.auto_contrast {
            ui.label(
                RichText::new(
                    "This part is far from good all over: its colours show where it is worst within it (as with \"Contrast within this part\").",
                )
                .color(style::REVIEW),
            );
        }
        match (&heat, &scaled) {
            (Some(h), Some(scaled)) => {
                self.ensure_heat_texture(ui.ctx(), h, scaled, state.colormap, within_part, max_side)
            }
            // A heatmap belongs to the model that made it: none now, none drawn.
            _ => self.heat_texture = None,
        }
        let legend_height = if heat.is_some() { 34.0 } else { 0.0 };
        let area = Vec2::new(
            ui.available_width(),
            (ui.available_height() - legend_height).max(120.0),
        );
        match loader.get(&path, max_side) {
            Slot::Ready(tex, size) => {
                let tex = tex.clone();
                let size = *size;
                if let Some(mask) = session.mask_of(&path) {
                    self.ensure_mask_texture(ui.ctx(), mask, size);
                }
                self.image_ui(ui, &tex, size, scaled.as_deref(), state, area);
            }
            Slot::Pending => {
                ui.allocate_ui(area, |ui| {
                    style::busy_indicator(ui);
                });
            }
            Slot::Failed(reason) => {
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    format!("Cannot show this image: {reason}"),
                );
            }
        }
        if let Some(scaled) = &scaled {
            legend_ui(ui, state.colormap, within_part, scaled.scale);
        }
    }

    /// The zoom slider and the button that fits the whole part again.
    fn zoom_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal_wrapped(|ui| {
            ui.add(
                egui::Slider::new(&mut self.zoom, 1.0..=MAX_ZOOM)
                    .logarithmic(true)
                    .max_decimals(1)
                    .suffix("×")
                    .text("Zoom"),
            );
            if ui
                .button("Fit")
                .on_hover_text("Show the whole part")
                .clicked()
            {
                self.zoom = 1.0;
                self.pan = Vec2::ZERO;
            }
        });
    }

    /// The part's heatmap on the scale it is drawn on, and whether it is drawn against the
    /// part itself (asked for, or chosen because the part is hot all over).
    fn scale_heat(
        &mut self,
        session: &Session,
        state: &State,
        part: Option<&Part>,
        heat: Option<&Arc<Heatmap>>,
    ) -> (Option<Arc<ScaledHeat>>, bool) {
        // The model's own colour scale: detectors' maps span different ranges.
        let vmax = session
            .model
            .as_ref()
            .map_or(DEFAULT_HEAT_VMAX, |m| m.config.heat_vmax());
        let scaled = heat.map(|h| {
            let score = part.map_or(f64::NAN, |p| p.score);
            let typical = session.model.as_ref().and_then(|m| m.typical_good_score());
            self.scaled_heat(
                h,
                score,
                session.thresholds.map(|t| t.reject),
                typical,
                vmax,
            )
        });
        if scaled.is_none() {
            self.scaled = None;
        }
        // A part hot all over would be one colour on the good-part scale: show it against
        // itself, and say so.
        let hot = heat.is_some_and(|h| {
            let key = (Arc::as_ptr(h) as usize, vmax.to_bits());
            match self.hot_judged {
                Some((p, v, hot)) if (p, v) == key => hot,
                _ => {
                    let hot = hot_all_over(h, vmax);
                    self.hot_judged = Some((key.0, key.1, hot));
                    hot
                }
            }
        });
        self.auto_contrast = !state.heat_within_part && hot;
        let within_part = state.heat_within_part || self.auto_contrast;
        (scaled, within_part)
    }

    /// Uploads the heat layer when the heatmap or the colormap changed.
    fn ensure_heat_texture(
        &mut self,
        ctx: &egui::Context,
        heat: &Arc<Heatmap>,
        scaled: &Arc<ScaledHeat>,
        colormap: Colormap,
        within_part: bool,
        max_side: u32,
    ) {
        let key = HeatKey {
            heat: Arc::as_ptr(scaled) as usize,
            colormap,
            within_part,
            vmax_bits: scaled.vmax.to_bits(),
        };
        if self.heat_texture.as_ref().is_some_and(|(k, _)| *k == key) {
            return;
        }
        let layer = if within_part {
            let (scaled, vmax) = relative_to_part(heat);
            HeatLayer::new(&scaled, colormap, vmax, max_side)
        } else {
            HeatLayer::new(&scaled.values, colormap, scaled.vmax, max_side)
        };
        if layer.width == 0 {
            self.heat_texture = None;
            return;
        }
        let image = egui::ColorImage::from_rgba_unmultiplied(
            [layer.width as usize, layer.height as usize],
            &layer.rgba,
        );
        match &mut self.heat_texture {
            Some((k, tex)) => {
                tex.set(image, TextureOptions::LINEAR);
                *k = key;
            }
            None => {
                self.heat_texture = Some((
                    key,
                    ctx.load_texture("heat_layer", image, TextureOptions::LINEAR),
                ));
            }
        }
    }

    /// The image with the heat layer, zoomed and panned.
    fn image_ui(
        &mut self,
        ui: &mut egui::Ui,
        tex: &TextureHandle,
        size: [u32; 2],
        heat: Option<&ScaledHeat>,
        state: &State,
        area: Vec2,
    ) {
        let (rect, response) = ui.allocate_exact_size(area, Sense::click_and_drag());
        response.widget_info(|| {
            egui::WidgetInfo::labeled(
                egui::Role::Image,
                true,
                "Part image: drag to pan, scroll to zoom, double-click to fit",
            )
        });
        let image_size = Vec2::new(size[0] as f32, size[1] as f32);
        let fit = (rect.width() / image_size.x).min(rect.height() / image_size.y);
        if response.dragged() {
            self.pan += response.drag_delta();
        }
        if response.double_clicked() {
            self.zoom = 1.0;
            self.pan = Vec2::ZERO;
        }
        if response.hovered() {
            let (scroll, pinch) = ui.input(|i| (i.smooth_scroll_delta.y, i.zoom_delta()));
            let factor = (scroll * 0.002).exp() * pinch;
            if factor != 1.0 {
                let new_zoom = (self.zoom * factor).clamp(1.0, MAX_ZOOM);
                if let Some(p) = response.hover_pos() {
                    // Keep the point under the pointer where it is.
                    let from_center = p - (rect.center() + self.pan);
                    self.pan += from_center - from_center * (new_zoom / self.zoom);
                }
                self.zoom = new_zoom;
            }
        }
        if self.zoom <= 1.0 {
            self.pan = Vec2::ZERO;
        }
        let shown = Rect::from_center_size(rect.center() + self.pan, image_size * fit * self.zoom);
        let painter = ui.painter_at(rect);
        let uv = Rect::from_min_max(pos2(0.0, 0.0), pos2(1.0, 1.0));
        painter.rect_filled(rect, 0.0, ui.visuals().extreme_bg_color);
        painter.image(tex.id(), shown, uv, Color32::WHITE);
        if state.show_heat
            && let Some((_, heat_tex)) = &self.heat_texture
        {
            let alpha = (state.heat_opacity.clamp(0.0, 1.0) * 255.0).round() as u8;
            painter.image(heat_tex.id(), shown, uv, Color32::from_white_alpha(alpha));
        }
        if state.show_mask
            && let Some((_, Some(mask_tex))) = &self.mask_texture
        {
            painter.image(mask_tex.id(), shown, uv, Color32::WHITE);
        }
        if let (Some(scaled), Some(p)) = (heat, response.hover_pos()) {
            let heat = &scaled.values;
            let rel = (p - shown.min) / shown.size();
            if (0.0..1.0).contains(&rel.x) && (0.0..1.0).contains(&rel.y) {
                let x = (rel.x * heat.width as f32) as usize;
                let y = (rel.y * heat.height as f32) as usize;
                if let Some(words) = scaled.words(y * heat.width as usize + x) {
                    response.on_hover_text_at_pointer(format!("heat {words}"));
                }
            }
        }
    }
}

/// The opened part's buttons (Close, Previous, Next), its file name and its path.
fn header_ui(ui: &mut egui::Ui, path: &Path, commands: &mut Vec<AppCommand>) {
    ui.horizontal(|ui| {
        if ui
            .button("Close")
            .on_hover_text("Back to the gallery (Esc)")
            .clicked()
        {
            commands.push(AppCommand::ClosePart);
        }
        if ui
            .button("Previous")
            .on_hover_text("The previous image in the gallery (left or up arrow)")
            .clicked()
        {
            commands.push(AppCommand::StepPart(-1));
        }
        if ui
            .button("Next")
            .on_hover_text("The next image in the gallery (right or down arrow)")
            .clicked()
        {
            commands.push(AppCommand::StepPart(1));
        }
        ui.add(
            egui::Label::new(
                RichText::new(
                    path.file_name()
                        .map(|n| path_text(std::path::Path::new(n)))
                        .unwrap_or_default(),
                )
                .heading(),
            )
            .truncate(),
        );
    });
    ui.add(egui::Label::new(RichText::new(path_text(path)).small().weak()).truncate());
}

/// The part's score, the decision at the lines and its known label; or that it is not
/// scored yet.
fn score_ui(ui: &mut egui::Ui, session: &Session, part: Option<&Part>) {
    if let Some(p) = part {
        ui.horizontal_wrapped(|ui| {
            ui.label(RichText::new(format!("Score {}", style::format_score(p.score))).strong());
            if let (Some(d), Some(t)) = (session.decide(p.score), session.thresholds) {
                ui.label(
                    RichText::new(format!(
                        "{} (reject line at {})",
                        d.name(),
                        style::format_score(t.reject)
                    ))
                    .color(style::decision_color(d))
                    .strong(),
                );
            }
            if p.label.is_defect().is_some() {
                ui.label(format!("known: {}", p.label.type_name()));
            }
        });
    } else {
        ui.label("Not scored yet.");
    }
}

/// How the heatmap is drawn: on or off, opacity, colours, the known defect's outline and
/// the contrast within the part.
fn heat_controls_ui(ui: &mut egui::Ui, session: &Session, state: &mut State, path: &Path) {
    ui.horizontal_wrapped(|ui| {
        ui.checkbox(&mut state.show_heat, "Show heatmap");
        ui.add_enabled(
            state.show_heat,
            // Two decimals always: the row keeps its width as the value changes.
            egui::Slider::new(&mut state.heat_opacity, 0.0..=1.0)
                .fixed_decimals(2)
                .text("Heatmap opacity"),
        );
        ui.label("Colours:");
        egui::ComboBox::from_id_salt("colormap")
            .width(90.0)
            .selected_text(state.colormap.name())
            .show_ui(ui, |ui| {
                for c in Colormap::ALL {
                    ui.selectable_value(&mut state.colormap, c, c.name());
                }
            })
            .response
            .widget_info(|| egui::WidgetInfo::labeled(egui::Role::ComboBox, true, "Colormap"));
        if session.mask_of(path).is_some() {
            ui.checkbox(&mut state.show_mask, "Outline the known defect")
                .on_hover_text(
                    "The defect as marked in the data set's ground-truth mask: a white line with a dark edge.",
                );
        }
        ui.checkbox(&mut state.heat_within_part, "Contrast within this part")
            .on_hover_text(
                "Colours from this part's typical heat to its hottest spot, instead of \
                 against the reject line (where there is one; else against good parts). \
                 Use it for parts that are far from good all over, to see where they \
                 are worst.",
            );
    });
}

/// Without a heatmap: that it is being computed (or waits for another job), that a
/// model is needed, or a button that asks for it.
fn heat_status_ui(
    ui: &mut egui::Ui,
    session: &Session,
    heat: Option<&Arc<Heatmap>>,
    heat_pending: bool,
    heat_behind: Option<&str>,
    path: &Path,
    commands: &mut Vec<AppCommand>,
) {
    match heat {
        Some(_) => {}
        None if heat_pending => {
            ui.horizontal(|ui| {
                style::busy_indicator(ui);
                match heat_behind {
                    Some(job) => ui.label(format!(
                        "The heatmap is next, once {job} is done (or cancel it)…"
                    )),
                    None => ui.label("Computing the heatmap…"),
                };
            });
        }
        None if session.model.is_none() => {
            ui.label("Train or load a model to see where a defect is.");
        }
        None => {
            if ui.button("Show where the defect is").clicked() {
                commands.push(AppCommand::OpenPart(path.to_path_buf()));
            }
        }
    }
}

/// What the user can say about the opened image: a part is good (train on it) or has
/// another label; a good image is trained on, held out or excluded.
fn correct_ui(
    ui: &mut egui::Ui,
    session: &Session,
    state: &State,
    path: &Path,
    commands: &mut Vec<AppCommand>,
) {
    let Some(data) = &session.data else { return };
    if let Some(sample) = data.inspect.iter().find(|s| s.path == path) {
        ui.horizontal_wrapped(|ui| {
            let trained = data.is_training_image(path);
            let in_model = session
                .model
                .as_ref()
                .and_then(|m| m.trained_on.as_ref())
                .is_some_and(|r| r.train_files.iter().any(|f| f == path));
            if trained && in_model {
                ui.label(RichText::new("A good image: the current model is trained on it.").color(style::GOOD));
            } else if trained {
                ui.label(RichText::new("A good image: trained on from the next training.").color(style::GOOD));
            } else if ui
                .button("This is good: train on it")
                .on_hover_text("Labels it good and adds it to the good images to train on. Retrain to use it; the window then shows which parts changed their call.")
                .clicked()
            {
                commands.push(AppCommand::MarkGood(path.to_path_buf()));
            }
            let label_id = ui.label("Label:").id;
            let mut label = sample.label.clone();
            let mut kinds: Vec<Label> = vec![Label::Good];
            for (name, _) in data.type_counts() {
                if name != Label::Good.type_name() && name != Label::Unknown.type_name() {
                    kinds.push(Label::Defect(name));
                }
            }
            if !kinds.iter().any(|k| k.type_name() == "defect") {
                kinds.push(Label::Defect("defect".into()));
            }
            kinds.push(Label::Unknown);
            egui::ComboBox::from_id_salt("relabel")
                .width(110.0)
                .selected_text(label.type_name().to_owned())
                .show_ui(ui, |ui| {
                    for k in kinds {
                        let name = k.type_name().to_owned();
                        ui.selectable_value(&mut label, k, name);
                    }
                })
                .response
                .labelled_by(label_id)
                .on_hover_text("What this part really is: the counts, curves and filters use it.");
            if label != sample.label {
                commands.push(AppCommand::Relabel {
                    path: path.to_path_buf(),
                    label,
                });
            }
        });
    } else if data.good.iter().any(|g| g == path) {
        let role = data
            .roles(state.train_count, state.val_count)
            .role_of(path)
            .unwrap_or(GoodRole::Unused);
        let choice = data.choices.get(path).copied();
        ui.label(format!(
            "A good image: {} in the next training{}.",
            if choice == Some(RoleChoice::Exclude) {
                "excluded"
            } else {
                role.name()
            },
            if choice.is_some() { " (chosen)" } else { "" }
        ));
        ui.horizontal(|ui| {
            let mut chosen = choice;
            for (c, text) in [
                (Some(RoleChoice::Train), "Train on it"),
                (Some(RoleChoice::HeldOut), "Hold out"),
                (Some(RoleChoice::Exclude), "Exclude"),
                (None, "Automatic"),
            ] {
                ui.radio_value(&mut chosen, c, text);
            }
            if chosen != choice {
                commands.push(AppCommand::ChooseRole {
                    path: path.to_path_buf(),
                    choice: chosen,
                });
            }
        });
    }
}

/// The colormap from "normal" to "far from normal", on the same log scale as the layer:
/// in "x the reject line" with the line marked, or against good parts.
fn legend_ui(ui: &mut egui::Ui, colormap: Colormap, within_part: bool, scale: HeatScale) {
    let (rect, _) = ui.allocate_exact_size(
        Vec2::new(ui.available_width().min(360.0), 30.0),
        Sense::hover(),
    );
    let bar = Rect::from_min_size(rect.min, Vec2::new(rect.width(), 12.0));
    let painter = ui.painter_at(rect);
    let steps = 48;
    for i in 0..steps {
        let t = (i as f32 + 0.5) / steps as f32;
        let [r, g, b] = colormap.map(t);
        let x0 = bar.left() + bar.width() * i as f32 / steps as f32;
        let x1 = bar.left() + bar.width() * (i + 1) as f32 / steps as f32;
        painter.rect_filled(
            Rect::from_x_y_ranges(x0..=x1, bar.y_range()),
            0.0,
            Color32::from_rgb(r, g, b),
        );
    }
    let ticks: Vec<(f32, egui::Align2, String)> = match scale {
        _ if within_part => vec![
            (
                bar.left(),
                egui::Align2::LEFT_TOP,
                "typical for this part".into(),
            ),
            (
                bar.right(),
                egui::Align2::RIGHT_TOP,
                "hottest in this part".into(),
            ),
        ],
        HeatScale::Line(_) => {
            // The reject line: a mark across the bar, named under it.
            let at = bar.left() + bar.width() * LINE_LEVEL;
            painter.line_segment(
                [pos2(at, bar.top()), pos2(at, bar.bottom())],
                egui::Stroke::new(2.0, ui.visuals().text_color()),
            );
            vec![
                (bar.left(), egui::Align2::LEFT_TOP, "typical good".into()),
                (at, egui::Align2::CENTER_TOP, "reject line".into()),
                (bar.right(), egui::Align2::RIGHT_TOP, "more".into()),
            ]
        }
        HeatScale::Good { vmax } => {
            let log_max = vmax.max(1.0 + f32::EPSILON).log10();
            legend_ticks(vmax)
                .into_iter()
                .map(|v| {
                    let align = if v <= 1.0 {
                        egui::Align2::LEFT_TOP
                    } else if v >= vmax {
                        egui::Align2::RIGHT_TOP
                    } else {
                        egui::Align2::CENTER_TOP
                    };
                    let text = if v <= 1.0 {
                        "1× normal".to_owned()
                    } else {
                        format!("{}×", style::format_score(f64::from(v)))
                    };
                    (
                        bar.left() + bar.width() * (v.log10() / log_max),
                        align,
                        text,
                    )
                })
                .collect()
        }
    };
    for (x, align, text) in ticks {
        painter.text(
            pos2(x, bar.bottom() + 2.0),
            align,
            text,
            egui::FontId::proportional(11.0),
            ui.visuals().text_color(),
        );
    }
}
