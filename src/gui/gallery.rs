//! A grid of thumbnails: the parts (scored ones with filters and a sort order, else the
//! images to inspect) or the good images with their role in training. Only the rows in
//! view are drawn and only their thumbnails are decoded. A right click offers what can be
//! done to an image: train on it, hold it out, exclude it, call a part good.

use crate::core::dataset::Label;
use crate::core::decision::Decision;
use crate::core::message::path_text;
use crate::core::training_set::{GoodRole, RoleChoice, Roles};
use crate::gui::command::AppCommand;
pub use crate::gui::command::View;
use crate::gui::image_loader::{ImageLoader, Slot, THUMB_SIDE};
use crate::gui::session::Session;
use crate::gui::style;
use egui::{Color32, Rect, RichText, Sense, Stroke, Vec2};
use std::path::{Path, PathBuf};

/// Which scored parts to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Every part.
    All,
    /// Rejected parts.
    Rejected,
    /// Parts in the review band.
    Review,
    /// Accepted parts.
    Accepted,
    /// Good parts that were rejected.
    FalseRejects,
    /// Defective parts that were accepted.
    Escapes,
    /// Parts whose call changed with the last model.
    Moved,
}

impl Filter {
    const ALL: [Filter; 7] = [
        Filter::All,
        Filter::Rejected,
        Filter::Review,
        Filter::Accepted,
        Filter::FalseRejects,
        Filter::Escapes,
        Filter::Moved,
    ];

    fn label(self) -> &'static str {
        match self {
            Filter::All => "All",
            Filter::Rejected => "Rejected",
            Filter::Review => "Review",
            Filter::Accepted => "Accepted",
            Filter::FalseRejects => "False rejects",
            Filter::Escapes => "Escapes",
            Filter::Moved => "Changed",
        }
    }

    fn hover(self) -> &'static str {
        match self {
            Filter::All => "Every part.",
            Filter::Rejected => "Parts at or above the reject line.",
            Filter::Review => "Parts in the review band.",
            Filter::Accepted => "Parts below the lines.",
            Filter::FalseRejects => "Parts labelled good that are rejected.",
            Filter::Escapes => "Parts labelled defective that are accepted.",
            Filter::Moved => "Parts whose call changed with the new model (each at its own line).",
        }
    }

    fn keeps(self, decision: Decision, label: &Label) -> bool {
        match self {
            Filter::All => true,
            Filter::Rejected => decision == Decision::Reject,
            Filter::Review => decision == Decision::Review,
            Filter::Accepted => decision == Decision::Accept,
            Filter::FalseRejects => {
                decision == Decision::Reject && label.is_defect() == Some(false)
            }
            Filter::Escapes => decision == Decision::Accept && label.is_defect() == Some(true),
            // Decided by the caller, which knows what moved.
            Filter::Moved => true,
        }
    }
}

/// The order of the parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// Highest score first: the worst parts on top.
    ScoreDown,
    /// Lowest score first.
    ScoreUp,
    /// By file name (folder, then file).
    Name,
    /// By label, then highest score first.
    Label,
}

impl Sort {
    const ALL: [Sort; 4] = [Sort::ScoreDown, Sort::ScoreUp, Sort::Name, Sort::Label];

    fn label(self) -> &'static str {
        match self {
            Sort::ScoreDown => "score, highest first",
            Sort::ScoreUp => "score, lowest first",
            Sort::Name => "name",
            Sort::Label => "label",
        }
    }
}

/// One thumbnail to draw.
struct Tile {
    path: PathBuf,
    caption: String,
    label: Label,
    decision: Option<Decision>,
    score: Option<f64>,
    /// A good image's role in the next training, and whether the user chose it.
    role: Option<(GoodRole, Option<RoleChoice>)>,
    /// What else to say under it: "was rejected", "trained on".
    note: Option<String>,
}

/// What the cached tiles were made from.
type CacheKey = (
    u64,
    Filter,
    Option<String>,
    View,
    Sort,
    usize,
    usize,
    Option<usize>,
);

