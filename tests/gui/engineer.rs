//! The engineer's loop: choose the good images, train, call a flagged part good, retrain
//! with one click and see which parts moved; step through parts with the keyboard; type a
//! threshold; undo.

use super::*;
use differnet::core::decision::Decision;
use differnet::core::training_set::{GoodRole, RoleChoice};
use differnet::gui::gallery::View;

/// The window on the small set, 12 good images to train on.
fn opened(size: egui::Vec2) -> (tempfile::TempDir, Harness<'static, App>) {
    opened_with(size, 12)
}

#[test]
fn exclude_an_image_train_call_a_part_good_retrain_and_see_it_move() {
    let (_dir, mut h) = opened(egui::vec2(1500.0, 950.0));
    // The good images with their roles: open one that is trained on and exclude it.
    h.get_by_label("See and choose them…").click();
    h.run_steps(2);
    let a = app(&h);
    let data = a.session().data.as_ref().unwrap();
    let roles = data.roles(12, Some(4));
    assert_eq!((roles.train.len(), roles.held_out.len()), (12, 4));
    let excluded = roles.train[0].clone();
    let name = excluded.file_name().unwrap().to_string_lossy().into_owned();
    h.get_by_label_contains(&format!("Open good/{name}"))
        .click();
    h.run_steps(2);
    h.get_by_label_contains("A good image: train in the next training");
    h.get_by_label("Exclude").click();
    h.run_steps(2);
    h.get_by_label_contains("A good image: excluded in the next training (chosen)");
    h.get_by_label_contains("(1 excluded)");
    let data = app(&h).session().data.as_ref().unwrap();
    let roles = data.roles(12, Some(4));
    assert_eq!(roles.role_of(&excluded), Some(GoodRole::Unused));
    assert_eq!(
        (roles.train.len(), roles.held_out.len()),
        (11, 4),
        "15 good images left: the held-out four stay, training gets the rest"
    );
    // Undo puts it back, and doing it again excludes it again.
    h.get_by_label_contains("Undo exclude").click();
    h.run_steps(2);
    assert!(app(&h).session().data.as_ref().unwrap().choices.is_empty());
    apply(
        &mut h,
        AppCommand::ChooseRole {
            path: excluded.clone(),
            choice: Some(RoleChoice::Exclude),
        },
    );
    apply(&mut h, AppCommand::ClosePart);
    apply(&mut h, AppCommand::ShowGallery(View::Parts));

    train_and_inspect(&mut h);
    let a = app(&h);
    let record = a
        .session()
        .model
        .as_ref()
        .unwrap()
        .trained_on
        .clone()
        .unwrap();
    assert_eq!(record.train_files.len(), 11);
    assert!(!record.train_files.contains(&excluded));
    assert!(!record.validation_files.contains(&excluded));
    assert!(
        h.query_by_label_contains("The good images changed")
            .is_none(),
        "nothing changed yet"
    );

    // Flag the highest-scoring good test part: put the reject line just under it.
    let part = a
        .session()
        .parts
        .iter()
        .filter(|p| p.label.is_defect() == Some(false))
        .max_by(|x, y| x.score.total_cmp(&y.score))
        .unwrap()
        .clone();
    apply(&mut h, AppCommand::SetReject(part.score * 0.999));
    assert_eq!(app(&h).session().decide(part.score), Some(Decision::Reject));
    apply(&mut h, AppCommand::OpenPart(part.path.clone()));
    step_until(&mut h, "its heatmap", |a| {
        a.session()
            .part(&part.path)
            .is_some_and(|p| p.heatmap.is_some())
    });
    h.get_by_label("This is good: train on it").click();
    h.run_steps(2);
    let data = app(&h).session().data.as_ref().unwrap();
    assert!(data.good.contains(&part.path));
    assert_eq!(data.choices.get(&part.path), Some(&RoleChoice::Train));
    h.get_by_label_contains(
        "The good images changed since this model was trained: 1 to train on added",
    );
    h.get_by_label_contains("1 of these parts is now a good image to train on");

    // One click retrains, inspects again and says what moved.
    h.get_by_label("Retrain").click();
    step_until(&mut h, "retraining to start", |a| a.is_busy());
    step_until(&mut h, "the new results", |a| {
        !a.is_busy() && a.session().parts.len() == 10 && a.session().thresholds.is_some()
    });
    h.run_steps(2);
    let a = app(&h);
    let record = a
        .session()
        .model
        .as_ref()
        .unwrap()
        .trained_on
        .clone()
        .unwrap();
    assert!(record.train_files.contains(&part.path), "trained on it");
    assert!(!record.train_files.contains(&excluded), "still excluded");
    let moves = a
        .session()
        .moves()
        .expect("compared with the previous model");
    let moved = moves
        .iter()
        .find(|m| m.path == part.path)
        .expect("the part called good moved");
    assert_eq!(
        (moved.before, moved.after),
        (Decision::Reject, Decision::Accept)
    );
    h.get_by_label_contains("Compared with the previous model:");
    // The part left open says the model is trained on it and gets the new model's map.
    assert_eq!(a.part_view().opened(), Some(part.path.as_path()));
    step_until(&mut h, "the open part's new heatmap", |a| {
        !a.is_busy()
            && a.session()
                .part(&part.path)
                .is_some_and(|p| p.heatmap.is_some())
    });
    h.get_by_label_contains("A good image: the current model is trained on it.");
    let a = app(&h);
    // The line the user set stays where it was, so what moved is what the new model did;
    // the new model's own line is offered beside it.
    let line = part.score * 0.999;
    assert_eq!(a.session().thresholds.unwrap().reject, line);
    let own = a.session().model.as_ref().unwrap().threshold.unwrap();
    assert_ne!(own, line);
    assert!(
        moves.len() < 10,
        "at the kept line only the new model's scores move parts"
    );
    h.get_by_label_contains("Your reject line is kept at");
    assert!(
        h.query_by_label_contains("moved with the line").is_none(),
        "the line did not move"
    );
    assert!(
        h.query_by_label_contains("Use the new model's line")
            .is_some(),
        "the model's own line is one click away"
    );
    assert!(
        h.query_by_label_contains("The good images changed")
            .is_none(),
        "the new model is trained on the images as they are"
    );
    h.get_by_label("Show them").click();
    h.run_steps(2);
    h.get_by_label_contains("before: reject");
    h.check_accessibility();

    // Taking the new model's line says how many moved with the line and how many with
    // the scores.
    h.get_by_label("Use the new model's line").click();
    h.run_steps(2);
    assert_eq!(app(&h).session().thresholds.unwrap().reject, own);
    assert!(app(&h).session().model_line.is_none());
    h.get_by_label_contains("would have moved (the new model's scores)");
}

