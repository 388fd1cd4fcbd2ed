//! The command line: `gantry presets`, `gantry train`, `gantry bench`. Training goes through the same
//! [`Trainer`] the workbench uses.

use crate::config::{OnTrouble, RunConfig};
use crate::data;
use crate::footprint::{available_memory, machine_speed, Footprint};
use crate::models::layers::Kernels;
use crate::models::{preflight, product_tally, tally_products, ProductTally};
use crate::presets::{self, PRESETS};
use crate::runs::{self, RunDir};
use crate::sweep::{self, Axis};
use crate::train::session::Session;
use crate::train::worker::{Ending, Event, Problem, RunOptions, Trainer};
use clap::{Parser, Subcommand};
use crossbeam_channel::Receiver;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Exit code for bad arguments or configs (nothing was trained).
pub const EXIT_USAGE: i32 = 2;
/// Exit code for a run that failed while loading or training.
pub const EXIT_FAILURE: i32 = 1;
/// Exit code for a run stopped by Ctrl-C or SIGTERM (after its last checkpoint), as shells report SIGINT.
pub const EXIT_INTERRUPTED: i32 = 130;
/// The run paused itself (a health rule, a NaN, a folder it cannot write); `--resume` continues it.
pub const EXIT_PAUSED: i32 = 3;

#[derive(Parser, Debug)]
#[command(name = "gantry", version, about = "Train GANs and autoencoders and watch them learn")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Cmd>,
    /// Threads for training and data loading (default: the number of physical cores).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// How the workbench window draws: OpenGL (glow) or wgpu (Vulkan, Metal, DirectX).
    #[arg(long, default_value = "glow", value_parser = ["glow", "wgpu"])]
    pub renderer: String,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// List the shipped presets.
    Presets,
    /// Train headless, writing a run directory.
    Train(TrainArgs),
    /// Measure training images/s of the benchmark models (those of torch_reference.py).
    Bench(BenchArgs),
    /// Train one run per point of a grid of settings and write a summary CSV.
    Sweep(SweepArgs),
    /// Continue a run from one of its checkpoints as a new run, with changed settings.
    Fork(ForkArgs),
    /// Save a run's filmstrip (its saved grids) as an animated GIF or PNG files.
    Export(ExportArgs),
    /// Score images (another program's samples, say) with the quality metric of a data set, as runs are scored.
    Score(ScoreArgs),
}

#[derive(clap::Args, Debug)]
pub struct ScoreArgs {
    /// The data set (and its settings) the images are scored against, as for `train`.
    #[command(flatten)]
    pub base: ConfigArgs,
    /// The images to score, in a form `--data` reads (idx:DIR with an IDX image file, folder:DIR), the same
    /// shape as the data set's items.
    #[arg(long, value_name = "DATA")]
    pub samples: String,
    /// Print the values as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// The run directory.
    pub run: PathBuf,
    /// Which grids: samples or recon (reconstructions).
    #[arg(long, default_value = "samples", value_parser = ["samples", "recon"])]
    pub grids: String,
    /// Write an animated GIF here.
    #[arg(long, required_unless_present = "pngs")]
    pub gif: Option<PathBuf>,
    /// Write numbered PNG files into this directory.
    #[arg(long)]
    pub pngs: Option<PathBuf>,
    /// Milliseconds between GIF frames.
    #[arg(long, default_value_t = 150)]
    pub frame_ms: u32,
}

