//! Benchmark (not a test): what the run's own checks cost in training speed. Trains each preset through the
//! worker with one kind of check as shipped and with it off, alternating the two so both meet the same
//! machine, and prints the images per second of each and their ratio, by the clock and per second of this
//! process's CPU time (all threads, the quality metric's included; a busy machine disturbs it less), and
//! the share of the run's CPU time the quality metric's own thread took (read from /proc: the direct
//! measure of its cost, which the noise of two runs' difference hides). Beside the ratio of the medians it
//! prints the median of each round's own on/off ratio of CPU-time throughput with its interquartile range:
//! the two runs of a round meet the same machine, so these ratios spread far less than the runs themselves.
//!
//! - `health`: signals every 50 steps, four in-memory snapshots every 100 steps, the rules read on every
//!   row, against `health.every = 0` and no snapshots (the quality metric off in both). Target: within 3 %.
//! - `quality`: the quality metric every 250 steps (512 samples scored on its own thread, the feature network
//!   taken from the cache, which a warm-up run fills), against `quality.every = 0`. Target: within 5 %.
//! - `latent`: the latent views as the open Latent space tab asks for them (autoencoders' map of 500 held-out
//!   items, GANs' latent walk) with every snapshot, the preset's grids into a run directory as in the
//!   workbench, against the same run with the tab closed. Target: at least 90 %.
//!
//! - `train`: each `gantry bench` model trained as `gantry train` trains it (its preset as shipped: grids,
//!   checkpoints, health checks, quality metric, metrics.csv, into a run directory), by the clock from the
//!   end of the warm-up steps `gantry bench` leaves out of its time to the last step, against `gantry
//!   bench`'s loop of bare steps, with the median of each round's own ratio beside the ratio of the medians,
//!   the run timed from its first step to its end (its last checkpoint, grids and quality score), and the
//!   share of the run's clock its steps themselves took (their rows' `wall_s`; read within one run, so the
//!   machine's drift between runs cannot move it, and what the run does besides steps is the rest), the share
//!   the steps right after periodic work lost against the run's undisturbed steps (its side threads, the
//!   file writer and the quality metric, and the caches it went through: read within one run too), and the
//!   page faults a step of each side (a buffer the allocator gave back to the system and took again: a
//!   count, which the machine's speed does not move). Target: within 5 %. Settings after the model
//!   (`quality.every=0 health.every=0`) change the trained side, to find what costs.
//!
//! ```text
//! cargo run --release --example overhead_bench -- health|quality|latent [ROUNDS [PRESET]]
//! cargo run --release --example overhead_bench -- train [ROUNDS [MODEL [KEY=VALUE...]]]
//! ```

use gantry::cli::BENCH_WARMUP;
use gantry::config::RunConfig;
use gantry::models::layers::Kernels;
use gantry::presets::preset;
use gantry::train::worker::{Command, Ending, Event, RunOptions, Trainer};
use std::time::Instant;

#[path = "support/measure.rs"]
mod measure;

use measure::cpu_by_thread_name;

/// What this process (all its threads) has used so far.
fn own_usage() -> libc::rusage {
    let mut usage = unsafe { std::mem::zeroed::<libc::rusage>() };
    // SAFETY: fills the struct passed in.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage
}

