//! The commands the panels record, applied after the frame: the data, the training and
//! inspection jobs, the lines, the Line view, the model file.

use super::*;
impl WorkstationApp {
    /// Applies one command (panels record them; tests may call this directly instead of
    /// going through a file dialog).
    pub fn apply(&mut self, command: AppCommand) {
        self.apply_one(command);
        self.keep_folder_edits();
    }

    /// Writes the opened folder's edits when they changed, so that closing the window
    /// (or a crash) loses none of them.
    pub(super) fn keep_folder_edits(&mut self) {
        let (Some(dir), Some(edits)) = (
            self.edits_dir.as_ref(),
            self.session.data.as_ref().and_then(Workset::edits),
        ) else {
            return;
        };
        if self.edits_saved.as_ref() == Some(&edits) {
            return;
        }
        match edits.save(dir) {
            Ok(()) => self.edits_saved = Some(edits),
            Err(e) => {
                // Said once per change, not once per frame.
                self.edits_saved = Some(edits);
                self.notices
                    .error(format!("Your changes to the images are not kept: {e}"));
            }
        }
    }

    /// Applies one command: one arm per command, the longer ones in the methods below.
    pub(super) fn apply_one(&mut self, command: AppCommand) {
        match command {
            AppCommand::OpenData(path) => self.open_data(&path),
            AppCommand::AddImages { paths, role } => self.add_images(&paths, role),
            AppCommand::OfferImages(paths) => self.data_panel.offer_drop(paths),
            AppCommand::PlainImagesAreGood => self.plain_images_are_good(),
            AppCommand::ChooseRole { path, choice } => self.choose_role(&path, choice),
            AppCommand::MarkGood(path) => self.mark_good(&path),
            AppCommand::Relabel { path, label } => self.relabel(&path, label),
            AppCommand::Undo => self.undo(),
            AppCommand::Redo => self.redo(),
            AppCommand::ShowGallery(view) => self.gallery.set_view(view),
            AppCommand::ForgetPreviousCalls => {
                self.session.previous_calls = None;
                self.session.version += 1;
            }
            AppCommand::CloseData => self.close_data(),
            AppCommand::Dialog(kind) => self.show_dialog(kind),
            AppCommand::SetLineFolder { which, path } => {
                *self.line.folder_mut(which) = path.display().to_string();
            }
            AppCommand::Train => self.train(),
            AppCommand::Cancel => self.worker.cancel(),
            AppCommand::Inspect => self.inspect(),
            AppCommand::SetThresholds(t) => self.set_thresholds(t),
            AppCommand::SetReject(v) => self.set_reject(v),
            AppCommand::SetReview(v) => self.set_review(v),
            AppCommand::UseModelLine => self.use_model_line(),
            AppCommand::StartLine {
                model,
                save_first,
                input,
                output,
            } => self.start_line(model, save_first, input, output),
            AppCommand::StopLine => self.line.stop(),
            AppCommand::ProposeRecentGood(dir) => self.propose_recent_good(&dir),
            AppCommand::OpenPart(path) => self.open_part(path),
            AppCommand::ClosePart => self.part_view.close(),
            AppCommand::StepPart(step) => self.step_part(step),
            AppCommand::SaveModel(path) => self.save_model(path),
            AppCommand::LoadModel(path) => {
                self.state.model_folder = path.parent().map(Path::to_path_buf);
                self.send(Job::Load(path.clone()), Command::LoadModel { path });
            }
            AppCommand::ExportCsv(path) => self.export_csv(&path),
            AppCommand::PlanHeatmapExport(dir) => self.plan_heatmap_export(dir),
            AppCommand::ExportHeatmaps(dir) => self.export_heatmaps(dir),
            AppCommand::RestartWorker => self.restart_worker(),
            AppCommand::DismissError(i) => {
                if i < self.notices.errors.len() {
                    self.notices.errors.remove(i);
                }
            }
        }
    }