#[derive(clap::Args, Debug)]
pub struct ForkArgs {
    /// The run to fork.
    pub parent: PathBuf,
    /// The checkpoint step to fork from (default: the newest).
    #[arg(long)]
    pub step: Option<u64>,
    /// Directory of the new run.
    #[arg(long)]
    pub out: PathBuf,
    /// Step budget of the new run.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Change a setting that keeps shapes, e.g. --set optimizer.lr=1e-3 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

/// Where a config comes from and what is changed in it.
#[derive(clap::Args, Debug, Default)]
pub struct ConfigArgs {
    /// Start from a shipped preset (see `gantry presets`).
    #[arg(long, conflicts_with = "config")]
    pub preset: Option<String>,
    /// Start from a TOML config file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Dataset: digits, shapes, toy:NAME, idx:DIR, mnist, fashion-mnist, folder:DIR.
    #[arg(long)]
    pub data: Option<String>,
    /// Step budget.
    #[arg(long)]
    pub steps: Option<u64>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Override one setting, e.g. --set optimizer.lr=1e-3 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub base: ConfigArgs,
    /// Continue the run in this directory from its newest checkpoint.
    #[arg(long, conflicts_with_all = ["preset", "config"])]
    pub resume: Option<PathBuf>,
    /// Run directory (default: `runs/<name>-<time>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// What a divergence (a loss or gradient spike, NaN) does: warn, pause (exit 3, resumable) or
    /// rollback (to the newest in-memory snapshot before it, with the learning rates halved). Sets
    /// health.on_divergence.
    #[arg(long, value_name = "ACTION", value_parser = parse_on_trouble)]
    pub on_divergence: Option<OnTrouble>,
    /// Crash the training thread at this step (to see how a crash is reported).
    #[arg(long, hide = true)]
    pub panic_at_step: Option<u64>,
}

fn parse_on_trouble(value: &str) -> Result<OnTrouble, String> {
    OnTrouble::from_key(value).ok_or_else(|| format!("'{value}' is not warn, pause or rollback"))
}

#[derive(clap::Args, Debug)]
pub struct SweepArgs {
    #[command(flatten)]
    pub base: ConfigArgs,
    /// A swept setting: key=v1,v2,... or a log-spaced range key=lo..hi:n (repeatable; runs = product).
    #[arg(long = "grid", value_name = "KEY=VALUES", required_unless_present = "summarize")]
    pub grids: Vec<String>,
    /// Directory for the runs (one per point) and summary.csv.
    #[arg(long, required_unless_present = "summarize")]
    pub out: Option<PathBuf>,
    /// Runs trained at once.
    #[arg(long, default_value_t = 1)]
    pub parallel: usize,
    /// Train nothing: write into DIR one config per point, a Slurm job-array script (sweep.sbatch) and a
    /// Kubernetes Indexed Job manifest (sweep-job.yaml) whose tasks train the points into --out.
    #[arg(long, value_name = "DIR", conflicts_with = "summarize")]
    pub plan: Option<PathBuf>,
    /// Write summary.csv (into the plan's runs folder) for a planned sweep from what its tasks trained.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["grids", "preset", "config"])]
    pub summarize: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Model to measure (all but dcgan64 when omitted: the 64x64 colour DCGAN takes seconds a step).
    #[arg(long, value_parser = ["dcgan", "vae", "mlpgan", "convae", "dcgan64"])]
    pub model: Option<String>,
    /// Timed steps per model (after 5 warm-up steps).
    #[arg(long, default_value_t = 30)]
    pub steps: u64,
    /// Print one JSON array (the fields torch_reference.py --json prints).
    #[arg(long)]
    pub json: bool,
    /// Kernels: Gantry's (fast: convolutions, batch norm, linear products, bias and activations) or candle's
    /// own ops (to compare against).
    #[arg(long, default_value = "fast", value_parser = ["fast", "candle"])]
    pub kernels: String,
    /// Also tally the timed steps' matrix products: their multiply-adds, their share of the threads' time
    /// (what a step would take if it were its products alone), and the slowest shapes.
    #[arg(long)]
    pub products: bool,
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    crate::threads::configure_pools(cli.threads);
    if cli.command.is_some() {
        end_quietly_on_closed_pipe();
    }
    match cli.command {
        // No subcommand: open the workbench.
        None => crate::app::run(&cli.renderer),
        Some(Cmd::Presets) => {
            for (name, text) in PRESETS {
                println!("{name:22} {}", presets::description(text));
            }
            0
        }
        Some(Cmd::Train(args)) => train(args),
        Some(Cmd::Bench(args)) => bench(args),
        Some(Cmd::Sweep(args)) => sweep(args),
        Some(Cmd::Fork(args)) => fork(args),
        Some(Cmd::Export(args)) => export(args),
        Some(Cmd::Score(args)) => score(args),
    }
}

/// Output piped into a reader that stops early (`gantry presets | head -1`) ends the process quietly, as
/// for other command-line tools, instead of panicking in `println!`.
fn end_quietly_on_closed_pipe() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: restores the default disposition of SIGPIPE (Rust's runtime ignores it); no handler runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// A channel that closes on Ctrl-C or SIGTERM: runs driven with it stop, checkpoint and record
/// `status = "stopped"`. A second signal while they stop ends the process at once.
fn closed_on_signal() -> Receiver<()> {
    let (sender, receiver) = crossbeam_channel::bounded::<()>(0);
    let sender = std::sync::Mutex::new(Some(sender));
    let installed = ctrlc::set_handler(move || {
        let mut sender = sender.lock().unwrap_or_else(|e| e.into_inner());
        if sender.take().is_some() {
            eprintln!("stopping: writing a last checkpoint (press Ctrl-C again to quit at once)");
        } else {
            std::process::exit(EXIT_INTERRUPTED);
        }
    });
    if let Err(e) = installed {
        eprintln!("warning: Ctrl-C will end the run without a last checkpoint ({e})");
    }
    receiver
}

/// The config a command would run, with every override applied and checked; errors name the key.
pub fn resolve_config(args: &ConfigArgs, resume: Option<&Path>) -> Result<RunConfig, String> {
    let config = configured(args, resume)?;
    check_before_allocating(&config)?;
    Ok(config)
}

/// The config `args` describe, unchecked against the machine.
fn configured(args: &ConfigArgs, resume: Option<&Path>) -> Result<RunConfig, String> {
    // A resumed run keeps its stored config, apart from settings that keep shapes.
    let stored = resume.map(runs::config_to_continue).transpose()?;
    let mut config = if let Some(stored) = &stored {
        stored.clone()
    } else if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read config: {e}", path.display()))?;
        RunConfig::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))?
    } else {
        presets::preset(args.preset.as_deref().unwrap_or(presets::DEFAULT_PRESET))?
    };
    let mut sets = args.sets.clone();
    if let Some(data) = &args.data {
        sets.push(format!("data.source={data:?}"));
    }
    if let Some(steps) = args.steps {
        sets.push(format!("train.steps={steps}"));
    }
    if let Some(seed) = args.seed {
        sets.push(format!("train.seed={seed}"));
    }
    for assignment in &sets {
        config.set(assignment).map_err(|e| e.to_string())?;
    }
    if let Some(key) = stored.and_then(|stored| stored.restart_needed_for(&config)) {
        return Err(format!("{key} cannot change when resuming a run"));
    }
    Ok(config)
}

