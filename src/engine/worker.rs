//! The worker thread: owns the device, the backbone and the current model, and runs one
//! job at a time from [`Command`]s, reporting [`Event`]s. Front ends (CLI, GUI) talk to it
//! only through bounded channels, and it wakes them through an injected closure so it
//! never depends on a UI toolkit.

use crate::core::config::{BackboneKind, DeviceChoice};
use crate::core::dataset::Label;
use crate::core::image_io::load_rgb;
use crate::core::message::one_line;
use crate::core::metrics;
use crate::core::protocol::{
    Command, EvalReport, EvaluateRequest, Event, ImageScore, JobKind, Phase, ScoreRequest,
    TrainRequest, Waker,
};
use crate::core::provenance::{self, TrainingRecord};
use crate::engine::backbone::Backbone;
use crate::engine::detector::{Detector, RawScore, SharedDetector, TrainJob, TrainProgress, train};
use crate::engine::error::{EngineError, Result};
use crate::engine::lanes::{Lanes, pipelined_batches};
use crate::engine::{device, model_file, weights};
use crossbeam_channel::{Receiver, Sender, bounded};
use image::RgbImage;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;
use tch::Device;

/// Files left out of a job, with the reason.
type Skipped = Vec<(PathBuf, String)>;

/// How to start the worker.
#[derive(Debug, Clone, Default)]
pub struct WorkerOptions {
    /// Device selection.
    pub device: DeviceChoice,
    /// Weights file per backbone; missing entries use [`weights::default_path`].
    pub weights: HashMap<BackboneKind, PathBuf>,
    /// Images per backbone call; `None` picks a device default.
    pub backbone_batch: Option<usize>,
    /// Images scored at once: `None` scores in batches of [`GPU_SCORE_BATCH`] on a GPU
    /// and one image per lane on the CPU; `Some(n)` scores in batches of n on either.
    pub score_batch: Option<usize>,
    /// A fault to inject, for tests of how the front ends cope; `None` in the product.
    #[doc(hidden)]
    pub fault: Option<InjectedFault>,
}

/// Images a GPU scores at once by default: enough to keep an H100 busy with the patch
/// detectors at 256 px, little memory beside the bank.
pub const GPU_SCORE_BATCH: usize = 64;

/// Where [`InjectedFault`] strikes.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// libtorch runs out of memory once a training run is at work: at its first optimiser
    /// step or its first image's features, whichever comes first.
    OutOfMemoryWhileTraining,
    /// libtorch runs out of memory while scoring a job's second image (in a scoring lane).
    OutOfMemoryWhileScoring,
    /// The worker thread panics outside any job, once its current command is handled.
    WorkerPanics,
}

/// A fault the worker injects into itself once armed, for tests of how the front ends
/// cope: the out-of-memory faults ask libtorch for an impossible allocation, so the error
/// is libtorch's own. One-shot: striking disarms it, also for a restarted worker with the
/// same options.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct InjectedFault {
    kind: FaultKind,
    armed: Arc<AtomicBool>,
}

