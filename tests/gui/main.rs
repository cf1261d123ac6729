//! The workstation driven like a user would, with egui_kittest: the real app, the real
//! worker and backbone, tiny generated images in MVTec AD layout and a training
//! configuration that takes about a second. `hardening` covers broken files, cancelling,
//! libtorch running out of memory and a dying worker.

#[path = "../common/mod.rs"]
mod common;
mod decisions;
mod engineer;
mod hardening;
mod layout;
mod line;
mod new_user;

use common::{tiny_config, tiny_cs_flow, tiny_patchcore, write_set};

use differnet::core::config::{BackboneKind, DetectorConfig, DetectorKind, DeviceChoice};
use differnet::engine::worker::WorkerOptions;
use differnet::gui::command::AppCommand;
use differnet::gui::{AppOptions, WorkstationApp};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a test waits for the worker before failing: a guard against a hang, not a
/// speed check. Generous, because the GUI tests run side by side on a busy 2-core machine
/// (a tiny CS-Flow took over 300 s to train and inspect while a benchmark ran beside the
/// suite); every wait also fails at once on an error message.
const TIMEOUT: Duration = Duration::from_secs(900);

/// An MVTec AD folder: 16 good training images, 5 good and 5 scratched test images.
fn mvtec_set(root: &Path) {
    write_set(&root.join("train/good"), "good", 0..16, false);
    write_set(&root.join("test/good"), "good", 200..205, false);
    write_set(&root.join("test/scratch"), "bad", 300..305, true);
}

fn options(data: Option<&Path>) -> AppOptions {
    let _ = common::efficientnet_weights();
    AppOptions {
        data: data.map(Path::to_path_buf),
        worker: WorkerOptions {
            device: DeviceChoice::Cpu,
            ..Default::default()
        },
        config: Some(tiny_config().into()),
        state: Some(Default::default()),
        edits_dir: None,
    }
}

type App = Option<WorkstationApp>;

/// The app in a kittest harness. The app is built in the first frame, on the harness's
/// context, like eframe builds it on the window's.
fn harness(options: AppOptions) -> Harness<'static, App> {
    Harness::builder()
        .with_size(egui::vec2(1500.0, 950.0))
        .with_max_steps(20)
        .build_ui_state(
            move |ui, app: &mut App| {
                let app =
                    app.get_or_insert_with(|| WorkstationApp::new(ui.ctx(), None, options.clone()));
                app.logic(&ui.ctx().clone());
                app.ui(ui);
            },
            None,
        )
}

/// A window opened on a small MVTec-layout set, `train_count` good images to train on and 4
/// held out, at `size`; the folder lives as long as the returned guard.
fn opened_with(size: egui::Vec2, train_count: usize) -> (tempfile::TempDir, Harness<'static, App>) {
    let dir = tempfile::tempdir().unwrap();
    mvtec_set(dir.path());
    let mut opts = options(Some(dir.path()));
    opts.state = Some(differnet::gui::state::State {
        train_count,
        val_count: Some(4),
        ..Default::default()
    });
    let mut h = harness(opts);
    h.set_size(size);
    h.run_ok();
    (dir, h)
}

/// Applies `command` as a click would, and lets the window draw it.
fn apply(h: &mut Harness<'_, App>, command: AppCommand) {
    h.state_mut().as_mut().unwrap().apply(command);
    h.run_steps(2);
}

fn app<'a>(h: &'a Harness<'_, App>) -> &'a WorkstationApp {
    h.state()
        .as_ref()
        .expect("the app is built in the first frame")
}

