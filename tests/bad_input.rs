//! Broken and odd image files, at two levels: the loader and the file lister one case at
//! a time, then the `differnet` command line scoring a folder of all of them.
//!
//! Odd formats a camera or an editor may produce (16-bit PNG, CMYK JPEG, grey + alpha,
//! a single pixel) must load as RGB and get a score. Everything else (an empty file, a
//! truncated PNG or JPEG, text named `.png`, a decompression bomb, a file without read
//! permission, a folder named `x.png`, a file name that is not UTF-8, a symbolic link
//! loop) must be skipped with one message that names it, while the batch goes on.
//!
//! Tests may run as root, where a file without read permission is still readable. The
//! loader test then checks that it loads; the command-line test runs `differnet` through
//! `setpriv` without the capabilities that let root ignore permissions, so the refusal is
//! exercised anyway, and falls back to checking that the file is scored when `setpriv` is
//! missing.

mod common;

use common::bad_files::{Case, Expect, name_of, reads_locked_files, write_cases};
use differnet::core::dataset::list_images;
use differnet::core::image_io::load_rgb;
use differnet::core::message::path_text;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

#[test]
fn loader_loads_odd_formats_and_names_every_broken_file() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let readable = reads_locked_files(dir.path());
    let cases = write_cases(dir.path(), readable);
    for case in &cases {
        match (case.expect, load_rgb(&case.path)) {
            (Expect::Loads(width, height), Ok(image)) => {
                assert_eq!(image.dimensions(), (width, height), "{}", case.what)
            }
            (Expect::Skipped(text), Err(error)) => {
                let message = error.to_string();
                assert!(message.contains(text), "{}: {message}", case.what);
                assert!(
                    message.ends_with(&format!(": {}", path_text(&case.path))),
                    "{}: {message}",
                    case.what
                );
                assert!(message.contains(&name_of(&case.path)), "{message}");
                assert_eq!(message.lines().count(), 1, "{message}");
                assert_eq!(error.path(), case.path);
            }
            (expect, result) => panic!("{}: expected {expect:?}, got {result:?}", case.what),
        }
    }
}

#[test]
fn odd_formats_keep_their_colours() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let cases = write_cases(dir.path(), false);
    let load = |name: &str| load_rgb(&dir.path().join(name)).expect(name);

    // Pillow's convert("RGB") of the CMYK quadrants (scripts/cmyk_fixture.py).
    let cmyk = load("cmyk.jpg");
    for ((x, y), want) in [
        ((4, 4), [255u8, 0, 0]),
        ((12, 4), [0, 255, 0]),
        ((4, 12), [0, 0, 255]),
        ((12, 12), [127, 127, 127]),
    ] {
        let got = cmyk.get_pixel(x, y).0;
        for (g, w) in got.iter().zip(want) {
            assert!(
                g.abs_diff(w) <= 6,
                "CMYK at ({x}, {y}): {got:?}, want {want:?}"
            );
        }
    }
    // 16 bits become 8 (rounded), alpha is dropped, grey fills all three channels.
    assert_eq!(load("rgb16.png").get_pixel(5, 2).0, [58, 47, 255]);
    assert_eq!(load("grey_alpha.png").get_pixel(3, 4).0, [64, 64, 64]);
    assert_eq!(load("one_pixel.png").get_pixel(0, 0).0, [200, 120, 40]);
    assert_eq!(cases.len(), 14);
}

#[test]
fn lister_passes_image_names_on_and_names_what_it_leaves_out() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let cases = write_cases(dir.path(), false);

    // The folder as a whole: every image-named entry but the folder goes on to the
    // loader; the folder is reported, once.
    let (images, skipped) = list_images(&[dir.path().to_owned()]);
    let folder = dir.path().join("x.png");
    assert_eq!(
        skipped,
        vec![(folder.clone(), "a folder, not an image file".to_owned())]
    );
    let mut expected: Vec<PathBuf> = cases
        .iter()
        .map(|case| case.path.clone())
        .filter(|path| *path != folder)
        .collect();
    expected.sort();
    assert_eq!(images, expected);

    // Each case named on its own, as on a command line.
    for case in &cases {
        let (images, skipped) = list_images(std::slice::from_ref(&case.path));
        let name = name_of(&case.path);
        match name.as_str() {
            "x.png" => assert_eq!(
                skipped,
                vec![(case.path.clone(), "no images in the folder".to_owned())]
            ),
            "loop_a.png" | "loop_b.png" => assert_eq!(
                skipped,
                vec![(
                    case.path.clone(),
                    "too many levels of symbolic links".to_owned()
                )]
            ),
            _ => {
                assert_eq!(images, vec![case.path.clone()], "{}", case.what);
                assert!(skipped.is_empty(), "{}: {skipped:?}", case.what);
            }
        }
        assert_eq!(images.len() + skipped.len(), 1, "{}", case.what);
    }
}

