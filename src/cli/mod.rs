//! `differnet`, the headless front end: its arguments and commands. Trains, evaluates,
//! scores and runs the line through the same worker the window uses; the binary only
//! calls [`main`].
//!
//! - `train`: [`train`], `eval`: [`eval`], `score`: [`score`], `watch`: [`watch`];
//!   `split`, `info` and `fetch-weights` are here, with what the commands share (the
//!   worker, its events and the progress bar).

use crate::core::calibration::LineCheck;
use crate::core::colormap::Colormap;
use crate::core::config::{
    BackboneKind, CsFlowConfig, DetectorConfig, DetectorKind, DeviceChoice, FlowScore,
    FusionConfig, PatchCoreConfig, Preset,
};
use crate::core::dataset::{self, Label};
use crate::core::decision::{Thresholds, decision_name as decision};
use crate::core::heatmap_image::{
    HEATMAP_OPACITY, ScaledHeat, heatmap_caption, write_heatmap_file,
};
use crate::core::message::skipped_line;
use crate::core::protocol::{
    Command, EvaluateRequest, Event, LabelledDefect, ScoreRequest, TrainRequest,
};
use crate::core::report::{CsvContext, PartRow, parts_csv};
use crate::engine::worker::{WorkerHandle, WorkerOptions};
use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// DifferNet defect detection: train on good parts, score new ones.
#[derive(Parser, Debug)]
#[command(name = "differnet", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Train a model on good images and save it.
    Train(TrainArgs),
    /// Evaluate a model on a labelled test set (MVTec AD layout: DIR/test, DIR/ground_truth).
    Eval(EvalArgs),
    /// Score images or folders of images.
    Score(ScoreArgs),
    /// Download torchvision's AlexNet ImageNet weights (checked by SHA-256) into the cache.
    FetchWeights(FetchArgs),
    /// Print, as JSON, the training / validation / test split that `train` and `eval` use
    /// for these arguments (for comparing with other implementations on the same images).
    Split(SplitArgs),
    /// Sort parts as a camera writes them: each new image in --in is scored and moved into
    /// --out/accept, --out/review or --out/reject (unreadable files into --out/unreadable), exactly
    /// once, with a row in --out/log.csv. Ctrl-C stops after the part in flight.
    Watch(WatchArgs),
    /// Print what a model file holds.
    Info {
        /// The model file.
        #[arg(long)]
        model: PathBuf,
    },
}

/// Options shared by every command that runs the engine.
#[derive(Args, Debug)]
struct EngineArgs {
    /// Where to run: auto (GPU when available), cpu or cuda.
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    /// Weights file of the backbone (default: the setup cache).
    #[arg(long)]
    backbone_weights: Option<PathBuf>,
    /// Images per backbone call (default on the CPU: 4 up to 224 px, else 1; on a GPU: 64).
    #[arg(long)]
    backbone_batch: Option<usize>,
    /// Images scored at once (default: 64 on a GPU; on the CPU, one per lane).
    #[arg(long)]
    score_batch: Option<usize>,
    /// Print results as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct WatchArgs {
    /// The model file (its reject line and review band decide).
    #[arg(long)]
    model: PathBuf,
    /// The folder the camera writes to.
    #[arg(long = "in")]
    input: PathBuf,
    /// The folder parts are sorted into.
    #[arg(long = "out")]
    output: PathBuf,
    /// Write a heatmap image beside each reject and review part.
    #[arg(long)]
    heatmaps: bool,
    /// Copy parts instead of moving them (the input folder keeps them).
    #[arg(long)]
    copy: bool,
    /// A file counts as complete once its size and time stayed the same this long.
    #[arg(long, default_value_t = 1000)]
    settle_ms: u64,
    /// How often the folder is listed besides change events.
    #[arg(long, default_value_t = 500)]
    poll_ms: u64,
    /// Only poll (network shares, where change events do not arrive).
    #[arg(long)]
    poll: bool,
    /// Seconds between summary lines.
    #[arg(long, default_value_t = 60)]
    summary_secs: u64,
    /// Accepted parts that scored well below the line kept in --out/recent-good for a
    /// retrain (the latest ones; 0 keeps none).
    #[arg(long, default_value_t = crate::line::RECENT_GOOD_MAX)]
    recent_good: usize,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Args, Debug)]
