//! Prints two workbench figures (a benchmark, not a test):
//! 1. the CPU time of one frame of the loss curves with 7 metrics x 1,000,000 steps in the history;
//! 2. training images/s of a run started in the workbench, which draws frames when the app asks for them
//!    (as eframe does, at most one per 16 ms display refresh), beside the same run headless.
//!
//!     cargo run --release --example ui_bench

use egui_kittest::Harness;
use gantry::app::curves::{CurvesView, Overlay};
use gantry::app::history::RunHistory;
use gantry::app::settings::{CurveSettings, Settings};
use gantry::config::ModelKind;
use gantry::presets::preset;
use gantry::train::session::GAN_METRICS;
use gantry::train::worker::RunState;
use gantry::train::MetricRow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "../tests/support/workbench.rs"]
mod workbench;

#[path = "support/measure.rs"]
mod measure;

use measure::{train_headless, trained_images_per_s};

use workbench::{workbench_harness, WINDOW};
const PRESET: &str = "mlp-gan-digits";
const STEPS: u64 = 1000;
const ROUNDS: usize = 7;

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
        |ui, (view, history, settings): &mut (CurvesView, RunHistory, CurveSettings)| {
            history.set_smoothing(settings.smoothing);
            let overlay = Overlay {
                label: "run".into(),
                details: "run".into(),
                history,
            };
            view.show(ui, &[overlay], ModelKind::MlpGan, settings);
        },
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

fn headless() -> f64 {
    let runs = tempfile::tempdir().expect("a temporary directory");
    let (config, dir) = (config(), runs.path().join("run"));
    let batch = config.train.batch_size as f64;
    train_headless(config, &dir);
    trained_images_per_s(&dir, batch)
}

/// The shortest time between frames: a 60 Hz display's refresh.
const REFRESH: Duration = Duration::from_millis(16);

/// The same run started from the workbench. Frames are drawn as eframe draws them: when the app (or the
/// trainer's waker) asks for one, at the time it asks for, at most one per display refresh.
/// Returns the images/s, and the frames drawn with their total time while the run trained.
fn with_window() -> (f64, usize, Duration) {
    let runs = tempfile::tempdir().expect("a temporary directory");
    let config = config();
    let batch = config.train.batch_size as f64;
    let settings = Settings {
        config,
        preset: PRESET.into(),
        ..Settings::default()
    };
    let mut harness = workbench_harness(settings, runs.path());
    // When the next frame is due, as the repaint requests since the last frame say.
    let due: Arc<Mutex<Option<Instant>>> = Arc::default();
    let requests = due.clone();
    harness.ctx.set_repaint_observer(move |info| {
        let at = Instant::now() + info.delay;
        let mut due = requests.lock().expect("not poisoned");
        *due = Some(due.map_or(at, |d| d.min(at)));
    });
    use egui_kittest::kittest::{NodeT as _, Queryable as _};
    while harness.get_by_label("Start").accesskit_node().is_disabled() {
        harness.step();
        std::thread::sleep(REFRESH);
    }
    harness.get_by_label("Start").click();
    // Input is handled in the frame it arrives in, as eframe does (the click itself asks for no repaint).
    harness.step();
    let mut last_frame = Instant::now();
    let (mut frames, mut drawing) = (0, Duration::ZERO);
    while harness.state().run().state() != Some(RunState::Finished) {
        // Looked at and cleared under one lock: a request the trainer makes in between must not be lost.
        let frame_due = {
            let mut due = due.lock().expect("not poisoned");
            let ready = due.is_some_and(|at| Instant::now() >= at.max(last_frame + REFRESH));
            ready && due.take().is_some()
        };
        if frame_due {
            last_frame = Instant::now();
            harness.step();
            frames += 1;
            drawing += last_frame.elapsed();
        } else {
            // Nothing asked for a frame yet: the event loop sleeps (here, in short naps).
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    drop(harness);
    let run = std::fs::read_dir(runs.path())
        .expect("the runs directory")
        .flatten()
        .next()
        .expect("one run")
        .path();
    (trained_images_per_s(&run, batch), frames, drawing)
}

fn main() {
    // The allocator and thread setup `gantry` (the workbench's binary) makes first thing.
    gantry::memory::keep_freed_memory();
    gantry::threads::configure_pools(None);
    println!(
        "loss curves, 7 metrics x 1,000,000 steps: median frame {:?}",
        frame_time_with_a_million_points()
    );
    let mut ratios = Vec::new();
    for round in 1..=ROUNDS {
        // Alternate which goes first, so a drift in the machine's speed favours neither.
        let ((open, frames, drawing), closed) = if round % 2 == 1 {
            let open = with_window();
            (open, headless())
        } else {
            let closed = headless();
            (with_window(), closed)
        };
        ratios.push(100.0 * open / closed);
        let seconds = STEPS as f64 * config().train.batch_size as f64 / open;
        println!(
            "round {round}: {PRESET}, {STEPS} steps: {open:.0} images/s with the workbench drawing, {closed:.0} headless ({:.1} %); {frames} frames ({:.0} per s), {:.2} ms each",
            100.0 * open / closed,
            frames as f64 / seconds,
            drawing.as_secs_f64() * 1e3 / frames.max(1) as f64
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "median: {:.1} % of headless speed with the workbench open",
        ratios[ratios.len() / 2]
    );
}
