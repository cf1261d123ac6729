//! An optional log of every frame the window draws, for measuring the GUI's frame time
//! (the `gui` section of `scripts/bench.py`: `python3 scripts/bench.py --only gui`, or
//! `make bench BENCH_ARGS='--only gui'`) and finding what keeps it repainting.
//!
//! Enabled by the environment variable `DIFFERNET_FRAME_LOG=FILE`: one line per frame,
//! `SECONDS_SINCE_START CPU_MS BUSY CAUSES`, where `CPU_MS` is eframe's measure of the
//! previous frame's CPU time (the app's code plus tessellation), `BUSY` is 1 while the
//! worker has a job, and `CAUSES` are the `file:line` of the repaint requests that led to
//! the frame.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::time::Instant;

/// The environment variable naming the log file.
pub const FRAME_LOG_ENV: &str = "DIFFERNET_FRAME_LOG";

/// Writes one line per frame.
pub struct FrameLog {
    out: BufWriter<File>,
    start: Instant,
}

impl FrameLog {
    /// The log named by [`FRAME_LOG_ENV`], if set (a file that cannot be created is
    /// reported on stderr and ignored: the log is a measurement aid, not a feature).
    pub fn from_env() -> Option<Self> {
        let path = std::env::var_os(FRAME_LOG_ENV)?;
        match File::create(&path) {
            Ok(f) => Some(Self {
                out: BufWriter::new(f),
                start: Instant::now(),
            }),
            Err(e) => {
                eprintln!(
                    "cannot create the frame log {}: {e}",
                    path.to_string_lossy()
                );
                None
            }
        }
    }

    /// Records one frame.
    pub fn frame(&mut self, ctx: &egui::Context, cpu_secs: Option<f32>, busy: bool) {
        let causes: Vec<String> = ctx
            .repaint_causes()
            .iter()
            .map(|c| {
                let file = c.file.rsplit('/').next().unwrap_or(c.file);
                format!("{file}:{}", c.line)
            })
            .collect();
        let _ = writeln!(
            self.out,
            "{:.4} {:.3} {} {}",
            self.start.elapsed().as_secs_f64(),
            cpu_secs.map_or(f32::NAN, |s| s * 1000.0),
            u8::from(busy),
            causes.join(",")
        );
        // Every frame: a reader (the benchmark) waits for the line that says the job
        // ended, and an idle window draws no further frame that would flush it.
        let _ = self.out.flush();
    }
}

impl Drop for FrameLog {
    fn drop(&mut self) {
        let _ = self.out.flush();
    }
}
