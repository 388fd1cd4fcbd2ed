//! The workbench window: edit a run's settings, start it, and watch it learn (loss curves, samples,
//! reconstructions, toy-data scatter), all while training runs on its own thread; list, compare and fork the
//! runs on disk.
//!
//! Views read [`run::TrainingRun`] (a worker's reports and the metric history; `fleet` holds every open
//! one, some training at once and the rest queued), the runs on disk through [`catalog::Catalog`], and
//! [`settings::Settings`]; the toolbar, shortcuts, run list and config edits turn into commands to the
//! workers. The UI never waits on training: events are drained a few milliseconds per frame, and frames are
//! requested by the workers, so an idle or paused workbench draws nothing.

mod browser;
pub mod catalog;
mod compare;
mod controls;
pub mod curves;
pub mod data_panel;
mod data_preview;
mod experiment_panel;
mod fleet;
mod gantry_app;
mod health_view;
pub mod history;
mod latent_view;
mod launch_check;
mod lifecycle;
mod optimisation_panel;
pub mod pacing;
pub mod path_prompt;
mod pictures;
pub mod run;
pub mod settings;
mod status_bar;
mod toolbar;
mod widgets;

pub use gantry_app::{AppOptions, GantryApp};

use eframe::egui;

/// Opens the workbench window and returns the process exit code when it closes.
pub fn run(renderer: &str) -> i32 {
    let other = if renderer == "wgpu" { "glow" } else { "wgpu" };
    let opened = eframe::run_native(
        "Gantry",
        native_options(renderer),
        Box::new(|cc| Ok(Box::new(GantryApp::new(cc, AppOptions::default())))),
    );
    match opened {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: cannot open the Gantry window: {e} (the other renderer may work: --renderer {other})");
            crate::cli::EXIT_FAILURE
        }
    }
}

/// The workbench window's options. `renderer` is "glow" (OpenGL: the default, as Mesa's software renderer
/// draws the workbench several times cheaper through it than through Vulkan, BENCHMARKS.md, Window) or "wgpu".
pub fn native_options(renderer: &str) -> eframe::NativeOptions {
    eframe::NativeOptions {
        renderer: match renderer {
            "wgpu" => eframe::Renderer::Wgpu,
            _ => eframe::Renderer::Glow,
        },
        viewport: egui::ViewportBuilder::default()
            .with_title("Gantry")
            .with_app_id("gantry")
            .with_inner_size([1440.0, 900.0])
            .with_min_inner_size([960.0, 600.0]),
        ..Default::default()
    }
}