struct TrainArgs {
    /// Data: an MVTec AD folder (uses train/good) or a folder of good images.
    #[arg(long)]
    data: PathBuf,
    /// Where to write the model file.
    #[arg(long)]
    out: PathBuf,
    /// Number of good images to train on, drawn with the seed (default: all but validation).
    #[arg(long)]
    train_count: Option<usize>,
    /// Good images held out for score statistics and the default threshold
    /// (default: every spare image up to 64 when there are at least 16, else a fifth of
    /// them, at most 8).
    #[arg(long)]
    val_count: Option<usize>,
    /// Seed of the split, the weights, the rotations and the batch order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Which good images to train on: a draw with the seed, or (for the others) the held-out
    /// ones drawn with the seed and the training ones chosen from the rest by how they look.
    #[arg(long, default_value = "seeded")]
    pick: Pick,
    /// The good images to train on, one path per line, instead of a draw (with
    /// --val-list: the held-out ones).
    #[arg(long, requires = "val_list")]
    train_list: Option<PathBuf>,
    /// The good images to hold out, one path per line (with --train-list).
    #[arg(long, requires = "train_list")]
    val_list: Option<PathBuf>,
    /// Detector: fusion (two PatchCores on two views of each part, combined; the most
    /// accurate), patchcore (nearest good patch; the fastest), cs-flow (a fully
    /// convolutional flow on three scales) or differnet (the paper's normalizing flow).
    #[arg(long, default_value = "fusion")]
    detector: DetectorKind,
    /// DifferNet's settings bundle: paper (every hyper-parameter of the paper) or fast.
    #[arg(long, default_value = "fast")]
    preset: Preset,
    /// Feature extractor: efficientnet-lite0, -lite1, -lite2 (offline) or alexnet (the
    /// paper's; DifferNet only). Default: the detector's.
    #[arg(long)]
    backbone: Option<BackboneKind>,
    /// Override the number of epochs (DifferNet, CS-Flow).
    #[arg(long)]
    epochs: Option<usize>,
    /// Override DifferNet's number of test rotations.
    #[arg(long)]
    rotations: Option<usize>,
    /// Override the backbone stages (1-based, comma separated), e.g. 5,7 (DifferNet) or
    /// 3,5 (PatchCore).
    #[arg(long, value_delimiter = ',')]
    stages: Option<Vec<usize>>,
    /// Override the input size in pixels.
    #[arg(long)]
    image_size: Option<u32>,
    /// PatchCore: share of the memory bank kept by the greedy coreset, in (0, 1].
    #[arg(long)]
    coreset: Option<f64>,
    /// PatchCore: put the 8 rotations and flips of each good image in the bank; CS-Flow:
    /// train on them too (true or false).
    #[arg(long)]
    dihedral: Option<bool>,
    /// PatchCore: keep each image's aspect ratio (short side at the input size) instead of
    /// squashing it into a square (true or false).
    #[arg(long)]
    keep_aspect: Option<bool>,
    /// PatchCore: with --keep-aspect, as many pixels as the --image-size square instead of
    /// the short side at --image-size (true or false).
    #[arg(long)]
    same_area: Option<bool>,
    /// PatchCore: standardise each image's grey levels before the backbone (true or
    /// false).
    #[arg(long)]
    standardise: Option<bool>,
    /// PatchCore: put brightness and contrast copies of each good image in the bank too
    /// (true or false).
    #[arg(long)]
    photometric_bank: Option<bool>,
    /// PatchCore: show the backbone tiles of at most N x N input pixels, overlapping, and
    /// stitch their features (0: the whole input at once).
    #[arg(long)]
    tile: Option<u32>,
    /// PatchCore: with --keep-aspect, resize every image by the one factor that brings the
    /// training images' median short side to --image-size (true or false).
    #[arg(long)]
    scale_to_training: Option<bool>,
    /// PatchCore: side of the neighbourhood each stage's map is averaged over (odd).
    #[arg(long)]
    neighbourhood: Option<usize>,
    /// PatchCore and fusion: also put copies of each good image turned by every 360/N
    /// degrees in the bank (8 or 16; square inputs only; 0: none).
    #[arg(long)]
    bank_rotations: Option<u32>,
    /// PatchCore: also learn from N defects drawn on copies of each good training image
    /// (scratches, spots, moved patches; 0: none).
    #[arg(long)]
    synthetic_defects: Option<u32>,
    /// Also learn from N confirmed defective images of each defect type, drawn with the
    /// seed from the data set's test/<type> folders (with their masks where there are
    /// any); `eval` then leaves them out. PatchCore and fusion only.
    #[arg(long, default_value_t = 0)]
    defects: usize,
    /// PatchCore: how much a patch that looks like a confirmed defect may score above
    /// its distance to the good patches, in units of the confirmed defects' distance.
    #[arg(long)]
    defect_weight: Option<f64>,
    /// CS-Flow: hidden channels of the cross-convolutions (paper: 1024).
    #[arg(long)]
    hidden: Option<usize>,
    /// CS-Flow: score an image by the mean of its most anomalous share of positions, in
    /// (0, 1], instead of the mean over every latent value (the paper).
    #[arg(long)]
    top_fraction: Option<f64>,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Args, Debug)]
