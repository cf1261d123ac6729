//! Writing heatmap overlays as PNG files on a helper thread, as the worker computes them.

use crate::core::colormap::Colormap;
use crate::core::heatmap_image::{ScaledHeat, write_heatmap_file};
use crate::core::protocol::Waker;
use crossbeam_channel::{Receiver, Sender, unbounded};
use std::path::PathBuf;

/// One overlay to write.
struct Item {
    image: PathBuf,
    /// Makes the map on its scale, on the writer thread (a pass over every pixel).
    heat: Box<dyn FnOnce() -> ScaledHeat + Send>,
    dest: PathBuf,
    colormap: Colormap,
    opacity: f32,
    caption: Vec<String>,
}

/// The writer thread and what it reported.
pub struct HeatmapExporter {
    tx: Option<Sender<Item>>,
    rx: Option<Receiver<Result<PathBuf, String>>>,
    waker: Waker,
    /// Files written since the last [`Self::reset`].
    pub written: usize,
    /// Failures since the last [`Self::reset`], one line each.
    pub errors: Vec<String>,
}

impl HeatmapExporter {
    /// An exporter whose thread starts with the first image.
    pub fn new(waker: Waker) -> Self {
        Self {
            tx: None,
            rx: None,
            waker,
            written: 0,
            errors: Vec::new(),
        }
    }

    /// Clears the counts for a new export.
    pub fn reset(&mut self) {
        self.written = 0;
        self.errors.clear();
    }

    /// Queues the overlay of `heat` (which makes the map on the scale it is drawn on, run
    /// on the writer thread) over `image`, to be written to `dest`, with `caption` (the
    /// score and the decision) and the colour legend under it.
    pub fn write(
        &mut self,
        image: PathBuf,
        heat: impl FnOnce() -> ScaledHeat + Send + 'static,
        dest: PathBuf,
        colormap: Colormap,
        opacity: f32,
        caption: Vec<String>,
    ) {
        if self.tx.is_none() {
            let (tx, rx) = unbounded::<Item>();
            let (res_tx, res_rx) = unbounded();
            let waker = self.waker.clone();
            let spawned = std::thread::Builder::new()
                .name("differnet-export".into())
                .spawn(move || {
                    for item in rx {
                        let dest = item.dest.clone();
                        let result = write_overlay(item).map(|()| dest);
                        if res_tx.send(result).is_err() {
                            return;
                        }
                        waker();
                    }
                });
            if let Err(e) = spawned {
                self.errors
                    .push(format!("cannot start the export thread: {e}"));
                return;
            }
            self.tx = Some(tx);
            self.rx = Some(res_rx);
        }
        if let Some(tx) = &self.tx {
            let _ = tx.send(Item {
                image,
                heat: Box::new(heat),
                dest,
                colormap,
                opacity,
                caption,
            });
        }
    }

    /// Collects the thread's reports.
    pub fn poll(&mut self) {
        let Some(rx) = &self.rx else { return };
        for result in rx.try_iter() {
            match result {
                Ok(_) => self.written += 1,
                Err(e) => self.errors.push(e),
            }
        }
    }
}

fn write_overlay(item: Item) -> Result<(), String> {
    let heat = (item.heat)();
    write_heatmap_file(
        &item.image,
        &heat,
        item.colormap,
        item.opacity,
        &item.caption,
        &item.dest,
    )
}