// --- The command line ------------------------------------------------------------------

fn differnet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_differnet"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts that the run ended on its own terms: no panic, no crash by a signal.
fn assert_no_panic(output: &Output) {
    let stderr = text(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("crashed"), "{stderr}");
    assert!(
        output.status.code().is_some(),
        "killed: {:?}",
        output.status
    );
}

/// A model trained once per test run on six generated textures, with the smallest
/// settings the command line takes.
fn tiny_model() -> &'static Path {
    static MODEL: OnceLock<PathBuf> = OnceLock::new();
    MODEL.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bad_input");
        let _ = std::fs::remove_dir_all(&root);
        let good = root.join("good");
        common::write_set(&good, "good", 0..6, false);
        let model = root.join("tiny.safetensors");
        let output = differnet()
            .args(["train", "--data"])
            .arg(&good)
            .arg("--out")
            .arg(&model)
            .args([
                "--detector",
                "differnet",
                "--preset",
                "fast",
                "--epochs",
                "2",
            ])
            .args(["--image-size", "64"])
            .args(["--rotations", "2", "--device", "cpu", "--json"])
            .output()
            .expect("run differnet train");
        assert_no_panic(&output);
        assert!(
            output.status.success(),
            "training failed: {}",
            text(&output.stderr)
        );
        model
    })
}

/// How the scoring command reads the file without read permission.
enum Reader {
    /// As it is: an ordinary user, for whom permissions hold.
    Plain,
    /// Root through `setpriv` without `CAP_DAC_OVERRIDE` and `CAP_DAC_READ_SEARCH`.
    WithoutOverride,
    /// Root, with no way to drop the override: the file is readable.
    Root,
}

const SETPRIV_ARGS: [&str; 3] = ["--bounding-set", "-dac_override,-dac_read_search", "--"];

fn reader(dir: &Path) -> Reader {
    if !reads_locked_files(dir) {
        return Reader::Plain;
    }
    let probe = dir.join("setpriv_probe.txt");
    std::fs::write(&probe, b"x").expect("write");
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let dropped = Command::new("setpriv")
        .args(SETPRIV_ARGS)
        .arg("cat")
        .arg(&probe)
        .output()
        .is_ok_and(|out| !out.status.success() && text(&out.stderr).contains("Permission denied"));
    std::fs::remove_file(&probe).expect("remove");
    if dropped {
        Reader::WithoutOverride
    } else {
        eprintln!("root without setpriv: checking that the locked file is scored instead");
        Reader::Root
    }
}

/// `differnet score` as `reader` runs it.
fn score_command(reader: &Reader) -> Command {
    match reader {
        Reader::WithoutOverride => {
            let mut command = Command::new("setpriv");
            command
                .args(SETPRIV_ARGS)
                .arg(env!("CARGO_BIN_EXE_differnet"));
            command
        }
        Reader::Plain | Reader::Root => differnet(),
    }
}