/// The pre-flight check: the memory and time estimate (refused when it does not fit the memory available),
/// then the model built and run on two items. Prints nothing; errors name the setting to change.
fn check_before_allocating(config: &RunConfig) -> Result<Footprint, String> {
    let model_error = |e: String| format!("model.kind = {:?}: {e}", config.model.kind);
    let footprint = Footprint::of(config).map_err(model_error)?;
    if let Some(available) = available_memory() {
        footprint.check_fits(config, available)?;
    }
    let shape = data::expected_shape(&config.data)?;
    preflight(&config.model, shape).map_err(model_error)?;
    Ok(footprint)
}

fn default_out_dir(args: &ConfigArgs) -> PathBuf {
    let name = match (&args.preset, &args.config) {
        (Some(p), _) => p.clone(),
        (None, Some(path)) => path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "run".into()),
        (None, None) => presets::DEFAULT_PRESET.into(),
    };
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    PathBuf::from("runs").join(format!("{name}-{secs}"))
}

fn train(args: TrainArgs) -> i32 {
    let mut config = match resolve_config(&args.base, args.resume.as_deref()) {
        Ok(c) => c,
        Err(message) => {
            eprintln!("error: {message}");
            return EXIT_USAGE;
        }
    };
    if let Some(action) = args.on_divergence {
        config.health.on_divergence = action;
    }
    if let Ok(footprint) = Footprint::of(&config) {
        println!("estimate: {}", footprint.describe(Some(machine_speed())));
    }
    let (out_dir, resume) = match &args.resume {
        Some(dir) => (dir.clone(), true),
        None => (args.out.clone().unwrap_or_else(|| default_out_dir(&args.base)), false),
    };
    let options = RunOptions {
        out_dir: Some(out_dir),
        resume,
        panic_at_step: args.panic_at_step,
        ..RunOptions::default()
    };
    train_with_progress(config, options)
}