/// The gallery's own state: view, filters, order and the cached list.
pub struct Gallery {
    filter: Filter,
    type_filter: Option<String>,
    view: View,
    sort: Sort,
    cached: Option<CacheKey>,
    tiles: Vec<Tile>,
    /// Scroll so the opened part's row is in view (after a step with the keyboard).
    reveal: bool,
}

impl Default for Gallery {
    fn default() -> Self {
        Self {
            filter: Filter::All,
            type_filter: None,
            view: View::Parts,
            sort: Sort::ScoreDown,
            cached: None,
            tiles: Vec::new(),
            reveal: false,
        }
    }
}

/// Size of a tile: the thumbnail and two lines of caption.
const TILE: Vec2 = Vec2::new(THUMB_SIDE as f32 + 12.0, THUMB_SIDE as f32 + 40.0);

/// The gallery's controls above the tiles (views, filters, order, count), in points.
const GALLERY_HEADER: f32 = 84.0;

impl Gallery {
    /// Sets the decision filter (for tests and shortcuts).
    pub fn set_filter(&mut self, filter: Filter) {
        self.filter = filter;
    }

    /// Shows the parts or the good images.
    pub fn set_view(&mut self, view: View) {
        self.view = view;
    }

    /// What the gallery shows.
    pub fn view(&self) -> View {
        self.view
    }

    /// Sets the order of the parts.
    pub fn set_sort(&mut self, sort: Sort) {
        self.sort = sort;
    }

    fn refresh(&mut self, session: &Session, train_count: usize, val_count: Option<usize>) {
        let data_len = session
            .data
            .as_ref()
            .map_or(0, |d| d.good.len() + d.inspect.len());
        let key = (
            session.version,
            self.filter,
            self.type_filter.clone(),
            self.view,
            self.sort,
            data_len,
            train_count,
            val_count,
        );
        if self.cached.as_ref() == Some(&key) {
            return;
        }
        self.tiles = match self.view {
            View::Good => Self::good_tiles(session, train_count, val_count),
            View::Parts if session.parts.is_empty() => Self::inspect_tiles(session),
            View::Parts => self.part_tiles(session),
        };
        self.cached = Some(key);
    }

    fn part_tiles(&self, session: &Session) -> Vec<Tile> {
        let moves = session.moves();
        let moved: Option<std::collections::HashMap<&Path, Decision>> = moves
            .as_ref()
            .map(|m| m.iter().map(|m| (m.path.as_path(), m.before)).collect());
        let data = session.data.as_ref();
        let mut tiles: Vec<Tile> = session
            .parts
            .iter()
            .filter_map(|p| {
                // Before a threshold is set (parts still arriving) only "All" shows them.
                let decision = session.decide(p.score);
                let was = moved
                    .as_ref()
                    .and_then(|m| m.get(p.path.as_path()).copied());
                let keep = match self.filter {
                    Filter::Moved => was.is_some(),
                    f => decision.map_or(f == Filter::All, |d| f.keeps(d, &p.label)),
                } && self
                    .type_filter
                    .as_deref()
                    .is_none_or(|t| p.label.type_name() == t);
                let trained = data.is_some_and(|d| d.is_training_image(&p.path));
                let note = match (was, trained) {
                    (Some(w), _) => Some(format!("before: {}", w.name())),
                    (None, true) => Some("a training image".to_owned()),
                    _ => None,
                };
                keep.then(|| Tile {
                    caption: short_name(&p.path),
                    path: p.path.clone(),
                    label: p.label.clone(),
                    decision,
                    score: Some(p.score),
                    role: None,
                    note,
                })
            })
            .collect();
        let score = |t: &Tile| t.score.unwrap_or(f64::NEG_INFINITY);
        match self.sort {
            Sort::ScoreDown => tiles.sort_by(|a, b| score(b).total_cmp(&score(a))),
            Sort::ScoreUp => tiles.sort_by(|a, b| score(a).total_cmp(&score(b))),
            Sort::Name => tiles.sort_by(|a, b| a.path.cmp(&b.path)),
            Sort::Label => tiles.sort_by(|a, b| {
                a.label
                    .type_name()
                    .cmp(b.label.type_name())
                    .then(score(b).total_cmp(&score(a)))
            }),
        }
        tiles
    }