    /// Adds image files and folders with a role (undoable).
    fn add_images(&mut self, paths: &[PathBuf], role: ImageRole) {
        let (images, skipped) = dataset::list_images(paths);
        self.session.skipped.extend(skipped);
        self.session.data.get_or_insert_with(Workset::dropped);
        let what = match role {
            ImageRole::Good => "good images",
            ImageRole::Inspect => "images to inspect",
        };
        self.session
            .push_undo(format!("add {} {what}", images.len()));
        let added = self
            .session
            .data
            .as_mut()
            .map_or(0, |d| d.add(images, role));
        self.notices.status(format!("Added {added} {what}"));
        self.session.version += 1;
    }

    /// Declares the images to inspect of a plain folder good (undoable).
    fn plain_images_are_good(&mut self) {
        let edit = "\"These are good parts\"";
        self.session.push_undo(edit);
        if let Some(d) = &mut self.session.data {
            d.unlabelled_are_good();
        }
        self.session.clear_parts();
        self.notices.status(done_edit(edit));
    }

    /// Sets (or clears) the user's choice of role for one good image (undoable).
    fn choose_role(&mut self, path: &Path, choice: Option<RoleChoice>) {
        let what = match choice {
            Some(RoleChoice::Train) => "train on",
            Some(RoleChoice::HeldOut) => "hold out",
            Some(RoleChoice::Exclude) => "exclude",
            None => "let the split decide on",
        };
        let edit = format!("{what} {}", file_name(path));
        self.session.push_undo(edit.clone());
        if let Some(d) = &mut self.session.data {
            d.choose(path, choice);
        }
        self.session.version += 1;
        self.notices.status(done_edit(&edit));
    }

    /// Labels an inspected part good, to train on next time (undoable).
    fn mark_good(&mut self, path: &Path) {
        self.session
            .push_undo(format!("call {} good", file_name(path)));
        let marked = self
            .session
            .data
            .as_mut()
            .is_some_and(|d| d.mark_good(path));
        if marked {
            self.session.sync_labels();
            self.notices.status(format!(
                "{} is a good image now and will be trained on: press Retrain to use it.",
                file_name(path)
            ));
        } else {
            self.session.undo.pop();
        }
    }

    /// Changes the label of an image to inspect (undoable).
    fn relabel(&mut self, path: &Path, label: dataset::Label) {
        let edit = format!("label {} {}", file_name(path), label.type_name());
        self.session.push_undo(edit.clone());
        if let Some(d) = &mut self.session.data {
            d.relabel(path, label);
        }
        self.session.sync_labels();
        self.notices.status(done_edit(&edit));
    }

    /// Undoes the last edit of the images and says which.
    fn undo(&mut self) {
        match self.session.undo_edit() {
            Some(what) => self
                .notices
                .status(format!("Undid: {what} (Ctrl+Shift+Z or Ctrl+Y redoes it)")),
            None => self.notices.status("Nothing to undo."),
        }
    }

    /// Does the last undone edit again and says which.
    fn redo(&mut self) {
        match self.session.redo_edit() {
            Some(what) => self.notices.status(format!("Redid: {what}")),
            None => self.notices.status("Nothing to redo."),
        }
    }

    /// Forgets the data set, its edits' history and the results.
    fn close_data(&mut self) {
        self.session.data = None;
        self.session.skipped.clear();
        self.session.undo.clear();
        self.session.redo.clear();
        self.session.previous_calls = None;
        self.session.clear_parts();
        self.part_view.close();
        self.loader.clear();
    }

    /// Shows a file dialog, starting in the folder that suits it.
    fn show_dialog(&mut self, kind: DialogKind) {
        let folder = self.dialog_folder(kind);
        if let Err(e) = self.dialogs.show(kind, folder, self.waker.clone()) {
            self.notices.error(e);
        }
    }