struct SplitArgs {
    /// Data set folder (MVTec AD layout, or a folder of good images).
    #[arg(long)]
    data: PathBuf,
    /// Number of good images to train on (default: all but the validation ones).
    #[arg(long)]
    train_count: Option<usize>,
    /// Good images held out for validation (default as in `train`).
    #[arg(long)]
    val_count: Option<usize>,
    /// Seed of the draw.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Which good images to train on (as in `train`).
    #[arg(long, default_value = "seeded")]
    pick: Pick,
}

/// How the good images to train on are chosen.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Pick {
    /// Drawn with the seed.
    Seeded,
    /// Chosen to cover how the good parts look (k-centre on small thumbnails).
    Diverse,
    /// Chosen as representatives of how most good parts look (k-medoids on the same).
    Representative,
    /// Chosen by how they look to the backbone (k-medoids on its pooled head features):
    /// what the window does by default.
    Features,
}

#[derive(Args, Debug)]
struct EvalArgs {
    /// The model file.
    #[arg(long)]
    model: PathBuf,
    /// An MVTec AD folder with test/<type>/ images and optional ground_truth/ masks.
    #[arg(long)]
    data: PathBuf,
    /// Number of test rotations (default: the model's).
    #[arg(long)]
    rotations: Option<usize>,
    /// Skip heatmaps and pixel AUROC (about 3x faster).
    #[arg(long)]
    no_pixel: bool,
    /// Also write every image's score to this CSV file.
    #[arg(long)]
    csv: Option<PathBuf>,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Args, Debug)]
