//! The Line view: the model sorts parts as they are written into a folder, with a live
//! strip, and a line moved in the Decide panel applies to the next part and is logged;
//! "Stop the line" ends it within 2 s while the window's own worker trains.

use super::*;
use differnet::core::decision::Thresholds;

#[test]
fn the_line_sorts_parts_live_and_takes_new_lines() {
    let dir = tempfile::tempdir().unwrap();
    mvtec_set(&dir.path().join("data"));
    let mut opts = options(Some(&dir.path().join("data")));
    opts.state = Some(differnet::gui::state::State {
        val_count: Some(6),
        ..Default::default()
    });
    let mut h = harness(opts);
    h.run_ok();
    train_and_inspect(&mut h);
    let model = dir.path().join("model.differnet");
    h.state_mut()
        .as_mut()
        .unwrap()
        .apply(AppCommand::SaveModel(model.clone()));
    step_until(&mut h, "the model file", |a| {
        !a.is_busy() && a.session().model_path.is_some()
    });
    h.get_by_label("4. Line").click();
    h.run_steps(2);
    h.get_by_label_contains("Runs the model file ");
    h.check_accessibility();

    let (input, output) = (dir.path().join("camera"), dir.path().join("sorted"));
    std::fs::create_dir_all(&input).unwrap();
    h.state_mut()
        .as_mut()
        .unwrap()
        .apply(AppCommand::StartLine {
            model,
            save_first: false,
            input: input.clone(),
            output: output.clone(),
        });
    common::write_set(&input, "good", 200..202, false);
    common::write_set(&input, "bad", 300..301, true);
    step_until(&mut h, "three parts on the line", |a| {
        a.line().recent.len() == 3
    });
    h.run_steps(2);
    let reject = app(&h).session().thresholds.unwrap().reject;
    let strip: Vec<(String, String)> = app(&h)
        .line()
        .recent
        .iter()
        .map(|p| (p.name.clone(), p.decision.clone()))
        .collect();
    for (name, decision) in &strip {
        let part = app(&h)
            .session()
            .parts
            .iter()
            .find(|p| p.path.file_name().unwrap().to_string_lossy() == name.as_str())
            .map(|p| {
                if p.score >= reject {
                    "reject"
                } else {
                    "accept"
                }
            });
        // The same images were inspected in the window (test/good, test/scratch).
        if let Some(expected) = part {
            assert_eq!(decision, expected, "{name}");
        }
        assert!(output.join(decision).join(name).is_file(), "{name} sorted");
    }
    h.get_by_label_contains("3 parts: ");
    // The fields show the folders it runs on.
    assert_eq!(
        app(&h).line().input,
        differnet::core::message::path_text(&input)
    );

    // A lower line from the Decide panel takes the next part.
    let low = Thresholds::reject_at(1e-6);
    h.state_mut()
        .as_mut()
        .unwrap()
        .apply(AppCommand::SetThresholds(low));
    common::write_set(&input, "good", 203..204, false);
    step_until(&mut h, "the fourth part", |a| a.line().recent.len() == 4);
    assert_eq!(app(&h).line().recent[0].decision, "reject");
    let log = std::fs::read_to_string(output.join("log.csv")).unwrap();
    let last = log.lines().last().unwrap();
    assert!(last.contains(",reject,0.000001,"), "{last}");
    assert!(
        app(&h)
            .line()
            .messages
            .iter()
            .any(|m| m.contains("reject line 1.00e-6")),
        "{:?}",
        app(&h).line().messages
    );

    // Stopped while the window's own worker trains: the line ends within 2 s. A pointer
    // click goes where the widget was drawn in the last frame, and egui settles a layout
    // one frame after a change (the side panel's scroll area: a label above the buttons
    // then wraps differently when the temporary folder's name is about as wide as the
    // panel): settle first, or the click misses and the line is never asked to stop.
    h.run_steps(2);
    h.get_by_label("Train").click();
    step_until(&mut h, "training to start", |a| a.is_busy());
    // The Train section above grows as the training reports (progress, loss plot): the
    // button is clicked by its id, as a keyboard or a screen reader does.
    let asked = Instant::now();
    h.get_by_label("Stop the line").click_accesskit();
    h.step();
    assert!(
        app(&h).line().is_stopping() || !app(&h).line().is_running(),
        "the click did not reach \"Stop the line\""
    );
    step_until(&mut h, "the line to stop", |a| !a.line().is_running());
    let took = asked.elapsed();
    assert!(
        took <= Duration::from_secs(2),
        "the line took {took:?} to stop"
    );
    // Its log and its folders agree: four parts, each in one folder, logged once.
    let log = std::fs::read_to_string(output.join("log.csv")).unwrap();
    let rows: Vec<Vec<String>> = log.lines().skip(1).map(csv_fields).collect();
    assert_eq!(rows.len(), 4, "{log}");
    for row in &rows {
        // The path where the part is now, and the decision (the folder it is in).
        let (path, decision) = (Path::new(&row[0]), &row[3]);
        let name = path.file_name().unwrap();
        let found: Vec<&str> = ["accept", "review", "reject", "unreadable"]
            .into_iter()
            .filter(|f| output.join(f).join(name).is_file())
            .collect();
        assert_eq!(found, vec![decision.as_str()], "{}", path.display());
        assert!(path.is_file(), "{}", path.display());
    }
    assert_eq!(std::fs::read_dir(&input).unwrap().count(), 0);
    step_until(&mut h, "the training to end", |a| !a.is_busy());
    assert!(app(&h).errors().is_empty());
}