impl InjectedFault {
    /// A fault of `kind`, not armed yet.
    pub fn new(kind: FaultKind) -> Self {
        Self {
            kind,
            armed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Arms it: it strikes at the next occasion.
    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Whether it is still armed.
    pub fn is_armed(&self) -> bool {
        self.armed.load(Ordering::SeqCst)
    }

    /// Whether to strike now (disarming it).
    fn strikes(fault: Option<&Self>, kind: FaultKind) -> bool {
        fault.is_some_and(|f| f.kind == kind && f.armed.swap(false, Ordering::SeqCst))
    }
}

/// Asks libtorch for 4 PiB on `device`; libtorch's allocator fails, and tch panics with its
/// error, as with any real shortage in an operation.
fn exhaust_memory(device: tch::Device) {
    let _ = tch::Tensor::empty([1i64 << 50], (tch::Kind::Float, device));
}

/// The front end's side of the worker.
pub struct WorkerHandle {
    commands: Sender<Command>,
    events: Receiver<Event>,
    cancel: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Capacity of the command channel (jobs are few and large).
const COMMAND_CAPACITY: usize = 16;
/// Capacity of the event channel; the worker blocks when a front end stops draining.
const EVENT_CAPACITY: usize = 4096;

impl WorkerHandle {
    /// Starts the worker thread ("differnet-worker").
    pub fn spawn(options: WorkerOptions, waker: Waker) -> std::io::Result<Self> {
        let (cmd_tx, cmd_rx) = bounded(COMMAND_CAPACITY);
        let (ev_tx, ev_rx) = bounded(EVENT_CAPACITY);
        let cancel = Arc::new(AtomicBool::new(false));
        let worker_cancel = cancel.clone();
        let thread = std::thread::Builder::new()
            .name("differnet-worker".into())
            .spawn(move || {
                let out = Outbox { tx: ev_tx, waker };
                let panic_out = out.clone();
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    Worker::new(options, out, worker_cancel).run(cmd_rx);
                }));
                if let Err(payload) = result {
                    panic_out.send(Event::Crashed {
                        message: panic_message(&payload),
                    });
                }
            })?;
        Ok(Self {
            commands: cmd_tx,
            events: ev_rx,
            cancel,
            thread: Some(thread),
        })
    }

    /// Queues a command. Fails only when the worker is gone.
    pub fn send(&self, command: Command) -> std::result::Result<(), String> {
        if matches!(
            command,
            Command::Train(_) | Command::Score(_) | Command::Evaluate(_)
        ) {
            self.cancel.store(false, Ordering::SeqCst);
        }
        self.commands
            .send(command)
            .map_err(|_| "the worker has stopped".to_string())
    }

    /// The event stream.
    pub fn events(&self) -> &Receiver<Event> {
        &self.events
    }

    /// Asks the running job to stop at its next batch boundary.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    /// Whether the worker thread has ended (normally or by a crash).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::SeqCst);
        let _ = self.commands.try_send(Command::Shutdown);
        // Do not join: a long libtorch call must not freeze the closing window. The thread
        // ends at its next batch boundary.
        let _ = self.thread.take();
    }
}

/// Whether the model took its labelled defects in (PatchCore, alone or in a fusion).
fn learns_from_defects(model: &crate::engine::detector::Detector) -> bool {
    use crate::engine::detector::Detector;
    match model {
        Detector::PatchCore(m) => m.defect_bank().is_some(),
        Detector::Fusion(f) => f.members().iter().any(learns_from_defects),
        _ => false,
    }
}

/// The message of a panic that ended a job, on one line. tch turns libtorch's errors into
/// panics that carry the whole C++ backtrace; they become libtorch's first line, and a
/// shortage of memory says so and what to try.
fn job_panic_message(panic: &str) -> String {
    // `Torch("<message>\nException raised from ...")`, Debug-quoted: the line ends at an
    // escaped line break or the closing quote.
    let torch = panic.split_once("Torch(\"").map(|(_, rest)| {
        let end = [rest.find("\\n"), rest.find('\n'), rest.find('"')]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(rest.len());
        &rest[..end]
    });
    let Some(torch) = torch else {
        return format!("internal error: {}", one_line(panic));
    };
    // libtorch's asserts start "[enforce fail at alloc_cpu.cpp:127] err == 0. ": where
    // and which condition, which say nothing to a user.
    let torch = match torch.strip_prefix("[enforce fail at") {
        Some(rest) => rest
            .split_once("] ")
            .map(|(_, r)| r.split_once(". ").map_or(r, |(_, after)| after))
            .unwrap_or(rest),
        None => torch,
    };
    let torch = one_line(torch);
    let lower = torch.to_lowercase();
    if lower.contains("out of memory")
        || lower.contains("can't allocate memory")
        || lower.contains("not enough memory")
    {
        format!(
            "out of memory ({torch}); the model is kept. Try the fast preset, fewer images or \
             rotations, or close other programs"
        )
    } else {
        format!("libtorch error: {torch}")
    }
}

fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Sends events and wakes the front end.
#[derive(Clone)]
struct Outbox {
    tx: Sender<Event>,
    waker: Waker,
}

impl Outbox {
    fn send(&self, event: Event) {
        // A front end that went away is not an error for the worker.
        let _ = self.tx.send(event);
        (self.waker)();
    }
}

/// State owned by the worker thread.
struct Worker {
    options: WorkerOptions,
    out: Outbox,
    cancel: Arc<AtomicBool>,
    device: tch::Device,
    backbones: HashMap<BackboneKind, Rc<Backbone>>,
    model: Option<Detector>,
}

impl Worker {
    fn new(options: WorkerOptions, out: Outbox, cancel: Arc<AtomicBool>) -> Self {
        crate::engine::lanes::pin_threads(crate::engine::lanes::process_threads());
        let device = match device::resolve(options.device) {
            Ok(d) => d,
            Err(e) => {
                out.send(Event::Failed {
                    message: format!("{e}; using the CPU"),
                });
                tch::Device::Cpu
            }
        };
        out.send(Event::Ready {
            device: device::describe(device),
        });
        Self {
            options,
            out,
            cancel,
            device,
            backbones: HashMap::new(),
            model: None,
        }
    }

    fn run(mut self, commands: Receiver<Command>) {
        while let Ok(command) = commands.recv() {
            if matches!(command, Command::Shutdown) {
                break;
            }
            let job = match &command {
                Command::Train(_) => Some(JobKind::Train),
                Command::Score(_) => Some(JobKind::Score),
                Command::Evaluate(_) => Some(JobKind::Evaluate),
                Command::ChooseTraining { .. } => Some(JobKind::Choose),
                _ => None,
            };
            // An injected worker panic strikes after the first command that starts once it
            // is armed, not at the tail of one already running.
            let fault_due = self
                .options
                .fault
                .as_ref()
                .is_some_and(InjectedFault::is_armed);
            // A panic inside libtorch or our code fails this job only; the worker and its
            // current model stay usable.
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.handle(command)));
            match result {
                Ok(Ok(())) => {}
                Ok(Err(EngineError::Cancelled)) => self.out.send(Event::Cancelled {
                    job: job.unwrap_or(JobKind::Score),
                }),
                Ok(Err(e)) => self.out.send(Event::Failed {
                    message: e.to_string(),
                }),
                Err(payload) => self.out.send(Event::Failed {
                    message: job_panic_message(&panic_message(&payload)),
                }),
            }
            // What the job freed (caches, a cancelled training's tensors) goes back to the
            // system now, not when the program quits.
            crate::engine::environment::release_free_memory();
            if fault_due
                && InjectedFault::strikes(self.options.fault.as_ref(), FaultKind::WorkerPanics)
            {
                panic!("injected fault: the worker thread panics");
            }
        }
    }

    fn backbone(&mut self, kind: BackboneKind) -> Result<Rc<Backbone>> {
        if let Some(b) = self.backbones.get(&kind) {
            return Ok(b.clone());
        }
        let path = self
            .options
            .weights
            .get(&kind)
            .cloned()
            .unwrap_or_else(|| weights::default_path(kind));
        let b = Rc::new(Backbone::load(kind, &path, self.device)?);
        self.backbones.insert(kind, b.clone());
        Ok(b)
    }

    fn handle(&mut self, command: Command) -> Result<()> {
        match command {
            Command::Train(req) => self.train(req),
            Command::Score(req) => self.score(req),
            Command::Evaluate(req) => self.evaluate(req),
            Command::SaveModel {
                path,
                threshold,
                review_threshold,
            } => {
                let model = self.model.as_mut().ok_or(EngineError::NoModel)?;
                if threshold.is_some() {
                    let state = model.state_mut();
                    state.threshold = threshold;
                    state.review_threshold = review_threshold;
                }
                model_file::save(model, &path)?;
                self.out.send(Event::Saved { path });
                Ok(())
            }
            Command::LoadModel { path } => {
                let meta = model_file::read_meta(&path)?;
                let backbone = self.backbone(meta.detector.backbone())?;
                let mut model = model_file::load(&path, backbone, self.device)?;
                if let Some(b) = self.options.backbone_batch {
                    model.set_backbone_batch(b);
                }
                let info = model.info();
                self.model = Some(model);
                self.out.send(Event::Loaded { path, info });
                Ok(())
            }
            Command::ChooseTraining {
                good,
                backbone,
                seed,
            } => {
                let backbone = self.backbone(backbone)?;
                let out = self.out.clone();
                let order = crate::engine::choose::preferred_order(
                    &backbone,
                    &good,
                    seed,
                    &self.cancel,
                    &mut |done, total| {
                        out.send(Event::Progress {
                            job: JobKind::Choose,
                            phase: Phase::CachingFeatures,
                            done,
                            total,
                        });
                    },
                )?;
                self.out.send(Event::TrainingOrder(order));
                Ok(())
            }
            Command::Shutdown => Ok(()),
        }
    }

    fn train(&mut self, req: TrainRequest) -> Result<()> {
        let backbone = self.backbone(req.config.backbone())?;
        let out = self.out.clone();
        let fault = self.options.fault.clone();
        let device = self.device;
        let mut report = |p: TrainProgress| {
            // A flow's first optimiser step, or the first image whose features are in (a
            // PatchCore has no optimiser steps; DifferNet's fast preset caches first).
            let working = match &p {
                TrainProgress::Step { .. } => true,
                TrainProgress::Phase {
                    phase: Phase::CachingFeatures,
                    done,
                    ..
                } => *done > 0,
                _ => false,
            };
            if working
                && InjectedFault::strikes(fault.as_ref(), FaultKind::OutOfMemoryWhileTraining)
            {
                exhaust_memory(device);
            }
            out.send(match p {
                TrainProgress::Phase { phase, done, total } => Event::Progress {
                    job: JobKind::Train,
                    phase,
                    done,
                    total,
                },
                TrainProgress::Skipped { path, reason } => Event::Skipped { path, reason },
                TrainProgress::Step { epoch, step, loss } => Event::TrainStep { epoch, step, loss },
                TrainProgress::Epoch { epoch, mean_loss } => Event::EpochDone { epoch, mean_loss },
            })
        };
        let mut model = train(
            req.config,
            TrainJob {
                train: &req.train,
                validation: &req.validation,
                backbone,
                device: self.device,
                cancel: &self.cancel,
                defects: &req.defects,
            },
            &mut report,
        )?;
        if let Some(b) = self.options.backbone_batch {
            model.set_backbone_batch(b);
        }
        let mut record = TrainingRecord::new(
            &req.train,
            &req.validation,
            &serde_json::to_string(&model.config()).unwrap_or_default(),
            provenance::now_unix_secs(),
        );
        if learns_from_defects(&model) {
            record.defect_files = req.defects.iter().map(|d| d.path.clone()).collect();
        }
        model.state_mut().trained_on = Some(record);
        let info = model.info();
        self.model = Some(model);
        self.out.send(Event::Trained(info));
        Ok(())
    }

    /// Scores `items`, sending `Scored` / `Skipped` events; returns the scores and the
    /// skipped files.
    fn score_items(
        &mut self,
        job: JobKind,
        items: Vec<(PathBuf, Label, bool)>,
        rotations: Option<usize>,
    ) -> Result<(Vec<ImageScore>, Skipped)> {
        let model = self.model.as_ref().ok_or(EngineError::NoModel)?;
        let total = items.len();
        let mut scored = Vec::with_capacity(total);
        let mut skipped = Vec::new();
        let fault = self.options.fault.as_ref();
        let device = self.device;
        let cancel = &self.cancel;
        let stop = || cancel.load(Ordering::Relaxed);
        let out = &self.out;
        let mut emit = |i: usize,
                        path: PathBuf,
                        label: Label,
                        result: std::result::Result<RawScore, String>| {
            match result {
                Ok(raw) => {
                    let s = ImageScore {
                        path,
                        label,
                        score: raw.score,
                        heatmap: raw.heatmap,
                    };
                    out.send(Event::Scored(s.clone()));
                    scored.push(s);
                }
                Err(reason) => {
                    out.send(Event::Skipped {
                        path: path.clone(),
                        reason: reason.clone(),
                    });
                    skipped.push((path, reason));
                }
            }
            out.send(Event::Progress {
                job,
                phase: Phase::Scoring,
                done: i + 1,
                total,
            });
        };
        if device == Device::Cpu && self.options.score_batch.is_none() {
            // Decoding happens in the lanes too, so it overlaps with the network.
            let shared = SharedDetector::new(model);
            let work = |(i, (path, label, heatmap)): (usize, (PathBuf, Label, bool))| {
                if i == 1 && InjectedFault::strikes(fault, FaultKind::OutOfMemoryWhileScoring) {
                    exhaust_memory(device);
                }
                let result = load_rgb(&path)
                    .map(|img| shared.score_image(&img, heatmap, rotations))
                    .map_err(|e| e.to_string());
                (path, label, result)
            };
            Lanes::for_device(device).map(
                items.into_iter().enumerate().collect(),
                &work,
                &stop,
                &mut |i, (path, label, result)| emit(i, path, label, result),
            );
        } else {
            // A GPU scores whole batches (the CPU too when a batch is asked for): CPU
            // threads decode the next batch meanwhile, and the scores and maps of a batch
            // come back in one transfer.
            let decode = |(path, label, heatmap): (PathBuf, Label, bool)| {
                let img = load_rgb(&path).map_err(|e| e.to_string());
                (path, label, heatmap, img)
            };
            let batch = self.options.score_batch.unwrap_or(GPU_SCORE_BATCH);
            let threads = std::thread::available_parallelism().map_or(4, |n| n.get());
            pipelined_batches(
                items,
                batch,
                threads,
                &decode,
                &stop,
                &mut |first, decoded| {
                    if first <= 1
                        && first + decoded.len() > 1
                        && InjectedFault::strikes(fault, FaultKind::OutOfMemoryWhileScoring)
                    {
                        exhaust_memory(device);
                    }
                    let (imgs, maps): (Vec<&RgbImage>, Vec<bool>) = decoded
                        .iter()
                        .filter_map(|(_, _, map, img)| img.as_ref().ok().map(|img| (img, *map)))
                        .unzip();
                    let mut raws = model.score_batch(&imgs, &maps, rotations).into_iter();
                    for (k, (path, label, _, img)) in decoded.into_iter().enumerate() {
                        let result = match img {
                            Ok(_) => Ok(raws.next().expect("a score for each decoded image")),
                            Err(e) => Err(e),
                        };
                        emit(first + k, path, label, result);
                    }
                },
            );
        }
        if self.cancel.load(Ordering::Relaxed) && scored.len() + skipped.len() < total {
            return Err(EngineError::Cancelled);
        }
        Ok((scored, skipped))
    }

    fn score(&mut self, req: ScoreRequest) -> Result<()> {
        let items = req
            .paths
            .into_iter()
            .map(|p| (p, Label::Unknown, req.heatmaps))
            .collect();
        let (scored, skipped) = self.score_items(JobKind::Score, items, req.rotations)?;
        self.out.send(Event::ScoringDone {
            scored: scored.len(),
            skipped,
        });
        Ok(())
    }

    fn evaluate(&mut self, req: EvaluateRequest) -> Result<()> {
        let started = Instant::now();
        let masks: HashMap<PathBuf, PathBuf> = req
            .samples
            .iter()
            .filter_map(|s| s.mask.clone().map(|m| (s.path.clone(), m)))
            .collect();
        let items = req
            .samples
            .iter()
            .map(|s| {
                // Good test images have no mask file but count as all-good pixels.
                let wants_map = req.pixel_metrics && (s.mask.is_some() || s.label == Label::Good);
                (s.path.clone(), s.label.clone(), wants_map)
            })
            .collect();
        let (scored, skipped) = self.score_items(JobKind::Evaluate, items, req.rotations)?;
        let labelled: Vec<&ImageScore> = scored
            .iter()
            .filter(|s| s.label.is_defect().is_some())
            .collect();
        let scores: Vec<f64> = labelled.iter().map(|s| s.score).collect();
        let truth: Vec<bool> = labelled
            .iter()
            .map(|s| s.label.is_defect() == Some(true))
            .collect();
        let types: Vec<&str> = labelled.iter().map(|s| s.label.type_name()).collect();
        let mut pixel = metrics::PixelAuroc::new(0.0, PIXEL_RANGE, PIXEL_BINS);
        let mut any_pixels = false;
        for s in &scored {
            let Some(map) = &s.heatmap else { continue };
            let mask: Vec<bool> = match masks.get(&s.path) {
                Some(m) => match crate::core::image_io::load_mask(m) {
                    Ok(mask) if mask.dimensions() == (map.width, map.height) => {
                        mask.as_raw().iter().map(|&v| v > 0).collect()
                    }
                    Ok(_) => {
                        self.out.send(Event::Skipped {
                            path: m.clone(),
                            reason: "mask size differs from its image; left out of pixel AUROC"
                                .into(),
                        });
                        continue;
                    }
                    Err(e) => {
                        self.out.send(Event::Skipped {
                            path: m.clone(),
                            reason: e.to_string(),
                        });
                        continue;
                    }
                },
                None => vec![false; map.values.len()],
            };
            pixel.add(&map.values, &mask);
            any_pixels = true;
        }
        let report = EvalReport {
            count: scored.len(),
            image_auroc: metrics::auroc(&scores, &truth),
            per_type_auroc: metrics::per_type_auroc(&scores, &types),
            best_f1: metrics::best_f1_threshold(&scores, &truth),
            pixel_auroc: if any_pixels { pixel.value() } else { None },
            secs_per_image: started.elapsed().as_secs_f64() / scored.len().max(1) as f64,
            skipped,
        };
        self.out.send(Event::Evaluated(report));
        Ok(())
    }
}