/// Trains a run (new, or continued from its newest checkpoint) to its budget with a progress bar.
fn train_with_progress(config: RunConfig, options: RunOptions) -> i32 {
    let budget = config.train.steps;
    let out_dir = options.out_dir.clone().expect("CLI runs have a directory");
    let options = RunOptions {
        headless: true,
        ..options
    };
    let trainer = Trainer::spawn(config, options, None);
    let bar = ProgressBar::new(budget);
    bar.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} ETA {eta}").expect("a valid template"));
    let started = Instant::now();
    let (mut first_step, mut last, mut scored) = (None, None, None);
    let ending = trainer.run_to_end(&closed_on_signal(), |event| match event {
        Event::Loaded(info) => {
            // `suspend` prints whether or not the bar is drawn (it is hidden when not on a terminal).
            bar.suspend(|| {
                println!("data: {}", info.data.describe());
                for note in &info.data.notes {
                    println!("  {note}");
                }
                for net in &info.networks {
                    println!("{}: {} parameters", net.name, net.params);
                }
            });
            bar.set_position(info.step);
            first_step = Some(info.step);
        }
        Event::Progress { what, done, total } => {
            let amount = match (done * 100).checked_div(*total) {
                Some(percent) => format!("{percent}%"),
                None => format!("{done}"),
            };
            bar.set_message(format!("{what}: {amount}"));
        }
        Event::Metrics(row) => {
            bar.set_position(row.step);
            bar.set_message(format_metrics(row));
            last = Some(row.clone());
            if let Some(quality) = crate::quality::describe(|name| row.get(name)) {
                scored = Some((row.step, quality));
            }
        }
        Event::QualityReady(info) => bar.suspend(|| println!("quality metric: fd in the {}", info.describe())),
        Event::Problem(Problem::Warning(message)) => bar.suspend(|| eprintln!("warning: {message}")),
        Event::Problem(problem) => bar.suspend(|| eprintln!("error: {}", problem.message())),
        Event::HealthAction(event) => bar.suspend(|| eprintln!("health: {}", event.describe())),
        _ => {}
    });
    bar.finish_and_clear();
    drop(trainer);
    let (how, code) = match &ending {
        Ending::Finished => ("done", 0),
        Ending::Stopped => ("then stopped (continue with --resume)", EXIT_INTERRUPTED),
        Ending::Halted(_) => ("then paused (continue with --resume)", EXIT_PAUSED),
        Ending::Failed(_) => ("then failed", EXIT_FAILURE),
    };
    let Some(row) = last else {
        eprintln!("no steps were trained (run directory: {})", out_dir.display());
        return if code == 0 { EXIT_FAILURE } else { code };
    };
    let steps = row.step - first_step.unwrap_or(0);
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{steps} steps {how} in {seconds:.1} s: {} -> {}",
        format_metrics(&row),
        out_dir.display()
    );
    if let Some((step, quality)) = scored {
        println!("quality at step {step}: {quality}");
    }
    code
}

fn format_metrics(row: &crate::train::MetricRow) -> String {
    row.values
        .iter()
        .map(|(k, v)| {
            if k == "images_per_s" {
                format!("{v:.0} img/s")
            } else {
                format!("{k} {v:.4}")
            }
        })
        .collect::<Vec<_>>()
        .join("  ")
}

/// The benchmark models, as (name in torch_reference.py, preset with the same architecture and batch).
pub const BENCH_MODELS: [(&str, &str); 5] = [
    ("dcgan", "dcgan-digits"),
    ("vae", "vae-digits"),
    ("mlpgan", "mlp-gan-digits"),
    ("convae", "conv-ae-digits"),
    ("dcgan64", "dcgan64-color-shapes"),
];

/// The benchmark models to measure: `only` (a name in torch_reference.py), or without it all but dcgan64, as
/// torch_reference.py's `all` (a step of the 64x64 colour DCGAN takes seconds).
pub fn bench_models(only: Option<&str>) -> impl Iterator<Item = &'static (&'static str, &'static str)> + '_ {
    BENCH_MODELS
        .iter()
        .filter(move |(model, _)| only.map_or(*model != "dcgan64", |only| only == *model))
}

pub const BENCH_WARMUP: u64 = 5;

