//! The workstation's line (the Line view's `LinePanel`, which "Stop the line" and closing
//! the window stop) ends within 2 s of the stop whatever it is doing: idle, waiting for a
//! file to settle, scoring parts as they stream in, with its worker still loading the model
//! or never answering, and while another worker (the window's) trains. What it sorted
//! always agrees with its log: no part lost, none sorted twice, and a part it did not
//! finish is sorted by the next start.

mod common;

use crossbeam_channel::{Receiver, bounded};
use differnet::core::config::{DetectorConfig, DeviceChoice};
use differnet::core::protocol::{Command, Event, TrainRequest, Waker};
use differnet::engine::worker::WorkerOptions;
use differnet::gui::line_panel::LinePanel;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// What the issue asks of a stop.
const STOP_LIMIT: Duration = Duration::from_secs(2);
/// How long a test waits for the line to get somewhere before failing.
const TIMEOUT: Duration = Duration::from_secs(300);
/// The folders parts are sorted into.
const FOLDERS: [&str; 4] = ["accept", "review", "reject", "unreadable"];

/// A PatchCore with a reject line, trained once for every test of this file.
fn model() -> &'static Path {
    static MODEL: OnceLock<PathBuf> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let train = common::write_set(&dir.join("train"), "good", 0..8, false);
        let validation = common::write_set(&dir.join("val"), "good", 100..106, false);
        let worker = common::worker();
        worker
            .send(Command::Train(TrainRequest {
                train,
                validation,
                config: DetectorConfig::from(common::tiny_patchcore()),
                defects: Vec::new(),
            }))
            .unwrap();
        common::wait_for(&worker, |e| matches!(e, Event::Trained(_)).then_some(()));
        let path = dir.join("line.differnet");
        worker
            .send(Command::SaveModel {
                path: path.clone(),
                threshold: None,
                review_threshold: None,
            })
            .unwrap();
        common::wait_for(&worker, |e| matches!(e, Event::Saved { .. }).then_some(()));
        path
    })
}

/// A DifferNet that takes its time over each part (the backbone runs for each of 16 test
/// rotations), so that a stop lands while the worker scores one.
fn slow_model() -> &'static Path {
    static MODEL: OnceLock<PathBuf> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let train = common::write_set(&dir.join("train"), "good", 0..8, false);
        let validation = common::write_set(&dir.join("val"), "good", 100..103, false);
        let mut config = common::tiny_config();
        config.train.epochs = 4;
        config.score.rotations = 16;
        let worker = common::worker();
        worker
            .send(Command::Train(TrainRequest {
                train,
                validation,
                config: DetectorConfig::from(config),
                defects: Vec::new(),
            }))
            .unwrap();
        common::wait_for(&worker, |e| matches!(e, Event::Trained(_)).then_some(()));
        let path = dir.join("slow.differnet");
        worker
            .send(Command::SaveModel {
                path: path.clone(),
                threshold: None,
                review_threshold: None,
            })
            .unwrap();
        common::wait_for(&worker, |e| matches!(e, Event::Saved { .. }).then_some(()));
        path
    })
}

/// A part's name.
fn part(i: u64) -> String {
    format!("part_{i:03}.png")
}

/// Writes part `i` into `dir` whole at once (written beside it, then renamed), as a camera
/// that renames finished files does; every fourth one scratched.
fn write_part(dir: &Path, i: u64) {
    let tmp = dir.join(format!(".{}", part(i)));
    common::texture(500 + i, i % 4 == 3).save(&tmp).unwrap();
    std::fs::rename(&tmp, dir.join(part(i))).unwrap();
}

/// The line of the Line view on `input` and `output`, woken like the window is.
struct Line {
    panel: LinePanel,
    woken: Receiver<()>,
    input: PathBuf,
    output: PathBuf,
}