/// CPU seconds this process (all its threads) has used.
fn cpu_seconds() -> f64 {
    let usage = own_usage();
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// Page faults this process has taken so far that the kernel served from memory (a fresh page mapped in and
/// zeroed: what a buffer the allocator gave back to the system costs when it is taken again).
fn minor_faults() -> f64 {
    own_usage().ru_minflt as f64
}

/// CPU seconds the quality metric's thread has used so far (0 when it is not running).
fn quality_thread_seconds() -> f64 {
    cpu_by_thread_name()
        .into_iter()
        .find(|(name, _)| name == "gantry-quality")
        .map_or(0.0, |(_, seconds)| seconds)
}

/// Images per second of the clock and of CPU time of one run of `config` to its budget (loading excluded),
/// and the share of that CPU time the quality metric's thread took. With `run_dir` it writes a run directory
/// (as the workbench does: snapshots every `sample_every` steps, not every 50 ms); with `latent_views` it asks
/// for the latent views as the open Latent space tab does.
fn images_per_second(config: &RunConfig, run_dir: bool, latent_views: bool) -> (f64, f64, f64) {
    let runs = tempfile::tempdir().expect("a temporary directory");
    let options = RunOptions {
        out_dir: run_dir.then(|| runs.path().join("run")),
        ..RunOptions::default()
    };
    let trainer = Trainer::spawn(config.clone(), options, None);
    if latent_views {
        trainer.send(Command::LatentViews(true));
    }
    let mut started = None;
    let mut quality_cpu = 0f64;
    let ending = trainer.run_to_end(&crossbeam_channel::never(), |event| match event {
        Event::Loaded(_) => started = Some((Instant::now(), cpu_seconds())),
        Event::Metrics(row) if row.step % 25 == 0 => quality_cpu = quality_cpu.max(quality_thread_seconds()),
        Event::State(_) => quality_cpu = quality_cpu.max(quality_thread_seconds()),
        _ => {}
    });
    assert_eq!(ending, Ending::Finished);
    let (clock, cpu) = started.expect("loaded");
    let (seconds, cpu) = (clock.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    let d_steps = if config.model.kind.is_gan() {
        config.train.d_steps
    } else {
        1
    };
    let images = (config.train.steps as usize * d_steps * config.train.batch_size) as f64;
    (images / seconds, images / cpu, quality_cpu / cpu)
}

fn median(values: Vec<f64>) -> f64 {
    quartiles(values)[1]
}

/// The lower quartile, median and upper quartile of `values`.
fn quartiles(mut values: Vec<f64>) -> [f64; 3] {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    [at(0.25), at(0.5), at(0.75)]
}

/// `config` with the checks of `what` off.
fn without(what: &str, config: &RunConfig) -> RunConfig {
    let mut off = config.clone();
    match what {
        "health" => {
            off.health.every = 0;
            off.health.snapshots = 0;
        }
        "quality" => off.quality.every = 0,
        "latent" => {}
        other => panic!("'{other}': expected health, quality, latent or train"),
    }
    off
}

/// What one run as `gantry train` reads.
struct Trained {
    /// Images/s by the clock from the row of the last warm-up step (`gantry bench` times none of them) to the
    /// last step's row.
    images_per_s: f64,
    /// Images/s from the first step's row to its end (the last checkpoint, grids and quality score written:
    /// a fixed cost that a longer run spreads thinner).
    to_end: f64,
    /// The share of the clock between the two rows `images_per_s` is timed by that the steps themselves took
    /// (the rows' `wall_s`): read within one run, so the machine's drift between runs cannot move it.
    steps_share: f64,
    /// The share of the same clock the steps right after periodic work lost against the run's undisturbed
    /// steps (`slowed_after_jobs`): what that work costs besides its own time, read within one run too.
    after_jobs_share: f64,
    /// Page faults a step between the same two rows.
    faults_per_step: f64,
}

/// Steps after a step with periodic work (grids, held-out loss, health signals, snapshots, quality score,
/// checkpoint) that count as slowed by it: the work's side threads (the file writer, the quality metric) and
/// the caches it went through still hold the cores.
const AFTER_JOB_STEPS: u64 = 5;

/// Seconds the steps right after periodic work took beyond the run's median undisturbed step, from warm-up
/// end to the last step (`step_seconds[s]`: step s's own time).
fn slowed_after_jobs(config: &RunConfig, step_seconds: &[f64]) -> f64 {
    let (t, h, q) = (&config.train, &config.health, &config.quality);
    let cadences = [
        t.sample_every,
        t.eval_every,
        t.checkpoint_every,
        h.every,
        h.snapshot_every,
        q.every,
    ];
    let job_at = |step: u64| cadences.iter().any(|&every| every > 0 && step.is_multiple_of(every));
    let after_job = |step: u64| (step.saturating_sub(AFTER_JOB_STEPS)..step).any(|s| s > 0 && job_at(s));
    let timed = BENCH_WARMUP + 1..=config.train.steps;
    let quiet = median(
        timed
            .clone()
            .filter(|s| !after_job(*s))
            .map(|s| step_seconds[s as usize])
            .collect(),
    );
    timed
        .filter(|s| after_job(*s))
        .map(|s| step_seconds[s as usize] - quiet)
        .sum()
}

/// `config` trained through the worker into a run directory, as `gantry train` does; loading, building and
/// the first quality reference excluded.
fn trained_as_gantry_train(config: &RunConfig) -> Trained {
    let runs = tempfile::tempdir().expect("a temporary directory");
    let options = RunOptions {
        out_dir: Some(runs.path().join("run")),
        headless: true,
        ..RunOptions::default()
    };
    let trainer = Trainer::spawn(config.clone(), options, None);
    let (mut first_step, mut warm, mut last_step) = (None, None, None);
    let mut step_seconds = vec![0.0; config.train.steps as usize + 1];
    let mut wall_before = 0.0;
    let ending = trainer.run_to_end(&crossbeam_channel::never(), |event| {
        if let Event::Metrics(row) = event {
            step_seconds[row.step as usize] = row.wall_s - wall_before;
            wall_before = row.wall_s;
            if row.step == 1 {
                first_step = Some(Instant::now());
            }
            if row.step == BENCH_WARMUP {
                warm = Some((Instant::now(), row.wall_s, minor_faults()));
            }
            if row.step == config.train.steps {
                last_step = Some((Instant::now(), row.wall_s, minor_faults()));
            }
        }
    });
    assert_eq!(ending, Ending::Finished);
    let first = first_step.expect("a first step");
    let (warm, warm_wall, warm_faults) = warm.expect("the warm-up steps");
    let (last, last_wall, last_faults) = last_step.expect("a last step");
    let timed = (config.train.steps - BENCH_WARMUP) as usize * config.train.batch_size;
    let to_last_step = (last - warm).as_secs_f64();
    Trained {
        images_per_s: timed as f64 / to_last_step,
        to_end: ((config.train.steps - 1) as usize * config.train.batch_size) as f64 / first.elapsed().as_secs_f64(),
        steps_share: (last_wall - warm_wall) / to_last_step,
        after_jobs_share: slowed_after_jobs(config, &step_seconds) / to_last_step,
        faults_per_step: (last_faults - warm_faults) / (config.train.steps - BENCH_WARMUP) as f64,
    }
}

/// `gantry train` against `gantry bench` for each benchmark model, alternating which goes first.
fn train_against_bench(rounds: usize, only: Option<&str>, sets: &[String]) {
    println!(
        "{:<8} {:<16} {:>6} {:>12} {:>12} {:>7}  {:<24} {:>12} {:>7} {:>12} {:>10}  faults a step (train / bench)",
        "model",
        "preset",
        "steps",
        "train im/s",
        "bench im/s",
        "ratio",
        "paired (IQR)",
        "to end im/s",
        "ratio",
        "steps' share",
        "after jobs"
    );
    for &(model, name) in gantry::cli::bench_models(only) {
        let mut config = preset(name).expect("a shipped preset");
        // Long enough for every periodic job (grids, checkpoints, health, quality) to happen several times.
        config.train.steps = match model {
            "dcgan" => 300,
            "dcgan64" => 60,
            _ => 1000,
        };
        for assignment in sets {
            config.set(assignment).expect("a valid KEY=VALUE");
        }
        // Fills the quality metric's feature cache, as any earlier run has.
        trained_as_gantry_train(&config);
        // Faults read around the whole call: its loading and warm-up steps count against the bench.
        let bench = || {
            let steps = config.train.steps;
            let faults = minor_faults();
            let run = gantry::cli::bench_one(name, steps, Kernels::Fast, false).expect("the bench runs");
            let faults_per_step = (minor_faults() - faults) / steps as f64;
            ((steps as usize * run.batch) as f64 / run.seconds, faults_per_step)
        };
        let (mut train, mut bare) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            if round % 2 == 0 {
                train.push(trained_as_gantry_train(&config));
                bare.push(bench());
            } else {
                bare.push(bench());
                train.push(trained_as_gantry_train(&config));
            }
        }
        // Each round's two runs meet the same machine: their ratio spreads far less than the runs do.
        let [low, middle, high] = quartiles(train.iter().zip(&bare).map(|(t, b)| t.images_per_s / b.0).collect());
        let faults = (
            median(train.iter().map(|t| t.faults_per_step).collect()),
            median(bare.iter().map(|b| b.1).collect()),
        );
        let to_end = median(train.iter().map(|t| t.to_end).collect());
        let steps_share = median(train.iter().map(|t| t.steps_share).collect());
        let after_jobs = median(train.iter().map(|t| t.after_jobs_share).collect());
        let (train, bare) = (
            median(train.into_iter().map(|t| t.images_per_s).collect()),
            median(bare.into_iter().map(|b| b.0).collect()),
        );
        let paired = format!("{middle:.3} ({low:.3}-{high:.3})");
        println!(
            "{model:<8} {name:<16} {:>6} {train:>12.0} {bare:>12.0} {:>7.3}  {paired:<24} {to_end:>12.0} {:>7.3} {steps_share:>12.3} {after_jobs:>10.3}  {:.0} / {:.0}",
            config.train.steps,
            train / bare,
            to_end / bare,
            faults.0,
            faults.1
        );
    }
}

fn main() {
    // As `gantry` does: freed memory kept for reuse on every thread (a run trains on the worker thread,
    // `gantry bench` on the main one), and no candle barrier pool adding a thread that spins for the same cores.
    gantry::memory::keep_freed_memory();
    gantry::threads::configure_pools(None);
    let what = std::env::args().nth(1).unwrap_or_else(|| "health".into());
    let rounds: usize = std::env::args().nth(2).map_or(3, |n| n.parse().expect("a round count"));
    let only = std::env::args().nth(3);
    if what == "train" {
        let sets: Vec<String> = std::env::args().skip(4).collect();
        train_against_bench(rounds, only.as_deref(), &sets);
        return;
    }
    println!(
        "{:<16} {:>6} {:>12} {:>12} {:>7} {:>14} {:>14} {:>7} {:>12}  paired cpu on/off (IQR)",
        "preset", "steps", "on im/s", "off im/s", "on/off", "on im/cpu-s", "off im/cpu-s", "on/off", "quality cpu%"
    );
    let latent = what == "latent";
    // Multiples of the quality metric's 250 steps, so each scored step's cost is in the run's time.
    let presets = match latent {
        true => [("vae-digits", 1000), ("conv-ae-digits", 500), ("dcgan-digits", 250)],
        false => [("mlp-gan-digits", 1000), ("dcgan-digits", 250), ("vae-digits", 500)],
    };
    for (name, steps) in presets {
        if only.as_ref().is_some_and(|only| only != name) {
            continue;
        }
        let mut on = preset(name).expect("a shipped preset");
        on.train.steps = steps;
        // Grids and checkpoints are not what is measured; both runs make them as rarely (but for the latent
        // views, which come with the grids).
        if !latent {
            on.train.sample_every = steps;
            on.train.checkpoint_every = steps;
        }
        // The quality metric's thread wakes now and then and takes a core from the training threads: noise
        // for every other measurement.
        if what == "health" {
            on.quality.every = 0;
        }
        // The latent views are asked for by a command, not by the config: `off` is `on` with the tab closed.
        let off = without(&what, &on);
        if what == "quality" || latent {
            // Fills the feature network cache, as any earlier run on the data set has.
            images_per_second(&on, latent, false);
        }
        let (mut with, mut without) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            // Alternating which goes first cancels a machine that speeds up or slows down over a round.
            if round % 2 == 0 {
                with.push(images_per_second(&on, latent, latent));
                without.push(images_per_second(&off, latent, false));
            } else {
                without.push(images_per_second(&off, latent, false));
                with.push(images_per_second(&on, latent, latent));
            }
        }
        let clock = |runs: &[(f64, f64, f64)]| median(runs.iter().map(|r| r.0).collect());
        let cpu = |runs: &[(f64, f64, f64)]| median(runs.iter().map(|r| r.1).collect());
        let quality_share = median(with.iter().map(|r| r.2).collect());
        let paired: Vec<f64> = with.iter().zip(&without).map(|(on, off)| on.1 / off.1).collect();
        let [low, middle, high] = quartiles(paired.clone());
        println!(
            "{name:<16} {steps:>6} {:>12.0} {:>12.0} {:>7.3} {:>14.0} {:>14.0} {:>7.3} {:>12.1}  {middle:.3} ({low:.3}-{high:.3})",
            clock(&with),
            clock(&without),
            clock(&with) / clock(&without),
            cpu(&with),
            cpu(&without),
            cpu(&with) / cpu(&without),
            100.0 * quality_share
        );
        let rounds: Vec<String> = paired.iter().map(|r| format!("{r:.3}")).collect();
        println!("{:<16} rounds' cpu on/off: {}", "", rounds.join(" "));
    }
}
