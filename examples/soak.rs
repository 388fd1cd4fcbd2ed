//! Soak benchmark (not a test): trains the MLP GAN preset for 100,000 steps with the workbench's curve
//! history attached (every metric row pushed, as the window does), writing its run directory as usual, and
//! prints this process's resident memory after warm-up and at intervals. Target: after warm-up it grows less
//! than 10 %.
//!
//!     cargo run --release --example soak [-- STEPS]

use gantry::app::history::RunHistory;
use gantry::presets::preset;
use gantry::train::worker::{Ending, Event, RunOptions, Trainer};
use std::time::Instant;

const WARM_UP: u64 = 5_000;

/// Resident memory of this process now, in KiB.
fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?.to_string();
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

fn main() {
    let steps: u64 = std::env::args()
        .nth(1)
        .map_or(100_000, |n| n.parse().expect("a step count"));
    let mut config = preset("mlp-gan-digits").expect("the preset");
    config.train.steps = steps;
    config.train.checkpoint_every = 10_000;
    let runs = tempfile::tempdir().expect("a temporary directory");
    let options = RunOptions {
        out_dir: Some(runs.path().join("soak")),
        ..RunOptions::default()
    };
    let trainer = Trainer::spawn(config, options, None);
    let mut history: Option<RunHistory> = None;
    let (started, mut after_warm_up) = (Instant::now(), None);
    let report_every = (steps / 10).max(1);
    let ending = trainer.run_to_end(&crossbeam_channel::never(), |event| match event {
        Event::Loaded(info) => history = Some(RunHistory::new(&info.metric_names, 0.6)),
        Event::Metrics(row) => {
            history.as_mut().expect("loaded first").push(row);
            if row.step == WARM_UP.min(steps) {
                after_warm_up = Some(resident_kib());
            }
            if row.step % report_every == 0 {
                let now = resident_kib();
                let growth = after_warm_up.map_or(String::new(), |base| {
                    format!(" ({:+.1} % since warm-up)", (now as f64 / base as f64 - 1.0) * 100.0)
                });
                println!(
                    "step {:>7}: resident {:>6} MiB{growth}, {:.0} s",
                    row.step,
                    now / 1024,
                    started.elapsed().as_secs_f64()
                );
            }
        }
        _ => {}
    });
    assert_eq!(ending, Ending::Finished, "the soak run finishes");
    let (base, end) = (after_warm_up.expect("warmed up"), resident_kib());
    println!(
        "resident after warm-up (step {WARM_UP}) {} MiB, at step {steps} {} MiB: {:+.1} % (target < +10 %)",
        base / 1024,
        end / 1024,
        (end as f64 / base as f64 - 1.0) * 100.0
    );
}