#[test]
fn the_line_runs_the_model_trained_here_and_keeps_its_folders() {
    let dir = tempfile::tempdir().unwrap();
    mvtec_set(&dir.path().join("data"));
    let mut h = harness(options(Some(&dir.path().join("data"))));
    h.run_ok();
    train_and_inspect(&mut h);
    assert!(app(&h).session().model_path.is_none(), "not saved");
    h.get_by_label("4. Line").click();
    h.run_steps(2);
    h.get_by_label_contains("Runs the model trained here");

    let (input, output) = (dir.path().join("camera"), dir.path().join("sorted"));
    std::fs::create_dir_all(&input).unwrap();
    for (field, path) in [("Camera folder", &input), ("Sorted into", &output)] {
        h.get_by_role_and_label(egui::Role::TextInput, field)
            .click();
        h.run_steps(1);
        h.get_by_role_and_label(egui::Role::TextInput, field)
            .type_text(&path.to_string_lossy());
        h.run_steps(1);
    }
    h.get_by_role_and_label(egui::Role::Button, "Start the line")
        .click();
    step_until(&mut h, "the line to run", |a| a.line().is_running());
    let saved = output.join("model.differnet");
    assert!(
        saved.is_file(),
        "the model trained here is saved for the line"
    );
    assert_eq!(
        app(&h).session().model_path.as_deref(),
        Some(saved.as_path())
    );
    common::write_set(&input, "good", 200..201, false);
    step_until(&mut h, "a part on the line", |a| a.line().recent.len() == 1);
    // Lines are written as the window shows scores, not as raw floats.
    step_until(&mut h, "the line's lines said", |a| {
        a.line().messages.iter().any(|m| m.contains("reject line"))
    });
    for m in &app(&h).line().messages {
        if let Some(rest) = m.split("reject line ").nth(1) {
            let number = rest.split([',', ' ']).next().unwrap();
            assert!(number.len() <= 6, "a raw float in {m:?}");
        }
    }
    h.state_mut().as_mut().unwrap().apply(AppCommand::StopLine);
    step_until(&mut h, "the line to stop", |a| !a.line().is_running());
    h.run_steps(2);
    // The rate after the stop is the run's, not zero.
    let summary = app(&h).line().tally.summary(std::time::Duration::ZERO);
    assert!(summary.contains(" 0.0 per minute"));
    assert!(
        h.query_by_label_contains(" 0.0 per minute").is_none(),
        "the stopped line says its rate"
    );

    // The folders come back with the window.
    let state = app(&h).state().clone();
    drop(h);
    let mut opts = options(Some(&dir.path().join("data")));
    opts.state = Some(state);
    let mut h = harness(opts);
    h.run_ok();
    assert_eq!(app(&h).line().input, input.to_string_lossy());
    assert_eq!(app(&h).line().output, output.to_string_lossy());
}

