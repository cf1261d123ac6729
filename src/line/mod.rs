//! The line: a room of its own above the engine (it drives a worker and writes files; it
//! touches no tensor). A watch on an input folder sorts parts into `accept/`, `review/`,
//! `reject/` (and `unreadable/`) of an output folder as a camera writes them, each exactly
//! once (see [`crate::core::journal`]), with one row per part in `log.csv`. It watches its
//! own health ([`crate::core::drift`]): when the parts drift from what the model was
//! trained on it says so in a line that begins with `drift:` and in the log's `drift`
//! column, and it keeps the latest parts it is sure are good in `recent-good/` for a
//! retrain.
//!
//! - `watch.rs`: the [`Watch`]: open (finishing what a previous run left half done), run,
//!   decide, journal, log, move.
//! - `scoring.rs`: talking to the worker, with every wait bounded by the stop flag.
//! - `files.rs`: synced moves and copies, the journal's and the log's files, the
//!   recent-good folder.
//! - `tally.rs`: the counts and the summary line.

mod files;
mod scoring;
mod tally;
mod watch;

pub use files::recent_good_parts;
pub use tally::Tally;
pub use watch::{Watch, is_sure_good};

use crate::core::decision::Thresholds;
use crate::engine::worker::WorkerOptions;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The folders parts are sorted into, named by the decision ([`crate::core::decision::Decision::name`]), and the
/// unreadable files'.
pub const FOLDERS: [&str; 4] = ["accept", "review", "reject", UNREADABLE];
/// What the line calls a file it cannot read (its folder and its `decision` in the log):
/// the one outcome that is not a [`crate::core::decision::Decision`].
pub const UNREADABLE: &str = "unreadable";
/// The journal's file name in the output folder.
pub const JOURNAL: &str = ".differnet-journal";
/// The log's file name in the output folder.
pub const LOG: &str = "log.csv";
/// The folder (in the output folder) of the latest parts the line is sure are good: copies
/// of accepted parts that scored well below the line, for a retrain. Never a rejected or
/// review part.
pub const RECENT_GOOD: &str = "recent-good";
/// Parts kept in [`RECENT_GOOD`] by default; the oldest go first.
pub const RECENT_GOOD_MAX: usize = 200;
/// Once the line is asked to stop, how long the worker may still take to finish the part
/// in flight (or to load the model) before the line gives up on it: the part is then left
/// in the input folder for the next start, and the line ends anyway. With the writing of a
/// finished part, a stop takes effect within 2 s.
pub const STOP_GRACE: Duration = Duration::from_millis(1200);
/// How to watch.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// The model file.
    pub model: PathBuf,
    /// The folder the camera writes to.
    pub input: PathBuf,
    /// The folder parts are sorted into.
    pub output: PathBuf,
    /// Write a heatmap image beside each `reject` and `review` part.
    pub heatmaps: bool,
    /// Copy parts instead of moving them (the input folder keeps them).
    pub copy: bool,
    /// A file is complete once its size and time stayed the same this long.
    pub settle: Duration,
    /// How often the folder is listed, whatever the file system reports.
    pub poll: Duration,
    /// Only poll (for network shares, where change events do not arrive).
    pub poll_only: bool,
    /// How often a summary line is written.
    pub summary_every: Duration,
    /// Parts kept in [`RECENT_GOOD`] (0: none).
    pub recent_good: usize,
    /// The worker's device and weights.
    pub worker: WorkerOptions,
}

impl WatchOptions {
    /// Watching `input` into `output` with `model`, default timings.
    pub fn new(model: PathBuf, input: PathBuf, output: PathBuf) -> Self {
        Self {
            model,
            input,
            output,
            heatmaps: false,
            copy: false,
            settle: Duration::from_millis(1000),
            poll: Duration::from_millis(500),
            poll_only: false,
            summary_every: Duration::from_secs(60),
            recent_good: RECENT_GOOD_MAX,
            worker: WorkerOptions::default(),
        }
    }
}

/// A part the watch decided, for a live view.
#[derive(Debug, Clone, PartialEq)]
pub struct PartDecided {
    /// The file name.
    pub name: String,
    /// Its score (`None`: unreadable).
    pub score: Option<f64>,
    /// `accept`, `review`, `reject` ([`crate::core::decision::Decision::name`]) or [`UNREADABLE`].
    pub decision: String,
    /// Where it went.
    pub dest: PathBuf,
    /// Its heatmap image, when one was written.
    pub heatmap: Option<PathBuf>,
    /// Seconds from its appearance to its decision.
    pub latency: f64,
    /// Its part number on the line.
    pub part: u64,
    /// The reject line it was decided at.
    pub reject: f64,
    /// The model's held-out good scores, lowest and highest.
    pub good_range: Option<(f64, f64)>,
    /// What is drifting now, one sentence each (empty: nothing).
    pub drift: Vec<String>,
}

/// What a live view is called with for each part decided.
pub type PartCallback = Box<dyn FnMut(&PartDecided) + Send>;

/// What a live view is called with when a part (its file name) goes to the worker.
pub type ScoringCallback = Box<dyn FnMut(&str) + Send>;

/// Lines set from outside while the watch runs (the workstation's Decide panel): taken
/// before the next part, and logged.
pub type LineControl = Arc<std::sync::Mutex<Option<Thresholds>>>;