#[test]
fn arrows_step_through_the_parts_escape_closes_and_the_order_can_change() {
    let (_dir, mut h) = opened(egui::vec2(1500.0, 950.0));
    train_and_inspect(&mut h);
    let mut by_score: Vec<(f64, PathBuf)> = app(&h)
        .session()
        .parts
        .iter()
        .map(|p| (p.score, p.path.clone()))
        .collect();
    by_score.sort_by(|a, b| b.0.total_cmp(&a.0));
    let opened = |h: &Harness<'_, App>| app(h).part_view().opened().map(Path::to_path_buf);

    // Nothing open: the first arrow opens the worst part.
    h.key_press(egui::Key::ArrowRight);
    h.run_steps(2);
    assert_eq!(opened(&h).as_ref(), Some(&by_score[0].1));
    h.key_press(egui::Key::ArrowRight);
    h.run_steps(2);
    assert_eq!(opened(&h).as_ref(), Some(&by_score[1].1));
    h.key_press(egui::Key::ArrowDown);
    h.run_steps(2);
    assert_eq!(opened(&h).as_ref(), Some(&by_score[2].1));
    h.key_press(egui::Key::ArrowLeft);
    h.run_steps(2);
    assert_eq!(opened(&h).as_ref(), Some(&by_score[1].1));
    h.get_by_label("Next").click();
    h.run_steps(2);
    assert_eq!(opened(&h).as_ref(), Some(&by_score[2].1));
    h.key_press(egui::Key::Escape);
    h.run_steps(2);
    assert_eq!(opened(&h), None);

    // Lowest score first, then by name.
    for (order, first) in [
        ("score, lowest first", by_score.last().unwrap().1.clone()),
        ("name", {
            let mut names: Vec<PathBuf> = by_score.iter().map(|s| s.1.clone()).collect();
            names.sort();
            names[0].clone()
        }),
    ] {
        h.get_by_role_and_label(egui::Role::ComboBox, "Sort")
            .click();
        h.run_steps(2);
        h.get_by_label(order).click();
        h.run_steps(2);
        h.key_press(egui::Key::ArrowRight);
        h.run_steps(2);
        assert_eq!(opened(&h).as_ref(), Some(&first), "{order}");
        h.key_press(egui::Key::Escape);
        h.run_steps(2);
    }
}

