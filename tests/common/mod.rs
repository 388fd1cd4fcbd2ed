//! Helpers shared by the integration tests.
#![allow(dead_code)]

use gantry::config::RunConfig;
use gantry::presets::preset;
use gantry::train::worker::{Event, Problem, Trainer};
use std::time::{Duration, Instant};

/// A preset made small enough to train in a test: fewer generated items, frequent samples.
pub fn small(name: &str) -> RunConfig {
    let mut config = preset(name).unwrap();
    config.data.count = 1000;
    config
}

/// Waits for the first event `pick` accepts, failing the test after a generous timeout.
pub fn wait_for<T>(trainer: &Trainer, mut pick: impl FnMut(&Event) -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = trainer
            .events()
            .recv_timeout(left)
            .expect("the trainer answers in time");
        if let Some(problem) = event.problem() {
            eprintln!("trainer: {problem:?}");
        }
        if let Some(found) = pick(&event) {
            return found;
        }
    }
}

/// Waits for a problem of the kind `pick` accepts and returns its message.
pub fn wait_for_problem(trainer: &Trainer, pick: impl Fn(&Problem) -> bool) -> String {
    wait_for(trainer, |e| {
        e.problem().filter(|p| pick(p)).map(|p| p.message().to_string())
    })
}

/// Metric values that must repeat exactly for the same seed: timings excluded, and the quality scores,
/// whose first scored step depends on when the feature network became ready.
pub fn deterministic_values(row: &gantry::train::MetricRow) -> Vec<(String, f64)> {
    use gantry::quality::{CLASSES, CONFIDENT, FD};
    row.values
        .iter()
        .filter(|(k, _)| !["images_per_s", FD, CONFIDENT, CLASSES].contains(&k.as_str()))
        .cloned()
        .collect()
}