    /// The folder a dialog starts in.
    fn dialog_folder(&self, kind: DialogKind) -> Option<PathBuf> {
        // Dialogs start where the work is: the folder used last for the same
        // thing, else the data folder, never the file chooser's "Recent".
        let data = self
            .session
            .data
            .as_ref()
            .and_then(|d| d.root.clone())
            .or_else(|| self.state.data_folder.clone());
        match kind {
            DialogKind::OpenData => self
                .state
                .data_folder
                .as_ref()
                .and_then(|p| p.parent())
                .map(Path::to_path_buf),
            DialogKind::AddImages => data,
            DialogKind::LoadModel | DialogKind::SaveModel => {
                self.state.model_folder.clone().or(data)
            }
            DialogKind::ExportCsv | DialogKind::ExportHeatmaps => {
                self.state.export_folder.clone().or(data)
            }
            // The folder typed so far, else the one above the data.
            DialogKind::LineFolder(which) => Some(PathBuf::from(self.line.folder(which).trim()))
                .filter(|f| f.is_dir())
                .or_else(|| {
                    data.as_deref()
                        .and_then(Path::parent)
                        .map(Path::to_path_buf)
                }),
        }
        .filter(|f| f.is_dir())
        .or_else(home_folder)
    }

    /// Sets the reject threshold and review band where the user put them.
    fn set_thresholds(&mut self, t: Thresholds) {
        self.session.set_thresholds(t);
        self.session.line_by_user = true;
        self.session.model_line = None;
        self.thresholds_changed();
    }

    /// Moves the reject line where the user put it, when there is one.
    fn set_reject(&mut self, v: f64) {
        if self.session.thresholds.is_some() {
            self.session.set_reject(v);
            self.session.line_by_user = true;
            self.session.model_line = None;
            self.thresholds_changed();
        }
    }

    /// Moves (or with `None` removes) the review line where the user put it.
    fn set_review(&mut self, v: Option<f64>) {
        self.session.set_review(v);
        self.session.line_by_user = true;
        self.session.model_line = None;
        self.thresholds_changed();
    }

    /// Puts the lines where the new model puts them.
    fn use_model_line(&mut self) {
        if let Some(t) = self.session.model_line.take() {
            self.session.set_thresholds(t);
            self.session.line_by_user = false;
            self.thresholds_changed();
        }
    }

    /// Starts the line, first saving the model trained here when asked to.
    fn start_line(&mut self, model: PathBuf, save_first: bool, input: PathBuf, output: PathBuf) {
        // The fields show what runs, however it was started, and are kept for
        // the next run of the workstation.
        self.line.input = path_text(&input);
        self.line.output = path_text(&output);
        self.state.line_input = Some(input.clone());
        self.state.line_output = Some(output.clone());
        if save_first {
            // A model trained here: saved into the sorted folder, then the line
            // starts with that file (Event::Saved).
            if let Err(e) = std::fs::create_dir_all(&output) {
                self.notices
                    .error(format!("Cannot create {}: {e}", path_text(&output)));
                return;
            }
            self.line_waits_for_save = Some((model.clone(), input, output));
            self.apply_one(AppCommand::SaveModel(model));
            return;
        }
        self.line.start(
            model,
            input,
            output,
            self.session.thresholds,
            self.worker_options.clone(),
            self.waker.clone(),
        );
    }

    /// Opens the part `step` places after (or before) the opened one in the gallery.
    fn step_part(&mut self, step: isize) {
        let next = self.gallery.neighbour(
            &self.session,
            self.state.train_count,
            self.state.val_count,
            self.part_view.opened(),
            step,
        );
        if let Some(path) = next
            && self.part_view.opened() != Some(path.as_path())
        {
            self.open_part(path);
        }
    }

    /// Asks the worker to save the model, with the current thresholds, to this file.
    fn save_model(&mut self, path: PathBuf) {
        self.state.model_folder = path.parent().map(Path::to_path_buf);
        if self.session.model.is_none() {
            self.notices
                .error("There is no model to save yet: train or load one first.");
            return;
        }
        let thresholds = self.session.thresholds.map(Thresholds::ordered);
        self.send(
            Job::Save(path.clone()),
            Command::SaveModel {
                path,
                threshold: thresholds.map(|t| t.reject),
                review_threshold: thresholds.and_then(|t| t.review),
            },
        );
    }

    /// Starts a fresh worker and forgets what the old one held.
    fn restart_worker(&mut self) {
        self.worker.restart();
        // A choice the old worker did not answer is asked of the new one.
        self.choose_sent = None;
        self.session.device = None;
        self.session.progress = None;
        self.session.model = None;
        self.session.model_source = None;
        self.notices
            .status("Worker restarted: train or load a model again.");
    }

