//! Benchmark (not a test): what the health checks cost. Trains each preset through the worker with its
//! health checks as shipped (signals every 50 steps, four in-memory snapshots every 100 steps, the rules read
//! on every row) and with them off (`health.every = 0`, no snapshots), alternating the two so both meet the
//! same machine, and prints the images per second of each and their ratio. Target: health on within 3 % of
//! health off.
//!
//!     cargo run --release --example health_bench [-- ROUNDS]

use gantry::config::RunConfig;
use gantry::presets::preset;
use gantry::train::worker::{Ending, Event, RunOptions, Trainer};
use std::time::Instant;

/// Images per second of one run of `config` to its step budget (loading excluded).
fn images_per_second(config: &RunConfig) -> f64 {
    let trainer = Trainer::spawn(config.clone(), RunOptions::default(), None);
    let mut started = None;
    let ending = trainer.run_to_end(&crossbeam_channel::never(), |event| {
        if matches!(event, Event::Loaded(_)) {
            started = Some(Instant::now());
        }
    });
    assert_eq!(ending, Ending::Finished);
    let seconds = started.expect("loaded").elapsed().as_secs_f64();
    let batches = config.train.steps as f64
        * if config.model.kind.is_gan() {
            config.train.d_steps as f64
        } else {
            1.0
        };
    batches * config.train.batch_size as f64 / seconds
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args().nth(1).map_or(3, |n| n.parse().expect("a round count"));
    println!(
        "{:<16} {:>8} {:>14} {:>14} {:>8}",
        "preset", "steps", "health on", "health off", "on/off"
    );
    for (name, steps) in [("mlp-gan-digits", 1000), ("dcgan-digits", 200), ("vae-digits", 600)] {
        let mut on = preset(name).expect("a shipped preset");
        on.train.steps = steps;
        // Grids and checkpoints are not what is measured; both runs make them as rarely.
        on.train.sample_every = steps;
        on.train.checkpoint_every = steps;
        let mut off = on.clone();
        off.health.every = 0;
        off.health.snapshots = 0;
        let (mut with, mut without) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            with.push(images_per_second(&on));
            without.push(images_per_second(&off));
        }
        let (with, without) = (median(with), median(without));
        println!(
            "{name:<16} {steps:>8} {:>10.0} im/s {:>10.0} im/s {:>7.3}",
            with,
            without,
            with / without
        );
    }
}