struct ScoreArgs {
    /// The model file.
    #[arg(long)]
    model: PathBuf,
    /// Write every image's row (path, label, score, decision, the lines, the model, the
    /// time, its hot area) to this CSV file: the window's export's columns.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Write a heatmap overlay PNG per image into this folder.
    #[arg(long)]
    heatmaps: Option<PathBuf>,
    /// Reject threshold (default: the model's).
    #[arg(long)]
    threshold: Option<f64>,
    /// Start of a review band below the reject threshold (default: the model's, when the
    /// reject threshold is the model's too).
    #[arg(long)]
    review_threshold: Option<f64>,
    /// Number of test rotations (default: the model's).
    #[arg(long)]
    rotations: Option<usize>,
    /// Images or folders of images.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Args, Debug)]
struct FetchArgs {
    /// Which weights (only alexnet needs downloading).
    #[arg(default_value = "alexnet")]
    backbone: BackboneKind,
    /// Source URL (default: torchvision's official file).
    #[arg(long)]
    url: Option<String>,
}

/// `println!` that returns the write error instead of panicking, so that a closed pipe
/// (`differnet split ... | head`) ends the command quietly.
macro_rules! outln {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout().lock(), $($arg)*)
    };
}

/// The command line: parses the arguments and runs the command; exits 1 with the error
/// (141 when the reader of its output went away).
pub fn main() {
    crate::engine::environment::restart_with_engine_env();
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        if closed_pipe(&e) {
            // The reader went away (`| head`): stop quietly, as Unix tools do on SIGPIPE.
            std::process::exit(SIGPIPE_EXIT);
        }
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// The exit status of a Unix tool stopped by SIGPIPE (128 + 13).
const SIGPIPE_EXIT: i32 = 141;

/// Whether `e` comes from writing to a pipe whose reader is gone.
fn closed_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::Train(a) => train::train(a),
        Cmd::Eval(a) => eval::eval(a),
        Cmd::Score(a) => score::score(a),
        Cmd::FetchWeights(a) => fetch(a),
        Cmd::Split(a) => {
            let data = dataset::discover(&a.data)?;
            let (train, val) = train_val(&data, a.train_count, a.val_count, a.seed, a.pick);
            let test: Vec<_> = data
                .test
                .iter()
                .filter(|s| s.label != Label::Unknown)
                .map(|s| {
                    serde_json::json!({"path": text_path(&s.path), "label": s.label.type_name(), "mask": s.mask.as_deref().map(text_path)})
                })
                .collect();
            let (train, val): (Vec<_>, Vec<_>) = (
                train.iter().map(|p| text_path(p)).collect(),
                val.iter().map(|p| text_path(p)).collect(),
            );
            let split = serde_json::json!({"train": train, "val": val, "test": test});
            outln!("{}", serde_json::to_string_pretty(&split)?)?;
            Ok(())
        }
        Cmd::Watch(a) => watch::watch(a),
        Cmd::Info { model } => {
            let meta = crate::engine::model_file::read_meta(&model)?;
            outln!("{}", serde_json::to_string_pretty(&meta)?)?;
            Ok(())
        }
    }
}

/// Starts the worker; the CLI blocks on the event channel, so its waker does nothing.
fn start_worker(engine: &EngineArgs, backbone: Option<BackboneKind>) -> Result<WorkerHandle> {
    WorkerHandle::spawn(worker_options(engine, backbone), Arc::new(|| {}))
        .context("cannot start the worker thread")
}

/// The worker settings the engine arguments ask for.
fn worker_options(engine: &EngineArgs, backbone: Option<BackboneKind>) -> WorkerOptions {
    let mut weights = HashMap::new();
    if let Some(path) = &engine.backbone_weights {
        let kinds = backbone.map_or(BackboneKind::ALL.to_vec(), |b| vec![b]);
        for k in kinds {
            weights.insert(k, path.clone());
        }
    }
    WorkerOptions {
        device: engine.device,
        weights,
        backbone_batch: engine.backbone_batch,
        score_batch: engine.score_batch,
        fault: None,
    }
}

/// Progress display fed by worker events.
struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    quiet: bool,
}

impl Progress {
    fn new(quiet: bool) -> Self {
        Self {
            bar: None,
            label: String::new(),
            quiet,
        }
    }