fn bench(args: BenchArgs) -> i32 {
    let mut results = Vec::new();
    for (model, preset) in bench_models(args.model.as_deref()) {
        let kernels = if args.kernels == "candle" {
            Kernels::Candle
        } else {
            Kernels::Fast
        };
        match bench_one(preset, args.steps, kernels, args.products) {
            Ok(run) => {
                let steps_per_s = args.steps as f64 / run.seconds;
                let (threads, vectors) = (crate::threads::count(), crate::cpu::vector_instructions());
                let products = args.products.then(|| ProductSummary::of(&run, args.steps, threads));
                if !args.json {
                    println!(
                        "{model:8} batch {:4}  {steps_per_s:8.2} steps/s  {:9.1} images/s  ({threads} threads, \
                         {vectors})",
                        run.batch,
                        steps_per_s * run.batch as f64
                    );
                    if let Some(products) = &products {
                        print!("{}", products.describe());
                    }
                }
                let mut row = serde_json::json!({
                    "model": model, "batch": run.batch, "steps": args.steps, "steps_per_s": steps_per_s,
                    "images_per_s": steps_per_s * run.batch as f64, "threads": threads, "vectors": vectors,
                });
                if let Some(products) = &products {
                    row["products"] = products.json();
                }
                results.push(row);
            }
            Err(message) => {
                eprintln!("error: {model}: {message}");
                return EXIT_FAILURE;
            }
        }
    }
    if args.json {
        println!("{}", serde_json::Value::Array(results));
    }
    0
}

/// One benchmark model's timed steps.
pub struct BenchRun {
    pub batch: usize,
    pub seconds: f64,
    /// The timed steps' matrix products by shape, when asked for.
    pub products: Vec<((usize, usize, usize), ProductTally)>,
}

