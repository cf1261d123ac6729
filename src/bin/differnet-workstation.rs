//! `differnet-workstation [DIR]`: the inspection workstation window, opened on the data
//! folder `DIR` when given.

use anyhow::{Result, anyhow};
use differnet::gui::{AppOptions, WorkstationApp};
use std::path::PathBuf;

fn main() -> Result<()> {
    differnet::engine::environment::restart_with_engine_env();
    let mut args = std::env::args_os().skip(1);
    let data = args.next().map(PathBuf::from);
    if let Some(extra) = args.next() {
        return Err(anyhow!(
            "usage: differnet-workstation [DIR] (unexpected argument {})",
            extra.to_string_lossy()
        ));
    }
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("DifferNet workstation")
            .with_app_id("differnet-workstation")
            .with_inner_size([1500.0, 950.0])
            .with_min_inner_size([900.0, 600.0])
            .with_drag_and_drop(true),
        renderer: renderer()?,
        ..Default::default()
    };
    eframe::run_native(
        "DifferNet workstation",
        native,
        Box::new(move |cc| {
            let options = AppOptions {
                data,
                // Next to eframe's settings file, never inside the user's data.
                edits_dir: eframe::storage_dir("differnet-workstation").map(|d| d.join("folders")),
                ..AppOptions::default()
            };
            Ok(Box::new(WorkstationApp::new(
                &cc.egui_ctx,
                cc.storage,
                options,
            )))
        }),
    )
    .map_err(|e| anyhow!("cannot open the window: {e}"))
}

/// The renderer: OpenGL (glow) unless `DIFFERNET_RENDERER=wgpu`. On machines without a
/// GPU both run on Mesa's software rasteriser, where OpenGL costs a fraction of the CPU
/// time of Vulkan (lavapipe) per frame.
fn renderer() -> Result<eframe::Renderer> {
    match std::env::var("DIFFERNET_RENDERER").as_deref() {
        Err(_) | Ok("") | Ok("glow") => Ok(eframe::Renderer::Glow),
        Ok("wgpu") => Ok(eframe::Renderer::Wgpu),
        Ok(other) => Err(anyhow!(
            "DIFFERNET_RENDERER={other} is not a renderer (expected glow or wgpu)"
        )),
    }
}
