//! The real workstation binary opens a real window on an X server (Xvfb) and draws the
//! demo data set into it. The screenshot is kept in `target/window-screenshot.png`.

use std::path::Path;
use std::process::Command;

const SCREEN: (u32, u32) = (1600, 1000);

#[test]
fn the_workstation_opens_a_window_and_draws_the_demo_data() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let have_xvfb = Command::new("xvfb-run").arg("--help").output().is_ok();
    assert!(
        have_xvfb,
        "xvfb-run is missing: `make setup` installs it (Debian package xvfb)"
    );
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("shot.png");
    let output = Command::new("xvfb-run")
        .arg("-a")
        .arg("-s")
        .arg(format!("-screen 0 {}x{}x24", SCREEN.0, SCREEN.1))
        .arg(root.join("scripts/window_screenshot.sh"))
        .arg(&shot)
        .arg("8")
        .arg("--")
        .arg(root.join("assets/demo"))
        .env(
            "DIFFERNET_WORKSTATION",
            env!("CARGO_BIN_EXE_differnet-workstation"),
        )
        // Wait for the thumbnails (the drawn demo shows about 750 colours, the 500 checked
        // below with a margin), not only for the 8 s: on a busy machine they come later.
        .env("WINDOW_SHOT_MIN_COLOURS", "600")
        // Keep the user's remembered settings out of it, and ours out of theirs.
        .env("XDG_DATA_HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .env("HOME", dir.path())
        .output()
        .expect("run xvfb-run");
    assert!(
        output.status.success(),
        "the window did not come up: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let img = image::open(&shot).expect("screenshot").to_rgb8();
    let _ = std::fs::copy(&shot, root.join("target/window-screenshot.png"));
    assert_eq!(img.dimensions(), SCREEN);

    // Xvfb's root window is black: the workstation's window covers most of the screen.
    let total = f64::from(img.width() * img.height());
    let black = img.pixels().filter(|p| p.0 == [0, 0, 0]).count() as f64;
    assert!(
        black / total < 0.5,
        "{:.0}% of the screen is black",
        100.0 * black / total
    );

    // And it is not one flat colour: text, panels and the demo thumbnails are drawn.
    let mut counts = std::collections::HashMap::new();
    for p in img.pixels() {
        *counts.entry(p.0).or_insert(0usize) += 1;
    }
    let most = *counts.values().max().unwrap() as f64;
    assert!(
        most / total < 0.8,
        "one colour covers {:.0}% of the screen",
        100.0 * most / total
    );
    assert!(
        counts.len() > 500,
        "only {} colours on the screen",
        counts.len()
    );

    // The demo thumbnails are photographs: somewhere on the screen a block the size of a
    // small thumbnail has many colours and no dominant one (text and panels always have a
    // background colour covering a good part of any such block).
    let photo_like = (0..img.height() / 64).any(|by| {
        (0..img.width() / 64).any(|bx| {
            let mut block = std::collections::HashMap::new();
            for y in by * 64..by * 64 + 64 {
                for x in bx * 64..bx * 64 + 64 {
                    *block.entry(img.get_pixel(x, y).0).or_insert(0usize) += 1;
                }
            }
            let most = *block.values().max().unwrap();
            block.len() > 80 && most < 64 * 64 / 5
        })
    });
    assert!(photo_like, "no image thumbnail is visible on the screen");
}
