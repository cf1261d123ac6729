//! A grid of thumbnails: the scored parts sorted by score with filters, or, before
//! anything is scored, the images of the data set. Only the rows in view are drawn and
//! only their thumbnails are decoded.

use crate::core::dataset::Label;
use crate::core::decision::Decision;
use crate::core::message::path_text;
use crate::gui::command::AppCommand;
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
}

impl Filter {
    const ALL: [Filter; 6] = [
        Filter::All,
        Filter::Rejected,
        Filter::Review,
        Filter::Accepted,
        Filter::FalseRejects,
        Filter::Escapes,
    ];

    fn label(self) -> &'static str {
        match self {
            Filter::All => "All",
            Filter::Rejected => "Rejected",
            Filter::Review => "Review",
            Filter::Accepted => "Accepted",
            Filter::FalseRejects => "False rejects",
            Filter::Escapes => "Escapes",
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
        }
    }
}

/// Which images of an unscored data set to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataView {
    Inspect,
    Good,
}

/// One thumbnail to draw.
struct Tile {
    path: PathBuf,
    caption: String,
    label: Label,
    decision: Option<Decision>,
    score: Option<f64>,
}

/// The gallery's own state: filters and the cached, sorted list.
pub struct Gallery {
    filter: Filter,
    type_filter: Option<String>,
    data_view: DataView,
    cached: Option<(u64, Filter, Option<String>, DataView, usize)>,
    tiles: Vec<Tile>,
}

impl Default for Gallery {
    fn default() -> Self {
        Self {
            filter: Filter::All,
            type_filter: None,
            data_view: DataView::Inspect,
            cached: None,
            tiles: Vec::new(),
        }
    }
}

/// Size of a tile: the thumbnail and two lines of caption.
const TILE: Vec2 = Vec2::new(THUMB_SIDE as f32 + 12.0, THUMB_SIDE as f32 + 40.0);

impl Gallery {
    /// Sets the decision filter (for tests and shortcuts).
    pub fn set_filter(&mut self, filter: Filter) {
        self.filter = filter;
    }

    fn refresh(&mut self, session: &Session) {
        let data_len = session
            .data
            .as_ref()
            .map_or(0, |d| d.good.len() + d.inspect.len());
        let key = (
            session.version,
            self.filter,
            self.type_filter.clone(),
            self.data_view,
            data_len,
        );
        if self.cached.as_ref() == Some(&key) {
            return;
        }
        self.tiles = if session.parts.is_empty() {
            self.data_tiles(session)
        } else {
            self.part_tiles(session)
        };
        self.cached = Some(key);
    }

    fn part_tiles(&self, session: &Session) -> Vec<Tile> {
        let mut tiles: Vec<Tile> = session
            .parts
            .iter()
            .filter_map(|p| {
                // Before a threshold is set (parts still arriving) only "All" shows them.
                let decision = session.decide(p.score);
                let keep = decision.map_or(self.filter == Filter::All, |d| {
                    self.filter.keeps(d, &p.label)
                }) && self
                    .type_filter
                    .as_deref()
                    .is_none_or(|t| p.label.type_name() == t);
                keep.then(|| Tile {
                    caption: short_name(&p.path),
                    path: p.path.clone(),
                    label: p.label.clone(),
                    decision,
                    score: Some(p.score),
                })
            })
            .collect();
        tiles.sort_by(|a, b| b.score.unwrap_or(0.0).total_cmp(&a.score.unwrap_or(0.0)));
        tiles
    }

    fn data_tiles(&self, session: &Session) -> Vec<Tile> {
        let Some(data) = &session.data else {
            return Vec::new();
        };
        match self.data_view {
            DataView::Inspect => data
                .inspect
                .iter()
                .map(|s| Tile {
                    caption: short_name(&s.path),
                    path: s.path.clone(),
                    label: s.label.clone(),
                    decision: None,
                    score: None,
                })
                .collect(),
            DataView::Good => data
                .good
                .iter()
                .map(|p| Tile {
                    caption: short_name(p),
                    path: p.clone(),
                    label: Label::Good,
                    decision: None,
                    score: None,
                })
                .collect(),
        }
    }

