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

use common::{test_data, texture};
use differnet::core::dataset::list_images;
use differnet::core::image_io::load_rgb;
use image::{ImageBuffer, LumaA, Rgb, RgbImage};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// What must become of one input.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Loads as RGB with this width and height, and gets a score.
    Loads(u32, u32),
    /// Skipped, with a message that contains this text and names the file.
    Skipped(&'static str),
}

/// One odd or broken input written by [`write_cases`].
#[derive(Debug, Clone)]
struct Case {
    /// What the case is, for assertion messages.
    what: &'static str,
    path: PathBuf,
    expect: Expect,
}

/// How the file without read permission behaves for whoever reads it.
fn locked_expectation(readable: bool) -> Expect {
    if readable {
        Expect::Loads(8, 6)
    } else {
        Expect::Skipped("permission denied")
    }
}

/// A small RGB image with a different colour in every pixel.
fn small_rgb() -> RgbImage {
    RgbImage::from_fn(8, 6, |x, y| Rgb([x as u8 * 30, y as u8 * 40, 90]))
}

fn png_bytes(image: &RgbImage) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .expect("encode png");
    bytes
}

/// The CRC-32 (IEEE) that PNG chunks carry.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
    chunk.extend_from_slice(kind);
    chunk.extend_from_slice(data);
    let mut covered = kind.to_vec();
    covered.extend_from_slice(data);
    chunk.extend_from_slice(&crc32(&covered).to_be_bytes());
    chunk
}

/// A 57-byte PNG that declares 100000 x 100000 RGB pixels (28 GiB decoded).
fn bomb_png() -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = 100_000u32.to_be_bytes().to_vec();
    header.extend_from_slice(&100_000u32.to_be_bytes());
    // 8 bits per sample, RGB, deflate, adaptive filtering, no interlace.
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    bytes.extend(png_chunk(b"IHDR", &header));
    // A valid zlib stream holding one empty stored block.
    bytes.extend(png_chunk(
        b"IDAT",
        &[0x78, 0x01, 0x01, 0x00, 0x00, 0xFF, 0xFF],
    ));
    bytes.extend(png_chunk(b"IEND", &[]));
    bytes
}

/// Writes every case into `dir` (which must exist) and returns them. `locked_readable`
/// says whether the reader of the file without read permission can read it anyway.
fn write_cases(dir: &Path, locked_readable: bool) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut add = |what, name: &[u8], expect, contents: Option<&[u8]>| {
        let path = dir.join(OsStr::from_bytes(name));
        if let Some(bytes) = contents {
            std::fs::write(&path, bytes).expect("write case");
        }
        cases.push(Case { what, path, expect });
    };

    add(
        "zero-byte file",
        b"empty.png",
        Expect::Skipped("the file is empty"),
        Some(b""),
    );
    let whole_png = png_bytes(&texture(7, false));
    add(
        "truncated PNG",
        b"cut.png",
        Expect::Skipped("cannot decode image"),
        Some(&whole_png[..whole_png.len() / 2]),
    );
    let mut whole_jpeg = Vec::new();
    texture(8, false)
        .write_to(
            &mut std::io::Cursor::new(&mut whole_jpeg),
            image::ImageFormat::Jpeg,
        )
        .expect("encode jpeg");
    add(
        "truncated JPEG",
        b"cut.jpg",
        Expect::Skipped("the file is truncated"),
        Some(&whole_jpeg[..whole_jpeg.len() * 3 / 4]),
    );
    add(
        "text file named .png",
        b"notes.png",
        Expect::Skipped("cannot decode image"),
        Some(b"Shift 2, line 4: camera cleaned.\n"),
    );
    add(
        "decompression bomb",
        b"bomb.png",
        Expect::Skipped("100000 x 100000"),
        Some(&bomb_png()),
    );
    add(
        "file name that is not UTF-8",
        b"caf\xE9.png",
        Expect::Skipped("not valid UTF-8"),
        Some(&png_bytes(&small_rgb())),
    );

    // Odd but valid formats.
    let rgb16: ImageBuffer<Rgb<u16>, Vec<u16>> = ImageBuffer::from_fn(20, 10, |x, y| {
        Rgb([x as u16 * 3000, y as u16 * 6000, 65_535])
    });
    rgb16.save(dir.join("rgb16.png")).expect("save 16-bit");
    add("16-bit PNG", b"rgb16.png", Expect::Loads(20, 10), None);
    std::fs::copy(test_data("cmyk.jpg"), dir.join("cmyk.jpg")).expect("copy cmyk");
    add("CMYK JPEG", b"cmyk.jpg", Expect::Loads(16, 16), None);
    let grey_alpha: ImageBuffer<LumaA<u8>, Vec<u8>> =
        ImageBuffer::from_fn(12, 9, |x, y| LumaA([(x * 20 + y) as u8, (y * 25) as u8]));
    grey_alpha.save(dir.join("grey_alpha.png")).expect("save");
    add(
        "grey + alpha PNG",
        b"grey_alpha.png",
        Expect::Loads(12, 9),
        None,
    );
    RgbImage::from_pixel(1, 1, Rgb([200, 120, 40]))
        .save(dir.join("one_pixel.png"))
        .expect("save");
    add(
        "1 x 1 pixel PNG",
        b"one_pixel.png",
        Expect::Loads(1, 1),
        None,
    );

    // Things that are not plain readable files.
    let locked = dir.join("locked.png");
    small_rgb().save(&locked).expect("save");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    add(
        "file without read permission",
        b"locked.png",
        locked_expectation(locked_readable),
        None,
    );
    std::fs::create_dir(dir.join("x.png")).expect("mkdir");
    add(
        "folder named x.png",
        b"x.png",
        Expect::Skipped("not a file"),
        None,
    );
    std::os::unix::fs::symlink(dir.join("loop_a.png"), dir.join("loop_b.png")).expect("link");
    std::os::unix::fs::symlink(dir.join("loop_b.png"), dir.join("loop_a.png")).expect("link");
    add(
        "symbolic link loop",
        b"loop_a.png",
        Expect::Skipped("too many levels of symbolic links"),
        None,
    );
    add(
        "symbolic link loop",
        b"loop_b.png",
        Expect::Skipped("too many levels of symbolic links"),
        None,
    );
    cases
}

/// Whether this process reads files whatever their permissions (root, usually).
fn reads_locked_files(dir: &Path) -> bool {
    let path = dir.join("probe.txt");
    std::fs::write(&path, b"x").expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let readable = std::fs::read(&path).is_ok();
    std::fs::remove_file(&path).expect("remove");
    readable
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned()
}

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
                    message.ends_with(&format!(": {}", case.path.display())),
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
            .args(["--preset", "fast", "--epochs", "2", "--image-size", "64"])
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
                .map(|case| case.path.display().to_string()),
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
        let shown = case.path.display().to_string();
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
            stderr.contains(&case.path.display().to_string()),
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
