//! `differnet watch`, the line: parts streamed into a folder are sorted exactly once, through
//! SIGKILLs at random moments, with the decisions `differnet score` makes; a file written
//! slowly is never scored half-written; Ctrl-C stops cleanly, and SIGTERM while parts keep
//! arriving stops it within 2 s with its summary, the log agreeing with the folders.

mod common;

use differnet::core::rng::SplitMix64;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FOLDERS: [&str; 4] = ["accept", "review", "reject", "unreadable"];

fn differnet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_differnet"))
}

/// A tiny DifferNet with a reject line (six good images held out).
fn tiny_model(root: &Path) -> PathBuf {
    let _ = common::efficientnet_weights();
    let good = root.join("good");
    common::write_set(&good, "good", 0..16, false);
    let model = root.join("tiny.differnet");
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
        .args(["--image-size", "64", "--rotations", "2", "--val-count", "6"])
        .args(["--device", "cpu", "--json"])
        .output()
        .expect("run differnet train");
    assert!(
        output.status.success(),
        "training failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    model
}

/// Starts a watch; its messages are appended to `output`'s sibling `watch.log`.
fn start_watch(model: &Path, input: &Path, output: &Path, extra: &[&str]) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(output.with_extension("log"))
        .unwrap();
    differnet()
        .args(["watch", "--model"])
        .arg(model)
        .arg("--in")
        .arg(input)
        .arg("--out")
        .arg(output)
        .args(["--device", "cpu", "--poll-ms", "50"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start differnet watch")
}

/// What `differnet score` decides for each file of `dir`: ok, review, ng or unreadable.
fn reference_decisions(model: &Path, dir: &Path) -> HashMap<String, String> {
    let csv = dir.parent().unwrap().join("reference.csv");
    let output = differnet()
        .args(["score", "--model"])
        .arg(model)
        .args(["--device", "cpu", "--csv"])
        .arg(&csv)
        .arg(dir)
        .output()
        .expect("run differnet score");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut out: HashMap<String, String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            (
                e.unwrap().file_name().to_string_lossy().into_owned(),
                "unreadable".to_owned(),
            )
        })
        .collect();
    for row in std::fs::read_to_string(&csv).unwrap().lines().skip(1) {
        let fields: Vec<&str> = row.split(',').collect();
        let name = Path::new(fields[0])
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let decision = match fields[3] {
            d @ ("accept" | "review" | "reject") => d,
            other => panic!("decision {other}"),
        };
        out.insert(name, decision.to_owned());
    }
    out
}

/// Log rows: (file name, decision).
fn log_rows(output: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(output.join("log.csv")).unwrap_or_default();
    text.lines()
        .skip(1)
        .map(|row| {
            // The path where the part is now, then label, score and decision.
            let f: Vec<&str> = row.split(',').collect();
            let name = Path::new(f[0]).file_name().unwrap().to_string_lossy();
            (name.into_owned(), f[3].to_owned())
        })
        .collect()
}