impl Line {
    fn start(model: &Path, input: &Path, output: &Path) -> Self {
        std::fs::create_dir_all(input).unwrap();
        let (tx, woken) = bounded(1);
        let waker: Waker = Arc::new(move || {
            let _ = tx.try_send(());
        });
        let mut panel = LinePanel::default();
        let worker = WorkerOptions {
            device: DeviceChoice::Cpu,
            ..Default::default()
        };
        panel.start(
            model.to_path_buf(),
            input.to_path_buf(),
            output.to_path_buf(),
            None,
            worker,
            waker,
        );
        assert!(panel.is_running(), "{:?}", panel.messages);
        Self {
            panel,
            woken,
            input: input.to_path_buf(),
            output: output.to_path_buf(),
        }
    }

    /// Takes the line's reports until `done` holds, waiting for its wake-ups in between.
    fn until(&mut self, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(e) = self.panel.poll() {
                panic!("waiting for {what}: {e}; {:?}", self.panel.messages);
            }
            if done(self) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; {:?}",
                self.panel.messages
            );
            // A wake-up, or a look every 100 ms (at files the test writes itself).
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = self
                .woken
                .recv_timeout(Duration::from_millis(100).min(left));
        }
    }

    /// Rows of its log.
    fn rows(&self) -> usize {
        log_rows(&self.output).len()
    }

    /// Stops the line (as "Stop the line" does) and checks that it ended within 2 s.
    fn stop_within_limit(&mut self, state: &str) {
        let asked = Instant::now();
        self.panel.stop();
        assert!(self.panel.is_stopping(), "{state}");
        self.until(&format!("the line to stop ({state})"), |l| {
            !l.panel.is_running()
        });
        let took = asked.elapsed();
        eprintln!("{state}: stopped in {took:?}");
        assert!(
            took <= STOP_LIMIT,
            "{state}: the line took {took:?} to stop; {:?}",
            self.panel.messages
        );
    }
}

/// `(file name, decision)` of every row of `output`'s log.
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

/// Checks that the log and the folders agree on the parts `written` into `input`: each is
/// either still in `input` and not logged, or sorted into exactly one folder with exactly
/// one log row of that folder's decision; and nothing else is in the folders. Returns how
/// many are sorted.
fn check_agreement(input: &Path, output: &Path, written: &[String]) -> usize {
    let rows = log_rows(output);
    let mut logged: HashMap<&str, Vec<&str>> = HashMap::new();
    for (name, decision) in &rows {
        logged.entry(name).or_default().push(decision);
    }
    let mut sorted = 0;
    for name in written {
        let folders: Vec<&str> = FOLDERS
            .into_iter()
            .filter(|f| output.join(f).join(name).is_file())
            .collect();
        let waiting = input.join(name).is_file();
        let decisions = logged.get(name.as_str()).cloned().unwrap_or_default();
        match (waiting, folders.as_slice()) {
            (true, []) => assert!(decisions.is_empty(), "{name} waits but is logged"),
            (false, [folder]) => {
                assert_eq!(decisions, vec![*folder], "{name}: log rows");
                sorted += 1;
            }
            _ => panic!(
                "{name}: in the input folder {waiting}, in {folders:?}, logged {decisions:?}"
            ),
        }
    }
    assert_eq!(
        rows.len(),
        sorted,
        "log rows for parts that were not written"
    );
    let files: usize = FOLDERS
        .iter()
        .map(|f| std::fs::read_dir(output.join(f)).map_or(0, |d| d.count()))
        .sum();
    assert_eq!(files, sorted, "files in the output folders");
    sorted
}

#[test]
fn a_worker_that_never_loads_the_model_does_not_hold_the_stop() {
    let dir = tempfile::tempdir().unwrap();
    // A model "file" that is a FIFO nobody writes to: reading it blocks the line's worker
    // for good, as a model on a hung network share would.
    let model = dir.path().join("hung.differnet");
    let made = std::process::Command::new("mkfifo")
        .arg(&model)
        .status()
        .unwrap();
    assert!(made.success());
    let mut line = Line::start(&model, &dir.path().join("in"), &dir.path().join("out"));
    write_part(&line.input, 0);
    line.stop_within_limit("the worker still loading the model");
    assert!(
        line.panel
            .messages
            .iter()
            .any(|m| m.starts_with("stopped before the model was loaded: 0 parts")),
        "{:?}",
        line.panel.messages
    );
    // Nothing was sorted, the part waits for the next start.
    check_agreement(&line.input, &line.output, &[part(0)]);
    assert!(line.input.join(part(0)).is_file());
    // Let the worker's read end (it is thrown away with its line).
    std::thread::spawn(move || drop(std::fs::OpenOptions::new().write(true).open(model)));
}