    /// The images the gallery shows now (for exporting their heatmaps).
    pub fn shown_paths(&mut self, session: &Session) -> Vec<PathBuf> {
        self.refresh(session);
        self.tiles.iter().map(|t| t.path.clone()).collect()
    }

    /// Shows the filters and the grid.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        session: &Session,
        loader: &mut ImageLoader,
        opened: Option<&Path>,
        commands: &mut Vec<AppCommand>,
    ) {
        let scored = !session.parts.is_empty();
        ui.horizontal_wrapped(|ui| {
            if scored {
                ui.label(RichText::new("Parts, highest score first:").strong());
                for f in Filter::ALL {
                    ui.selectable_value(&mut self.filter, f, f.label());
                }
                let types = defect_types(session);
                if types.len() > 1 {
                    egui::ComboBox::from_id_salt("type_filter")
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
            } else if session.data.is_some() {
                ui.label(RichText::new("Images:").strong());
                ui.selectable_value(&mut self.data_view, DataView::Inspect, "To inspect");
                ui.selectable_value(&mut self.data_view, DataView::Good, "Good (for training)");
            }
        });
        self.refresh(session);
        if self.tiles.is_empty() {
            ui.label(if scored {
                "No part matches this filter."
            } else {
                "No images here."
            });
            return;
        }
        ui.label(RichText::new(format!("{} shown", self.tiles.len())).small());
        let spacing = ui.spacing().item_spacing;
        let columns =
            (((ui.available_width() + spacing.x) / (TILE.x + spacing.x)).floor() as usize).max(1);
        let rows = self.tiles.len().div_ceil(columns);
        egui::ScrollArea::vertical()
            .id_salt("gallery_scroll")
            .auto_shrink(false)
            .show_rows(ui, TILE.y, rows, |ui, range| {
                for row in range {
                    ui.horizontal(|ui| {
                        for tile in self.tiles.iter().skip(row * columns).take(columns) {
                            let selected = opened == Some(tile.path.as_path());
                            if tile_ui(ui, tile, loader, selected).clicked() {
                                commands.push(AppCommand::OpenPart(tile.path.clone()));
                            }
                        }
                    });
                }
            });
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
    let name = match (tile.score, tile.decision) {
        (Some(s), Some(d)) => format!(
            "Open {} (score {}, {})",
            tile.caption,
            style::format_score(s),
            style::decision_word(d)
        ),
        (Some(s), None) => format!("Open {} (score {})", tile.caption, style::format_score(s)),
        _ => format!("Open {}", tile.caption),
    };
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
    let line1 = match (tile.score, tile.decision) {
        (Some(s), Some(d)) => format!("{} · {}", style::format_score(s), style::decision_word(d)),
        (Some(s), None) => style::format_score(s),
        _ => tile.label.type_name().to_string(),
    };
    painter.text(
        egui::pos2(rect.left() + 6.0, thumb.bottom() + 3.0),
        egui::Align2::LEFT_TOP,
        line1,
        egui::FontId::proportional(12.0),
        tile.decision.map_or(text_color, style::decision_color),
    );
    painter.text(
        egui::pos2(rect.left() + 6.0, thumb.bottom() + 18.0),
        egui::Align2::LEFT_TOP,
        truncate(&tile.caption, 18),
        egui::FontId::proportional(11.0),
        visuals.weak_text_color(),
    );
    let stroke = if selected {
        Stroke::new(3.0, visuals.selection.stroke.color)
    } else {
        Stroke::new(1.5, border)
    };
    painter.rect_stroke(rect.shrink(1.0), 4.0, stroke, egui::StrokeKind::Inside);
    response.on_hover_text(format!(
        "{}\n{}",
        path_text(&tile.path),
        tile.label.type_name()
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

/// The first `n` characters, with an ellipsis when cut.
fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let tail: String = s
            .chars()
            .rev()
            .take(n - 1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("…{tail}")
    }
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