#[test]
fn cli_scores_good_and_odd_images_and_reports_each_broken_one_once() {
    let model = tiny_model();
    let dir = tempfile::tempdir().expect("temporary folder");
    let reader = reader(dir.path());
    let mixed = dir.path().join("mixed");
    std::fs::create_dir(&mixed).expect("mkdir");
    let cases = write_cases(&mixed, matches!(reader, Reader::Root));
    let good = common::write_set(&mixed, "good", 100..102, false);
    let heatmaps = dir.path().join("heatmaps");

    let output = score_command(&reader)
        .args(["score", "--model"])
        .arg(model)
        .arg("--heatmaps")
        .arg(&heatmaps)
        .args(["--json", "--device", "cpu"])
        .arg(&mixed)
        .output()
        .expect("run differnet score");
    assert_no_panic(&output);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");

    // Scored: the good images and every odd format, each once, with a finite score.
    let scored: Vec<String> = report["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|image| {
            let score = image["score"].as_f64().expect("score");
            assert!(score.is_finite(), "{image}");
            image["path"].as_str().expect("path").to_owned()
        })
        .collect();
    let mut want_scored: Vec<String> = good
        .iter()
        .map(|path| path.display().to_string())
        .chain(
            cases
                .iter()
                .filter(|case| matches!(case.expect, Expect::Loads(..)))
                .map(|case| path_text(&case.path)),
        )
        .collect();
    want_scored.sort();
    let mut got_scored = scored.clone();
    got_scored.sort();
    assert_eq!(got_scored, want_scored);
    let heatmap_count = std::fs::read_dir(&heatmaps).expect("heatmaps").count();
    assert_eq!(heatmap_count, scored.len());

    // Skipped: every broken case exactly once, with its reason, and nothing else.
    let skipped: Vec<(String, String)> = report["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .map(|entry| {
            (
                entry["path"].as_str().expect("path").to_owned(),
                entry["reason"].as_str().expect("reason").to_owned(),
            )
        })
        .collect();
    let broken: Vec<&Case> = cases
        .iter()
        .filter(|case| matches!(case.expect, Expect::Skipped(_)))
        .collect();
    for case in &broken {
        let shown = path_text(&case.path);
        let entries: Vec<&(String, String)> =
            skipped.iter().filter(|(path, _)| *path == shown).collect();
        assert_eq!(entries.len(), 1, "{}: {skipped:?}", case.what);
        let reason = &entries[0].1;
        let Expect::Skipped(expected) = case.expect else {
            unreachable!()
        };
        let expected = if case.path.ends_with("x.png") {
            // Inside a folder it is reported by the lister, not the loader.
            "a folder, not an image file"
        } else {
            expected
        };
        assert!(reason.contains(expected), "{}: {reason}", case.what);
    }
    assert_eq!(skipped.len(), broken.len(), "{skipped:?}");
}

#[test]
fn cli_refuses_a_batch_with_nothing_to_score() {
    let model = tiny_model();
    let dir = tempfile::tempdir().expect("temporary folder");
    let reader = reader(dir.path());
    let bad = dir.path().join("bad");
    std::fs::create_dir(&bad).expect("mkdir");
    let broken: Vec<Case> = write_cases(&bad, matches!(reader, Reader::Root))
        .into_iter()
        .filter(|case| {
            let keep = matches!(case.expect, Expect::Skipped(_));
            if !keep {
                std::fs::remove_file(&case.path).expect("remove a loadable case");
            }
            keep
        })
        .collect();

    let output = score_command(&reader)
        .args(["score", "--model"])
        .arg(model)
        .args(["--device", "cpu"])
        .arg(&bad)
        .output()
        .expect("run differnet score");
    assert_no_panic(&output);
    let stderr = text(&output.stderr);
    assert!(
        !output.status.success(),
        "exit 0 with nothing scored: {stderr}"
    );
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: "), "{stderr}");
    // The reasons are all printed before the refusal.
    for case in &broken {
        assert!(
            stderr.contains(&path_text(&case.path)),
            "{} not named: {stderr}",
            case.what
        );
    }

    // Nothing that even looks like an image: refused before the model is loaded.
    let output = differnet()
        .args(["score", "--model"])
        .arg(model)
        .arg(bad.join("x.png"))
        .output()
        .expect("run differnet score");
    assert_no_panic(&output);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("no images to score"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn cli_output_into_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().expect("temporary folder");
    common::write_set(&dir.path().join("train/good"), "good", 0..40, false);
    common::write_set(&dir.path().join("test/scratch"), "bad", 100..140, true);
    // `differnet split DIR | head -c 0`: the reader is gone before the first line.
    let mut child = differnet()
        .args(["split", "--data"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run differnet split");
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("wait for differnet split");
    assert_no_panic(&output);
    assert!(
        output.stderr.is_empty(),
        "a closed pipe is not an error to report: {}",
        text(&output.stderr)
    );
    assert_eq!(
        output.status.code(),
        Some(141),
        "the status of a tool stopped by SIGPIPE"
    );

    // With a reader, the same command prints the split.
    let output = differnet()
        .args(["split", "--data"])
        .arg(dir.path())
        .output()
        .expect("run differnet split");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("\"train\""));
}