#[test]
fn parts_are_sorted_exactly_once_through_twenty_kills() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    // 500 parts: good and scratched textures and broken files, made first so they can be
    // scored by `differnet score` for the reference.
    let originals = dir.path().join("originals");
    std::fs::create_dir_all(&originals).unwrap();
    let mut rng = SplitMix64::new(11);
    for i in 0..500u64 {
        let path = originals.join(format!("part_{i:03}.png"));
        match i % 10 {
            9 => {
                // Broken: a PNG cut short.
                let mut bytes = Vec::new();
                common::texture(i, false)
                    .write_to(
                        &mut std::io::Cursor::new(&mut bytes),
                        image::ImageFormat::Png,
                    )
                    .unwrap();
                bytes.truncate(bytes.len() / 3);
                std::fs::write(&path, bytes).unwrap();
            }
            k => common::texture(1000 + i, k < 3).save(&path).unwrap(),
        }
    }
    let expected = reference_decisions(&model, &originals);
    assert!(expected.values().any(|d| d == "reject") && expected.values().any(|d| d == "accept"));

    let input = dir.path().join("in");
    let output = dir.path().join("out");
    std::fs::create_dir_all(&input).unwrap();
    // The camera: writes the parts in at a steady pace on its own thread.
    let writer = {
        let (originals, input) = (originals.clone(), input.clone());
        std::thread::spawn(move || {
            for i in 0..500u64 {
                let name = format!("part_{i:03}.png");
                std::fs::copy(originals.join(&name), input.join(&name)).unwrap();
                std::thread::sleep(Duration::from_millis(40));
            }
        })
    };
    for kill in 0..20 {
        let mut child = start_watch(&model, &input, &output, &["--settle-ms", "150"]);
        let alive = 300 + rng.below(2500) as u64;
        std::thread::sleep(Duration::from_millis(alive));
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        assert!(kill < 20);
    }
    writer.join().unwrap();
    // A last run sorts what is left.
    let mut child = start_watch(&model, &input, &output, &["--settle-ms", "150"]);
    let started = Instant::now();
    while std::fs::read_dir(&input).unwrap().count() > 0 || log_rows(&output).len() < 500 {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the last run did not finish: {} files left, {} rows; {:?}; its messages:\n{}",
            std::fs::read_dir(&input).unwrap().count(),
            log_rows(&output).len(),
            child.try_wait(),
            std::fs::read_to_string(output.with_extension("log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let rows = log_rows(&output);
    let mut count: HashMap<&str, usize> = HashMap::new();
    for (name, _) in &rows {
        *count.entry(name.as_str()).or_default() += 1;
    }
    for (name, decision) in &expected {
        assert_eq!(count.get(name.as_str()), Some(&1), "{name} in log.csv");
        let found: Vec<&str> = FOLDERS
            .iter()
            .copied()
            .filter(|f| output.join(f).join(name).is_file())
            .collect();
        assert_eq!(found, vec![decision.as_str()], "{name}: folders {found:?}");
        let logged = &rows.iter().find(|(n, _)| n == name).unwrap().1;
        assert_eq!(logged, decision, "{name}: logged decision");
    }
    assert_eq!(rows.len(), 500);
    // Nothing else was left in the output folders (no duplicates, no temporary files).
    let files: usize = FOLDERS
        .iter()
        .map(|f| std::fs::read_dir(output.join(f)).unwrap().count())
        .sum();
    assert_eq!(files, 500);
}

#[test]
fn a_file_written_slowly_is_scored_whole_and_ctrl_c_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let originals = dir.path().join("originals");
    std::fs::create_dir_all(&originals).unwrap();
    common::texture(4242, true)
        .save(originals.join("slow.png"))
        .unwrap();
    let expected = reference_decisions(&model, &originals)["slow.png"].clone();
    assert_ne!(expected, "unreadable");

    let input = dir.path().join("in");
    let output = dir.path().join("out");
    std::fs::create_dir_all(&input).unwrap();
    let mut child = start_watch(&model, &input, &output, &["--heatmaps"]);
    std::thread::sleep(Duration::from_millis(1500));
    // Written in five chunks, a quarter of a second apart (the default settle is 1 s).
    let bytes = std::fs::read(originals.join("slow.png")).unwrap();
    let mut file = std::fs::File::create(input.join("slow.png")).unwrap();
    for chunk in bytes.chunks(bytes.len().div_ceil(5)) {
        file.write_all(chunk).unwrap();
        file.flush().unwrap();
        std::thread::sleep(Duration::from_millis(250));
    }
    drop(file);
    let started = Instant::now();
    while log_rows(&output).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "never decided"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        log_rows(&output),
        vec![("slow.png".to_owned(), expected.clone())]
    );
    // The row is logged before the part is moved (journal, log, move, done): wait for the
    // move, which a busy machine can hold up for a moment.
    let logged = Instant::now();
    while !output.join(&expected).join("slow.png").is_file() {
        assert!(
            logged.elapsed() < Duration::from_secs(30),
            "logged but never moved into {expected}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    if expected != "accept" {
        assert!(output.join(&expected).join("slow_heatmap.png").is_file());
    }
    // Ctrl-C: a clean stop with a summary.
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    let stderr = std::fs::read_to_string(output.with_extension("log")).unwrap();
    assert!(exit.success(), "{stderr}");
    assert!(stderr.contains("stopped: 1 parts"), "{stderr}");
}

/// Waits until `output`'s log has `rows` rows (failing with `what` after 300 s), then stops
/// the watch with SIGTERM and checks that it exits cleanly.
fn stop_after_rows(mut child: Child, output: &Path, rows: usize, what: &str) {
    let started = Instant::now();
    while log_rows(output).len() < rows {
        assert!(started.elapsed() < Duration::from_secs(300), "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(wait_exit(&mut child, Duration::from_secs(30)).success());
}

/// Waits for `child` to exit; fails after `limit`.
fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running {limit:?} after the signal");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sigterm_while_parts_keep_arriving_stops_within_two_seconds_with_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let input = dir.path().join("in");
    let output = dir.path().join("out");
    std::fs::create_dir_all(&input).unwrap();
    // The camera: a part every 30 ms (written beside, then renamed in) until told to stop,
    // so the line is busy scoring when the signal comes.
    let (stop_camera, stopped) = crossbeam_channel::bounded::<()>(1);
    let camera = {
        let input = input.clone();
        std::thread::spawn(move || {
            let mut names = Vec::new();
            for i in 0u64.. {
                let name = format!("part_{i:03}.png");
                let tmp = input.join(format!(".{name}"));
                common::texture(700 + i, i % 3 == 2).save(&tmp).unwrap();
                std::fs::rename(&tmp, input.join(&name)).unwrap();
                names.push(name);
                if stopped.recv_timeout(Duration::from_millis(30)).is_ok() {
                    return names;
                }
            }
            names
        })
    };
    let mut child = start_watch(&model, &input, &output, &["--settle-ms", "100"]);
    let started = Instant::now();
    while log_rows(&output).len() < 5 {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no parts sorted; its messages:\n{}",
            std::fs::read_to_string(output.with_extension("log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = wait_exit(&mut child, Duration::from_secs(30));
    let took = sent.elapsed();
    stop_camera.send(()).unwrap();
    let written = camera.join().unwrap();
    let stderr = std::fs::read_to_string(output.with_extension("log")).unwrap();
    assert!(
        took <= Duration::from_secs(2),
        "exited {took:?} after SIGTERM: {stderr}"
    );
    assert!(exit.success(), "{exit:?}: {stderr}");
    // The summary counts what the log holds.
    let rows = log_rows(&output);
    let summary = format!("stopped: {} parts: ", rows.len());
    assert!(stderr.contains(&summary), "no '{summary}' in:\n{stderr}");
    // Every part is either still waiting or sorted once, into the folder its row names.
    let check = |rows: &[(String, String)]| {
        for name in &written {
            let logged: Vec<&String> = rows
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, d)| d)
                .collect();
            let found: Vec<&str> = FOLDERS
                .iter()
                .copied()
                .filter(|f| output.join(f).join(name).is_file())
                .collect();
            if input.join(name).is_file() {
                assert!(
                    logged.is_empty() && found.is_empty(),
                    "{name}: {logged:?} {found:?}"
                );
            } else {
                assert_eq!(found.len(), 1, "{name}: folders {found:?}");
                assert_eq!(logged, vec![found[0]], "{name}: log rows");
            }
        }
        let files: usize = FOLDERS
            .iter()
            .map(|f| std::fs::read_dir(output.join(f)).unwrap().count())
            .sum();
        assert_eq!(files, rows.len(), "files in the output folders");
    };
    check(&rows);
    assert!(rows.len() < written.len(), "parts were still arriving");

    // The next start sorts the rest, each once.
    let child = start_watch(&model, &input, &output, &["--settle-ms", "100"]);
    stop_after_rows(child, &output, written.len(), "the rest was not sorted");
    check(&log_rows(&output));
    assert_eq!(std::fs::read_dir(&input).unwrap().count(), 0);
}

/// The `drift` column of every log row.
fn drift_column(output: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(output.join("log.csv")).unwrap_or_default();
    let header: Vec<&str> = text.lines().next().unwrap_or_default().split(',').collect();
    let at = header
        .iter()
        .position(|c| *c == "drift")
        .expect("a drift column");
    text.lines()
        .skip(1)
        .map(|row| row.split(',').nth(at).unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn the_recent_good_folder_is_bounded_survives_a_restart_and_holds_accepted_parts_only() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let input = dir.path().join("in");
    let output = dir.path().join("out");
    let recent_dir = output.join(differnet::line::RECENT_GOOD);
    let run = |range: std::ops::Range<u64>, bad: std::ops::Range<u64>, parts: usize| {
        common::write_set(&input, "good", range, false);
        common::write_set(&input, "bad", bad, true);
        let child = start_watch(
            &model,
            &input,
            &output,
            &["--settle-ms", "100", "--recent-good", "3"],
        );
        stop_after_rows(child, &output, parts, "parts not decided");
    };
    let check = || {
        let kept = differnet::line::recent_good_parts(&recent_dir);
        assert!(kept.len() <= 3, "{kept:?}");
        let rows: HashMap<String, String> = log_rows(&output).into_iter().collect();
        for p in &kept {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let original = name.split_once('-').unwrap().1;
            assert_eq!(
                rows.get(original).map(String::as_str),
                Some("accept"),
                "{name}"
            );
            assert!(output.join("accept").join(original).is_file());
        }
        kept
    };
    std::fs::create_dir_all(&input).unwrap();
    run(0..12, 100..104, 16);
    let first = check();
    assert!(!first.is_empty(), "no part kept");
    // Parts like the training ones: no drift said.
    assert!(drift_column(&output).iter().all(String::is_empty));
    let stderr = std::fs::read_to_string(output.with_extension("log")).unwrap();
    assert!(!stderr.contains("drift:"), "{stderr}");
    assert!(stderr.contains("; no drift"), "{stderr}");

    // A restart: the folder is kept, and the newest parts replace the oldest.
    run(20..32, 104..106, 30);
    let second = check();
    let part = |p: &PathBuf| -> u64 {
        p.file_name()
            .unwrap()
            .to_string_lossy()
            .split_once('-')
            .unwrap()
            .0
            .parse()
            .unwrap()
    };
    assert!(second.len() >= first.len());
    assert!(
        part(second.last().unwrap()) > 16,
        "nothing of the second run kept: {second:?}"
    );
}
