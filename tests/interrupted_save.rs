//! A process killed while it saves a model leaves the previous model file intact and
//! loadable. Real kills (SIGKILL) of the real command line, timed to land while the new
//! file is being written: the test watches for the save's temporary file and kills the
//! process at a different moment of the write each time.

mod common;

use differnet::engine::model_file::read_meta;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills per run; each lands at a different point of the write.
const KILLS: u64 = 8;

fn train_command(data: &Path, out: &Path, seed: u64) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_differnet"));
    c.args(["train", "--data"])
        .arg(data)
        .arg("--out")
        .arg(out)
        .args([
            "--detector",
            "differnet",
            "--preset",
            "fast",
            "--epochs",
            "1",
        ])
        .args(["--image-size", "64"])
        .args(["--rotations", "2", "--device", "cpu", "--json", "--seed"])
        .arg(seed.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// The save's temporary file in `dir`, once it exists.
fn temp_file(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let name = e.file_name().to_string_lossy().to_string();
        (name.starts_with('.') && name.ends_with(".tmp")).then(|| e.path())
    })
}

/// Waits for the child to start writing (or to finish), then kills it after `delay`.
/// Returns whether the kill landed during the save (the temporary file existed).
fn kill_during_save(mut child: Child, dir: &Path, delay: Duration) -> bool {
    let start = Instant::now();
    let mut saw_temp = false;
    while start.elapsed() < Duration::from_secs(120) {
        if temp_file(dir).is_some() {
            saw_temp = true;
            std::thread::sleep(delay);
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::yield_now();
    }
    let _ = child.kill();
    let _ = child.wait();
    saw_temp
}

#[test]
fn a_process_killed_while_saving_leaves_the_previous_model_intact() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("good");
    common::write_set(&data, "good", 0..4, false);
    let models = dir.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    let model = models.join("line-3.differnet");

    // The model the engineer already has.
    let status = train_command(&data, &model, 0).status().unwrap();
    assert!(status.success());
    let original = std::fs::read(&model).unwrap();
    let original_meta = read_meta(&model).unwrap();

    let mut landed = 0;
    for k in 0..KILLS {
        // Retrain over the same file and kill the process part way through the save.
        let child = train_command(&data, &model, 100 + k).spawn().unwrap();
        let delay = Duration::from_micros(k * k * 150);
        if kill_during_save(child, &models, delay) {
            landed += 1;
        }
        // Whatever the moment, the file is a whole model: the old one, or (when the
        // rename had already happened) a whole new one.
        let bytes = std::fs::read(&model).unwrap();
        let meta = read_meta(&model)
            .unwrap_or_else(|e| panic!("kill {k}: the model no longer loads: {e}"));
        if bytes == original {
            assert_eq!(meta.state.threshold, original_meta.state.threshold);
        } else {
            assert_ne!(meta.detector.seed(), original_meta.detector.seed());
        }
        // The temporary file of a killed save is not mistaken for a model.
        for e in std::fs::read_dir(&models).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            assert!(
                name == "line-3.differnet" || name.ends_with(".tmp"),
                "{name}"
            );
        }
    }
    assert!(
        landed >= KILLS / 2,
        "only {landed} of {KILLS} kills landed during a save"
    );
}