    fn inspect_tiles(session: &Session) -> Vec<Tile> {
        let Some(data) = &session.data else {
            return Vec::new();
        };
        data.inspect
            .iter()
            .map(|s| Tile {
                caption: short_name(&s.path),
                path: s.path.clone(),
                label: s.label.clone(),
                decision: None,
                score: None,
                role: None,
                note: None,
            })
            .collect()
    }

    fn good_tiles(session: &Session, train_count: usize, val_count: Option<usize>) -> Vec<Tile> {
        let Some(data) = &session.data else {
            return Vec::new();
        };
        let roles: Roles = data.roles(train_count, val_count);
        data.good
            .iter()
            .map(|p| {
                let role = roles.role_of(p).unwrap_or(GoodRole::Unused);
                let choice = data.choices.get(p).copied();
                Tile {
                    caption: short_name(p),
                    path: p.clone(),
                    label: Label::Good,
                    decision: None,
                    score: None,
                    role: Some((role, choice)),
                    note: None,
                }
            })
            .collect()
    }

    /// The images the gallery shows now, in its order (for exporting their heatmaps and
    /// for stepping through them).
    pub fn shown_paths(
        &mut self,
        session: &Session,
        train_count: usize,
        val_count: Option<usize>,
    ) -> Vec<PathBuf> {
        self.refresh(session, train_count, val_count);
        self.tiles.iter().map(|t| t.path.clone()).collect()
    }

    /// The image `step` places from `from` in the gallery's order (clamped to its ends),
    /// or the first one when `from` is not shown. Scrolls the gallery to it.
    pub fn neighbour(
        &mut self,
        session: &Session,
        train_count: usize,
        val_count: Option<usize>,
        from: Option<&Path>,
        step: isize,
    ) -> Option<PathBuf> {
        self.refresh(session, train_count, val_count);
        let n = self.tiles.len();
        if n == 0 {
            return None;
        }
        let at = from.and_then(|f| self.tiles.iter().position(|t| t.path == f));
        let next = match at {
            Some(i) => (i as isize + step).clamp(0, n as isize - 1) as usize,
            None => 0,
        };
        self.reveal = true;
        Some(self.tiles[next].path.clone())
    }

    /// The height the gallery needs to show `rows` whole rows of tiles under its
    /// controls.
    pub fn height_for_rows(ui: &egui::Ui, rows: usize) -> f32 {
        GALLERY_HEADER + rows as f32 * (TILE.y + ui.spacing().item_spacing.y)
    }