#[test]
fn a_typed_threshold_applies_on_enter_and_the_review_line_waits() {
    let (_dir, mut h) = opened(egui::vec2(1500.0, 950.0));
    train_and_inspect(&mut h);
    let before = app(&h).session().thresholds.unwrap();
    let field = h.get_by_role_and_label(egui::Role::TextInput, "Reject at score");
    field.click();
    h.run_steps(1);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.get_by_role_and_label(egui::Role::TextInput, "Reject at score")
        .type_text("10");
    h.run_steps(2);
    assert_eq!(
        app(&h).session().thresholds.unwrap(),
        before,
        "nothing applies while typing"
    );
    h.key_press(egui::Key::Enter);
    h.run_steps(2);
    assert_eq!(app(&h).session().thresholds.unwrap().reject, 10.0);

    // Esc leaves the line as it was.
    h.get_by_role_and_label(egui::Role::TextInput, "Reject at score")
        .click();
    h.run_steps(1);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.get_by_role_and_label(egui::Role::TextInput, "Reject at score")
        .type_text("3");
    h.key_press(egui::Key::Escape);
    h.run_steps(2);
    assert_eq!(app(&h).session().thresholds.unwrap().reject, 10.0);

    // The review line follows the reject line down, and comes back when it goes up.
    h.get_by_label("Review band (send borderline parts to a person)")
        .click();
    h.run_steps(2);
    apply(&mut h, AppCommand::SetReview(Some(8.0)));
    apply(&mut h, AppCommand::SetReject(5.0));
    assert_eq!(app(&h).session().thresholds.unwrap().review, Some(5.0));
    h.get_by_label_contains("The review line waits at 8.00");
    apply(&mut h, AppCommand::SetReject(12.0));
    assert_eq!(app(&h).session().thresholds.unwrap().review, Some(8.0));
}

#[test]
fn a_heatmap_export_says_how_long_it_takes_and_reuses_computed_maps() {
    let (dir, mut h) = opened(egui::vec2(1500.0, 950.0));
    train_and_inspect(&mut h);
    let part = app(&h).session().parts[0].path.clone();
    apply(&mut h, AppCommand::OpenPart(part.clone()));
    step_until(&mut h, "its heatmap", |a| {
        a.session().part(&part).is_some_and(|p| p.heatmap.is_some())
    });
    assert!(app(&h).session().heat_secs.is_some(), "a heatmap was timed");
    let out = dir.path().join("heat");
    apply(&mut h, AppCommand::PlanHeatmapExport(out.clone()));
    h.get_by_label_contains("Write 10 heatmap images to");
    h.get_by_label_contains("1 are computed already");
    h.get_by_label_contains("The other 9 take about");
    assert!(!out.exists(), "nothing is written before the user says so");
    h.get_by_label("Export").click();
    step_until(&mut h, "the heatmap images", |_| {
        std::fs::read_dir(&out).map(|d| d.count()).unwrap_or(0) == 10
    });
}

#[test]
fn without_labels_there_are_no_false_reject_or_escape_filters() {
    let dir = tempfile::tempdir().unwrap();
    write_set(&dir.path().join("good"), "good", 0..8, false);
    write_set(&dir.path().join("new"), "new", 50..54, true);
    let mut h = harness(options(Some(&dir.path().join("good"))));
    h.run_ok();
    h.get_by_label("These are good parts (train on them)")
        .click();
    h.run_ok();
    apply(
        &mut h,
        AppCommand::AddImages {
            paths: vec![dir.path().join("new")],
            role: differnet::gui::command::ImageRole::Inspect,
        },
    );
    train_and_inspect(&mut h);
    assert_eq!(app(&h).session().parts.len(), 4);
    h.get_by_label("Rejected");
    h.get_by_label("Accepted");
    for hidden in ["False rejects", "Escapes", "Changed", "Review"] {
        assert!(h.query_by_label(hidden).is_none(), "{hidden} is shown");
    }
    // Calling one of them good gives the labels a meaning: false rejects can be shown.
    let part = app(&h).session().parts[0].path.clone();
    apply(
        &mut h,
        AppCommand::Relabel {
            path: part,
            label: differnet::core::dataset::Label::Good,
        },
    );
    h.get_by_label("False rejects");
    assert!(h.query_by_label("Escapes").is_none());
}

