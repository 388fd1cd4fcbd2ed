//! Checks the pre-flight estimate against real runs (a benchmark, not a test): each case trains in a child
//! process of its own, whose peak resident memory the parent reads when it ends, and whose step time comes
//! from its metrics. Prints estimate vs measured with their ratios.
//!
//!     cargo run --release --example footprint_bench
//!
//! Linux only (the child's peak memory comes from wait4).

use gantry::config::RunConfig;
use gantry::footprint::{bytes, machine_speed, Footprint};
use gantry::presets::preset;
use gantry::train::worker::{Ending, RunOptions, Trainer};
use std::process::Command;

const STEPS: u64 = 40;

/// (label, preset, settings) of each case.
const CASES: [(&str, &str, &[&str]); 8] = [
    ("mlp-gan-digits", "mlp-gan-digits", &[]),
    ("mlp-gan wide", "mlp-gan-digits", &["model.hidden=[2048, 4096]"]),
    ("dcgan-digits", "dcgan-digits", &[]),
    ("dcgan batch 512", "dcgan-digits", &["train.batch_size=512"]),
    ("vae-digits", "vae-digits", &[]),
    ("conv-ae-digits", "conv-ae-digits", &[]),
    (
        "dcgan 64x64 RGB",
        "dcgan-digits",
        &["data.source=\"shapes\"", "data.image_size=64", "data.channels=3"],
    ),
    ("digits 200k items", "mlp-gan-digits", &["data.count=200000"]),
];

fn config(preset_name: &str, settings: &[&str]) -> RunConfig {
    let mut config = preset(preset_name).expect("a shipped preset");
    // Snapshots every 10 steps fill the health checks' ring (4 by default) within the run, as a long run does.
    let run = [format!("train.steps={STEPS}"), "health.snapshot_every=10".to_string()];
    for setting in settings.iter().copied().chain(run.iter().map(String::as_str)) {
        config.set(setting).expect("a valid setting");
    }
    config
}

/// Trains one case in this process (the child's side).
fn train(index: usize) {
    let (_, preset_name, settings) = CASES[index];
    let runs = tempfile::tempdir().expect("a temporary directory");
    let options = RunOptions {
        out_dir: Some(runs.path().join("run")),
        ..RunOptions::default()
    };
    let trainer = Trainer::spawn(config(preset_name, settings), options, None);
    let (never, mut first, mut last) = (crossbeam_channel::never(), None, None);
    let ending = trainer.run_to_end(&never, |event| {
        if let gantry::train::worker::Event::Metrics(row) = event {
            first.get_or_insert(row.wall_s);
            last = Some((row.step, row.wall_s));
        }
    });
    assert_eq!(ending, Ending::Finished);
    let ((steps, end), start) = (last.expect("rows"), first.expect("rows"));
    // Steps after the first (which includes warming up) over the time they took.
    println!("{}", (end - start) / (steps - 1) as f64);
}

/// Runs case `index` in a child process: its peak resident bytes and seconds per step.
#[cfg(target_os = "linux")]
// The child is reaped by wait4, which also reads its peak memory (std's wait cannot).
#[allow(clippy::zombie_processes)]
fn measure(index: usize) -> (u64, f64) {
    use std::io::Read;
    let mut child = Command::new(std::env::current_exe().expect("this example's path"))
        .arg(index.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the child starts");
    let pid = child.id() as i32;
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("piped")
        .read_to_string(&mut out)
        .expect("its output");
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    // SAFETY: waits for the child started above and reads its resource use.
    assert_eq!(unsafe { libc::wait4(pid, &mut status, 0, &mut usage) }, pid);
    let seconds: f64 = out.trim().parse().expect("the child prints its step time");
    (usage.ru_maxrss as u64 * 1024, seconds)
}

fn main() {
    // As `gantry` does: freed memory kept for reuse on every thread (a run trains on the worker thread,
    // `gantry bench` on the main one), and no candle barrier pool adding a thread that spins for the same cores.
    gantry::memory::keep_freed_memory();
    gantry::threads::configure_pools(None);
    if let Some(index) = std::env::args().nth(1) {
        return train(index.parse().expect("a case number"));
    }
    #[cfg(target_os = "linux")]
    {
        let speed = machine_speed();
        println!(
            "matrix product speed {:.1} G multiply-adds/s on {} threads; {STEPS} steps per case\n",
            speed / 1e9,
            gantry::threads::count()
        );
        println!(
            "{:18} {:>10} {:>10} {:>7}   {:>9} {:>9} {:>7}",
            "case", "est. mem", "peak RSS", "ratio", "est. step", "measured", "ratio"
        );
        for (index, (label, preset_name, settings)) in CASES.iter().enumerate() {
            let footprint = Footprint::of(&config(preset_name, settings)).expect("the cases fit a model");
            let (peak, seconds) = measure(index);
            let (estimated, step) = (footprint.total_bytes(), footprint.seconds_per_step(speed));
            println!(
                "{label:18} {:>10} {:>10} {:>6.2}x   {:>7.1}ms {:>7.1}ms {:>6.2}x",
                bytes(estimated),
                bytes(peak),
                estimated as f64 / peak as f64,
                step * 1e3,
                seconds * 1e3,
                step / seconds
            );
        }
    }
}
