//! Decisions an engineer can trust: the reject line says what it will do to good parts
//! and how sure that is, lines are set by rates (never by F1), curves and defect types
//! are shown, and a heatmap never outlives the model that made it.

use super::*;

/// The MVTec set with `held_out` good images kept from training.
fn trained(held_out: usize) -> (tempfile::TempDir, Harness<'static, App>) {
    let dir = tempfile::tempdir().unwrap();
    mvtec_set(dir.path());
    let mut opts = options(Some(dir.path()));
    opts.state = Some(differnet::gui::state::State {
        val_count: Some(held_out),
        ..Default::default()
    });
    let mut h = harness(opts);
    h.run_ok();
    train_and_inspect(&mut h);
    (dir, h)
}

#[test]
fn the_line_says_what_it_does_to_good_parts_and_how_sure_that_is() {
    let (_dir, mut h) = trained(6);
    let a = app(&h);
    let model = a.session().model.as_ref().unwrap();
    assert_eq!(model.validation.as_ref().unwrap().count, 6);
    // The default line comes from the fit, and the window predicts its rate with a range.
    let reject = a.session().thresholds.unwrap().reject;
    assert_eq!(Some(reject), model.threshold);
    let p = a.session().predict(reject).expect("a prediction");
    assert!(p.low <= p.rate && p.rate <= p.high, "{p:?}");
    let text = label_starting(&h, "Good parts rejected at this line: about");
    assert!(text.contains("90 % sure"), "{text}");
    assert!(
        text.contains("by a fit to 6 held-out good images"),
        "{text}"
    );
    // One statement: the labelled good parts inspected are counted in it too.
    assert!(text.contains("good parts inspected here"), "{text}");
    // Six images cannot check 1 % by counting: the window says so.
    h.get_by_label_contains("a target of 1 % rests on the fitted curve alone: counting 6 held-out");
    // A 50 % target can be shown by counting: no warning.
    h.state_mut()
        .as_mut()
        .unwrap()
        .state_mut()
        .target_false_reject_pct = 50.0;
    h.run_steps(2);
    assert!(
        h.query_by_label_contains("rests on the fitted curve alone")
            .is_none(),
        "no warning for a rate six images can show"
    );
    // "Set by good parts" puts the line where the fit predicts at most 50 %.
    h.get_by_label("Set by good parts").click();
    h.run_steps(3);
    let line = app(&h).session().thresholds.unwrap().reject;
    assert!(
        line < reject,
        "a higher rate lowers the line: {reject} -> {line}"
    );
    assert!(app(&h).session().predict(line).unwrap().rate <= 0.5);

    // Weighing: an escape as costly as 1000 false rejects catches every defect.
    {
        let state = h.state_mut().as_mut().unwrap().state_mut();
        state.escape_cost = 1000.0;
        state.defect_share_pct = 10.0;
    }
    h.run_steps(1);
    h.get_by_label("Set by cost").click();
    h.run_steps(3);
    assert_eq!(app(&h).session().counts().unwrap().escapes, 0);
    // And with cheap escapes and rare defects no good part is rejected.
    h.state_mut().as_mut().unwrap().state_mut().escape_cost = 0.1;
    h.state_mut().as_mut().unwrap().state_mut().defect_share_pct = 0.01;
    h.run_steps(1);
    h.get_by_label("Set by cost").click();
    h.run_steps(3);
    assert_eq!(app(&h).session().counts().unwrap().false_rejects, 0);
    // There is no F1 button any more.
    assert!(h.query_by_label_contains("max F1").is_none());

    // The curves, with the lines marked, and what the line catches of each defect type.
    catch_all_defects(&mut h);
    h.get_by_label("Curves and defect types").click();
    h.run_steps(2);
    h.get_by_label("ROC curve");
    h.get_by_label("Precision-recall curve");
    h.get_by_label("Caught at the reject line, by defect type");
    h.get_by_label("5 of 5");
    h.check_accessibility();
}

#[test]
fn a_heatmap_goes_with_the_model_that_made_it() {
    let (dir, mut h) = trained(6);
    let opened = open_rejected_scratch(&mut h);
    let file = dir.path().join("model.differnet");
    h.state_mut()
        .as_mut()
        .unwrap()
        .apply(AppCommand::SaveModel(file.clone()));
    step_until(&mut h, "the model file", |a| !a.is_busy());
    // Another model (here the same file, loaded again) scores the parts anew: the open part
    // shows no heatmap until the new model made one, which it then does by itself.
    h.state_mut()
        .as_mut()
        .unwrap()
        .apply(AppCommand::LoadModel(file));
    step_until(&mut h, "the model to load", |a| {
        a.session().model_source.as_deref() == Some("loaded from model.differnet")
    });
    let started = Instant::now();
    loop {
        h.step();
        let a = app(&h);
        let has_heat = a
            .session()
            .part(&opened)
            .is_some_and(|p| p.heatmap.is_some());
        assert!(
            has_heat || !a.part_view().has_heat_texture(),
            "the old model's heatmap is still drawn"
        );
        if !a.is_busy() && a.session().parts.len() == 10 {
            break;
        }
        assert!(started.elapsed() < TIMEOUT, "timed out");
    }
    step_until(&mut h, "the new model's heatmap of the open part", |a| {
        a.session()
            .part(&opened)
            .is_some_and(|p| p.heatmap.is_some())
            && a.part_view().has_heat_texture()
    });
    assert!(h.query_by_label("Show where the defect is").is_none());
}