    /// Shows the view choice, filters, order and the grid. `train_count` and `val_count`
    /// are the training settings (the good images' roles follow from them).
    #[expect(clippy::too_many_arguments)]
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        session: &Session,
        loader: &mut ImageLoader,
        opened: Option<&Path>,
        train_count: usize,
        val_count: Option<usize>,
        commands: &mut Vec<AppCommand>,
    ) {
        let scored = !session.parts.is_empty();
        let Some(data) = &session.data else {
            if !scored {
                return;
            }
            // Parts scored without a data set cannot happen today; show them anyway.
            self.view = View::Parts;
            return self.grid_ui(
                ui,
                session,
                loader,
                opened,
                train_count,
                val_count,
                commands,
            );
        };
        ui.horizontal_wrapped(|ui| {
            let parts = if scored {
                format!("Parts ({})", session.parts.len())
            } else {
                format!("To inspect ({})", data.inspect.len())
            };
            ui.selectable_value(&mut self.view, View::Parts, parts)
                .on_hover_text("The parts to inspect, with their scores once inspected.");
            ui.selectable_value(
                &mut self.view,
                View::Good,
                format!("Good images ({})", data.good.len()),
            )
            .on_hover_text("The good images: which are trained on, held out or unused. Right-click one to choose.");
        });
        if self.view == View::Parts && scored {
            ui.horizontal_wrapped(|ui| {
                let labels = session.label_kinds();
                let moved = session.previous_calls.is_some();
                for f in Filter::ALL {
                    let shown = match f {
                        Filter::Review => session.thresholds.is_some_and(|t| t.review.is_some()),
                        Filter::FalseRejects => labels.0,
                        Filter::Escapes => labels.1,
                        Filter::Moved => moved,
                        _ => true,
                    };
                    if shown {
                        ui.selectable_value(&mut self.filter, f, f.label())
                            .on_hover_text(f.hover());
                    } else if self.filter == f {
                        self.filter = Filter::All;
                    }
                }
                let types = defect_types(session);
                if types.len() > 1 {
                    egui::ComboBox::from_id_salt("type_filter")
                        .width(100.0)
                        .selected_text(self.type_filter.as_deref().unwrap_or("all types"))
                        .show_ui(ui, |ui| {
                            ui.selectable_value(&mut self.type_filter, None, "all types");
                            for t in types {
                                ui.selectable_value(&mut self.type_filter, Some(t.clone()), t);
                            }
                        })
                        .response
                        .widget_info(|| {
                            egui::WidgetInfo::labeled(egui::Role::ComboBox, true, "Defect type")
                        });
                }
                let sort_label = ui.label("Sort:");
                egui::ComboBox::from_id_salt("sort")
                    .width(150.0)
                    .selected_text(self.sort.label())
                    .show_ui(ui, |ui| {
                        for s in Sort::ALL {
                            ui.selectable_value(&mut self.sort, s, s.label());
                        }
                    })
                    .response
                    .labelled_by(sort_label.id)
                    .widget_info(|| egui::WidgetInfo::labeled(egui::Role::ComboBox, true, "Sort"));
            });
        }
        self.grid_ui(
            ui,
            session,
            loader,
            opened,
            train_count,
            val_count,
            commands,
        );
    }

    #[expect(clippy::too_many_arguments)]
    fn grid_ui(
        &mut self,
        ui: &mut egui::Ui,
        session: &Session,
        loader: &mut ImageLoader,
        opened: Option<&Path>,
        train_count: usize,
        val_count: Option<usize>,
        commands: &mut Vec<AppCommand>,
    ) {
        self.refresh(session, train_count, val_count);
        if self.tiles.is_empty() {
            ui.label(match self.view {
                View::Parts if !session.parts.is_empty() => "No part matches this filter.",
                View::Parts => "No images to inspect: add some with \"Add images…\".",
                View::Good => "No good images yet: add some, or say which parts are good.",
            });
            return;
        }
        let hint = match self.view {
            View::Good => " · right-click an image to train on it, hold it out or exclude it",
            View::Parts if !session.parts.is_empty() => {
                " · arrow keys step through them, Esc closes · right-click a part to call it good"
            }
            View::Parts => "",
        };
        ui.label(RichText::new(format!("{} shown{hint}", self.tiles.len())).small());
        let spacing = ui.spacing().item_spacing;
        let columns =
            (((ui.available_width() + spacing.x) / (TILE.x + spacing.x)).floor() as usize).max(1);
        let rows = self.tiles.len().div_ceil(columns);
        let mut area = egui::ScrollArea::vertical()
            .id_salt("gallery_scroll")
            .auto_shrink(false);
        if std::mem::take(&mut self.reveal)
            && let Some(i) = opened.and_then(|o| self.tiles.iter().position(|t| t.path == o))
        {
            // Rows are TILE.y tall plus the spacing; put the opened one near the top.
            let row_height = TILE.y + spacing.y;
            let row = (i / columns) as f32;
            area = area.vertical_scroll_offset((row - 0.5).max(0.0) * row_height);
        }
        let workset = session.data.as_ref();
        area.show_rows(ui, TILE.y, rows, |ui, range| {
            for row in range {
                ui.horizontal(|ui| {
                    for tile in self.tiles.iter().skip(row * columns).take(columns) {
                        let selected = opened == Some(tile.path.as_path());
                        let response = tile_ui(ui, tile, loader, selected);
                        if response.clicked() {
                            commands.push(AppCommand::OpenPart(tile.path.clone()));
                        }
                        response.context_menu(|ui| {
                            tile_menu(ui, tile, workset, commands);
                        });
                    }
                });
            }
        });
    }
}