/// Steps the harness until `done` holds, failing on an error message or the timeout.
fn step_until(h: &mut Harness<'_, App>, what: &str, done: impl Fn(&WorkstationApp) -> bool) {
    let started = Instant::now();
    loop {
        h.step();
        let a = app(h);
        assert!(
            a.errors().is_empty(),
            "error while waiting for {what}: {:?}",
            a.errors()
        );
        if done(a) {
            return;
        }
        assert!(started.elapsed() < TIMEOUT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Trains from the Train button and waits until the test images are scored.
fn train_and_inspect(h: &mut Harness<'_, App>) {
    train_and_inspect_expecting(h, true);
}

/// [`train_and_inspect`]; `loss`: whether the detector reports a training loss (a flow
/// does, a PatchCore bank does not).
fn train_and_inspect_expecting(h: &mut Harness<'_, App>, loss: bool) {
    // A window that opened more good images than it trains on chooses which first.
    step_until(h, "the window to be idle", |a| !a.is_busy());
    h.get_by_label("Train").click();
    step_until(h, "training to start", |a| a.is_busy());
    let mut saw_loss = false;
    let started = Instant::now();
    loop {
        h.step();
        let a = app(h);
        assert!(a.errors().is_empty(), "training failed: {:?}", a.errors());
        saw_loss |= a
            .session()
            .training
            .as_ref()
            .is_some_and(|t| !t.steps.is_empty());
        if a.session().thresholds.is_some() && !a.is_busy() {
            break;
        }
        assert!(started.elapsed() < TIMEOUT, "timed out waiting for results");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(saw_loss, loss, "loss plot points");
    h.step();
}

/// Pixels of the opened part's image area whose colour is far from grey (the textures are
/// brownish grey, the jet colormap is not).
fn colourful_pixels(h: &mut Harness<'_, App>) -> usize {
    let area = h.get_by_label_contains("Part image").rect();
    let image = h.render().expect("render with wgpu (lavapipe on a CPU)");
    let scale = image.width() as f32 / 1500.0;
    let mut n = 0;
    for y in (area.top() * scale) as u32..(area.bottom() * scale) as u32 {
        for x in (area.left() * scale) as u32..(area.right() * scale) as u32 {
            let [r, g, b, _] = image.get_pixel(x, y).0;
            if r.max(g).max(b) - r.min(g).min(b) > 100 {
                n += 1;
            }
        }
    }
    n
}

/// Shows the rejected parts, opens a scratched one and waits for its heatmap; returns its
/// path.
fn open_rejected_scratch(h: &mut Harness<'_, App>) -> PathBuf {
    h.get_by_label("Rejected").click();
    h.run_steps(2);
    h.get_all_by_label_contains("Open scratch/")
        .next()
        .expect("a rejected scratched part")
        .click();
    h.run_steps(2);
    let opened = app(h)
        .part_view()
        .opened()
        .expect("a part is open")
        .to_path_buf();
    step_until(h, "the heatmap", |a| {
        a.part_view().has_heat_texture()
            && a.session()
                .part(&opened)
                .is_some_and(|p| p.heatmap.is_some())
    });
    opened
}

/// The fields of one CSV line, unquoted.
fn csv_fields(line: &str) -> Vec<String> {
    let (mut fields, mut field, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// Sets the reject line to catch every labelled defect, with its "Set" button.
fn catch_all_defects(h: &mut Harness<'_, App>) {
    h.get_by_label_contains("of the labelled defects");
    h.state_mut()
        .as_mut()
        .unwrap()
        .state_mut()
        .target_recall_pct = 100.0;
    h.run_steps(1);
    h.get_by_label("Set by defects").click();
    h.run_steps(3);
}

/// The text of the label that contains `prefix`.
fn label_starting(h: &Harness<'_, App>, prefix: &str) -> String {
    // A label's text is its accessible value.
    h.get_by_label_contains(prefix).value().unwrap_or_default()
}

#[test]
fn train_inspect_set_the_threshold_and_open_a_flagged_part() {
    let dir = tempfile::tempdir().unwrap();
    mvtec_set(dir.path());
    let mut h = harness(options(Some(dir.path())));
    h.run_ok();
    h.check_accessibility();

    // The data set is recognised.
    let a = app(&h);
    let data = a.session().data.as_ref().expect("data set opened");
    assert_eq!((data.good.len(), data.inspect.len()), (16, 10));
    h.get_by_label_contains("MVTec AD layout");
    h.get_by_role_and_label(egui::Role::Slider, "good images to train on");

    train_and_inspect(&mut h);
    h.check_accessibility();
    let a = app(&h);
    assert_eq!(a.session().parts.len(), 10, "every test image is scored");
    let log = a.session().training.as_ref().unwrap();
    assert_eq!(log.epochs_done.len(), 30, "one mean loss per epoch");
    assert!(a.session().model.as_ref().unwrap().validation.is_some());
    h.get_by_label("Score histogram with threshold lines");

    // Moving the threshold slider to the bottom rejects every part, live.
    let before = label_starting(&h, "Rejected: ");
    let lowest = a
        .session()
        .parts
        .iter()
        .map(|p| p.score)
        .fold(f64::INFINITY, f64::min);
    h.get_by_role_and_label(egui::Role::Slider, "Reject at score")
        .set_value_accesskit(lowest * 0.9);
    h.run_steps(3);
    let after = label_starting(&h, "Rejected: ");
    assert_eq!(after, "Rejected: 10");
    assert_ne!(before, after, "the counts follow the threshold");
    assert_eq!(label_starting(&h, "Accepted: "), "Accepted: 0");
    let counts = app(&h).session().counts().unwrap();
    assert_eq!(counts.false_rejects, 5);
    assert_eq!(counts.escapes, 0);

    // "Catch 100 % of the labelled defects" moves it back to the lowest defect score.
    catch_all_defects(&mut h);
    let a = app(&h);
    let lowest_defect = a
        .session()
        .parts
        .iter()
        .filter(|p| p.label.is_defect() == Some(true))
        .map(|p| p.score)
        .fold(f64::INFINITY, f64::min);
    assert_eq!(a.session().thresholds.unwrap().reject, lowest_defect);
    let counts = a.session().counts().unwrap();
    assert_eq!(counts.escapes, 0);
    assert!(
        counts.false_rejects <= 1,
        "tiny scratched textures are told apart: {counts:?}"
    );

    // Dragging on the histogram moves the reject line to the pointer.
    let plot = h
        .get_by_label("Score histogram with threshold lines")
        .rect();
    let before = app(&h).session().thresholds.unwrap().reject;
    let start = plot.center();
    let end = egui::pos2(plot.left() + plot.width() * 0.1, plot.center().y);
    h.hover_at(start);
    h.step();
    h.drag_at(start);
    h.step();
    for i in 1..=4 {
        h.hover_at(start + (end - start) * (i as f32 / 4.0));
        h.step();
    }
    h.drop_at(end);
    h.run_steps(3);
    let dragged = app(&h).session().thresholds.unwrap().reject;
    assert!(
        dragged < before,
        "dragging left lowers the threshold: {before} -> {dragged}"
    );

    // A flagged part opens large and gets its heatmap.
    catch_all_defects(&mut h);
    let opened = open_rejected_scratch(&mut h);
    // The heat layer is drawn over the part, with the opacity as a tint.
    h.get_by_role_and_label(egui::Role::Slider, "Heatmap opacity")
        .set_value_accesskit(1.0);
    h.run_steps(2);
    assert_eq!(app(&h).state().heat_opacity, 1.0);
    let with_heat = colourful_pixels(&mut h);
    h.get_by_label("Show heatmap").click();
    h.run_steps(2);
    assert!(!app(&h).state().show_heat);
    let without_heat = colourful_pixels(&mut h);
    assert!(
        with_heat > 20 * without_heat.max(10),
        "the heatmap shows: {with_heat} colourful pixels with it, {without_heat} without"
    );
    h.get_by_label_contains("Part image");
    h.check_accessibility();
    let heat = app(&h)
        .session()
        .part(&opened)
        .unwrap()
        .heatmap
        .clone()
        .unwrap();
    assert_eq!((heat.width, heat.height), (96, 96));
}

#[test]
fn patchcore_trains_inspects_maps_and_reloads_from_the_window() {
    let dir = tempfile::tempdir().unwrap();
    mvtec_set(&dir.path().join("data"));
    let mut opts = options(Some(&dir.path().join("data")));
    opts.config = None;
    let mut h = harness(opts);
    h.run_ok();
    // The detector is chosen in the Train panel, with a line on what each is for.
    assert_eq!(app(&h).state().detector, DetectorKind::Fusion);
    h.get_by_label_contains(DetectorKind::Fusion.summary());
    h.get_by_role_and_label(egui::Role::ComboBox, "Detector")
        .click();
    h.run_steps(2);
    h.get_by_label("DifferNet (the paper)").click();
    h.run_steps(2);
    assert_eq!(app(&h).state().detector, DetectorKind::DifferNet);
    h.get_by_label_contains(DetectorKind::DifferNet.summary());
    h.get_by_role_and_label(egui::Role::ComboBox, "Detector")
        .click();
    h.run_steps(2);
    h.get_by_label("PatchCore (fast)").click();
    h.run_steps(2);
    assert_eq!(app(&h).state().detector, DetectorKind::PatchCore);
    h.get_by_role_and_label(egui::Role::ComboBox, "Detector")
        .click();
    h.run_steps(2);
    h.get_by_label("CS-Flow (flow on feature maps)").click();
    h.run_steps(2);
    assert_eq!(app(&h).state().detector, DetectorKind::CsFlow);
    h.get_by_label_contains(DetectorKind::CsFlow.summary());
    h.check_accessibility();

    // The small PatchCore of the tests (the default one takes longer on a CI machine).
    trains_inspects_maps_and_reloads(dir.path(), tiny_patchcore().into(), false);
}

#[test]
fn patchcore_learns_from_confirmed_defects_chosen_in_the_window() {
    let dir = tempfile::tempdir().unwrap();
    mvtec_set(&dir.path().join("data"));
    let mut opts = options(Some(&dir.path().join("data")));
    opts.config = Some(tiny_patchcore().into());
    opts.state = Some(differnet::gui::state::State {
        defects_per_type: 2,
        ..Default::default()
    });
    let mut h = harness(opts);
    h.run_ok();
    // The choice says how many confirmed defects there are and how many it takes.
    h.get_by_label("Train on confirmed defects too").click();
    h.run_steps(2);
    assert!(app(&h).state().train_on_defects);
    h.get_by_label_contains("2 of the 5 confirmed defective parts");
    train_and_inspect_expecting(&mut h, false);
    let a = app(&h);
    let record = a
        .session()
        .model
        .as_ref()
        .unwrap()
        .trained_on
        .clone()
        .unwrap();
    assert_eq!(record.defect_files.len(), 2);
    assert!(
        record
            .defect_files
            .iter()
            .all(|p| p.to_string_lossy().contains("scratch"))
    );
    h.get_by_label_contains("and 2 confirmed defective parts");
    // The parts it learnt from are scored and shown, but count in no accuracy figure.
    let learnt: Vec<&PathBuf> = a
        .session()
        .parts
        .iter()
        .filter(|p| p.learnt)
        .map(|p| &p.path)
        .collect();
    assert_eq!(learnt.len(), 2);
    let (scores, truth) = a.session().labelled_scores();
    assert_eq!((scores.len(), truth.iter().filter(|d| **d).count()), (8, 3));

    // A detector that learns from good parts only cannot take them.
    h.get_by_role_and_label(egui::Role::ComboBox, "Detector")
        .click();
    h.run_steps(2);
    h.get_by_label("Fusion of two PatchCores (recommended)")
        .click();
    h.run_steps(2);
    h.get_by_label_contains(DetectorKind::Fusion.summary());
    assert!(DetectorKind::Fusion.learns_from_defects());
    assert!(!DetectorKind::CsFlow.learns_from_defects());
}

#[test]
fn cs_flow_trains_inspects_maps_and_reloads_from_the_window() {
    let dir = tempfile::tempdir().unwrap();
    mvtec_set(&dir.path().join("data"));
    trains_inspects_maps_and_reloads(dir.path(), tiny_cs_flow().into(), true);
}

/// Trains `config` from the window on the data under `dir`, opens a flagged part with its
/// map, saves the model and loads it in a new window, which scores the same. `loss`:
/// whether the detector reports a training loss.
fn trains_inspects_maps_and_reloads(dir: &Path, config: DetectorConfig, loss: bool) {
    let kind = config.kind();
    let describe = config.describe();
    let mut h = harness(AppOptions {
        config: Some(config),
        ..options(Some(&dir.join("data")))
    });
    h.run_ok();
    train_and_inspect_expecting(&mut h, loss);
    let a = app(&h);
    assert_eq!(a.session().parts.len(), 10, "every test image is scored");
    let model = a.session().model.as_ref().unwrap();
    assert_eq!(model.config.kind(), kind);
    assert!(model.validation.is_some());
    h.get_by_label_contains(&describe);

    // A flagged part opens with its map.
    open_rejected_scratch(&mut h);

    // Saved and loaded in a new window, it scores the same.
    let file = dir.join(format!("{kind}.differnet"));
    h.state_mut()
        .as_mut()
        .unwrap()
        .apply(AppCommand::SaveModel(file.clone()));
    step_until(&mut h, "the model file", |a| !a.is_busy());
    let scores = |a: &WorkstationApp| {
        let mut s: Vec<(PathBuf, f64)> = a
            .session()
            .parts
            .iter()
            .map(|p| (p.path.clone(), p.score))
            .collect();
        s.sort_by(|x, y| x.0.cmp(&y.0));
        s
    };
    let before = scores(app(&h));
    let mut h2 = harness(options(Some(&dir.join("data"))));
    h2.run_ok();
    // Loading a model inspects the open data again.
    h2.state_mut()
        .as_mut()
        .unwrap()
        .apply(AppCommand::LoadModel(file));
    step_until(&mut h2, "the loaded model's results", |a| {
        a.session().thresholds.is_some() && !a.is_busy() && a.session().parts.len() == 10
    });
    let after = scores(app(&h2));
    assert_eq!(before.len(), after.len());
    for ((pa, a), (pb, b)) in before.iter().zip(&after) {
        assert_eq!(pa, pb);
        assert!(common::same_score(*a, *b), "{}: {a} vs {b}", pa.display());
    }
}

#[test]
fn the_model_and_the_scores_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    mvtec_set(&dir.path().join("data"));
    let mut h = harness(options(Some(&dir.path().join("data"))));
    h.run_ok();
    train_and_inspect(&mut h);

    // CSV of every part.
    let csv = dir.path().join("out/parts.csv");
    std::fs::create_dir_all(csv.parent().unwrap()).unwrap();
    h.state_mut()
        .as_mut()
        .unwrap()
        .apply(AppCommand::ExportCsv(csv.clone()));
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], differnet::core::report::PARTS_CSV_HEADER);
    assert_eq!(lines.len(), 11);
    let reject = app(&h).session().thresholds.unwrap().reject;
    let id = app(&h)
        .session()
        .model
        .as_ref()
        .unwrap()
        .trained_on
        .as_ref()
        .unwrap()
        .id
        .clone();
    for line in &lines[1..] {
        let fields = csv_fields(line);
        let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
        assert_eq!(fields.len(), 11, "{line}");
        assert!(
            ["good", "scratch"].contains(&fields[1]),
            "the label: {line}"
        );
        let score: f64 = fields[2].parse().unwrap();
        let decision = if score >= reject { "reject" } else { "accept" };
        assert_eq!(fields[3], decision, "{line}");
        assert_eq!(fields[4].parse::<f64>().unwrap(), reject);
        assert_eq!(fields[5], "", "no review band");
        assert!(fields[6].starts_with("trained here: "), "{line}");
        assert_eq!(fields[7], id);
        assert!(fields[8].ends_with('Z') && fields[8].len() == 20, "{line}");
        // The hot area where the part has a map: none of these was opened.
        assert!(
            fields[9].is_empty() || fields[9].parse::<usize>().is_ok(),
            "{line}"
        );
        // No part to inspect is a training image of this model.
        assert_eq!(fields[10], "", "{line}");
    }

    // The model with thresholds chosen by the user: a reject line and a review band.
    let chosen = app(&h).session().threshold_for_recall_pct(100.0).unwrap();
    let review = chosen - 0.37 * chosen.abs().max(0.1);
    h.state_mut()
        .as_mut()
        .unwrap()
        .apply(AppCommand::SetThresholds(
            differnet::core::decision::Thresholds {
                reject: chosen,
                review: Some(review),
            },
        ));
    let model = dir.path().join("out/model.differnet");
    h.state_mut()
        .as_mut()
        .unwrap()
        .apply(AppCommand::SaveModel(model.clone()));
    step_until(&mut h, "the model file", |a| !a.is_busy());
    assert!(model.is_file());

    // Heatmap images of the parts shown.
    let heat_dir = dir.path().join("out/heatmaps");
    h.state_mut()
        .as_mut()
        .unwrap()
        .apply(AppCommand::ExportHeatmaps(heat_dir.clone()));
    step_until(&mut h, "the heatmap images", |_| {
        std::fs::read_dir(&heat_dir)
            .map(|d| {
                d.filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.file_name().to_string_lossy().ends_with("_heatmap.png"))
                })
                .count()
            })
            .unwrap_or(0)
            == 10
    });
    // Each carries its score, decision and the colour legend in a strip under the part.
    let exported = image::open(heat_dir.join("scratch_bad_300_heatmap.png"))
        .unwrap()
        .to_rgb8();
    assert_eq!(exported.width(), 96);
    assert!(exported.height() > 96 + 30, "{:?}", exported.dimensions());
    let ink = (96..exported.height())
        .flat_map(|y| (0..96).map(move |x| (x, y)))
        .filter(|(x, y)| exported.get_pixel(*x, *y).0.iter().all(|c| *c > 200))
        .count();
    assert!(ink > 50, "text in the caption strip: {ink} light pixels");

    // A new window loads the model, inspects the data again and keeps the threshold.
    let mut h2 = harness(options(Some(&dir.path().join("data"))));
    h2.run_ok();
    h2.state_mut()
        .as_mut()
        .unwrap()
        .apply(AppCommand::LoadModel(model));
    step_until(&mut h2, "the loaded model's results", |a| {
        a.session().thresholds.is_some() && !a.is_busy()
    });
    assert_eq!(app(&h2).session().thresholds.unwrap().reject, chosen);
    assert_eq!(app(&h2).session().thresholds.unwrap().review, Some(review));
    assert!(
        app(&h2).state().review_band,
        "the saved band is shown, not only used"
    );
    assert_eq!(app(&h2).session().parts.len(), 10);
}