#[test]
fn the_line_stops_when_idle_and_while_a_file_settles_and_sorts_it_next_time() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in"), dir.path().join("out"));
    let mut line = Line::start(model(), &input, &output);
    write_part(&input, 0);
    line.until("the first part", |l| l.panel.recent.len() == 1);
    line.stop_within_limit("idle");
    assert_eq!(check_agreement(&input, &output, &[part(0)]), 1);

    // A file the camera is still writing (a chunk every 100 ms: it never settles for the
    // line's 1 s) when the line is stopped.
    let mut line = Line::start(model(), &input, &output);
    write_part(&input, 1);
    line.until("the second part", |l| l.panel.recent.len() == 1);
    let bytes = {
        let mut b = Vec::new();
        common::texture(502, false)
            .write_to(&mut std::io::Cursor::new(&mut b), image::ImageFormat::Png)
            .unwrap();
        b
    };
    let growing = input.join(part(2));
    let (chunks_tx, chunks) = bounded::<()>(64);
    let (done_tx, done) = bounded::<()>(1);
    let writer = {
        let (growing, bytes) = (growing.clone(), bytes.clone());
        std::thread::spawn(move || {
            use std::io::Write;
            let mut file = std::fs::File::create(&growing).unwrap();
            for chunk in bytes.chunks(bytes.len().div_ceil(40)) {
                file.write_all(chunk).unwrap();
                file.flush().unwrap();
                let _ = chunks_tx.try_send(());
                if done.recv_timeout(Duration::from_millis(100)).is_ok() {
                    return;
                }
            }
        })
    };
    // Three chunks written: the line has seen the file change (each write is an event).
    for _ in 0..3 {
        chunks.recv_timeout(TIMEOUT).unwrap();
    }
    line.stop_within_limit("waiting for a file to settle");
    let _ = done_tx.send(());
    writer.join().unwrap();
    let written = [part(0), part(1), part(2)];
    assert_eq!(check_agreement(&input, &output, &written), 2);
    assert!(
        growing.is_file(),
        "the unsettled file waits in the input folder"
    );

    // Complete now: the next start sorts it.
    std::fs::write(&growing, &bytes).unwrap();
    let mut line = Line::start(model(), &input, &output);
    line.until("the settled part", |l| l.rows() == 3);
    line.stop_within_limit("idle after the settled part");
    assert_eq!(check_agreement(&input, &output, &written), 3);
}

#[test]
fn the_line_stops_while_parts_stream_in_and_the_next_start_sorts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in"), dir.path().join("out"));
    std::fs::create_dir_all(&input).unwrap();
    const PARTS: u64 = 60;
    // The camera: a part every 30 ms, so that whenever the line is stopped, parts are
    // waiting to settle and one may be with the worker.
    let count = Arc::new(AtomicU64::new(0));
    let camera = {
        let (input, count) = (input.clone(), count.clone());
        std::thread::spawn(move || {
            for i in 0..PARTS {
                write_part(&input, i);
                count.store(i + 1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(30));
            }
        })
    };
    // Stopped three times, each after a few more parts.
    for (run, after) in [3usize, 8, 14].into_iter().enumerate() {
        let mut line = Line::start(model(), &input, &output);
        line.until(&format!("{after} parts sorted"), |l| l.rows() >= after);
        line.stop_within_limit(&format!("scoring parts as they stream in, run {run}"));
        let written: Vec<String> = (0..count.load(Ordering::SeqCst)).map(part).collect();
        check_agreement(&input, &output, &written);
    }
    camera.join().unwrap();
    let written: Vec<String> = (0..PARTS).map(part).collect();
    // The last start sorts every part left, each exactly once.
    let mut line = Line::start(model(), &input, &output);
    line.until("every part sorted", |l| l.rows() == PARTS as usize);
    line.stop_within_limit("idle after the stream");
    assert_eq!(check_agreement(&input, &output, &written), PARTS as usize);
    assert_eq!(std::fs::read_dir(&input).unwrap().count(), 0);
}