#[test]
fn a_model_used_on_parts_unlike_its_training_images_says_so() {
    let (dir, mut h) = trained(6);
    // Trained here: the model records what on.
    let record = app(&h)
        .session()
        .model
        .as_ref()
        .unwrap()
        .trained_on
        .clone()
        .expect("a training record");
    assert_eq!(record.train_files.len(), 10);
    assert_eq!(record.validation_files.len(), 6);
    assert_eq!(record.image_sizes, vec![(96, 96, 10)]);
    h.get_by_label_contains("Trained on 10 images of 96×96 from ");
    h.get_by_label_contains(&format!("(id {})", record.id));
    // Its own test parts raise no warning.
    assert_eq!(app(&h).session().model_warning, None);

    // Photos of a cat and of coffee: another size, and far from the textures.
    let other = dir.path().join("photos");
    std::fs::create_dir_all(&other).unwrap();
    for name in ["chelsea.png", "coffee.png"] {
        std::fs::copy(common::test_data(name), other.join(name)).unwrap();
    }
    h.state_mut()
        .as_mut()
        .unwrap()
        .apply(AppCommand::OpenData(other));
    step_until(&mut h, "the photos scored", |a| {
        !a.is_busy() && a.session().parts.len() == 2
    });
    h.run_steps(2);
    let warning = app(&h).session().model_warning.clone().expect("a warning");
    assert!(
        warning.contains("these parts are 451×300 pixels, its training images 96×96"),
        "{warning}"
    );
    h.get_by_label_contains("These parts look unlike the ones this model knows");

    // A part far from good all over is shown against itself, not painted one colour.
    let photo = app(&h).session().parts[0].path.clone();
    h.state_mut()
        .as_mut()
        .unwrap()
        .apply(AppCommand::OpenPart(photo));
    step_until(&mut h, "the photo's heatmap", |a| {
        a.part_view().has_heat_texture()
    });
    h.run_steps(2);
    assert!(app(&h).part_view().auto_contrast());
    h.get_by_label_contains("This part is far from good all over");
}

#[test]
fn one_progress_bar_for_the_whole_training_with_counts_that_agree() {
    one_bar_for_the_whole_training(None);
}

/// The default detector, a fusion, trains its members one after the other and then
/// scores the held-out images with both: the bar was full while that last phase ran.
#[test]
fn one_progress_bar_for_a_fusion_reaches_its_end_with_the_job() {
    let steps = one_bar_for_the_whole_training(Some(common::tiny_fusion().into()));
    assert!(
        steps.iter().any(|s| s == "training detector 2 of 2"),
        "{steps:?}"
    );
}

/// Trains with `config` (the tiny DifferNet by default) and 6 held-out images, and checks
/// the bar: it never goes back, is short of its end while a phase still has units to do,
/// and counts the held-out images as 6. Returns the step texts seen.
fn one_bar_for_the_whole_training(
    config: Option<differnet::core::config::DetectorConfig>,
) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    mvtec_set(dir.path());
    let mut opts = options(Some(dir.path()));
    if config.is_some() {
        opts.config = config;
    }
    opts.state = Some(differnet::gui::state::State {
        val_count: Some(6),
        ..Default::default()
    });
    let mut h = harness(opts);
    h.run_ok();
    h.get_by_label("Train").click();
    step_until(&mut h, "training to start", |a| a.is_busy());
    let (mut shown, mut steps) = (Vec::new(), Vec::new());
    let started = Instant::now();
    while app(&h).session().model.is_none() {
        h.step();
        if let Some(p) = &app(&h).session().progress
            && p.phase != differnet::core::protocol::Phase::Scoring
        {
            shown.push(p.job_fraction);
            steps.push(p.step_text());
            // Units left in this phase: the job is not done, and the time left says so.
            if p.done < p.total {
                assert!(
                    p.job_fraction < 0.99,
                    "a full bar at {}: {shown:?}",
                    p.step_text()
                );
            }
        }
        assert!(started.elapsed() < TIMEOUT, "timed out");
    }
    assert!(shown.len() > 3, "the bar was seen: {steps:?}");
    assert!(
        shown.windows(2).all(|w| w[1] >= w[0]),
        "the bar went back: {shown:?} {steps:?}"
    );
    assert!(
        steps.iter().any(|s| s.contains("held-out")),
        "the held-out images are counted: {steps:?}"
    );
    for step in steps.iter().filter(|s| s.contains("held-out")) {
        assert!(step.ends_with("/6"), "{step}");
    }
    assert!(
        !steps.iter().any(|s| s.starts_with("validating")),
        "{steps:?}"
    );
    steps
}