#[test]
fn errors_are_shown_and_can_be_dismissed() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(options(None));
    h.run_ok();
    h.get_by_label("Open the demo data");

    // A folder that does not exist.
    h.state_mut()
        .as_mut()
        .unwrap()
        .apply(AppCommand::OpenData(dir.path().join("missing")));
    h.run_steps(2);
    h.get_by_label_contains("data set folder not found");
    h.get_by_label("Dismiss").click();
    h.run_steps(2);
    assert!(app(&h).errors().is_empty());
    assert!(
        h.query_by_label_contains("data set folder not found")
            .is_none()
    );

    // A file that is not a model: the worker's failure is shown.
    let bogus = dir.path().join("bogus.differnet");
    std::fs::write(&bogus, b"not a model").unwrap();
    h.state_mut()
        .as_mut()
        .unwrap()
        .apply(AppCommand::LoadModel(bogus));
    let started = Instant::now();
    while app(&h).errors().is_empty() {
        assert!(
            started.elapsed() < TIMEOUT,
            "no error for a bogus model file"
        );
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    h.step();
    assert!(
        app(&h).errors()[0].contains("loading a model failed"),
        "{:?}",
        app(&h).errors()
    );
    h.get_by_label("Dismiss");
}

#[test]
fn a_worker_without_weights_fails_training_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    mvtec_set(dir.path());
    let mut opts = options(Some(dir.path()));
    opts.worker.weights.insert(
        BackboneKind::EfficientnetLite0,
        dir.path().join("no-weights.safetensors"),
    );
    let mut h = harness(opts);
    h.run_ok();
    h.get_by_label("Train").click();
    let started = Instant::now();
    while app(&h).errors().is_empty() {
        assert!(started.elapsed() < TIMEOUT, "no error for missing weights");
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    h.step();
    assert!(
        app(&h).errors()[0].starts_with("training failed"),
        "{:?}",
        app(&h).errors()
    );
    assert!(app(&h).session().model.is_none());
    h.get_by_label_contains("training failed");
}

