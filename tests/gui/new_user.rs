//! What a new user met in the window, round 2: numbers on the score axis and counts on a
//! hovered bar at 1024 px, a part called good that adds to training and takes nothing
//! out, a comparison that waits for the re-inspection, two rows of the gallery under a
//! banner, redo, short names with one tooltip, the Line view's folders, and which parts
//! the model was trained on in the CSV.

use super::*;
use differnet::core::training_set::RoleChoice;
use egui::{Key, Modifiers};
use egui_kittest::kittest::NodeT;

/// The small window the workstation must work in.
const SMALL: egui::Vec2 = egui::vec2(1024.0, 700.0);

/// The MVTec set opened at `size` with 8 good images to train on and 4 held out (of 16:
/// four are left unused, so a part called good could push one out).
fn opened(size: egui::Vec2) -> (tempfile::TempDir, Harness<'static, App>) {
    opened_with(size, 8)
}

/// The text of the hover tooltip (or any label) starting with `prefix`, if one is shown.
fn label_with(h: &Harness<'_, App>, prefix: &str) -> Option<String> {
    h.query_by_label_contains(prefix).map(|n| text_of(&n))
}

/// A node's text: a label's is its value, a button's its label.
fn text_of(n: &egui_kittest::Node<'_>) -> String {
    n.value()
        .or_else(|| n.accesskit_node().label())
        .unwrap_or_default()
}

/// Groups of text columns (pixels far from the background) in a strip of `image` from
/// `top` to `bottom` between `left` and `right`, separated by gaps wider than `gap`
/// pixels: one per label.
fn text_groups(
    image: &image::RgbaImage,
    (left, right): (u32, u32),
    (top, bottom): (u32, u32),
    gap: u32,
) -> usize {
    let background = image.get_pixel(left, top).0;
    let differs = |p: [u8; 4]| (0..3).any(|c| p[c].abs_diff(background[c]) > 60);
    let mut groups = 0;
    let mut since_text = u32::MAX;
    for x in left..right {
        let text = (top..bottom).any(|y| differs(image.get_pixel(x, y).0));
        if text {
            if since_text > gap {
                groups += 1;
            }
            since_text = 0;
        } else {
            since_text = since_text.saturating_add(1);
        }
    }
    groups
}

#[test]
fn at_1024_the_score_axis_has_numbers_and_a_hovered_bar_its_counts() {
    let (dir, mut h) = opened(SMALL);
    train_and_inspect(&mut h);
    h.run_steps(2);
    let plot = h
        .get_by_label("Score histogram with threshold lines")
        .rect();
    // The tick labels sit in the row right under the plot: several numbers, each apart
    // from the next (without them only the axis name is drawn, as one group of words).
    let image = h.render().expect("render");
    let scale = image.width() as f32 / SMALL.x;
    let px = |v: f32| (v * scale) as u32;
    let groups = text_groups(
        &image,
        (px(plot.left()), px(plot.right())),
        (px(plot.bottom() + 1.0), px(plot.bottom() + 15.0)),
        px(12.0),
    );
    assert!(
        groups >= 3,
        "{groups} labels under a plot {} wide",
        plot.width()
    );

    // Hovering along the plot finds a bar, which says its scores and its counts of good
    // and defective parts (tooltips at once, to sweep the plot quickly).
    h.ctx.all_styles_mut(|s| {
        s.interaction.tooltip_delay = 0.0;
        s.interaction.show_tooltips_only_when_still = false;
    });
    let mut said = None;
    let mut x = plot.left() + 2.0;
    while x < plot.right() && said.is_none() {
        h.hover_at(egui::pos2(x, plot.bottom() - 5.0));
        h.run_steps(2);
        said = h
            .query_all_by_label_contains("scores ")
            .map(|n| text_of(&n))
            .find(|t| t.starts_with("scores "));
        x += 3.0;
    }
    let said = said.expect("a tooltip over some bar");
    let counts = said.lines().nth(1).unwrap_or_default().to_owned();
    assert!(
        counts.contains(" good") && counts.contains(" defective"),
        "{said}"
    );
    let total: usize = counts
        .split(", ")
        .map(|c| c.split(' ').next().unwrap().parse::<usize>().unwrap())
        .sum();
    assert!(total > 0, "a bar with parts: {said}");

    // A status too long for the top bar at 1024 px is shortened, and whole on hover, once.
    let folder = dir.path().join("a-long-folder-name".repeat(8));
    std::fs::create_dir_all(&folder).unwrap();
    apply(&mut h, AppCommand::ExportCsv(folder.join("parts.csv")));
    let long = app(&h).status().unwrap().to_owned();
    assert!(long.starts_with("Wrote 10 parts to"), "{long}");
    h.remove_cursor();
    h.run_steps(2);
    let status = h.get_by_label(&long).rect();
    assert!(
        status.right() <= SMALL.x,
        "the status stays in the window: {status:?}"
    );
    h.hover_at(status.center());
    h.run_steps(40);
    assert_eq!(
        h.query_all_by_label(&long).count(),
        2,
        "the status line and one tooltip"
    );
}