/// Times `steps` training steps of a preset's model after a warm-up, tallying their products when `products`.
pub fn bench_one(preset: &str, steps: u64, kernels: Kernels, products: bool) -> Result<BenchRun, String> {
    let mut config = presets::preset(preset)?;
    config.data.count = 1024;
    config.data.holdout = 0.0;
    config.train.eval_every = u64::MAX;
    let data = data::load(&config.data, config.train.seed, &|_, _, _| {})?;
    let mut session = Session::with_kernels(config, data, kernels)?;
    for _ in 0..BENCH_WARMUP {
        session.step().map_err(|e| e.to_string())?;
    }
    tally_products(products);
    let started = Instant::now();
    for _ in 0..steps {
        session.step().map_err(|e| e.to_string())?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let products = if products { product_tally() } else { Vec::new() };
    tally_products(false);
    Ok(BenchRun {
        batch: session.config().train.batch_size,
        seconds,
        products,
    })
}

/// Where a benchmark step's time goes in its matrix products, per step.
struct ProductSummary {
    multiply_adds: f64,
    thread_seconds: f64,
    step_seconds: f64,
    threads: usize,
    /// The shapes that took the most time: (rows, columns, depth), calls and thread seconds a step.
    slowest: Vec<((usize, usize, usize), f64, f64)>,
}

impl ProductSummary {
    fn of(run: &BenchRun, steps: u64, threads: usize) -> ProductSummary {
        let steps = steps.max(1) as f64;
        ProductSummary {
            multiply_adds: run.products.iter().map(|(_, t)| t.multiply_adds as f64).sum::<f64>() / steps,
            thread_seconds: run.products.iter().map(|(_, t)| t.thread_seconds).sum::<f64>() / steps,
            step_seconds: run.seconds / steps,
            threads,
            slowest: (run.products.iter().take(8))
                .map(|(shape, t)| (*shape, t.calls as f64 / steps, t.thread_seconds / steps))
                .collect(),
        }
    }

    /// The products' share of all the threads' time in a step: a step made of products alone, split evenly
    /// over the threads, would take this share of the time.
    fn share(&self) -> f64 {
        self.thread_seconds / (self.step_seconds * self.threads as f64)
    }

    fn describe(&self) -> String {
        if self.slowest.is_empty() {
            return "  products: none tallied (those of `--kernels candle` are candle's, not tallied)\n".to_string();
        }
        let mut text = format!(
            "  products: {:.2} G multiply-adds a step in {:.1} ms of the {} threads' time ({:.1} G/s a thread), \
             {:.0} % of it:\n  alone they would take {:.1} ms of the step's {:.1} ms\n  slowest shapes (rows x \
             columns x depth of a part on one thread):\n",
            self.multiply_adds / 1e9,
            self.thread_seconds * 1e3,
            self.threads,
            self.multiply_adds / self.thread_seconds.max(1e-12) / 1e9,
            100.0 * self.share(),
            self.thread_seconds / self.threads as f64 * 1e3,
            self.step_seconds * 1e3,
        );
        for ((rows, columns, depth), calls, seconds) in &self.slowest {
            let speed = (rows * columns * depth) as f64 * calls / seconds.max(1e-12) / 1e9;
            text += &format!(
                "    {rows:5} x {columns:5} x {depth:5}  {calls:7.1} a step  {:7.2} ms  {speed:6.1} G/s\n",
                seconds * 1e3
            );
        }
        text
    }

    fn json(&self) -> serde_json::Value {
        let shapes: Vec<_> = (self.slowest.iter())
            .map(|((rows, columns, depth), calls, seconds)| {
                serde_json::json!({"rows": rows, "columns": columns, "depth": depth, "calls_per_step": calls,
                    "thread_seconds_per_step": seconds})
            })
            .collect();
        serde_json::json!({
            "multiply_adds_per_step": self.multiply_adds, "thread_seconds_per_step": self.thread_seconds,
            "share_of_thread_time": self.share(), "slowest": shapes,
        })
    }
}

fn sweep(args: SweepArgs) -> i32 {
    if let Some(plan_dir) = &args.summarize {
        return summarize_plan(plan_dir);
    }
    let out = args.out.clone().expect("clap requires --out without --summarize");
    let prepared = resolve_config(&args.base, None).and_then(|base| {
        let axes = args
            .grids
            .iter()
            .map(|g| Axis::parse(g))
            .collect::<Result<Vec<_>, _>>()?;
        let points = sweep::expand(&base, &axes)?;
        for point in &points {
            check_before_allocating(&point.config).map_err(|e| format!("{}: {e}", point.name()))?;
        }
        Ok((axes, points))
    });
    let (axes, points) = match prepared {
        Ok(p) => p,
        Err(message) => {
            eprintln!("error: {message}");
            return EXIT_USAGE;
        }
    };
    if let Some(plan_dir) = &args.plan {
        return match sweep::write_plan(&points, &axes, plan_dir, &out) {
            Ok(plan) => {
                println!("planned {} runs into {}:", plan.points.len(), plan.runs.display());
                println!("  Slurm:      sbatch {}", plan_dir.join(sweep::SLURM_FILE).display());
                println!(
                    "  Kubernetes: kubectl apply -f {}",
                    plan_dir.join(sweep::KUBERNETES_FILE).display()
                );
                println!("  afterwards: gantry sweep --summarize {}", plan_dir.display());
                0
            }
            Err(message) => {
                eprintln!("error: {message}");
                EXIT_FAILURE
            }
        };
    }
    println!("sweeping {} runs into {}", points.len(), out.display());
    let report = |o: &sweep::Outcome| match (&o.error, o.rows.last()) {
        (Some(e), _) => println!("{}: failed: {e}", o.point.name()),
        (None, Some(row)) => println!("{}: {} steps, {}", o.point.name(), row.step, format_metrics(row)),
        (None, None) => println!("{}: no steps", o.point.name()),
    };
    let outcomes = sweep::run(points, &out, args.parallel, &closed_on_signal(), &report);
    write_summary(&out, &axes, &outcomes)
}

/// Writes `summary.csv` into `runs`; exits non-zero when a point failed or is missing.
fn write_summary(runs: &Path, axes: &[Axis], outcomes: &[sweep::Outcome]) -> i32 {
    let summary = runs.join("summary.csv");
    if let Err(message) = crate::fsio::write(&summary, &sweep::summary_csv(axes, outcomes)) {
        eprintln!("error: {message}");
        return EXIT_FAILURE;
    }
    println!("summary: {}", summary.display());
    if outcomes.iter().any(|o| o.error.is_some()) {
        EXIT_FAILURE
    } else {
        0
    }
}

fn summarize_plan(plan_dir: &Path) -> i32 {
    match sweep::summarize(plan_dir) {
        Ok((plan, outcomes)) => {
            for o in &outcomes {
                match (&o.error, o.rows.last()) {
                    (Some(e), _) => println!("{}: {e}", o.point.name()),
                    (None, Some(row)) => println!("{}: {} steps", o.point.name(), row.step),
                    (None, None) => println!("{}: no steps", o.point.name()),
                }
            }
            write_summary(&plan.runs, &plan.axes, &outcomes)
        }
        Err(message) => {
            eprintln!("error: {message}");
            EXIT_USAGE
        }
    }
}

fn fork(args: ForkArgs) -> i32 {
    let prepared = RunDir::read_config(&args.parent).and_then(|mut config| {
        let steps = args.steps.map(|n| format!("train.steps={n}"));
        for assignment in args.sets.iter().chain(&steps) {
            config.set(assignment).map_err(|e| e.to_string())?;
        }
        let step = match args.step {
            Some(step) => step,
            None => *crate::runs::checkpoint_steps(&args.parent)
                .last()
                .ok_or_else(|| format!("{}: the run has no checkpoint to fork from", args.parent.display()))?,
        };
        crate::runs::fork(&args.parent, step, &args.out, &config)?;
        Ok(config)
    });
    match prepared {
        Ok(config) => train_with_progress(
            config,
            RunOptions {
                out_dir: Some(args.out),
                resume: true,
                ..RunOptions::default()
            },
        ),
        Err(message) => {
            eprintln!("error: {message}");
            EXIT_USAGE
        }
    }
}

fn export(args: ExportArgs) -> i32 {
    let kind = match args.grids.as_str() {
        "recon" => crate::runs::GridKind::Reconstructions,
        _ => crate::runs::GridKind::Samples,
    };
    let gif = args
        .gif
        .as_ref()
        .map(|out| (crate::runs::export_gif(&args.run, kind, out, args.frame_ms), out));
    let pngs = args
        .pngs
        .as_ref()
        .map(|out| (crate::runs::export_png_sequence(&args.run, kind, out), out));
    let mut code = 0;
    for (result, out) in gif.into_iter().chain(pngs) {
        match result {
            Ok(frames) => println!("{}: {frames} frames", out.display()),
            Err(message) => {
                eprintln!("error: {message}");
                code = EXIT_FAILURE;
            }
        }
    }
    code
}

fn score(args: ScoreArgs) -> i32 {
    let config = match configured(&args.base, None) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("error: {message}");
            return EXIT_USAGE;
        }
    };
    let cache_dir = crate::quality::default_cache_dir();
    match scored(&config, &args.samples, &cache_dir) {
        Ok((values, about)) => {
            if args.json {
                let object: serde_json::Map<String, serde_json::Value> =
                    values.into_iter().map(|(name, value)| (name, value.into())).collect();
                println!("{}", serde_json::Value::Object(object));
            } else {
                let get = |name: &str| values.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
                println!("{}", crate::quality::describe(get).unwrap_or_default());
                println!("{about}");
            }
            0
        }
        Err(message) => {
            eprintln!("error: {message}");
            EXIT_FAILURE
        }
    }
}