/// What can be done to one image from its right-click menu.
fn tile_menu(
    ui: &mut egui::Ui,
    tile: &Tile,
    workset: Option<&crate::gui::workset::Workset>,
    commands: &mut Vec<AppCommand>,
) {
    if let Some((_, choice)) = tile.role {
        for (c, text) in [
            (Some(RoleChoice::Train), "Train on it"),
            (
                Some(RoleChoice::HeldOut),
                "Hold it out (to check the model)",
            ),
            (Some(RoleChoice::Exclude), "Exclude it (never use it)"),
            (None, "Let the split decide"),
        ] {
            if ui.radio(choice == c, text).clicked() {
                commands.push(AppCommand::ChooseRole {
                    path: tile.path.clone(),
                    choice: c,
                });
                ui.close();
            }
        }
        return;
    }
    let is_inspected = workset.is_some_and(|w| w.inspect.iter().any(|s| s.path == tile.path));
    let trained = workset.is_some_and(|w| w.is_training_image(&tile.path));
    if ui
        .add_enabled(
            is_inspected && !trained,
            egui::Button::new("This is good: train on it"),
        )
        .clicked()
    {
        commands.push(AppCommand::MarkGood(tile.path.clone()));
        ui.close();
    }
    if ui.button("Open").clicked() {
        commands.push(AppCommand::OpenPart(tile.path.clone()));
        ui.close();
    }
}

/// Draws one tile; returns its response.
fn tile_ui(
    ui: &mut egui::Ui,
    tile: &Tile,
    loader: &mut ImageLoader,
    selected: bool,
) -> egui::Response {
    let (rect, response) = ui.allocate_exact_size(TILE, Sense::click());
    let mut name = match (tile.score, tile.decision) {
        (Some(s), Some(d)) => format!(
            "Open {} (score {}, {})",
            tile.caption,
            style::format_score(s),
            d.name()
        ),
        (Some(s), None) => format!("Open {} (score {})", tile.caption, style::format_score(s)),
        _ => format!("Open {}", tile.caption),
    };
    if let Some(note) = &tile.note {
        name += &format!(": {note}");
    }
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, name.clone()));
    if !ui.is_rect_visible(rect) {
        return response;
    }
    let painter = ui.painter_at(rect);
    let visuals = ui.visuals();
    let border = tile.decision.map_or(
        visuals.widgets.noninteractive.bg_stroke.color,
        style::decision_color,
    );
    let fill = if response.hovered() {
        visuals.widgets.hovered.bg_fill
    } else {
        visuals.extreme_bg_color
    };
    painter.rect_filled(rect, 4.0, fill);
    let thumb = Rect::from_min_size(rect.min + Vec2::splat(6.0), Vec2::splat(THUMB_SIDE as f32));
    match loader.get(&tile.path, THUMB_SIDE) {
        Slot::Ready(tex, _) => {
            let size = tex.size_vec2();
            let fit = thumb.size() / size.max_elem();
            let r = Rect::from_center_size(thumb.center(), size * fit.x.min(fit.y));
            painter.image(
                tex.id(),
                r,
                Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0)),
                Color32::WHITE,
            );
        }
        Slot::Pending => {
            painter.text(
                thumb.center(),
                egui::Align2::CENTER_CENTER,
                "…",
                egui::FontId::proportional(16.0),
                visuals.weak_text_color(),
            );
        }
        Slot::Failed(_) => {
            painter.text(
                thumb.center(),
                egui::Align2::CENTER_CENTER,
                "unreadable",
                egui::FontId::proportional(12.0),
                visuals.error_fg_color,
            );
        }
    }
    let text_color = visuals.text_color();
    let (line1, colour) = match (tile.score, tile.decision, tile.role) {
        (_, _, Some((role, choice))) => (
            match choice {
                Some(RoleChoice::Exclude) => "excluded".to_owned(),
                Some(_) => format!("{} (chosen)", role.name()),
                None => role.name().to_owned(),
            },
            role_colour(role, choice),
        ),
        (Some(s), Some(d), _) => (
            format!("{} · {}", style::format_score(s), d.name()),
            style::decision_color(d),
        ),
        (Some(s), None, _) => (style::format_score(s), text_color),
        _ => (tile.label.type_name().to_string(), text_color),
    };
    painter.text(
        egui::pos2(rect.left() + 6.0, thumb.bottom() + 3.0),
        egui::Align2::LEFT_TOP,
        line1,
        egui::FontId::proportional(12.0),
        colour,
    );
    let font = egui::FontId::proportional(11.0);
    let width = TILE.x - 10.0;
    let line2 = match &tile.note {
        Some(note) => format!("{note} · {}", tile.caption),
        None => tile.caption.clone(),
    };
    painter.text(
        egui::pos2(rect.left() + 6.0, thumb.bottom() + 18.0),
        egui::Align2::LEFT_TOP,
        fit_text(&line2, |t| text_width(ui, t, &font) <= width),
        font.clone(),
        visuals.weak_text_color(),
    );
    let border = match tile.role {
        Some((role, choice)) => role_colour(role, choice),
        None => border,
    };
    let stroke = if selected {
        Stroke::new(3.0, visuals.selection.stroke.color)
    } else {
        Stroke::new(1.5, border)
    };
    painter.rect_stroke(rect.shrink(1.0), 4.0, stroke, egui::StrokeKind::Inside);
    response.on_hover_text(format!(
        "{}\n{}{}",
        path_text(&tile.path),
        tile.label.type_name(),
        tile.note
            .as_deref()
            .map_or(String::new(), |n| format!("\n{n}"))
    ))
}