/// Heatmap values (in units of the good images' 99th percentile) covered by the pixel
/// AUROC histogram; larger values fall in the last bin.
const PIXEL_RANGE: f64 = 50.0;
/// Bins of the pixel AUROC histogram.
const PIXEL_BINS: usize = 20_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtorch_panics_become_one_line_and_a_shortage_says_so() {
        let oom = "called `Result::unwrap()` on an `Err` value: Torch(\"[enforce fail at \
                   alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: \
                   can't allocate memory: you tried to allocate 4503599627370496 bytes. Error \
                   code 12 (Cannot allocate memory)\\nException raised from malloc at \
                   alloc_cpu.cpp:119\\nframe #0: c10::Error\")";
        let m = job_panic_message(oom);
        assert!(m.starts_with("out of memory (DefaultCPUAllocator: can't allocate memory: you tried to allocate 4503599627370496 bytes. Error code 12 (Cannot allocate memory)); the model is kept."), "{m}");
        assert!(!m.contains("Exception raised"), "{m}");

        let other = "called `Result::unwrap()` on an `Err` value: Torch(\"shape '[2, 3]' is \
                     invalid for input of size 5\\nException raised from ...\")";
        assert_eq!(
            job_panic_message(other),
            "libtorch error: shape '[2, 3]' is invalid for input of size 5"
        );

        assert_eq!(
            job_panic_message("index out of bounds\nsecond line"),
            "internal error: index out of bounds; second line"
        );
    }
}