    fn update(&mut self, label: &str, done: usize, total: usize) {
        if self.quiet {
            return;
        }
        if self.label != label {
            if let Some(b) = self.bar.take() {
                b.finish();
            }
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg:>20} [{bar:40}] {pos}/{len} {elapsed_precise} eta {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_message(label.to_string());
            self.bar = Some(bar);
            self.label = label.to_string();
        }
        if let Some(b) = &self.bar {
            b.set_length(total as u64);
            b.set_position(done as u64);
        }
    }

    fn note(&self, text: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(b) => b.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish();
        }
        self.label.clear();
    }
}

/// Handles the events every job shares; returns `Some` with the event when the caller
/// must look at it.
fn common_event(event: Event, progress: &mut Progress) -> Result<Option<Event>> {
    match event {
        Event::Ready { device } => {
            progress.note(&format!("device: {device}"));
            Ok(None)
        }
        Event::Progress {
            phase, done, total, ..
        } => {
            progress.update(phase.label(), done, total);
            Ok(None)
        }
        Event::Skipped { path, reason } => {
            progress.note(&format!("skipped: {}", skipped_line(&path, &reason)));
            Ok(None)
        }
        Event::Failed { message } => {
            progress.finish();
            Err(anyhow!(message))
        }
        Event::Crashed { message } => {
            progress.finish();
            Err(anyhow!("the worker crashed: {message}"))
        }
        Event::Cancelled { .. } => bail!("cancelled"),
        other => Ok(Some(other)),
    }
}

fn next_event(worker: &WorkerHandle) -> Result<Event> {
    worker
        .events()
        .recv()
        .map_err(|_| anyhow!("the worker stopped unexpectedly"))
}

fn send(worker: &WorkerHandle, command: Command) -> Result<()> {
    worker.send(command).map_err(|e| anyhow!(e))
}

/// The training and validation images of `data` (a plain folder's images are all good).
/// The good images of a data set: `train/good`, or every image of a plain folder.
fn good_images(data: &dataset::Dataset) -> Vec<PathBuf> {
    if data.train_good.is_empty() {
        data.test.iter().map(|s| s.path.clone()).collect()
    } else {
        data.train_good.clone()
    }
}

/// The training and held-out images with the training ones chosen by the worker's
/// backbone ([`Pick::Features`]): the held-out ones drawn with the seed as ever.
fn chosen_split(
    worker: &WorkerHandle,
    data: &dataset::Dataset,
    train_count: Option<usize>,
    val_count: Option<usize>,
    seed: u64,
    backbone: BackboneKind,
    progress: &mut Progress,
) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let good = good_images(data);
    let val_count =
        val_count.unwrap_or_else(|| dataset::default_val_count(good.len(), train_count));
    let val_len = val_count.min(good.len() / 2);
    let wanted = train_count.map_or(good.len() - val_len, |c| c.min(good.len() - val_len));
    let order = if wanted < good.len() - val_len {
        send(
            worker,
            Command::ChooseTraining {
                good: good.clone(),
                backbone,
                seed,
            },
        )?;
        loop {
            if let Some(Event::TrainingOrder(order)) = common_event(next_event(worker)?, progress)?
            {
                break order;
            }
        }
    } else {
        Vec::new()
    };
    let roles = crate::core::training_set::assign_roles_preferring(
        &good,
        &std::collections::BTreeMap::new(),
        wanted,
        Some(val_len),
        seed,
        &order,
    );
    Ok((roles.train, roles.held_out))
}

fn train_val(
    data: &dataset::Dataset,
    train_count: Option<usize>,
    val_count: Option<usize>,
    seed: u64,
    pick: Pick,
) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let good = good_images(data);
    let val_count =
        val_count.unwrap_or_else(|| dataset::default_val_count(good.len(), train_count));
    use crate::core::diverse;
    match pick {
        // The backbone's choice needs the worker: `train` asks it (see `chosen_split`).
        Pick::Seeded | Pick::Features => {
            dataset::split_train_val(&good, train_count, val_count, seed)
        }
        Pick::Diverse => diverse::split_diverse(
            &good,
            train_count,
            val_count,
            seed,
            diverse::Choice::Coverage,
        ),
        Pick::Representative => diverse::split_diverse(
            &good,
            train_count,
            val_count,
            seed,
            diverse::Choice::Representatives,
        ),
    }
}