/// `folder/file` of a path, enough to tell parts apart.
fn short_name(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|n| path_text(std::path::Path::new(n)))
        .unwrap_or_default();
    match path.parent().and_then(Path::file_name) {
        Some(dir) => format!("{}/{file}", path_text(std::path::Path::new(dir))),
        None => file,
    }
}

/// The colour of a good image's role.
fn role_colour(role: GoodRole, choice: Option<RoleChoice>) -> Color32 {
    match (role, choice) {
        (_, Some(RoleChoice::Exclude)) => style::REJECT,
        (GoodRole::Train, _) => style::GOOD,
        (GoodRole::HeldOut, _) => style::REVIEW,
        (GoodRole::Unused, _) => style::UNKNOWN,
    }
}

/// Width of `text` in `font`.
fn text_width(ui: &egui::Ui, text: &str, font: &egui::FontId) -> f32 {
    ui.painter()
        .layout_no_wrap(text.to_owned(), font.clone(), Color32::WHITE)
        .size()
        .x
}

/// `s` cut from the right, with an ellipsis, to the longest start that `fits`: the
/// start of a name (`good_`, `crack_`) tells parts apart more often than its end.
fn fit_text(s: &str, fits: impl Fn(&str) -> bool) -> String {
    if fits(s) {
        return s.to_owned();
    }
    let chars: Vec<char> = s.chars().collect();
    // The longest prefix that fits, by bisection.
    let (mut lo, mut hi) = (0, chars.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        let candidate: String = chars[..mid].iter().collect::<String>() + "…";
        if fits(&candidate) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    chars[..lo].iter().collect::<String>() + "…"
}

/// The type names among scored parts (good, defect types, unknown), sorted.
fn defect_types(session: &Session) -> Vec<String> {
    let mut t: Vec<String> = session
        .parts
        .iter()
        .map(|p| p.label.type_name().to_string())
        .collect();
    t.sort();
    t.dedup();
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_cut_from_the_right() {
        let fits = |t: &str| t.chars().count() <= 10;
        assert_eq!(fit_text("crack_0001.png", fits), "crack_000…");
        assert_eq!(fit_text("good_1.png", fits), "good_1.png");
        assert_eq!(fit_text("abcdefghijkl", |_| false), "…");
    }
}
