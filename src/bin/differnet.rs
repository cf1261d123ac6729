//! `differnet`: the headless front end. Trains, evaluates and scores through the same
//! worker the GUI uses.

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use differnet::core::calibration::LineCheck;
use differnet::core::colormap::Colormap;
use differnet::core::config::{
    BackboneKind, CsFlowConfig, DetectorConfig, DetectorKind, DeviceChoice, FlowScore,
    FusionConfig, PatchCoreConfig, Preset,
};
use differnet::core::dataset::{self, Label};
use differnet::core::decision::Thresholds;
use differnet::core::message::skipped_line;
use differnet::core::protocol::{
    Command, EvaluateRequest, Event, LabelledDefect, ScoreRequest, TrainRequest,
};
use differnet::engine::worker::{WorkerHandle, WorkerOptions};
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
    /// --out/ok, --out/review or --out/ng (unreadable files into --out/unreadable), exactly
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
    /// Write a heatmap image beside each ng and review part.
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
    #[arg(long, default_value_t = differnet::engine::watch::RECENT_GOOD_MAX)]
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
    /// Write path, score and decision of every image to this CSV file.
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

fn main() {
    differnet::engine::environment::restart_with_engine_env();
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
        Cmd::Train(a) => train(a),
        Cmd::Eval(a) => eval(a),
        Cmd::Score(a) => score(a),
        Cmd::FetchWeights(a) => fetch(a),
        Cmd::Split(a) => {
            let data = dataset::discover(&a.data)?;
            let (train, val) = train_val(&data, a.train_count, a.val_count, a.seed);
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
        Cmd::Watch(a) => watch(a),
        Cmd::Info { model } => {
            let meta = differnet::engine::model_file::read_meta(&model)?;
            outln!("{}", serde_json::to_string_pretty(&meta)?)?;
            Ok(())
        }
    }
}

/// `differnet watch`: sorts parts until Ctrl-C, SIGTERM or SIGHUP.
fn watch(a: WatchArgs) -> Result<()> {
    use differnet::engine::watch::{Watch, WatchOptions};
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
        .context("cannot install the Ctrl-C handler")?;
    let mut options = WatchOptions::new(a.model, a.input, a.output);
    options.heatmaps = a.heatmaps;
    options.copy = a.copy;
    options.settle = std::time::Duration::from_millis(a.settle_ms);
    options.poll = std::time::Duration::from_millis(a.poll_ms.max(10));
    options.poll_only = a.poll;
    options.summary_every = std::time::Duration::from_secs(a.summary_secs.max(1));
    options.recent_good = a.recent_good;
    options.worker = worker_options(&a.engine, None);
    let mut say = |line: String| eprintln!("{line}");
    // Ctrl-C or SIGTERM while the model loads stops here too (open_until says so).
    let Some(mut w) = Watch::open_until(options, &stop, &mut say)? else {
        return Ok(());
    };
    let t = w.thresholds();
    eprintln!(
        "watching: reject at {}, review from {}; Ctrl-C stops after the part in flight",
        t.reject,
        t.review.map_or("-".to_owned(), |r| r.to_string())
    );
    w.run(&stop, &mut say)
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
fn train_val(
    data: &dataset::Dataset,
    train_count: Option<usize>,
    val_count: Option<usize>,
    seed: u64,
) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let good = if data.train_good.is_empty() {
        data.test.iter().map(|s| s.path.clone()).collect::<Vec<_>>()
    } else {
        data.train_good.clone()
    };
    let val_count =
        val_count.unwrap_or_else(|| dataset::default_val_count(good.len(), train_count));
    dataset::split_train_val(&good, train_count, val_count, seed)
}

/// Finds the data set and says on stderr what its listing left out.
fn discover(root: &Path) -> Result<dataset::Dataset> {
    let data = dataset::discover(root)?;
    for (p, why) in &data.skipped {
        eprintln!("skipped: {}", skipped_line(p, why));
    }
    Ok(data)
}