#[test]
fn a_part_with_a_ground_truth_mask_shows_its_outline() {
    let dir = tempfile::tempdir().unwrap();
    mvtec_set(dir.path());
    // Masks for the scratched test images, as MVTec AD names them.
    let masks = dir.path().join("ground_truth/scratch");
    std::fs::create_dir_all(&masks).unwrap();
    for seed in 300..305u64 {
        let on = common::scratch_mask(seed, 2);
        let mask = image::GrayImage::from_fn(96, 96, |x, y| {
            image::Luma([if on[(y * 96 + x) as usize] { 255 } else { 0 }])
        });
        mask.save(masks.join(format!("bad_{seed}_mask.png")))
            .unwrap();
    }
    let mut opts = options(Some(dir.path()));
    opts.state = Some(differnet::gui::state::State {
        val_count: Some(6),
        ..Default::default()
    });
    let mut h = harness(opts);
    h.run_ok();
    train_and_inspect(&mut h);
    open_rejected_scratch(&mut h);
    step_until(&mut h, "the outline", |a| a.part_view().has_mask_outline());
    // Drawn in white with a dark edge over the part (the textures are mid grey, the
    // heat is jet's colours, neither is near white or near black), gone when unticked.
    let two_tone = |h: &mut Harness<'_, App>| {
        let area = h.get_by_label_contains("Part image").rect();
        let image = h.render().expect("render");
        let scale = image.width() as f32 / 1500.0;
        let (mut white, mut dark) = (0, 0);
        for y in (area.top() * scale) as u32..(area.bottom() * scale) as u32 {
            for x in (area.left() * scale) as u32..(area.right() * scale) as u32 {
                let [r, g, b, _] = image.get_pixel(x, y).0;
                white += usize::from(r > 235 && g > 235 && b > 235);
                dark += usize::from(r < 30 && g < 30 && b < 30);
            }
        }
        (white, dark)
    };
    let with = two_tone(&mut h);
    h.get_by_label("Outline the known defect").click();
    h.run_steps(2);
    let without = two_tone(&mut h);
    // The window around the image is dark too: the outline's edge adds to it.
    assert!(
        with.0 > 50 && without.0 * 10 < with.0 && with.1 > without.1 + 50,
        "white and dark pixels: {with:?} with the outline, {without:?} without"
    );
}

/// The default heatmap is drawn against the reject line: a rejected part shows where, at
/// or above the line's colour; an accepted good part has no pixel that hot.
#[test]
fn a_rejected_part_shows_where_at_the_lines_colour_and_an_accepted_one_stays_calm() {
    use differnet::core::heatmap_image::HeatScale;
    let dir = tempfile::tempdir().unwrap();
    mvtec_set(dir.path());
    let mut opts = options(Some(dir.path()));
    opts.config = Some(common::tiny_patchcore().into());
    let mut h = harness(opts);
    h.run_ok();
    train_and_inspect_expecting(&mut h, false);
    let rejected = open_rejected_scratch(&mut h);
    let a = app(&h);
    let reject = a.session().thresholds.unwrap().reject;
    assert!(a.session().part(&rejected).unwrap().score >= reject);
    let shown = a.part_view().shown_heat().expect("the part's heat");
    assert!(
        matches!(shown.scale, HeatScale::Line(_)),
        "{:?}",
        shown.scale
    );
    // Pixels at or above the reject line's colour (LINE_LEVEL of the colours, on the log
    // scale from 1 to vmax that the layer draws).
    let line = shown.vmax.powf(differnet::core::heat_layer::LINE_LEVEL);
    let hot = shown
        .values
        .values
        .iter()
        .filter(|v| **v >= line * 0.999)
        .count();
    assert!(hot > 0, "a rejected part with nothing at the line's colour");
    assert!(shown.hot_area.is_some_and(|a| a > 0));

    // An accepted good part: nothing as hot as the line.
    let good = a
        .session()
        .parts
        .iter()
        .find(|p| p.label.is_defect() == Some(false) && p.score < reject)
        .expect("an accepted good part")
        .path
        .clone();
    h.state_mut()
        .as_mut()
        .unwrap()
        .apply(AppCommand::OpenPart(good.clone()));
    step_until(&mut h, "the good part's heatmap", |a| {
        a.part_view().opened() == Some(good.as_path())
            && a.session().part(&good).is_some_and(|p| p.heatmap.is_some())
            && a.part_view().has_heat_texture()
    });
    h.run_steps(2);
    let shown = app(&h).part_view().shown_heat().expect("the part's heat");
    assert_eq!(shown.hot_area, Some(0));
}