#[test]
fn corrections_and_choices_come_back_when_the_folder_is_opened_again() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    mvtec_set(&data);
    let kept = dir.path().join("settings/folders");
    let open = || {
        let mut opts = options(Some(&data));
        opts.edits_dir = Some(kept.clone());
        let mut h = harness(opts);
        h.run_ok();
        h
    };
    let listing = || {
        let mut files: Vec<PathBuf> = walk(&data);
        files.sort();
        files
    };
    let files = listing();

    let mut h = open();
    let set = app(&h).session().data.clone().unwrap();
    let scratch = set
        .inspect
        .iter()
        .find(|s| s.label.is_defect() == Some(true))
        .unwrap()
        .path
        .clone();
    let good_part = set
        .inspect
        .iter()
        .find(|s| s.label.is_defect() == Some(false))
        .unwrap()
        .path
        .clone();
    let excluded = set.good[3].clone();
    apply(&mut h, AppCommand::MarkGood(scratch.clone()));
    apply(
        &mut h,
        AppCommand::Relabel {
            path: good_part.clone(),
            label: differnet::core::dataset::Label::Defect("dent".into()),
        },
    );
    apply(
        &mut h,
        AppCommand::ChooseRole {
            path: excluded.clone(),
            choice: Some(RoleChoice::Exclude),
        },
    );
    // An edit undone is not kept.
    apply(
        &mut h,
        AppCommand::ChooseRole {
            path: set.good[5].clone(),
            choice: Some(RoleChoice::HeldOut),
        },
    );
    apply(&mut h, AppCommand::Undo);
    let before = app(&h).session().data.clone().unwrap();
    assert_eq!(
        before.good.len(),
        17,
        "the part called good is a good image"
    );
    assert_eq!(before.choices.len(), 2);
    drop(h);
    assert_eq!(
        listing(),
        files,
        "nothing is written inside the user's data"
    );

    let h = open();
    let after = app(&h).session().data.clone().unwrap();
    assert_eq!(after.good, before.good);
    assert_eq!(after.inspect, before.inspect);
    assert_eq!(after.choices, before.choices);
    assert_eq!(after.choices.get(&scratch), Some(&RoleChoice::Train));
    assert_eq!(after.choices.get(&excluded), Some(&RoleChoice::Exclude));
    h.get_by_label_contains("your changes to 3 of its images");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flat_map(|e| {
            let p = e.unwrap().path();
            if p.is_dir() { walk(&p) } else { vec![p] }
        })
        .collect()
}

/// Drags on the histogram from x `from` to x `to` (screen points) in small steps; returns
/// the lines' screen positions seen at every step of the drag.
fn drag_histogram(h: &mut Harness<'_, App>, from: f32, to: f32) -> Vec<(f32, Option<f32>)> {
    let y = h
        .get_by_label("Score histogram with threshold lines")
        .rect()
        .center()
        .y;
    let start = egui::pos2(from, y);
    h.hover_at(start);
    h.step();
    h.drag_at(start);
    h.step();
    let mut seen = Vec::new();
    for i in 1..=6 {
        h.hover_at(egui::pos2(from + (to - from) * i as f32 / 6.0, y));
        h.step();
        seen.push(app(h).results_panel().lines_x().unwrap());
    }
    h.drop_at(egui::pos2(to, y));
    h.run_steps(3);
    seen
}

#[test]
fn the_review_band_starts_among_the_parts_and_each_line_can_be_dragged() {
    let (_dir, mut h) = opened(egui::vec2(1500.0, 950.0));
    train_and_inspect(&mut h);
    let t = app(&h).session().thresholds.unwrap();
    h.get_by_label("Review band (send borderline parts to a person)")
        .click();
    h.run_steps(3);
    // The band starts where the held-out good scores put it, not below every part.
    let s = app(&h).session();
    let review = s.thresholds.unwrap().review.unwrap();
    assert_eq!(review, s.default_review(t.reject));
    assert!(review < t.reject);
    let counts = s.counts().unwrap();
    assert!(
        counts.accepted > 0,
        "some parts are still accepted: {counts:?}"
    );
    h.get_by_label_contains(&format!("The band sends {} of 10 parts", counts.review));

    // The orange line moves under the pointer, the red one stays, and the axis keeps
    // still while dragging.
    let (reject_x, review_x) = app(&h).results_panel().lines_x().unwrap();
    let review_x = review_x.unwrap();
    // Far left, past the lowest part: the axis would widen to show the line.
    let left = h
        .get_by_label("Score histogram with threshold lines")
        .rect()
        .left();
    let seen = drag_histogram(&mut h, review_x, left + 40.0);
    for (r, _) in &seen {
        assert!(
            (r - reject_x).abs() < 0.5,
            "the axis rescaled mid-drag: {seen:?}"
        );
    }
    let t2 = app(&h).session().thresholds.unwrap();
    assert_eq!(t2.reject, t.reject, "the red line stays");
    assert!(t2.review.unwrap() < review, "the orange line moved left");

    // Where the two lines meet, dragging left moves the review line and right the reject.
    apply(&mut h, AppCommand::SetReview(Some(t.reject)));
    let (reject_x, _) = app(&h).results_panel().lines_x().unwrap();
    drag_histogram(&mut h, reject_x, reject_x - 30.0);
    let t3 = app(&h).session().thresholds.unwrap();
    assert_eq!(t3.reject, t.reject);
    assert!(t3.review.unwrap() < t.reject);
    let (reject_x, _) = app(&h).results_panel().lines_x().unwrap();
    apply(&mut h, AppCommand::SetReview(Some(t.reject)));
    drag_histogram(&mut h, reject_x, reject_x + 30.0);
    let t4 = app(&h).session().thresholds.unwrap();
    assert!(
        t4.reject > t.reject,
        "dragging right from where they meet moves the reject line"
    );
}

