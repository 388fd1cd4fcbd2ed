//! Training images/s with the real workbench window open (eframe, wgpu, whatever X server `DISPLAY` names:
//! `bench/window.sh` starts Xvfb with Mesa's software renderer) beside the same run headless, in alternating
//! rounds. A benchmark, not a test:
//!
//!     bench/window.sh [ROUNDS [glow|wgpu]]   # or, with a display: cargo run --release --example window_bench
//!
//! Each round starts the workbench in a child process (an event loop opens once per process) on the default
//! preset, presses Start, closes the window when the run finishes and reads the run's own metrics.csv; the
//! headless side trains the same settings through the same engine without a window.

use eframe::egui;
use gantry::app::settings::Settings;
use gantry::app::{AppOptions, GantryApp};
use gantry::train::worker::RunState;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[path = "support/measure.rs"]
mod measure;

use measure::{cpu_by_thread_name, train_headless, trained_images_per_s};

const STEPS: u64 = 1000;

fn settings() -> Settings {
    let mut settings = Settings::default();
    settings.config.train.steps = STEPS;
    settings
}

fn headless(runs: &Path) -> f64 {
    let dir = runs.join("headless");
    train_headless(settings().config, &dir);
    trained_images_per_s(&dir, batch())
}

fn batch() -> f64 {
    settings().config.train.batch_size as f64
}

/// The workbench as a user runs it, pressing Start on its first frame and closing when the run finished.
struct Window {
    app: GantryApp,
    started: bool,
    frames: u64,
    frame_cpu: Duration,
}

impl eframe::App for Window {
    fn clear_color(&self, visuals: &egui::Visuals) -> [f32; 4] {
        self.app.clear_color(visuals)
    }

    fn logic(&mut self, ctx: &egui::Context, frame: &mut eframe::Frame) {
        self.app.logic(ctx, frame);
        if !self.started {
            self.app.start();
            self.started = true;
        } else if self.app.run().state() == Some(RunState::Finished) {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
        self.frames += 1;
        // What eframe measured for the previous frame: building it and handing it to the renderer.
        self.frame_cpu += Duration::from_secs_f32(frame.info().cpu_usage.unwrap_or(0.0));
    }

    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        self.app.ui(ui, frame);
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        for (name, seconds) in cpu_by_thread_name() {
            eprintln!("  {name:24} {seconds:8.2} s CPU");
        }
        println!(
            "frames {} frame_cpu_ms {:.3}",
            self.frames,
            self.frame_cpu.as_secs_f64() * 1e3
        );
    }
}

/// Child process: one real window (as `gantry` opens it, drawn by `renderer`) training one run into `runs`.
fn window(renderer: &str, runs: PathBuf) {
    let options = eframe::NativeOptions {
        persist_window: false,
        ..gantry::app::native_options(renderer)
    };
    eframe::run_native(
        "Gantry window benchmark",
        options,
        Box::new(move |cc| {
            let options = AppOptions {
                runs_dir: Some(runs),
                no_system_dialogs: true,
                ..AppOptions::default()
            };
            let app = GantryApp::in_window(cc, settings(), options);
            Ok(Box::new(Window {
                app,
                started: false,
                frames: 0,
                frame_cpu: Duration::ZERO,
            }))
        }),
    )
    .expect("the window opens (is DISPLAY set?)");
}

/// Runs one window in a child process; returns the images/s, the frames drawn and their CPU time.
fn with_window(renderer: &str, runs: &Path) -> (f64, u64, f64, f64) {
    let started = Instant::now();
    let out = std::process::Command::new(std::env::current_exe().expect("this program"))
        .args(["--window", renderer])
        .arg(runs)
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("the window process runs");
    assert!(out.status.success(), "the window process failed");
    let seconds = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = text.lines().last().unwrap_or("").split_whitespace().collect();
    let frames: u64 = fields.get(1).and_then(|f| f.parse().ok()).unwrap_or(0);
    let frame_ms: f64 = fields.get(3).and_then(|f| f.parse().ok()).unwrap_or(0.0);
    let run = std::fs::read_dir(runs)
        .expect("the runs directory")
        .flatten()
        .find(|e| e.path().join("metrics.csv").exists())
        .expect("the window trained a run")
        .path();
    (trained_images_per_s(&run, batch()), frames, frame_ms, seconds)
}

fn main() {
    // The allocator and thread setup `gantry` makes first thing.
    gantry::memory::keep_freed_memory();
    gantry::threads::configure_pools(None);
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--window") {
        window(&args[2], PathBuf::from(&args[3]));
        return;
    }
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let renderer = args.get(2).map_or("glow", String::as_str);
    let mut ratios = Vec::new();
    for round in 1..=rounds {
        let (open_dir, closed_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        // Alternate which goes first, so a drift in the machine's speed favours neither.
        let ((open, frames, frame_ms, seconds), closed) = if round % 2 == 1 {
            let open = with_window(renderer, open_dir.path());
            (open, headless(closed_dir.path()))
        } else {
            let closed = headless(closed_dir.path());
            (with_window(renderer, open_dir.path()), closed)
        };
        ratios.push(100.0 * open / closed);
        println!(
            "round {round}: {}, {STEPS} steps: {open:.0} images/s in the window ({renderer}), {closed:.0} headless ({:.1} %); {frames} frames ({:.1} per s), {:.2} ms of UI-thread CPU each",
            gantry::presets::DEFAULT_PRESET,
            100.0 * open / closed,
            frames as f64 / seconds,
            frame_ms / frames.max(1) as f64
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "median: {:.1} % of headless speed with the window open",
        ratios[ratios.len() / 2]
    );
}