#[test]
fn the_line_stops_while_its_worker_scores_a_part_and_never_leaves_it_half_done() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in"), dir.path().join("out"));
    std::fs::create_dir_all(&input).unwrap();
    let written: Vec<String> = (0..2).map(part).collect();
    for i in 0..2 {
        write_part(&input, i);
    }
    let mut line = Line::start(slow_model(), &input, &output);
    // Stopped as soon as the worker has the first part: either it finishes the part in
    // time and the part is sorted and logged, or the part stays for the next start.
    line.until("the first part to go to the worker", |l| {
        l.panel.in_flight.as_deref() == Some(part(0).as_str())
    });
    line.stop_within_limit("the worker scoring a part");
    let sorted = check_agreement(&input, &output, &written);
    assert!(sorted <= 1, "{sorted} sorted after a stop during the first");
    if sorted == 0 {
        assert!(
            line.panel.messages.iter().any(|m| m.contains(&format!(
                "the worker did not score {} before the line stopped",
                part(0)
            ))),
            "{:?}",
            line.panel.messages
        );
    }
    // The next start sorts the rest, each once.
    let mut line = Line::start(slow_model(), &input, &output);
    line.until("every part", |l| l.rows() == 2);
    line.stop_within_limit("idle after the slow parts");
    assert_eq!(check_agreement(&input, &output, &written), 2);
}

#[test]
fn the_line_stops_while_another_worker_trains() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in"), dir.path().join("out"));
    let model = model();
    // The window's own worker, training a flow for a long time (cancelled at the end).
    let window = common::worker();
    let train = common::write_set(&dir.path().join("train"), "good", 0..8, false);
    let mut config = common::tiny_config();
    config.train.epochs = 100_000;
    window
        .send(Command::Train(TrainRequest {
            train,
            validation: Vec::new(),
            config: DetectorConfig::from(config),
            defects: Vec::new(),
        }))
        .unwrap();
    common::wait_for(&window, |e| {
        matches!(e, Event::TrainStep { .. }).then_some(())
    });
    // Its events are taken as they come, so it never waits for the test.
    let training = {
        let events = window.events().clone();
        std::thread::spawn(move || {
            for e in events.iter() {
                match e {
                    Event::Cancelled { .. } => return Ok(()),
                    Event::Trained(_) => return Err("the training ended early".to_owned()),
                    Event::Failed { message } | Event::Crashed { message } => {
                        return Err(message);
                    }
                    _ => {}
                }
            }
            Err("the worker went away".to_owned())
        })
    };

    let mut line = Line::start(model, &input, &output);
    for i in 0..3 {
        write_part(&input, i);
    }
    line.until("two parts sorted", |l| l.rows() >= 2);
    write_part(&input, 3);
    line.stop_within_limit("another worker training");
    let written: Vec<String> = (0..4).map(part).collect();
    let sorted = check_agreement(&input, &output, &written);
    assert!(sorted >= 2);

    // Still training when the line stopped.
    assert!(!training.is_finished(), "the training ended early");
    window.cancel();
    training.join().unwrap().unwrap();
}

#[test]
fn dropping_the_line_view_stops_the_line_within_the_limit() {
    // Closing the window drops the view: the line ends with it, after the part in
    // flight, and nothing is left half done.
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in"), dir.path().join("out"));
    let mut line = Line::start(model(), &input, &output);
    for i in 0..6 {
        write_part(&input, i);
    }
    line.until("a part sorted", |l| l.rows() >= 1);
    let closed = Instant::now();
    drop(line.panel);
    let took = closed.elapsed();
    assert!(took <= STOP_LIMIT, "closing took {took:?}");
    let written: Vec<String> = (0..6).map(part).collect();
    let sorted = check_agreement(&input, &output, &written);
    // The next start sorts the rest, each once.
    let mut line = Line::start(model(), &input, &output);
    line.until("every part sorted", |l| l.rows() == 6);
    line.stop_within_limit("idle after closing");
    assert!(sorted >= 1);
    assert_eq!(check_agreement(&input, &output, &written), 6);
}
