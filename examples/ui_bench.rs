//! Prints two workbench figures (a benchmark, not a test):
//! 1. the CPU time of one frame of the loss curves with 7 metrics x 1,000,000 steps in the history;
//! 2. training images/s of a run while the workbench draws frames at ~60 fps, beside the same run headless.
//!
//!     cargo run --release --example ui_bench

use eframe::egui;
use egui_kittest::Harness;
use gantry::app::curves::CurvesView;
use gantry::app::history::RunHistory;
use gantry::app::settings::{CurveSettings, Settings};
use gantry::app::{AppOptions, GantryApp};
use gantry::presets::preset;
use gantry::train::session::GAN_METRICS;
use gantry::train::worker::{Command, Event, RunOptions, RunState, Trainer};
use gantry::train::MetricRow;
use std::time::{Duration, Instant};

const WINDOW: egui::Vec2 = egui::vec2(1440.0, 900.0);
const PRESET: &str = "mlp-gan-digits";
const STEPS: u64 = 400;

fn frame_time_with_a_million_points() -> Duration {
    let names: Vec<String> = GAN_METRICS.map(String::from).into();
    let mut history = RunHistory::new(&names, 0.6);
    for step in 1..=1_000_000u64 {
        let x = step as f64;
        let values = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), (x * 0.001 + i as f64).sin() + 1.5))
            .collect();
        history.push(&MetricRow {
            step,
            epoch: x / 900.0,
            wall_s: x * 0.01,
            values,
        });
    }
    let mut harness = Harness::builder().with_size(WINDOW).build_ui_state(
        |ui, (view, history, settings): &mut (CurvesView, RunHistory, CurveSettings)| view.show(ui, history, settings),
        (CurvesView::default(), history, CurveSettings::default()),
    );
    let mut frames: Vec<Duration> = (0..21)
        .map(|_| {
            let started = Instant::now();
            harness.step();
            started.elapsed()
        })
        .collect();
    frames.sort();
    frames[frames.len() / 2]
}

fn config() -> gantry::config::RunConfig {
    let mut config = preset(PRESET).expect("a shipped preset");
    config.data.count = 2000;
    config.train.steps = STEPS;
    config
}

/// Images/s of a headless run from Start to Finished.
fn headless() -> f64 {
    let runs = tempfile::tempdir().expect("a temporary directory");
    let config = config();
    let batch = config.train.batch_size as f64;
    let trainer = Trainer::spawn(
        config,
        RunOptions {
            out_dir: Some(runs.path().join("run")),
            resume: false,
        },
        None,
    );
    let mut started = Instant::now();
    for event in trainer.events().iter() {
        match event {
            Event::State(RunState::Ready) => {
                started = Instant::now();
                trainer.send(Command::Start);
            }
            Event::State(RunState::Finished) => break,
            _ => {}
        }
    }
    STEPS as f64 * batch / started.elapsed().as_secs_f64()
}

/// Images/s of the same run started from the workbench, which draws a frame every 16 ms meanwhile.
fn with_window() -> f64 {
    let runs = tempfile::tempdir().expect("a temporary directory");
    let config = config();
    let batch = config.train.batch_size as f64;
    let settings = Settings {
        config,
        preset: PRESET.into(),
        ..Settings::default()
    };
    let app = GantryApp::with_settings(
        settings,
        AppOptions {
            runs_dir: Some(runs.path().to_path_buf()),
        },
    );
    let mut harness = Harness::builder().with_size(WINDOW).build_ui_state(
        |ui, app: &mut GantryApp| {
            app.tick(ui.ctx());
            app.show(ui);
        },
        app,
    );
    let frame = |harness: &mut Harness<'_, GantryApp>| {
        harness.step();
        std::thread::sleep(Duration::from_millis(16));
    };
    use egui_kittest::kittest::{NodeT as _, Queryable as _};
    while harness.get_by_label("Start").accesskit_node().is_disabled() {
        frame(&mut harness);
    }
    harness.get_by_label("Start").click();
    let started = Instant::now();
    while harness.state().run().state() != Some(RunState::Finished) {
        frame(&mut harness);
    }
    STEPS as f64 * batch / started.elapsed().as_secs_f64()
}

fn main() {
    println!(
        "loss curves, 7 metrics x 1,000,000 steps: median frame {:?}",
        frame_time_with_a_million_points()
    );
    for round in 1..=2 {
        let (open, closed) = (with_window(), headless());
        println!(
            "round {round}: {PRESET}, {STEPS} steps: {open:.0} images/s with the workbench drawing, {closed:.0} headless ({:.1} %)",
            100.0 * open / closed
        );
    }
}