    /// Adds a line's recent good parts to the good images (undoable) and shows them, so
    /// that the engineer looks through them, excludes any, and retrains.
    pub(super) fn propose_recent_good(&mut self, dir: &std::path::Path) {
        let parts = crate::line::recent_good_parts(dir);
        if parts.is_empty() {
            self.notices.status(format!(
                "No recent good parts in {}",
                crate::core::message::path_text(dir)
            ));
            return;
        }
        self.session.data.get_or_insert_with(Workset::dropped);
        self.session
            .push_undo(format!("add {} recent good parts", parts.len()));
        let added = self
            .session
            .data
            .as_mut()
            .map_or(0, |d| d.add(parts, ImageRole::Good));
        self.session.version += 1;
        self.gallery.set_view(crate::gui::gallery::View::Good);
        self.notices.status(format!(
            "Added {added} recent good parts from the line to the good images: look through them (right-click to exclude any), then Train to retrain. Nothing is trained until you do."
        ));
    }

    /// The line takes new thresholds from its next part on.
    pub(super) fn thresholds_changed(&mut self) {
        if let Some(t) = self.session.thresholds {
            self.line.set_thresholds(t);
        }
    }

    pub(super) fn send(&mut self, job: Job, command: Command) {
        // Time jobs that start at once (queued ones would count their wait).
        let idle = !self.worker.is_busy();
        match &job {
            Job::Heatmap(p) if idle => self.heat_sent = Some((p.clone(), Instant::now())),
            // Sent as training ends: the wait is short.
            Job::Inspect => self.inspect_sent = Some(Instant::now()),
            _ => {}
        }
        if let Err(e) = self.worker.send(job, command) {
            self.notices.error(format!(
                "The engine is not running ({e}). Use \"Restart worker\"."
            ));
        }
    }

    pub(super) fn open_data(&mut self, path: &Path) {
        // Absolute, so the folder shown and remembered is unambiguous.
        let path = &path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        match dataset::discover(path) {
            Ok(data) => {
                self.state.data_folder = Some(path.to_path_buf());
                // Listed once in the window: what the listing left out, then what jobs skip.
                self.session.skipped = data.skipped.clone();
                let mut workset = Workset::from_dataset(data);
                let restored = self.restore_folder_edits(&mut workset);
                self.edits_saved = workset.edits();
                self.session.data = Some(workset);
                self.session.clear_parts();
                self.part_view.close();
                self.loader.clear();
                self.notices
                    .status(format!("Opened {}{restored}", path_text(path)));
                if self.session.model.is_some() {
                    self.inspect();
                }
            }
            Err(e) => self.notices.error(e.to_string()),
        }
    }

    /// Applies the edits kept for the folder of `workset`; says what it restored.
    pub(super) fn restore_folder_edits(&mut self, workset: &mut Workset) -> String {
        let (Some(dir), Some(root)) = (self.edits_dir.as_ref(), workset.root.as_ref()) else {
            return String::new();
        };
        match FolderEdits::load(dir, root) {
            Ok(Some(edits)) => {
                let skipped = workset.restore(&edits);
                let kept = edits.images().len() - skipped;
                let mut text = format!(
                    ": your changes to {kept} of its images (labels, roles, parts called good) restored",
                );
                if skipped > 0 {
                    text += &format!(", {skipped} left out (their images are gone)");
                }
                text
            }
            Ok(None) => String::new(),
            Err(e) => {
                self.notices.error(format!(
                    "Your earlier changes to this folder's images cannot be restored: {e}"
                ));
                String::new()
            }
        }
    }