/// Asks the window to close, as the title bar's close button does, and lets it answer.
fn request_close(h: &mut Harness<'_, App>) {
    h.input_mut()
        .viewports
        .entry(egui::ViewportId::ROOT)
        .or_default()
        .events
        .push(egui::ViewportEvent::Close);
    h.step();
    h.run_steps(2);
}

#[test]
fn closing_the_window_while_a_model_trains_asks_first() {
    let dir = tempfile::tempdir().unwrap();
    mvtec_set(dir.path());
    let mut config = tiny_config();
    config.train.epochs = 400;
    let mut h = harness(AppOptions {
        config: Some(config.into()),
        ..options(Some(dir.path()))
    });
    h.run_ok();
    h.get_by_role_and_label(egui::Role::Button, "Train").click();
    step_until(&mut h, "training", |a| a.is_busy());
    request_close(&mut h);
    h.get_by_label_contains("Closing the window stops the training");
    h.get_by_label("Keep working").click();
    h.run_steps(2);
    assert!(app(&h).is_busy(), "the training goes on");
    assert!(
        h.query_by_label_contains("Closing the window stops")
            .is_none()
    );
    request_close(&mut h);
    h.get_by_label("Stop training and close").click();
    h.run_steps(2);
    step_until(&mut h, "the training to stop", |a| !a.is_busy());
    assert!(
        h.query_by_label_contains("Closing the window stops")
            .is_none()
    );
}

#[test]
fn closing_the_window_with_a_model_not_saved_asks_first() {
    let dir = tempfile::tempdir().unwrap();
    mvtec_set(dir.path());
    let mut h = harness(options(Some(dir.path())));
    h.run_ok();
    h.get_by_role_and_label(egui::Role::Button, "Train").click();
    step_until(&mut h, "a model trained and its parts inspected", |a| {
        a.session().model.is_some() && !a.is_busy()
    });
    assert!(app(&h).has_unsaved_model());
    // Asked, with the three ways out; keep working keeps everything.
    request_close(&mut h);
    h.get_by_label_contains("The model trained here is not saved");
    h.get_by_label("Save model and close…");
    h.get_by_label("Keep working").click();
    h.run_steps(2);
    assert!(!app(&h).close_confirmed());
    assert!(app(&h).session().model.is_some());
    assert!(
        h.query_by_label_contains("is not saved to a file")
            .is_none()
    );
    // Closing without saving is a choice the user makes.
    request_close(&mut h);
    h.get_by_label("Close without saving").click();
    h.run_steps(2);
    assert!(app(&h).close_confirmed());
}

#[test]
fn a_saved_model_closes_without_a_question() {
    let dir = tempfile::tempdir().unwrap();
    mvtec_set(dir.path());
    let mut h = harness(options(Some(dir.path())));
    h.run_ok();
    h.get_by_role_and_label(egui::Role::Button, "Train").click();
    step_until(&mut h, "a model trained", |a| {
        a.session().model.is_some() && !a.is_busy()
    });
    let file = dir.path().join("model.differnet");
    h.state_mut()
        .as_mut()
        .unwrap()
        .apply(AppCommand::SaveModel(file.clone()));
    step_until(&mut h, "the model file", |a| !a.has_unsaved_model());
    assert!(file.is_file());
    request_close(&mut h);
    assert!(h.query_by_label_contains("is not saved").is_none());
}