fn train(a: TrainArgs) -> Result<()> {
    let data = discover(&a.data)?;
    let (train_set, val_set) = train_val(&data, a.train_count, a.val_count, a.seed);
    if train_set.is_empty() {
        bail!("no good images to train on in {}", a.data.display());
    }
    let config = train_config(&a)?;
    if a.defects > 0
        && !matches!(
            config,
            DetectorConfig::PatchCore(_) | DetectorConfig::Fusion(_)
        )
    {
        bail!(
            "--defects: {} learns from good images only (use patchcore or fusion)",
            a.detector
        );
    }
    let defects: Vec<LabelledDefect> = dataset::draw_defects(&data.test, a.defects, a.seed)
        .into_iter()
        .map(|s| LabelledDefect {
            path: s.path,
            mask: s.mask,
        })
        .collect();
    if a.defects > 0 && defects.is_empty() {
        bail!(
            "--defects: no labelled defective images (test/<type>/) in {}",
            a.data.display()
        );
    }
    let worker = start_worker(&a.engine, Some(config.backbone()))?;
    let mut progress = Progress::new(a.engine.json);
    let settings = match &config {
        DetectorConfig::DifferNet(_) => format!("{} preset, {}", a.preset, config.describe()),
        _ => config.describe(),
    };
    let with_defects = if defects.is_empty() {
        String::new()
    } else {
        format!(" and {} confirmed defective ones", defects.len())
    };
    progress.note(&format!(
        "training on {} good images{with_defects}, {} held out for validation ({settings})",
        train_set.len(),
        val_set.len(),
    ));
    send(
        &worker,
        Command::Train(TrainRequest {
            train: train_set,
            validation: val_set,
            config,
            defects,
        }),
    )?;
    let info = loop {
        match common_event(next_event(&worker)?, &mut progress)? {
            Some(Event::Trained(info)) => break info,
            Some(Event::EpochDone { epoch, mean_loss }) => {
                if let Some(b) = &progress.bar {
                    b.set_message(format!("epoch {} loss {mean_loss:.3}", epoch + 1));
                    progress.label = b.message().to_string();
                }
            }
            _ => {}
        }
    };
    progress.finish();
    send(
        &worker,
        Command::SaveModel {
            path: a.out.clone(),
            threshold: None,
            review_threshold: None,
        },
    )?;
    loop {
        if let Some(Event::Saved { .. }) = common_event(next_event(&worker)?, &mut progress)? {
            break;
        }
    }
    if a.engine.json {
        outln!("{}", serde_json::to_string_pretty(&info)?)?;
    } else {
        outln!(
            "trained in {:.1} s on {} images ({:.1} s of it validating and calibrating heatmaps)",
            info.train_secs,
            info.train_count,
            info.validation_secs
        )?;
        if let Some(v) = &info.validation {
            outln!(
                "validation: {} good images, score mean {:.4}, std {:.4}, max {:.4}",
                v.count,
                v.mean,
                v.std,
                v.max
            )?;
        }
        if let Some(t) = info.threshold {
            outln!("default threshold: {t:.4}")?;
        }
        outln!("model written to {}", a.out.display())?;
    }
    Ok(())
}