#[test]
fn the_line_warns_of_drift_and_proposes_its_recent_good_parts_for_a_retrain() {
    let dir = tempfile::tempdir().unwrap();
    mvtec_set(&dir.path().join("data"));
    let mut opts = options(Some(&dir.path().join("data")));
    opts.state = Some(differnet::gui::state::State {
        train_count: 64,
        val_count: Some(6),
        ..Default::default()
    });
    let mut h = harness(opts);
    h.run_ok();
    train_and_inspect(&mut h);
    let model_id = |a: &WorkstationApp| {
        a.session()
            .model
            .as_ref()
            .and_then(|m| m.trained_on.as_ref())
            .map(|r| r.id.clone())
    };
    let first_model = model_id(app(&h));
    let good_before = app(&h).session().data.as_ref().unwrap().good.len();
    h.get_by_label("4. Line").click();
    h.run_steps(2);

    let (input, output) = (dir.path().join("camera"), dir.path().join("sorted"));
    std::fs::create_dir_all(&input).unwrap();
    h.state_mut()
        .as_mut()
        .unwrap()
        .apply(AppCommand::StartLine {
            model: output.join(differnet::gui::line_panel::LINE_MODEL_FILE),
            save_first: true,
            input: input.clone(),
            output: output.clone(),
        });
    common::write_set(&input, "good", 400..408, false);
    step_until(&mut h, "eight parts on the line", |a| {
        a.line().tally.parts() == 8
    });
    h.run_steps(2);
    // Good parts like the training ones: the plot of their scores, and no warning.
    h.get_by_label_contains("The last 8 scores against the model's held-out good parts");
    assert!(
        app(&h).line().drift.is_empty(),
        "{:?}",
        app(&h).line().drift
    );
    assert!(h.query_by_label_contains("The line is drifting").is_none());

    // The camera moves: parts of another size. The line says so.
    for s in 500..503 {
        let img = image::imageops::resize(
            &common::texture(s, false),
            128,
            112,
            image::imageops::FilterType::Triangle,
        );
        img.save(input.join(format!("moved_{s}.png"))).unwrap();
    }
    step_until(&mut h, "eleven parts on the line", |a| {
        a.line().tally.parts() == 11
    });
    h.run_steps(2);
    h.get_by_label_contains("The line is drifting");
    assert!(
        app(&h)
            .line()
            .drift
            .iter()
            .any(|d| d.contains("128×112 pixels")),
        "{:?}",
        app(&h).line().drift
    );
    // In the banner and in the line's messages.
    assert_eq!(h.query_all_by_label_contains("128×112 pixels").count(), 2);
    assert!(
        app(&h)
            .line()
            .messages
            .iter()
            .any(|m| m.starts_with("drift: ") && m.contains("size")),
        "{:?}",
        app(&h).line().messages
    );
    let log = std::fs::read_to_string(output.join("log.csv")).unwrap();
    let header = csv_fields(log.lines().next().unwrap());
    let column = header
        .iter()
        .position(|c| c == "drift")
        .expect("a drift column");
    let last = csv_fields(log.lines().last().unwrap());
    assert_eq!(last[column], "size", "{log}");

    h.get_by_label("Stop the line").click_accesskit();
    step_until(&mut h, "the line to stop", |a| !a.line().is_running());
    h.run_steps(2);

    // The parts it is sure of are kept, and only accepted ones.
    let recent = differnet::line::recent_good_parts(&output.join(differnet::line::RECENT_GOOD));
    assert!(!recent.is_empty(), "no recent good parts kept");
    for p in &recent {
        let name = p.file_name().unwrap().to_string_lossy();
        let original = name.split_once('-').unwrap().1;
        assert!(
            output.join("accept").join(original).is_file(),
            "{name} was not accepted"
        );
    }
    assert_eq!(app(&h).line().recent_good, recent.len());

    // Proposed, not trained: they join the good images, and the model stays.
    h.get_by_label(&format!(
        "Retrain with recent good parts ({})",
        recent.len()
    ))
    .click_accesskit();
    h.run_steps(4);
    let data = app(&h).session().data.as_ref().unwrap();
    assert_eq!(data.good.len(), good_before + recent.len());
    assert!(recent.iter().all(|p| data.good.contains(p)));
    assert!(
        app(&h)
            .status()
            .is_some_and(|s| s.contains("Nothing is trained until you do")),
        "{:?}",
        app(&h).status()
    );
    assert!(!app(&h).is_busy());
    assert_eq!(model_id(app(&h)), first_model, "trained without a click");

    // The engineer clicks Train: the new model learnt from them.
    h.run_steps(2);
    h.get_by_label("Train").click_accesskit();
    step_until(&mut h, "training to start", |a| a.is_busy());
    step_until(&mut h, "the retrained model", |a| {
        !a.is_busy() && model_id(a) != first_model
    });
    let record = app(&h)
        .session()
        .model
        .as_ref()
        .and_then(|m| m.trained_on.clone())
        .unwrap();
    assert!(
        recent
            .iter()
            .any(|p| record.train_files.contains(p) || record.validation_files.contains(p)),
        "the retrained model did not use the recent good parts"
    );
}