#[test]
fn a_part_called_good_is_added_the_comparison_waits_and_the_csv_says_so() {
    let (dir, mut h) = opened(SMALL);
    train_and_inspect(&mut h);
    let before = app(&h).session().data.as_ref().unwrap().roles(8, Some(4));
    assert_eq!((before.train.len(), before.held_out.len()), (8, 4));
    let part = app(&h)
        .session()
        .parts
        .iter()
        .filter(|p| p.label.is_defect() == Some(false))
        .max_by(|x, y| x.score.total_cmp(&y.score))
        .unwrap()
        .clone();
    apply(&mut h, AppCommand::MarkGood(part.path.clone()));
    // Added on top: nine to train on, none of the eight taken out.
    let roles = app(&h).session().data.as_ref().unwrap().roles(8, Some(4));
    assert_eq!((roles.train.len(), roles.held_out.len()), (9, 4));
    assert!(before.train.iter().all(|p| roles.train.contains(p)));
    let banner =
        label_with(&h, "The good images changed since this model was trained").expect("the banner");
    assert!(banner.contains("1 to train on added"), "{banner}");
    assert!(!banner.contains("taken out"), "{banner}");
    h.get_by_label_contains("1 part called good, on top of the 8 above");

    // At 1024x700 with the banner shown, two whole rows of the gallery are in view.
    two_rows_in_view(&h);

    // Retrain: while the parts are inspected again, no comparison is shown; then one is.
    h.get_by_label("Retrain").click();
    step_until(&mut h, "retraining to start", |a| a.is_busy());
    let mut saw_inspection = false;
    let started = Instant::now();
    while app(&h).is_busy() {
        h.step();
        if app(&h).is_busy() {
            saw_inspection |= app(&h)
                .session()
                .progress
                .as_ref()
                .is_some_and(|p| p.phase == differnet::core::protocol::Phase::Scoring);
            assert!(
                h.query_by_label_contains("Compared with the previous model")
                    .is_none(),
                "the comparison is shown before the inspection has finished"
            );
        }
        assert!(started.elapsed() < TIMEOUT, "timed out");
        std::thread::sleep(Duration::from_millis(10));
    }
    h.run_steps(3);
    assert!(saw_inspection, "the parts were inspected again");
    h.get_by_label_contains("Compared with the previous model:");
    two_rows_in_view(&h);

    // The CSV says which part the model was trained on; the others have no role.
    let csv = dir.path().join("parts.csv");
    apply(&mut h, AppCommand::ExportCsv(csv.clone()));
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let header = csv_fields(lines.next().unwrap());
    let role = header
        .iter()
        .position(|c| c == "model_role")
        .expect("a model_role column");
    let path = header.iter().position(|c| c == "path").unwrap();
    let mut roles = Vec::new();
    for line in lines {
        let f = csv_fields(line);
        roles.push((PathBuf::from(&f[path]), f[role].clone()));
    }
    assert_eq!(roles.len(), 10);
    for (p, r) in &roles {
        let expected = if *p == part.path { "trained_on" } else { "" };
        assert_eq!(r, expected, "{}", p.display());
    }
}

/// At least two whole rows of gallery tiles lie inside the window.
fn two_rows_in_view(h: &Harness<'_, App>) {
    let window = egui::Rect::from_min_size(egui::Pos2::ZERO, SMALL);
    let mut rows: Vec<f32> = h
        .query_all_by_role(egui::Role::Button)
        .filter(|n| {
            n.accesskit_node()
                .label()
                .is_some_and(|l| l.starts_with("Open ") && l.contains('/'))
        })
        .map(|n| n.rect())
        .filter(|r| window.contains_rect(*r))
        .map(|r| r.top().round())
        .collect();
    rows.sort_by(f32::total_cmp);
    rows.dedup();
    assert!(rows.len() >= 2, "whole rows of tiles in view at {rows:?}");
}