/// The detector settings the training arguments ask for.
fn train_config(a: &TrainArgs) -> Result<DetectorConfig> {
    let only = |kinds: &str, flags: &[(&str, bool)]| -> Result<()> {
        match flags.iter().find(|(_, set)| *set) {
            Some((flag, _)) => bail!("{flag} is a {kinds} setting, not {}'s", a.detector),
            None => Ok(()),
        }
    };
    let mut config = match a.detector {
        DetectorKind::DifferNet => {
            only(
                "PatchCore or CS-Flow",
                &[
                    ("--coreset", a.coreset.is_some()),
                    ("--dihedral", a.dihedral.is_some()),
                    ("--hidden", a.hidden.is_some()),
                    ("--top-fraction", a.top_fraction.is_some()),
                    ("--keep-aspect", a.keep_aspect.is_some()),
                    ("--same-area", a.same_area.is_some()),
                    ("--standardise", a.standardise.is_some()),
                    ("--defect-weight", a.defect_weight.is_some()),
                ],
            )?;
            let mut c = a
                .preset
                .config(a.backbone.unwrap_or(BackboneKind::EfficientnetLite0));
            if let Some(e) = a.epochs {
                c.train.epochs = e;
            }
            if let Some(r) = a.rotations {
                c.score.rotations = r;
            }
            DetectorConfig::DifferNet(c)
        }
        DetectorKind::PatchCore => {
            only(
                "DifferNet or CS-Flow",
                &[
                    ("--epochs", a.epochs.is_some()),
                    ("--rotations", a.rotations.is_some()),
                    ("--hidden", a.hidden.is_some()),
                    ("--top-fraction", a.top_fraction.is_some()),
                ],
            )?;
            let mut c = PatchCoreConfig::default();
            if let Some(b) = a.backbone {
                c.backbone = b;
            }
            if let Some(f) = a.coreset {
                c.coreset_fraction = f;
            }
            if let Some(d) = a.dihedral {
                c.dihedral_bank = d;
            }
            if let Some(k) = a.keep_aspect {
                c.keep_aspect = k;
            }
            if let Some(k) = a.same_area {
                c.same_area = k;
            }
            if let Some(k) = a.standardise {
                c.standardise = k;
            }
            if let Some(w) = a.defect_weight {
                c.defect_weight = w;
            }
            DetectorConfig::PatchCore(c)
        }
        DetectorKind::Fusion => {
            only(
                "member",
                &[
                    ("--epochs", a.epochs.is_some()),
                    ("--rotations", a.rotations.is_some()),
                    ("--hidden", a.hidden.is_some()),
                    ("--top-fraction", a.top_fraction.is_some()),
                    ("--coreset", a.coreset.is_some()),
                    ("--dihedral", a.dihedral.is_some()),
                    ("--keep-aspect", a.keep_aspect.is_some()),
                    ("--same-area", a.same_area.is_some()),
                    ("--standardise", a.standardise.is_some()),
                    ("--defect-weight", a.defect_weight.is_some()),
                ],
            )?;
            let mut c = DetectorConfig::Fusion(FusionConfig::default());
            if let Some(b) = a.backbone {
                c.set_backbone(b);
            }
            c
        }
        DetectorKind::CsFlow => {
            only(
                "DifferNet or PatchCore",
                &[
                    ("--rotations", a.rotations.is_some()),
                    ("--coreset", a.coreset.is_some()),
                    ("--keep-aspect", a.keep_aspect.is_some()),
                    ("--same-area", a.same_area.is_some()),
                    ("--standardise", a.standardise.is_some()),
                    ("--defect-weight", a.defect_weight.is_some()),
                ],
            )?;
            let mut c = CsFlowConfig::default();
            if let Some(b) = a.backbone {
                c.backbone = b;
            }
            if let Some(e) = a.epochs {
                c.epochs = e;
            }
            if let Some(d) = a.dihedral {
                c.dihedral = d;
            }
            if let Some(h) = a.hidden {
                c.hidden = h;
            }
            if let Some(f) = a.top_fraction {
                c.score = FlowScore::TopMean { fraction: f };
            }
            DetectorConfig::CsFlow(c)
        }
    };
    config.set_seed(a.seed);
    if let Some(s) = &a.stages {
        config
            .set_stages(s.clone())
            .map_err(|e| anyhow!("invalid settings: {e}"))?;
    }
    if let Some(s) = a.image_size {
        config.set_image_size(s);
    }
    config
        .validate()
        .map_err(|e| anyhow!("invalid settings: {e}"))?;
    Ok(config)
}

