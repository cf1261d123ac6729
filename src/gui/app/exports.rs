//! The exports: the CSV of every part and the heatmap images.

use super::*;

impl ExportPlan {
    pub(super) fn text(&self) -> String {
        let todo = self.total - self.ready;
        let mut text = format!(
            "Write {} heatmap images to {}.",
            self.total,
            path_text(&self.dir)
        );
        if self.ready > 0 {
            text += &format!(
                " {} are computed already and are written at once.",
                self.ready
            );
        }
        if todo > 0 {
            text += &match (self.heat_secs, self.inspect_secs) {
                (Some(s), _) => format!(
                    " The other {todo} take about {} ({} each, as measured here).",
                    style::format_duration(s * todo as f64),
                    style::format_duration(s)
                ),
                (None, Some(s)) => format!(
                    " The other {todo} take at least {} (inspecting took {} a part; a heatmap takes longer).",
                    style::format_duration(s * todo as f64),
                    style::format_duration(s)
                ),
                (None, None) => format!(" The other {todo} are computed one by one."),
            };
            text += " You can cancel at any time; what is written stays.";
        }
        text
    }
}

impl WorkstationApp {
    pub(super) fn export_csv(&mut self, path: &Path) {
        self.state.export_folder = path.parent().map(Path::to_path_buf);
        let Some(t) = self.session.thresholds else {
            self.notices
                .error("Inspect some parts before exporting their scores.");
            return;
        };
        let typical = self
            .session
            .model
            .as_ref()
            .and_then(|m| m.typical_good_score());
        let record = self
            .session
            .model
            .as_ref()
            .and_then(|m| m.trained_on.as_ref());
        let rows: Vec<PartRow<'_>> = self
            .session
            .parts
            .iter()
            .map(|p| PartRow {
                model_role: record.and_then(|r| r.role_of(&p.path)),
                path: &p.path,
                label: p.label.type_name(),
                score: Some(p.score),
                decision: t.decide(p.score).name(),
                hot_area: p.heatmap.as_ref().and_then(|h| {
                    crate::core::heatmap_image::hot_area_of(h, p.score, Some(t.reject), typical)
                }),
            })
            .collect();
        let model = self.session.model.as_ref();
        let context = CsvContext {
            thresholds: Some(t.ordered()),
            model: match (self.session.model_source.as_deref(), model) {
                (Some(source), Some(m)) => format!("{source}: {}", m.config.describe()),
                (None, Some(m)) => m.config.describe(),
                _ => String::new(),
            },
            model_id: model
                .and_then(|m| m.trained_on.as_ref())
                .map(|r| r.id.clone()),
            time: provenance::utc_text(provenance::now_unix_secs()),
        };
        let text = parts_csv(&rows, &context);
        let n = rows.len();
        match write_atomic(path, text.as_bytes()) {
            Ok(()) => self
                .notices
                .status(format!("Wrote {n} parts to {}", path_text(path))),
            Err(e) => self
                .notices
                .error(format!("cannot write the CSV ({e}): {}", path_text(path))),
        }
    }

    /// Asks before exporting: how many heatmaps, how many are computed already, and how
    /// long the rest take.
    pub(super) fn plan_heatmap_export(&mut self, dir: PathBuf) {
        let paths = self.shown_paths();
        if paths.is_empty() {
            self.notices.status("No parts shown: nothing to export.");
            return;
        }
        let ready = paths
            .iter()
            .filter(|p| self.session.part(p).is_some_and(|p| p.heatmap.is_some()))
            .count();
        self.export_plan = Some(ExportPlan {
            dir,
            total: paths.len(),
            ready,
            heat_secs: self.session.heat_secs,
            inspect_secs: self.session.inspect_secs,
        });
    }

    pub(super) fn shown_paths(&mut self) -> Vec<PathBuf> {
        self.gallery
            .shown_paths(&self.session, self.state.train_count, self.state.val_count)
    }

    pub(super) fn export_heatmaps(&mut self, dir: PathBuf) {
        self.state.export_folder = Some(dir.clone());
        if let Err(e) = std::fs::create_dir_all(&dir) {
            self.notices.error(format!(
                "cannot create the folder ({e}): {}",
                path_text(&dir)
            ));
            return;
        }
        let paths = self.shown_paths();
        if paths.is_empty() {
            self.notices.status("No parts shown: nothing to export.");
            return;
        }
        self.exporter.reset();
        self.export_names = ExportNames::default();
        self.export_dir = Some(dir.clone());
        // Heatmaps computed already are written at once; the worker computes the rest.
        let mut todo = Vec::new();
        for path in paths {
            let ready = self
                .session
                .part(&path)
                .and_then(|p| p.heatmap.as_ref().map(|h| ((**h).clone(), p.score)));
            match ready {
                Some((heatmap, score)) => self.write_heatmap(&dir, path, score, heatmap),
                None => todo.push(path),
            }
        }
        if todo.is_empty() {
            return;
        }
        self.send(
            Job::ExportHeatmaps(dir),
            Command::Score(ScoreRequest {
                paths: todo,
                heatmaps: true,
                rotations: None,
            }),
        );
    }

    /// Hands one heatmap image with its caption to the exporter's thread.
    pub(super) fn write_heatmap(
        &mut self,
        dir: &Path,
        path: PathBuf,
        score: f64,
        heatmap: crate::core::protocol::Heatmap,
    ) {
        let s = &self.session;
        let name = self.export_names.heatmap_name(&path);
        let vmax = s
            .model
            .as_ref()
            .map_or(crate::core::heat_layer::DEFAULT_HEAT_VMAX, |m| {
                m.config.heat_vmax()
            });
        let caption = crate::core::heatmap_image::heatmap_caption(
            &path,
            score,
            s.thresholds,
            s.model_source.as_deref(),
        );
        // The scale the part view draws by default (against the reject line), made on the
        // writer thread.
        let reject = s.thresholds.map(|t| t.reject);
        let typical = s.model.as_ref().and_then(|m| m.typical_good_score());
        self.exporter.write(
            path,
            move || {
                crate::core::heatmap_image::ScaledHeat::new(&heatmap, score, reject, typical, vmax)
            },
            dir.join(name),
            self.state.colormap,
            self.state.heat_opacity,
            caption,
        );
    }
}