#[test]
fn undo_and_redo_with_both_keys_and_a_status_line_that_follows() {
    let (_dir, mut h) = opened(SMALL);
    let image = app(&h).session().data.as_ref().unwrap().good[0].clone();
    let name = image.file_name().unwrap().to_string_lossy().into_owned();
    apply(
        &mut h,
        AppCommand::ChooseRole {
            path: image.clone(),
            choice: Some(RoleChoice::Exclude),
        },
    );
    let status = |h: &Harness<'_, App>| app(h).status().unwrap_or_default().to_owned();
    assert!(
        status(&h).starts_with(&format!("Done: exclude {name}")),
        "{}",
        status(&h)
    );
    let excluded = |h: &Harness<'_, App>| {
        app(h).session().data.as_ref().unwrap().choices.get(&image) == Some(&RoleChoice::Exclude)
    };
    let ctrl = Modifiers::COMMAND;
    let ctrl_shift = Modifiers::COMMAND | Modifiers::SHIFT;
    for redo in [(ctrl_shift, Key::Z), (ctrl, Key::Y)] {
        h.key_press_modifiers(ctrl, Key::Z);
        h.run_steps(2);
        assert!(!excluded(&h), "undone");
        assert!(status(&h).starts_with("Undid: exclude"), "{}", status(&h));
        h.get_by_label(&format!("Redo exclude {name}"));
        h.key_press_modifiers(redo.0, redo.1);
        h.run_steps(2);
        assert!(excluded(&h), "redone with {redo:?}");
        assert!(status(&h).starts_with("Redid: exclude"), "{}", status(&h));
    }
    // A new edit: the status says it, and there is nothing left to redo.
    h.key_press_modifiers(ctrl, Key::Z);
    h.run_steps(2);
    apply(
        &mut h,
        AppCommand::ChooseRole {
            path: image.clone(),
            choice: Some(RoleChoice::HeldOut),
        },
    );
    assert!(
        status(&h).starts_with(&format!("Done: hold out {name}")),
        "{}",
        status(&h)
    );
    assert!(app(&h).session().redo.is_empty());
    assert!(h.query_by_label_contains("Redo ").is_none());
    h.key_press_modifiers(ctrl_shift, Key::Z);
    h.run_steps(2);
    assert_eq!(
        app(&h).session().data.as_ref().unwrap().choices.get(&image),
        Some(&RoleChoice::HeldOut),
        "nothing to redo after a new edit"
    );
}

#[test]
fn the_detector_has_a_short_name_and_each_tooltip_shows_once() {
    let (_dir, mut h) = opened(SMALL);
    h.state_mut().as_mut().unwrap().state_mut().detector =
        differnet::core::config::DetectorKind::Fusion;
    h.run_steps(2);
    assert!(
        h.query_by_label_contains("Default (").is_none(),
        "the settings box names the detector, not its settings"
    );
    let settings = h.get_by_label("Training settings").rect();
    h.hover_at(settings.center());
    // Past the tooltip delay (half a second of frames).
    h.run_steps(40);
    let tips: Vec<String> = h
        .query_all_by_label_contains("Fusion of two PatchCores's settings: fusion (mean) of 2")
        .map(|n| text_of(&n))
        .collect();
    assert_eq!(tips.len(), 1, "{tips:?}");
}

#[test]
fn the_line_view_browses_for_its_folders() {
    let (_dir, mut h) = opened(SMALL);
    h.get_by_label("4. Line").click();
    h.run_steps(2);
    let browse: Vec<egui::Rect> = h.query_all_by_label("Browse…").map(|n| n.rect()).collect();
    assert_eq!(browse.len(), 2, "one for each folder");
    // Each beside its field (a field is labelled by its name).
    let camera = h.get_by_label("Camera folder").rect();
    let sorted = h.get_by_label("Sorted into").rect();
    for (button, field) in browse.iter().zip([camera, sorted]) {
        assert!(
            (button.center().y - field.center().y).abs() < 2.0 && button.left() >= field.right(),
            "{button:?} beside {field:?}"
        );
    }
    // A folder chosen in the dialog fills its field.
    apply(
        &mut h,
        AppCommand::SetLineFolder {
            which: differnet::gui::command::LineFolder::Sorted,
            path: PathBuf::from("/data/sorted"),
        },
    );
    assert_eq!(
        app(&h)
            .line()
            .folder(differnet::gui::command::LineFolder::Sorted),
        "/data/sorted"
    );
}

#[test]
fn the_images_to_train_on_are_chosen_by_how_they_look_and_the_draw_is_a_setting() {
    let (_dir, mut h) = opened(SMALL);
    // 16 good images, 8 to train on and 4 held out: the window asks which 8.
    step_until(&mut h, "the training images to be chosen", |a| {
        a.session()
            .data
            .as_ref()
            .is_some_and(differnet::gui::workset::Workset::has_preferred_order)
    });
    h.run_steps(2);
    h.get_by_label_contains("The ones to train on are chosen by how they look.");
    let data = app(&h).session().data.as_ref().unwrap().clone();
    let chosen = data.roles(8, Some(4));
    let drawn =
        differnet::core::training_set::assign_roles(&data.good, &data.choices, 8, Some(4), 0);
    // The held-out images are the seeded draw's; the training ones come from the order.
    assert_eq!(chosen.held_out, drawn.held_out);
    assert_eq!(chosen.train.len(), 8);
    // The user can still choose by hand, as before.
    let unused = chosen.unused[0].clone();
    apply(
        &mut h,
        AppCommand::ChooseRole {
            path: unused.clone(),
            choice: Some(RoleChoice::Train),
        },
    );
    let roles = app(&h).session().data.as_ref().unwrap().roles(8, Some(4));
    assert!(roles.train.contains(&unused));
    apply(&mut h, AppCommand::Undo);
    // Off: the seeded draw.
    h.get_by_label("Choose the ones to train on by how they look")
        .click();
    h.run_steps(3);
    let data = app(&h).session().data.as_ref().unwrap();
    assert!(!data.has_preferred_order());
    assert_eq!(data.roles(8, Some(4)), drawn);
    assert!(!app(&h).is_busy(), "no choosing job when it is off");
}