/// A file dropped on the window.
#[derive(Debug)]
struct Dropped(PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &Path {
        &self.0
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

#[test]
fn plain_folders_and_dropped_images_get_a_role() {
    let dir = tempfile::tempdir().unwrap();
    write_set(&dir.path().join("good"), "good", 0..6, false);
    let new = write_set(&dir.path().join("new"), "new", 50..53, true);
    std::fs::write(dir.path().join("new/notes.txt"), b"x").unwrap();
    let mut h = harness(options(Some(&dir.path().join("good"))));
    h.run_ok();
    h.get_by_label_contains("What are these 6 images?");
    h.get_by_label("These are good parts (train on them)")
        .click();
    h.run_ok();
    let data = app(&h).session().data.as_ref().unwrap();
    assert_eq!((data.good.len(), data.inspect.len()), (6, 0));
    // It can be undone, and done again.
    h.get_by_label("Undo \"These are good parts\"").click();
    h.run_ok();
    let data = app(&h).session().data.as_ref().unwrap();
    assert_eq!((data.good.len(), data.inspect.len()), (0, 6));
    h.get_by_label("These are good parts (train on them)")
        .click();
    h.run_ok();
    let data = app(&h).session().data.as_ref().unwrap();
    assert_eq!((data.good.len(), data.inspect.len()), (6, 0));

    h.input_mut()
        .dropped_files
        .push(Arc::new(Dropped(dir.path().join("new"))));
    h.run_ok();
    h.get_by_label_contains("You dropped 1 file or folder");
    h.get_by_label("Parts to inspect").click();
    h.run_ok();
    let a = app(&h);
    let data = a.session().data.as_ref().unwrap();
    assert_eq!(data.inspect.len(), 3);
    assert_eq!(data.inspect[0].path, new[0]);
    assert_eq!(
        a.session().skipped.len(),
        1,
        "the text file is listed as skipped"
    );
    h.get_by_label("Skipped files (1)");
    h.check_accessibility();
}

#[test]
fn a_stopped_worker_is_noticed_and_restarted() {
    use differnet::core::protocol::{Command, Event};
    use differnet::gui::worker_link::{Job, WorkerLink};
    let mut link = WorkerLink::start(options(None).worker, Arc::new(|| {}));
    let mut more = false;
    link.send(Job::Inspect, Command::Shutdown).unwrap();
    let started = Instant::now();
    while link.dead_reason().is_none() {
        assert!(
            started.elapsed() < TIMEOUT,
            "the stopped worker went unnoticed"
        );
        let _ = link.drain(Duration::from_millis(5), &mut more);
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!link.is_busy(), "a dead worker's jobs are dropped");
    link.restart();
    assert!(link.dead_reason().is_none());
    let started = Instant::now();
    loop {
        let events = link.drain(Duration::from_millis(5), &mut more);
        if events.iter().any(|(_, e)| matches!(e, Event::Ready { .. })) {
            break;
        }
        assert!(
            started.elapsed() < TIMEOUT,
            "the new worker never said it was ready"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
