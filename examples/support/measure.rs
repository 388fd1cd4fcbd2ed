//! Measurements the benchmark examples share (included with `#[path]`, as examples cannot share a module
//! otherwise): a run trained headless, its images/s from its own metrics, and CPU time per thread.

use gantry::config::RunConfig;
use gantry::train::worker::{Command, Event, RunOptions, RunState, Trainer};
use std::path::Path;

/// Trains `config` headless into the run directory `dir`, to its step budget.
#[allow(dead_code)]
pub fn train_headless(config: RunConfig, dir: &Path) {
    let options = RunOptions {
        out_dir: Some(dir.to_path_buf()),
        headless: true,
        ..RunOptions::default()
    };
    let trainer = Trainer::spawn(config, options, None);
    for event in trainer.events().iter() {
        match event {
            Event::State(RunState::Ready) => {
                trainer.send(Command::Start);
            }
            Event::State(RunState::Finished) => break,
            _ => {}
        }
    }
}

/// Training images/s of a finished run, from its own metrics: images trained over the seconds spent in
/// training steps (`wall_s`), so loading and start-up count for neither side of a comparison.
#[allow(dead_code)]
pub fn trained_images_per_s(run: &Path, batch: f64) -> f64 {
    let rows = gantry::runs::read_metrics(run).expect("the run wrote its metrics").rows;
    let last = rows.last().expect("the run trained");
    last.step as f64 * batch / last.wall_s
}

/// CPU seconds this process's live threads have used, summed by thread name (from /proc).
#[allow(dead_code)]
pub fn cpu_by_thread_name() -> Vec<(String, f64)> {
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut by_name = std::collections::BTreeMap::<String, f64>::new();
    for task in std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the command's closing parenthesis: state is the 3rd field, utime and stime the 14th-15th.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        let used: f64 = [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
            .sum();
        *by_name.entry(name.trim().to_string()).or_default() += used / ticks;
    }
    by_name.into_iter().collect()
}