fn load_model(
    worker: &WorkerHandle,
    path: &Path,
    progress: &mut Progress,
) -> Result<differnet::core::protocol::ModelInfo> {
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

fn eval(a: EvalArgs) -> Result<()> {
    let data = discover(&a.data)?;
    let samples: Vec<_> = data
        .test
        .into_iter()
        .filter(|s| s.label != Label::Unknown)
        .collect();
    if samples.is_empty() {
        bail!(
            "no labelled test images (expected test/good and test/<defect>/) in {}",
            a.data.display()
        );
    }
    let worker = start_worker(&a.engine, None)?;
    let mut progress = Progress::new(a.engine.json);
    let info = load_model(&worker, &a.model, &mut progress)?;
    // Never score an image the model learnt from as a confirmed defect.
    let learnt: std::collections::HashSet<PathBuf> = info
        .trained_on
        .as_ref()
        .map(|t| t.defect_files.iter().map(|p| absolute(p)).collect())
        .unwrap_or_default();
    let before = samples.len();
    let samples: Vec<_> = samples
        .into_iter()
        .filter(|s| !learnt.contains(&absolute(&s.path)))
        .collect();
    let left_out = before - samples.len();
    if left_out > 0 {
        progress.note(&format!(
            "left out {left_out} defective images the model was trained on"
        ));
    }
    if samples.is_empty() {
        bail!("every labelled test image was used to train the model");
    }
    send(
        &worker,
        Command::Evaluate(EvaluateRequest {
            samples,
            pixel_metrics: !a.no_pixel,
            rotations: a.rotations,
        }),
    )?;
    let mut rows = Vec::new();
    let report = loop {
        match common_event(next_event(&worker)?, &mut progress)? {
            Some(Event::Evaluated(r)) => break r,
            Some(Event::Scored(s)) => rows.push((s.path, s.label.type_name().to_string(), s.score)),
            _ => {}
        }
    };
    progress.finish();
    if let Some(csv) = &a.csv {
        let threshold = info.threshold.map(|reject| Thresholds {
            reject,
            review: info.review_threshold,
        });
        let mut text = String::from("path,label,score,decision\n");
        for (path, label, score) in &rows {
            text += &format!(
                "{},{label},{score},{}\n",
                csv_field(&path.display().to_string()),
                decision(*score, threshold)
            );
        }
        differnet::core::atomic_file::write_atomic(csv, text.as_bytes())
            .with_context(|| format!("cannot write {}", csv.display()))?;
    }
    // What the model's own line does here, beside what its held-out images predicted.
    let fit = info.validation.as_ref().and_then(|v| v.fit());
    let line = info.threshold.map(|t| {
        LineCheck::new(
            t,
            fit.as_ref(),
            rows.iter()
                .map(|(_, label, score)| (*score, label != "good")),
        )
    });
    if a.engine.json {
        let mut value = serde_json::to_value(&report)?;
        value["line"] = serde_json::to_value(line)?;
        value["left_out_trained_defects"] = left_out.into();
        outln!("{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(());
    }
    let pct = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{:.1}", 100.0 * v));
    outln!("images: {}", report.count)?;
    outln!("image AUROC: {}", pct(report.image_auroc))?;
    for (t, v) in &report.per_type_auroc {
        outln!("  {t:>12}: {:.1}", 100.0 * v)?;
    }
    if let Some(b) = &report.best_f1 {
        outln!(
            "best F1 {:.3} at threshold {:.4} (precision {:.3}, recall {:.3})",
            b.f1,
            b.threshold,
            b.precision,
            b.recall
        )?;
    }
    if let Some(line) = &line {
        outln!(
            "at the model's line {:.4}: {}",
            line.threshold,
            line.summary()
        )?;
    }
    outln!("pixel AUROC: {}", pct(report.pixel_auroc))?;
    outln!("{:.3} s per image", report.secs_per_image)?;
    for (p, r) in &report.skipped {
        outln!("skipped: {}", skipped_line(p, r))?;
    }
    Ok(())
}

/// `path` made absolute against the working directory (its folders as written: a model
/// records the paths it was given), so that a relative and an absolute spelling match.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Folder and file name of an image, so that test/a/000.png and test/b/000.png get
/// different export names.
fn export_stem(path: &Path) -> String {
    let part = |p: Option<&std::ffi::OsStr>| p.map(|n| n.to_string_lossy().to_string());
    match (
        part(path.parent().and_then(Path::file_name)),
        part(path.file_stem()),
    ) {
        (Some(dir), Some(file)) => format!("{dir}_{file}"),
        (None, Some(file)) => file,
        _ => "image".to_string(),
    }
}

fn decision(score: f64, thresholds: Option<Thresholds>) -> &'static str {
    thresholds.map_or("unknown", |t| t.decide(score).name())
}

/// A path as JSON text. `serde_json::json!` unwraps the serialisation of a `Path`, which
/// fails (a panic) for a name that is not valid UTF-8; such a name shows its other bytes
/// as `\xNN`, as in every message.
fn text_path(path: &Path) -> String {
    differnet::core::message::path_text(path)
}

/// Quotes a CSV field when it needs it.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn score(a: ScoreArgs) -> Result<()> {
    let (paths, skipped_inputs) = dataset::list_images(&a.paths);
    for (p, why) in &skipped_inputs {
        eprintln!("skipped: {}", skipped_line(p, why));
    }
    if paths.is_empty() {
        bail!("no images to score");
    }
    if let Some(dir) = &a.heatmaps {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let worker = start_worker(&a.engine, None)?;
    let mut progress = Progress::new(a.engine.json);
    let info = load_model(&worker, &a.model, &mut progress)?;
    let threshold = a.threshold.or(info.threshold).map(|reject| {
        let saved_review = if a.threshold.is_none() {
            info.review_threshold
        } else {
            None
        };
        Thresholds {
            reject,
            review: a.review_threshold.or(saved_review),
        }
        .ordered()
    });
    send(
        &worker,
        Command::Score(ScoreRequest {
            paths,
            heatmaps: a.heatmaps.is_some(),
            rotations: a.rotations,
        }),
    )?;
    let mut rows = Vec::new();
    let mut used_names = HashMap::new();
    let skipped = loop {
        match common_event(next_event(&worker)?, &mut progress)? {
            Some(Event::ScoringDone { skipped, .. }) => break skipped,
            Some(Event::Scored(s)) => {
                if let (Some(dir), Some(map)) = (&a.heatmaps, &s.heatmap) {
                    let img = differnet::core::image_io::load_rgb(&s.path)?;
                    let vmax = info.config.heat_vmax();
                    let mut caption = format!(
                        "{}  score {:.4}",
                        s.path
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                        s.score
                    );
                    if let Some(t) = threshold {
                        caption +=
                            &format!("  {} (reject at {:.4})", t.decide(s.score).name(), t.reject);
                    }
                    let out = differnet::core::caption::with_caption(
                        &differnet::core::overlay::overlay(
                            &img,
                            map,
                            Colormap::default(),
                            0.6,
                            vmax,
                        ),
                        &[caption],
                        Colormap::default(),
                        vmax,
                    );
                    let stem = export_stem(&s.path);
                    let n = used_names.entry(stem.clone()).or_insert(0usize);
                    let name = if *n == 0 {
                        format!("{stem}_heatmap.png")
                    } else {
                        format!("{stem}_{n}_heatmap.png")
                    };
                    *n += 1;
                    let dest = dir.join(name);
                    let mut bytes = Vec::new();
                    out.write_to(
                        &mut std::io::Cursor::new(&mut bytes),
                        image::ImageFormat::Png,
                    )?;
                    differnet::core::atomic_file::write_atomic(&dest, &bytes)
                        .with_context(|| format!("cannot write {}", dest.display()))?;
                }
                rows.push((s.path, s.score));
            }
            _ => {}
        }
    };
    progress.finish();
    let mut text = String::from("path,score,decision\n");
    for (path, score) in &rows {
        text += &format!(
            "{},{score},{}\n",
            csv_field(&path.display().to_string()),
            decision(*score, threshold)
        );
    }
    if let Some(csv) = &a.csv {
        differnet::core::atomic_file::write_atomic(csv, text.as_bytes())
            .with_context(|| format!("cannot write {}", csv.display()))?;
    }
    if a.engine.json {
        let items: Vec<_> = rows
            .iter()
            .map(|(p, s)| serde_json::json!({"path": text_path(p), "score": s, "decision": decision(*s, threshold)}))
            .collect();
        let skipped: Vec<_> = skipped
            .iter()
            .chain(skipped_inputs.iter())
            .map(|(p, r)| serde_json::json!({"path": text_path(p), "reason": r}))
            .collect();
        outln!(
            "{}",
            serde_json::json!({"threshold": threshold.map(|t| t.reject), "review_threshold": threshold.and_then(|t| t.review), "images": items, "skipped": skipped})
        )?;
    } else {
        if a.csv.is_none() {
            std::io::stdout().write_all(text.as_bytes())?;
        }
        let rejected = rows
            .iter()
            .filter(|(_, s)| decision(*s, threshold) == "reject")
            .count();
        eprintln!(
            "{} scored, {rejected} rejected, {} skipped",
            rows.len(),
            skipped.len() + skipped_inputs.len()
        );
        for (p, r) in &skipped {
            eprintln!("skipped: {}", skipped_line(p, r));
        }
    }
    if rows.is_empty() {
        bail!(
            "none of the {} images could be read, so nothing was scored",
            skipped.len()
        );
    }
    Ok(())
}

fn fetch(a: FetchArgs) -> Result<()> {
    use differnet::core::download;
    if a.backbone != BackboneKind::Alexnet {
        bail!(
            "{} weights are installed by scripts/setup.sh, not downloaded",
            a.backbone
        );
    }
    let dest = differnet::engine::weights::default_path(BackboneKind::Alexnet);
    if dest.is_file() {
        outln!("already present: {}", dest.display())?;
        return Ok(());
    }
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let url = a.url.unwrap_or_else(|| download::ALEXNET_URL.to_string());
    let prefix = download::torchvision_hash_prefix(differnet::engine::weights::ALEXNET_FILE)
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
