//! The workstation against what a production line throws at it: broken image files,
//! a user who cancels at any moment, libtorch running out of memory in a job, and a worker
//! thread that dies. Each time the window must say what happened, keep the model and the
//! results it had, and be ready for the next job.

use super::*;
use crate::common::bad_files::{Expect, reads_locked_files, write_cases};
use differnet::core::protocol::Phase;
use differnet::engine::worker::{FaultKind, InjectedFault};
use egui_kittest::kittest::NodeT;

/// Steps until the worker is idle, failing on the timeout (errors are allowed).
fn step_until_idle(h: &mut Harness<'_, App>, what: &str) {
    let started = Instant::now();
    loop {
        h.step();
        if !app(h).is_busy() {
            h.step();
            return;
        }
        assert!(started.elapsed() < TIMEOUT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Steps until an error is shown; returns it.
fn step_until_error(h: &mut Harness<'_, App>, what: &str) -> String {
    let started = Instant::now();
    loop {
        h.step();
        if let Some(e) = app(h).errors().first() {
            let e = e.clone();
            h.step();
            return e;
        }
        assert!(started.elapsed() < TIMEOUT, "no error for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Scores of the parts, by path, in scoring order.
fn scores(a: &WorkstationApp) -> Vec<(PathBuf, f64)> {
    a.session()
        .parts
        .iter()
        .map(|p| (p.path.clone(), p.score))
        .collect()
}

/// The same parts in the same order with the same scores, up to float rounding.
fn assert_same(a: &[(PathBuf, f64)], b: &[(PathBuf, f64)], what: &str) {
    let paths = |v: &[(PathBuf, f64)]| v.iter().map(|p| p.0.clone()).collect::<Vec<_>>();
    let values = |v: &[(PathBuf, f64)]| v.iter().map(|p| p.1).collect::<Vec<_>>();
    assert_eq!(paths(a), paths(b), "{what}");
    assert!(
        crate::common::same_scores(&values(a), &values(b)),
        "{what}: {a:?} vs {b:?}"
    );
}

/// Runs "Inspect again" and waits for every part.
fn inspect_again(h: &mut Harness<'_, App>) {
    h.get_by_label("Inspect again").click();
    step_until(h, "the inspection to start", |a| a.is_busy());
    step_until(h, "the inspection", |a| !a.is_busy());
    h.step();
}

/// The app's controls are usable: Train and Inspect again are enabled, nothing is busy,
/// no progress bar is left over.
fn assert_ready(h: &Harness<'_, App>, when: &str) {
    let a = app(h);
    assert!(!a.is_busy(), "{when}: still busy");
    assert!(
        a.session().progress.is_none(),
        "{when}: a progress bar is left"
    );
    assert!(
        !h.get_by_label("Train").accesskit_node().is_disabled(),
        "{when}: Train is disabled"
    );
}

#[test]
fn broken_files_are_named_and_skipped_while_training_and_inspection_go_on() {
    broken_files_are_named_and_skipped(None);
}

#[test]
fn broken_files_are_named_and_skipped_by_patchcore_too() {
    broken_files_are_named_and_skipped(Some(common::tiny_patchcore().into()));
}

#[test]
fn broken_files_are_named_and_skipped_by_cs_flow_too() {
    broken_files_are_named_and_skipped(Some(common::tiny_cs_flow().into()));
}

/// `config`: the detector to train instead of the tests' tiny DifferNet.
fn broken_files_are_named_and_skipped(config: Option<differnet::core::config::DetectorConfig>) {
    // A flow (DifferNet, CS-Flow) plots its training loss; a PatchCore has none.
    let flow = config
        .as_ref()
        .is_none_or(|c| c.loss_schedule(16).is_some());
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    mvtec_set(root);
    // The same broken and odd files among the good images and among the parts.
    let readable = reads_locked_files(root);
    let mut cases = write_cases(&root.join("train/good"), readable);
    std::fs::create_dir_all(root.join("test/broken")).unwrap();
    cases.extend(write_cases(&root.join("test/broken"), readable));
    let broken: Vec<_> = cases
        .iter()
        .filter_map(|c| match c.expect {
            Expect::Skipped(text) => Some((c, text)),
            Expect::Loads(..) => None,
        })
        .collect();
    let odd_parts = cases
        .iter()
        .filter(|c| c.path.starts_with(root.join("test")) && matches!(c.expect, Expect::Loads(..)))
        .count();

    let mut opts = options(Some(root));
    if let Some(config) = config {
        opts.config = Some(config);
    }
    // Every good image goes into training or validation, so every broken one is met.
    opts.state = Some(differnet::gui::state::State {
        train_count: 20,
        val_count: Some(100),
        ..Default::default()
    });
    let mut h = harness(opts);
    h.run_ok();
    // Listing already leaves out the folders named x.png.
    assert_eq!(
        app(&h).session().skipped.len(),
        2,
        "{:?}",
        app(&h).session().skipped
    );
    train_and_inspect_expecting(&mut h, flow);
    // The gallery and the skipped list are drawn with every file in them.
    h.run_steps(3);

    let a = app(&h);
    assert!(a.errors().is_empty(), "{:?}", a.errors());
    assert_eq!(
        a.session().parts.len(),
        10 + odd_parts,
        "every readable part is scored, odd formats included"
    );
    let model = a.session().model.as_ref().unwrap();
    let good_loaded = model.train_count + model.validation.as_ref().map_or(0, |v| v.count);
    let good_readable = 16
        + cases
            .iter()
            .filter(|c| {
                c.path.starts_with(root.join("train")) && matches!(c.expect, Expect::Loads(..))
            })
            .count();
    assert_eq!(
        good_loaded, good_readable,
        "training and validation used every readable image"
    );
    let skipped = &a.session().skipped;
    for (case, text) in &broken {
        let listed: Vec<_> = skipped.iter().filter(|(p, _)| *p == case.path).collect();
        assert_eq!(
            listed.len(),
            1,
            "{} ({}) listed once: {skipped:?}",
            case.what,
            case.path.display()
        );
        let reason = &listed[0].1;
        // The folder is left out by the listing, which says so its own way.
        let expected = if case.path.ends_with("x.png") {
            "a folder, not an image file"
        } else {
            text
        };
        assert!(reason.contains(expected), "{}: {reason}", case.what);
        assert_eq!(reason.lines().count(), 1, "{}: {reason}", case.what);
    }
    assert_eq!(
        skipped.len(),
        broken.len(),
        "nothing else is skipped: {skipped:?}"
    );

    // The list is in the window, with each file's name.
    h.get_by_label(&format!("Skipped files ({})", broken.len()))
        .click();
    h.run_steps(2);
    for (case, _) in &broken {
        let shown = differnet::core::message::path_text(&case.path);
        assert!(
            h.query_by_label_contains(&shown).is_some(),
            "{} is not shown",
            shown
        );
    }
    h.check_accessibility();
}

#[test]
fn cancelling_at_any_moment_leaves_the_window_ready_and_the_model_kept() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_set(&root.join("train/good"), "good", 0..16, false);
    write_set(&root.join("test/good"), "good", 200..220, false);
    write_set(&root.join("test/scratch"), "bad", 300..320, true);
    let mut opts = options(Some(root));
    let mut config = tiny_config();
    // Long enough to be caught in every phase, and parts that take a moment each.
    config.train.epochs = 150;
    config.score.rotations = 16;
    opts.config = Some(config.into());
    let mut h = harness(opts);
    h.run_ok();

    // Cancel training as soon as each phase shows, and a few frames into it.
    let mut stopped_in = Vec::new();
    for phase in [
        Phase::Loading,
        Phase::CachingFeatures,
        Phase::Training,
        Phase::Validating,
    ] {
        for delay in [0, 3] {
            let model_before = app(&h).session().model.clone();
            h.get_by_label("Train").click();
            step_until(&mut h, "training to start", |a| a.is_busy());
            let started = Instant::now();
            loop {
                h.step();
                let a = app(&h);
                let at = a.session().progress.as_ref().map(|p| p.phase);
                if at.is_some_and(|p| p as usize >= phase as usize) || !a.is_busy() {
                    break;
                }
                assert!(started.elapsed() < TIMEOUT, "never reached {phase:?}");
            }
            h.run_steps(delay);
            let at = app(&h).session().progress.as_ref().map(|p| p.phase);
            h.get_by_label("Cancel").click();
            step_until_idle(&mut h, "the cancelled job");
            let a = app(&h);
            assert!(a.errors().is_empty(), "cancel in {at:?}: {:?}", a.errors());
            if a.status() == Some("Stopped training") {
                stopped_in.push(at);
                assert_eq!(
                    a.session().model.as_ref().map(|m| m.train_secs),
                    model_before.as_ref().map(|m| m.train_secs),
                    "a cancelled training keeps the model there was"
                );
            }
            // Trained before the click: the inspection that follows was cancelled instead,
            // or had ended too.
            assert_ready(&h, &format!("after cancelling in {at:?}"));
        }
    }
    for phase in [Phase::Training, Phase::Validating] {
        assert!(
            stopped_in.contains(&Some(phase)),
            "training was never stopped in {phase:?}: {stopped_in:?}"
        );
    }

    // A whole run still works, then an inspection cancelled half way keeps what it scored
    // and the next one scores everything again, with the same scores.
    train_and_inspect(&mut h);
    let full = scores(app(&h));
    assert_eq!(full.len(), 40);
    h.get_by_label("Inspect again").click();
    step_until(&mut h, "a few parts", |a| a.session().parts.len() >= 3);
    h.get_by_label("Cancel").click();
    step_until_idle(&mut h, "the cancelled inspection");
    let a = app(&h);
    assert_eq!(a.status(), Some("Stopped inspecting parts"));
    assert!(a.errors().is_empty(), "{:?}", a.errors());
    let partial = scores(a);
    assert!(
        (3..40).contains(&partial.len()),
        "{} parts after the cancel",
        partial.len()
    );
    assert_eq!(
        partial[..],
        full[..partial.len()],
        "the parts kept are right"
    );
    // The figures say they cover part of the set.
    let p = a.session().partial.clone().expect("marked partial");
    assert_eq!((p.scored, p.total), (partial.len(), 40));
    h.get_by_label_contains(&format!(
        "Partial results: {} of 40 parts were scored before the inspection stopped",
        partial.len()
    ));
    h.get_by_label_contains(&format!("among the {} of 40 scored", partial.len()));
    assert_ready(&h, "after cancelling the inspection");
    inspect_again(&mut h);
    assert_same(&scores(app(&h)), &full, "inspecting again");
    assert!(app(&h).session().partial.is_none());
    assert!(h.query_by_label_contains("Partial results").is_none());
}

#[test]
fn running_out_of_memory_in_training_or_scoring_is_reported_and_the_model_kept() {
    out_of_memory_in_training_keeps_the_model(None);
}

#[test]
fn running_out_of_memory_while_patchcore_trains_keeps_the_model() {
    out_of_memory_in_training_keeps_the_model(Some(common::tiny_patchcore().into()));
}

#[test]
fn running_out_of_memory_while_cs_flow_trains_keeps_the_model() {
    out_of_memory_in_training_keeps_the_model(Some(common::tiny_cs_flow().into()));
}

/// `config`: the detector to train instead of the tests' tiny DifferNet.
fn out_of_memory_in_training_keeps_the_model(
    config: Option<differnet::core::config::DetectorConfig>,
) {
    // A flow (DifferNet, CS-Flow) plots its training loss; a PatchCore has none.
    let flow = config
        .as_ref()
        .is_none_or(|c| c.loss_schedule(16).is_some());
    let dir = tempfile::tempdir().unwrap();
    mvtec_set(dir.path());
    let training_oom = InjectedFault::new(FaultKind::OutOfMemoryWhileTraining);
    let mut opts = options(Some(dir.path()));
    if let Some(config) = config {
        opts.config = Some(config);
    }
    opts.worker.fault = Some(training_oom.clone());
    let mut h = harness(opts);
    h.run_ok();
    train_and_inspect_expecting(&mut h, flow);
    let model = app(&h).session().model.clone().unwrap();
    let before = scores(app(&h));

    // libtorch fails to allocate once the next training is at work.
    training_oom.arm();
    h.get_by_label("Train").click();
    let error = step_until_error(&mut h, "running out of memory while training");
    assert!(!training_oom.is_armed(), "the fault struck");
    assert!(
        error.starts_with("training failed: out of memory (DefaultCPUAllocator"),
        "{error}"
    );
    assert!(error.contains("the model is kept"), "{error}");
    assert_eq!(error.lines().count(), 1, "{error}");
    step_until_idle(&mut h, "the failed training");
    h.get_by_label_contains("training failed: out of memory");
    assert_ready(&h, "after the failed training");
    let a = app(&h);
    assert_eq!(
        a.session().model.as_ref().unwrap().train_secs,
        model.train_secs
    );
    assert_same(&scores(a), &before, "the results are kept");
    h.get_by_label("Dismiss").click();
    h.run_steps(2);
    assert!(app(&h).errors().is_empty());

    // The kept model still scores, identically.
    inspect_again(&mut h);
    assert!(app(&h).errors().is_empty(), "{:?}", app(&h).errors());
    assert_same(&scores(app(&h)), &before, "the kept model");
}

#[test]
fn running_out_of_memory_in_a_scoring_lane_is_reported_and_the_next_inspection_works() {
    let dir = tempfile::tempdir().unwrap();
    mvtec_set(dir.path());
    let scoring_oom = InjectedFault::new(FaultKind::OutOfMemoryWhileScoring);
    let mut opts = options(Some(dir.path()));
    opts.worker.fault = Some(scoring_oom.clone());
    let mut h = harness(opts);
    h.run_ok();
    train_and_inspect(&mut h);
    let before = scores(app(&h));

    scoring_oom.arm();
    h.get_by_label("Inspect again").click();
    let error = step_until_error(&mut h, "running out of memory while scoring");
    assert!(
        error.starts_with("inspecting parts failed: out of memory"),
        "{error}"
    );
    step_until_idle(&mut h, "the failed inspection");
    assert_ready(&h, "after the failed inspection");
    assert!(app(&h).session().model.is_some());
    h.get_by_label("Dismiss").click();
    h.run_steps(2);

    inspect_again(&mut h);
    assert_same(&scores(app(&h)), &before, "inspecting again");
}

#[test]
fn a_worker_that_dies_is_reported_and_can_be_restarted() {
    let dir = tempfile::tempdir().unwrap();
    mvtec_set(dir.path());
    let dies = InjectedFault::new(FaultKind::WorkerPanics);
    let mut opts = options(Some(dir.path()));
    opts.worker.fault = Some(dies.clone());
    let mut h = harness(opts);
    h.run_ok();
    train_and_inspect(&mut h);
    let before = scores(app(&h));

    // The worker thread panics outside any job once it has saved the model.
    dies.arm();
    let saved = dir.path().join("kept.differnet");
    h.state_mut()
        .as_mut()
        .unwrap()
        .apply(AppCommand::SaveModel(saved.clone()));
    let started = Instant::now();
    while h.query_by_label("Restart worker").is_none() {
        h.step();
        assert!(
            started.elapsed() < TIMEOUT,
            "the dead worker went unnoticed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    h.get_by_label_contains("The engine stopped (the worker crashed: injected fault");
    assert!(saved.is_file(), "the job before the crash finished");
    assert!(!app(&h).is_busy(), "a dead worker's jobs are dropped");
    assert_same(&scores(app(&h)), &before, "the results stay on screen");
    assert!(
        h.get_by_label("Train").accesskit_node().is_disabled(),
        "no job can be sent to a dead worker"
    );

    h.get_by_label("Restart worker").click();
    h.run_steps(2);
    assert!(h.query_by_label("Restart worker").is_none());
    assert_eq!(
        app(&h).status(),
        Some("Worker restarted: train or load a model again.")
    );
    assert!(app(&h).session().model.is_none());
    train_and_inspect(&mut h);
    assert_eq!(scores(app(&h)).len(), 10);
    // The model saved before the crash loads into the new worker.
    h.state_mut()
        .as_mut()
        .unwrap()
        .apply(AppCommand::LoadModel(saved));
    step_until(&mut h, "the saved model's results", |a| {
        a.session()
            .model_source
            .as_deref()
            .is_some_and(|s| s.starts_with("loaded from"))
            && !a.is_busy()
    });
    assert_same(
        &scores(app(&h)),
        &before,
        "the model saved before the crash",
    );
}