/// The paths of a list file, one per line (blank lines skipped).
fn path_list(file: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| anyhow!("cannot read the list {}: {e}", file.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(PathBuf::from)
        .collect())
}

/// Finds the data set and says on stderr what its listing left out.
fn discover(root: &Path) -> Result<dataset::Dataset> {
    let data = dataset::discover(root)?;
    for (p, why) in &data.skipped {
        eprintln!("skipped: {}", skipped_line(p, why));
    }
    Ok(data)
}

fn load_model(
    worker: &WorkerHandle,
    path: &Path,
    progress: &mut Progress,
) -> Result<crate::core::protocol::ModelInfo> {
    send(
        worker,
        Command::LoadModel {
            path: path.to_path_buf(),
        },
    )?;
    loop {
        if let Some(Event::Loaded { info, .. }) = common_event(next_event(worker)?, progress)? {
            return Ok(info);
        }
    }
}

/// `path` made absolute against the working directory (its folders as written: a model
/// records the paths it was given), so that a relative and an absolute spelling match.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// A path as JSON text. `serde_json::json!` unwraps the serialisation of a `Path`, which
/// fails (a panic) for a name that is not valid UTF-8; such a name shows its other bytes
/// as `\xNN`, as in every message.
/// The model's file name, as heatmap captions and CSVs name it.
fn model_file_name(model: &Path) -> String {
    text_path(model.file_name().map_or(model, Path::new))
}

/// The parts CSV (the window's export's columns) of scored images, each `(path, label,
/// score, hot area)`, decided at `thresholds` by the model at `model`.
fn scored_csv<'a>(
    scored: impl Iterator<Item = (&'a Path, &'a str, f64, Option<usize>)>,
    model: &Path,
    info: &crate::core::protocol::ModelInfo,
    thresholds: Option<Thresholds>,
) -> String {
    let context = CsvContext {
        thresholds,
        model: format!("{}: {}", model_file_name(model), info.config.describe()),
        model_id: info.trained_on.as_ref().map(|r| r.id.clone()),
        time: crate::core::provenance::utc_text(crate::core::provenance::now_unix_secs()),
    };
    let rows: Vec<PartRow<'_>> = scored
        .map(|(path, label, score, hot_area)| PartRow {
            path,
            label,
            score: Some(score),
            decision: decision(score, thresholds),
            hot_area,
            model_role: info.trained_on.as_ref().and_then(|r| r.role_of(path)),
        })
        .collect();
    parts_csv(&rows, &context)
}

fn text_path(path: &Path) -> String {
    crate::core::message::path_text(path)
}

fn fetch(a: FetchArgs) -> Result<()> {
    use crate::core::download;
    if a.backbone != BackboneKind::Alexnet {
        bail!(
            "{} weights are installed by scripts/setup.sh, not downloaded",
            a.backbone
        );
    }
    let dest = crate::engine::weights::default_path(BackboneKind::Alexnet);
    if dest.is_file() {
        outln!("already present: {}", dest.display())?;
        return Ok(());
    }
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let url = a.url.unwrap_or_else(|| download::ALEXNET_URL.to_string());
    let prefix = download::torchvision_hash_prefix(crate::engine::weights::ALEXNET_FILE)
        .ok_or_else(|| anyhow!("no hash in the weights file name"))?;
    let bar = ProgressBar::new(0);
    download::download_verified(&url, &dest, prefix, &mut |done, total| {
        if let Some(t) = total {
            bar.set_length(t);
        }
        bar.set_position(done);
    })?;
    bar.finish();
    outln!("wrote {}", dest.display())?;
    Ok(())
}

mod eval;
mod score;
mod train;
mod watch;
