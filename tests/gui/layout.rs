//! The window on a small laptop screen (1024x700): every control of every panel can be
//! reached (scrolled into view, not cut off at the window's edge), a gallery row shows
//! under the Decide panel, and an opened part has room.

use super::*;
use egui_kittest::kittest::NodeT;

const SMALL: egui::Vec2 = egui::vec2(1024.0, 700.0);

/// Scrolls the control into view and checks it lies inside the window.
fn reachable(h: &mut Harness<'_, App>, role: Option<egui::Role>, label: &str) {
    let node = match role {
        Some(r) => h.get_by_role_and_label(r, label),
        None => h.get_by_label(label),
    };
    node.scroll_to_me();
    h.run_steps(3);
    let node = match role {
        Some(r) => h.get_by_role_and_label(r, label),
        None => h.get_by_label(label),
    };
    let rect = node.rect();
    let window = egui::Rect::from_min_size(egui::Pos2::ZERO, SMALL);
    assert!(
        window.expand(0.5).contains_rect(rect),
        "\"{label}\" at {rect:?} is not inside the {SMALL:?} window"
    );
}

#[test]
fn every_control_is_reachable_at_1024_by_700() {
    let dir = tempfile::tempdir().unwrap();
    mvtec_set(dir.path());
    let mut h = harness(options(Some(dir.path())));
    h.set_size(SMALL);
    h.run_ok();
    train_and_inspect(&mut h);

    // With the part closed, the first row of the gallery is in view under the Decide panel.
    let worst = {
        let a = app(&h);
        let p = a
            .session()
            .parts
            .iter()
            .max_by(|x, y| x.score.total_cmp(&y.score))
            .unwrap();
        format!(
            "Open {}/{}",
            p.path
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy(),
            p.path.file_name().unwrap().to_string_lossy()
        )
    };
    // The tile's whole name carries its score and call.
    let worst = h
        .get_by_label_contains(&worst)
        .accesskit_node()
        .label()
        .expect("a named tile");
    let tile = h.get_by_label(&worst).rect();
    assert!(
        tile.bottom() <= SMALL.y,
        "the first gallery row is in view: {tile:?}"
    );

    use egui::Role::{Button, CheckBox, ComboBox, Slider, TextInput};
    let left = [
        (Some(Button), "Open folder…"),
        (Some(Button), "Add images…"),
        (Some(Button), "Close"),
        (Some(Slider), "good images to train on"),
        (Some(Slider), "held out to check"),
        (Some(Button), "See and choose them…"),
        (Some(ComboBox), "Detector"),
        (Some(ComboBox), "Training settings"),
        (Some(Button), "Train"),
        (Some(Button), "Inspect again"),
    ];
    let decide = [
        (Some(Slider), "Reject at score"),
        (Some(TextInput), "Reject at score"),
        (
            Some(CheckBox),
            "Review band (send borderline parts to a person)",
        ),
        (Some(Button), "Set by good parts"),
        (Some(Button), "Set by defects"),
        (Some(Button), "Set by cost"),
        (None, "Score histogram with threshold lines"),
    ];
    let gallery = [
        (None, "All"),
        (None, "Rejected"),
        (Some(ComboBox), "Sort"),
        (None, worst.as_str()),
    ];
    for (role, label) in left.iter().chain(&decide).chain(&gallery) {
        reachable(&mut h, *role, label);
    }

    // An opened part takes the gallery's place (no room beside it) with all its controls.
    h.get_by_label(&worst).click();
    h.run_steps(3);
    for (role, label) in [
        (Some(Button), "Previous"),
        (Some(Button), "Next"),
        (Some(CheckBox), "Show heatmap"),
        (Some(Slider), "Heatmap opacity"),
        (Some(ComboBox), "Colormap"),
        (Some(Slider), "Zoom"),
        (Some(Button), "This is good: train on it"),
    ] {
        reachable(&mut h, role, label);
    }
    let image = h.get_by_label_contains("Part image").rect();
    assert!(
        image.width() >= 500.0 && image.height() >= 300.0,
        "room for the part: {image:?}"
    );
    // Nothing moves when the colours, the opacity or the preset change.
    let train = h.get_by_label("Train").rect();
    for change in 0..3 {
        {
            let state = h.state_mut().as_mut().unwrap().state_mut();
            match change {
                0 => state.colormap = differnet::core::colormap::Colormap::ALL[1],
                1 => state.heat_opacity = 0.65,
                _ => state.preset = differnet::core::config::Preset::Paper,
            }
        }
        h.run_steps(3);
        assert_eq!(
            h.get_by_label_contains("Part image").rect(),
            image,
            "change {change}"
        );
        assert_eq!(h.get_by_label("Train").rect(), train, "change {change}");
    }
    h.key_press(egui::Key::Escape);
    h.run_steps(2);
    assert!(app(&h).part_view().opened().is_none());
    h.check_accessibility();
}

#[test]
fn the_top_bar_stays_one_row_at_1024_while_a_job_runs() {
    let dir = tempfile::tempdir().unwrap();
    mvtec_set(dir.path());
    // Long enough to be seen running with its progress bar and time left.
    let mut config = tiny_config();
    config.train.epochs = 400;
    let mut h = harness(AppOptions {
        config: Some(config.into()),
        ..options(Some(dir.path()))
    });
    h.set_size(SMALL);
    h.run_ok();
    h.get_by_role_and_label(egui::Role::Button, "Train").click();
    step_until(&mut h, "training with a time left", |a| {
        a.is_busy()
            && a.session()
                .progress
                .as_ref()
                .is_some_and(|p| p.eta_secs().is_some())
    });
    h.run_steps(2);
    let load = h.get_by_label("Load model…").rect();
    let stop = h.get_by_role_and_label(egui::Role::Button, "Stop").rect();
    let window = egui::Rect::from_min_size(egui::Pos2::ZERO, SMALL);
    assert!(
        window.contains_rect(stop),
        "Stop at {stop:?} is off the window"
    );
    assert!(
        (stop.center().y - load.center().y).abs() < load.height() / 2.0,
        "Stop ({stop:?}) is on another row than Load model ({load:?})"
    );
    h.get_by_role_and_label(egui::Role::Button, "Stop").click();
    step_until(&mut h, "the training to stop", |a| !a.is_busy());
}