/// The quality values of the images `samples` names against `config`'s data set (its reference built and
/// cached in `cache_dir` on first use, as for runs), and the feature network in words.
fn scored(config: &RunConfig, samples: &str, cache_dir: &Path) -> Result<(Vec<(String, f64)>, String), String> {
    let quiet = |_: &str, _: u64, _: u64| {};
    let data = data::load(&config.data, config.train.seed, &quiet)?;
    if !data.shape.is_image() {
        return Err(format!(
            "the quality metric scores images; {} holds points",
            config.data.source
        ));
    }
    let sample_config = crate::config::DataConfig {
        source: samples.to_string(),
        ..config.data.clone()
    };
    let images = data::load(&sample_config, config.train.seed, &quiet).map_err(|e| format!("--samples: {e}"))?;
    if images.shape != data.shape {
        return Err(format!(
            "--samples: the images are {}, the items of {} are {}",
            images.shape.describe(),
            config.data.source,
            data.shape.describe()
        ));
    }
    if images.len() < 2 {
        return Err(format!(
            "--samples: {} image(s); the metric needs at least 2",
            images.len()
        ));
    }
    let reference = crate::quality::evaluator::reference(config, Arc::new(data), cache_dir, &AtomicBool::new(false))?;
    let fail = |e: candle_core::Error| format!("quality metric: {e}");
    let dims = images.shape.batch_dims(images.len());
    let outputs = crate::models::layers::tensor(images.items, &dims).map_err(fail)?;
    let values = reference.score(&outputs).map_err(fail)?;
    Ok((values, reference.net.info.describe()))
}