    /// Asks the worker which good images to train on when there is a choice and none was
    /// asked for these images yet (off: the seeded draw).
    pub(super) fn choose_training_images(&mut self) {
        // Called every frame: nothing to do until what it depends on changes.
        let key = (
            self.session.version,
            self.state.train_count,
            self.state.val_count,
            self.state.choose_training,
            self.worker.is_busy(),
            self.worker.dead_reason().is_some(),
        );
        if self.choose_checked == Some(key) {
            return;
        }
        self.choose_checked = Some(key);
        let Some(data) = &mut self.session.data else {
            return;
        };
        if !self.state.choose_training {
            // The roles change: the gallery and the changes banner look again.
            if data.set_preferred(None) {
                self.session.version += 1;
            }
            return;
        }
        if self.worker.is_busy()
            || self.worker.dead_reason().is_some()
            || data.has_preferred_order()
            || !data.training_is_a_choice(self.state.train_count, self.state.val_count)
        {
            return;
        }
        let good = data.own_good();
        // An undo may bring back images from before the answer: give it back to them.
        if let Some((among, order)) = &self.chosen
            && *among == good
        {
            if data.set_preferred(Some((order.clone(), among.clone()))) {
                self.session.version += 1;
            }
            return;
        }
        if self.choose_sent.as_ref() == Some(&good) {
            return;
        }
        self.choose_sent = Some(good.clone());
        self.session.progress = None;
        self.session.plan = JobPlan {
            choosing: true,
            ..JobPlan::default()
        };
        let backbone = self.state.detector.default_config().backbone();
        self.send(
            Job::Choose,
            Command::ChooseTraining {
                good,
                backbone,
                seed: 0,
            },
        );
    }

    pub(super) fn train(&mut self) {
        let Some(data) = &self.session.data else {
            self.notices.error("Open a folder of images first.");
            return;
        };
        let (train, validation) = data.split(self.state.train_count, self.state.val_count);
        if train.is_empty() {
            self.notices.error("There are no good images to train on: open a folder with good images, or mark images as good.");
            return;
        }
        let config = self
            .config_override
            .clone()
            .unwrap_or_else(|| match self.state.detector {
                DetectorKind::DifferNet => self
                    .state
                    .preset
                    .config(BackboneKind::EfficientnetLite0)
                    .into(),
                kind => kind.default_config(),
            });
        let defects = if self.state.train_on_defects && config.kind().learns_from_defects() {
            data.draw_defects(self.state.defects_per_type)
        } else {
            Vec::new()
        };
        // Only a flow has a loss to plot.
        self.session.training = config
            .loss_schedule(train.len())
            .map(|(epochs, steps)| TrainingLog::new(epochs, steps));
        self.session.progress = None;
        self.session.plan = JobPlan {
            held_out: validation.len(),
            flow: self.session.training.is_some(),
            members: match &config {
                DetectorConfig::Fusion(f) => f.members.len(),
                _ => 1,
            },
            choosing: false,
        };
        self.send(
            Job::Train,
            Command::Train(TrainRequest {
                train,
                validation,
                config,
                defects,
            }),
        );
    }

    pub(super) fn inspect(&mut self) {
        let Some(data) = &self.session.data else {
            return;
        };
        if data.inspect.is_empty() {
            self.notices
                .status("Nothing to inspect: add images to inspect.");
            return;
        }
        let samples = data.inspect.clone();
        let labelled = data.labelled_count() > 0;
        self.session.clear_parts();
        self.session.inspect_total = samples.len();
        let command = if labelled {
            Command::Evaluate(EvaluateRequest {
                samples,
                pixel_metrics: false,
                rotations: None,
            })
        } else {
            Command::Score(ScoreRequest {
                paths: samples.into_iter().map(|s| s.path).collect(),
                heatmaps: false,
                rotations: None,
            })
        };
        self.send(Job::Inspect, command);
    }

    pub(super) fn open_part(&mut self, path: PathBuf) {
        if self.part_view.opened() != Some(path.as_path()) {
            self.part_view.open(path.clone());
        }
        let wants_heat = self.session.model.is_some()
            && self
                .session
                .part(&path)
                .is_some_and(|p| p.heatmap.is_none())
            && !self.worker.has_job(|j| *j == Job::Heatmap(path.clone()));
        if wants_heat {
            self.send(
                Job::Heatmap(path.clone()),
                Command::Score(ScoreRequest {
                    paths: vec![path],
                    heatmaps: true,
                    rotations: None,
                }),
            );
        }
    }
}

/// The status line after an edit of the images: what was done, and how to undo it.
fn done_edit(what: &str) -> String {
    format!("Done: {what} (Ctrl+Z undoes it)")
}
