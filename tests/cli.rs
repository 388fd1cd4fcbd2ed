//! `gantry` end to end, as a user runs it.

use gantry::runs::read_metrics;
use std::path::Path;
use std::process::{Command, Output};

fn gantry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(args)
        .output()
        .expect("gantry runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn presets_lists_every_shipped_preset() {
    let out = gantry(&["presets"]);
    assert!(out.status.success());
    let listing = text(&out);
    for name in [
        "dcgan-digits",
        "mlp-gan-digits",
        "mlp-gan-ring",
        "vae-digits",
        "conv-ae-digits",
        "denoising-ae-shapes",
    ] {
        assert!(
            listing.lines().any(|l| l.starts_with(name)),
            "{name} missing from:\n{listing}"
        );
    }
}

#[test]
fn train_writes_a_run_directory_and_resume_continues_it() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("vae");
    let run_s = run.to_str().unwrap();
    let common = [
        "--set",
        "data.count=600",
        "--set",
        "train.sample_every=10",
        "--set",
        "train.checkpoint_every=10",
    ];
    let mut args = vec!["train", "--preset", "vae-digits", "--steps", "20", "--out", run_s];
    args.extend(common);
    let out = gantry(&args);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("20 steps done"), "{}", text(&out));
    for file in [
        "config.toml",
        "metrics.csv",
        "checkpoints/step-000020.safetensors",
        "run.toml",
        "samples/step-000010.png",
        "recon/step-000020.png",
    ] {
        assert!(run.join(file).exists(), "{file} missing");
    }
    let rows = read_metrics(&run).unwrap().rows;
    assert_eq!(
        rows.iter().map(|r| r.step).collect::<Vec<_>>(),
        (1..=20).collect::<Vec<_>>()
    );
    assert!(rows[0].get("kl").is_some());
    image::open(run.join("recon/step-000020.png")).expect("grids are readable PNGs");

    let out = gantry(&["train", "--resume", run_s, "--steps", "30"]);
    assert!(out.status.success(), "{}", text(&out));
    let rows = read_metrics(&run).unwrap().rows;
    assert_eq!(
        rows.iter().map(|r| r.step).collect::<Vec<_>>(),
        (1..=30).collect::<Vec<_>>()
    );
    assert!(
        rows[20].wall_s >= rows[19].wall_s,
        "wall time continues across the resume"
    );

    // The filmstrip (grids of steps 10, 20 and 30) exports as a GIF and as PNG files.
    let gif = dir.path().join("recon.gif");
    let pngs = dir.path().join("frames");
    let (gif_s, pngs_s) = (gif.to_str().unwrap(), pngs.to_str().unwrap());
    let out = gantry(&["export", run_s, "--grids", "recon", "--gif", gif_s, "--pngs", pngs_s]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("3 frames"), "{}", text(&out));
    assert!(pngs.join("frame-0002.png").exists());
    let frames =
        image::codecs::gif::GifDecoder::new(std::io::BufReader::new(std::fs::File::open(&gif).unwrap())).unwrap();
    assert_eq!(image::AnimationDecoder::into_frames(frames).count(), 3);
    let out = gantry(&["export", dir.path().to_str().unwrap(), "--gif", gif_s]);
    assert_eq!(out.status.code(), Some(1), "a folder that is not a run: {}", text(&out));
    assert!(text(&out).contains("no saved samples grids"), "{}", text(&out));
}

fn assert_usage_error(args: &[&str], key: &str) {
    let out = gantry(args);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
    assert!(text(&out).contains(key), "{args:?} should name {key}: {}", text(&out));
}

#[test]
fn bad_configs_exit_2_naming_the_key_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never");
    let out_s = out.to_str().unwrap();
    assert_usage_error(&["train", "--set", "optimizer.lr=0", "--out", out_s], "optimizer.lr");
    assert_usage_error(
        &["train", "--set", "train.batch_size=0", "--out", out_s],
        "train.batch_size",
    );
    assert_usage_error(&["train", "--set", "model.latent=0", "--out", out_s], "model.latent");
    assert_usage_error(&["train", "--set", "model.colour=red", "--out", out_s], "model.colour");
    assert_usage_error(&["train", "--set", "train.steps=many", "--out", out_s], "train.steps");
    assert_usage_error(
        &[
            "train",
            "--preset",
            "dcgan-digits",
            "--data",
            "toy:ring",
            "--out",
            out_s,
        ],
        "model.kind",
    );
    assert_usage_error(&["train", "--data", "toy:blob", "--out", out_s], "data.source");
    assert_usage_error(&["train", "--preset", "nope", "--out", out_s], "unknown preset");
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[optimizer]\nlearning_rate = 1\n").unwrap();
    assert_usage_error(
        &["train", "--config", config.to_str().unwrap(), "--out", out_s],
        "learning_rate",
    );
    assert!(!Path::new(&out).exists(), "nothing is written for a bad config");
}

#[test]
fn bench_prints_json_with_torch_references_fields() {
    let out = gantry(&["bench", "--model", "mlpgan", "--steps", "2", "--json", "--threads", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = &rows[0];
    for field in ["model", "batch", "steps", "steps_per_s", "images_per_s", "threads"] {
        assert!(!row[field].is_null(), "{field} missing in {row}");
    }
    assert_eq!(row["model"], "mlpgan");
    assert_eq!(row["batch"], 64);
    assert_eq!(row["threads"], 1, "--threads sets the training threads");
}

#[test]
fn bench_tallies_every_product_of_a_step() {
    let out = gantry(&[
        "bench",
        "--model",
        "mlpgan",
        "--steps",
        "2",
        "--json",
        "--threads",
        "1",
        "--products",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let products = &rows[0]["products"];
    // The MLP GAN's multiply-adds a step, batch 64: G 100-256-512-784, D 784-512-256-1.
    let (g, d) = (100 * 256 + 256 * 512 + 512 * 784, 784 * 512 + 512 * 256 + 256);
    let d_inner_inputs = 512 * 256 + 256; // D's layers whose input gradient something needs
    let g_inner_inputs = 256 * 512 + 512 * 784;
    // D step: G makes a batch; D judges it and a real batch and takes both batches' weight gradients, and
    // the input gradients of its inner layers. G step: D judges the same batch again, with weights held, back
    // to its input; G takes its weight gradients and its inner layers' input gradients.
    let d_step = g + 2 * d + 2 * d + 2 * d_inner_inputs;
    let g_step = d + d + g + g_inner_inputs;
    assert_eq!(
        products["multiply_adds_per_step"],
        f64::from(64 * (d_step + g_step)),
        "{products}"
    );
    let share = products["share_of_thread_time"].as_f64().unwrap();
    assert!(share > 0.0 && share <= 1.0, "{products}");
    let slowest = products["slowest"].as_array().unwrap();
    assert!(!slowest.is_empty() && slowest.iter().all(|s| s["calls_per_step"].as_f64().unwrap() > 0.0));
}

fn status_of(run: &Path) -> gantry::runs::RunStatus {
    gantry::runs::RunMeta::read(run).unwrap().status
}

/// `gantry train` of the MLP GAN on 300 digits into `run`, with `more` arguments.
fn train_small(run: &Path, more: &[&str]) -> Vec<String> {
    let base = [
        "train",
        "--preset",
        "mlp-gan-digits",
        "--set",
        "data.count=300",
        "--out",
        run.to_str().unwrap(),
    ];
    base.iter().chain(more).map(|a| a.to_string()).collect()
}

#[test]
fn a_crash_in_training_exits_non_zero_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("crash");
    let args = train_small(&run, &["--steps", "20", "--panic-at-step", "5"]);
    let out = gantry(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("crashed after step 4"), "{}", text(&out));
    assert!(!text(&out).contains(" done "), "{}", text(&out));
    assert_eq!(status_of(&run), gantry::runs::RunStatus::Failed);
}

#[test]
#[cfg(target_os = "linux")]
fn sigterm_stops_the_run_with_a_checkpoint_and_status_stopped() {
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("long");
    let args = train_small(&run, &["--steps", "1000000", "--set", "train.checkpoint_every=1000000"]);
    let child = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while read_metrics(&run).map_or(0, |m| m.rows.len()) < 3 {
        assert!(std::time::Instant::now() < deadline, "the run trains");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: sends a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert_eq!(status_of(&run), gantry::runs::RunStatus::Stopped);
    let last = read_metrics(&run).unwrap().rows.last().unwrap().step;
    assert_eq!(
        gantry::runs::checkpoint_steps(&run),
        [last],
        "a last checkpoint at the last step"
    );
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .arg("presets")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
#[cfg(target_os = "linux")]
fn configs_too_big_for_the_machine_are_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never");
    // Twelve layers of 16,384 in G and in D (each within the bounds): ≈ 5.9 billion weights, 22 GiB alone.
    let wide = format!("model.hidden={:?}", [16384; 12]);
    let cases = [
        (wide.as_str(), "lower model.hidden"),
        (
            "train.batch_size=100000000",
            "train.batch_size: 100000000 is above the largest allowed",
        ),
        (
            "data.count=1000000000",
            "data.count: 1000000000 is above the largest allowed",
        ),
    ];
    for (setting, expected) in cases {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(env!("CARGO_BIN_EXE_gantry"));
        command.args([
            "train",
            "--preset",
            "mlp-gan-digits",
            "--set",
            setting,
            "--out",
            out.to_str().unwrap(),
        ]);
        // SAFETY: only setrlimit runs between fork and exec. At most 4 GiB of address space: a config that
        // started allocating what it asks for would abort instead of being refused.
        unsafe {
            command.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: 4 << 30,
                    rlim_max: 4 << 30,
                };
                match libc::setrlimit(libc::RLIMIT_AS, &limit) {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                }
            });
        }
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{setting}: {stderr}");
        assert!(stderr.contains(expected), "{setting}: {stderr}");
        assert!(!out.exists(), "nothing is written for a refused config");
    }
}

#[test]
fn on_divergence_pause_stops_with_its_own_exit_code_and_records_the_event() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("diverging");
    let mut args = train_small(&run, &["--steps", "20"]);
    // So large that the first update overflows f32: the losses become NaN.
    let extra = [
        "--set",
        "optimizer.kind=sgd",
        "--set",
        "optimizer.lr=1e300",
        "--on-divergence",
        "pause",
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = gantry(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(gantry::cli::EXIT_PAUSED), "{}", text(&out));
    assert!(
        text(&out).contains("health: step"),
        "the event goes to stderr: {}",
        text(&out)
    );
    assert_eq!(
        status_of(&run),
        gantry::runs::RunStatus::Stopped,
        "resumable with --resume"
    );
    let events = gantry::runs::read_events(&run);
    assert_eq!(
        events
            .iter()
            .map(|e| (e.rule.as_str(), e.action.key()))
            .collect::<Vec<_>>(),
        [("divergence", "pause")]
    );
    let bad = gantry(&["train", "--preset", "mlp-gan-digits", "--on-divergence", "explode"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(text(&bad).contains("not warn, pause or rollback"), "{}", text(&bad));
}

/// An IDX image file of `images` (values in [-1, 1]) named as MNIST's, in a new folder under `parent`.
fn idx_folder(parent: &Path, name: &str, images: &[f32], size: u32) -> String {
    let dir = parent.join(name);
    std::fs::create_dir(&dir).unwrap();
    let count = images.len() as u32 / (size * size);
    let mut bytes = Vec::new();
    for value in [2051, count, size, size] {
        bytes.extend(u32::to_be_bytes(value));
    }
    bytes.extend(
        images
            .iter()
            .map(|v| ((v + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8),
    );
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), bytes).unwrap();
    format!("idx:{}", dir.display())
}

fn score(samples: &str, cache: &Path) -> (Output, Option<serde_json::Value>) {
    let out = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["score", "--data", "digits", "--samples", samples, "--json"])
        .env("XDG_CACHE_HOME", cache)
        .output()
        .expect("gantry runs");
    let values = serde_json::from_slice(&out.stdout).ok();
    (out, values)
}

#[test]
fn score_rates_files_of_images_with_the_data_sets_quality_metric() {
    let dir = tempfile::tempdir().unwrap();
    let config = gantry::config::DataConfig {
        count: 512,
        ..Default::default()
    };
    // Digits of another draw than the reference's, and uniform noise.
    let digits = gantry::data::load(&config, 99, &|_, _, _| {}).unwrap();
    let real = idx_folder(dir.path(), "real", &digits.items, 28);
    let mut state = 12345u64;
    let noise: Vec<f32> = (0..512 * 784)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    let noise = idx_folder(dir.path(), "noise", &noise, 28);

    let (out, real) = score(&real, dir.path());
    let real = real.unwrap_or_else(|| panic!("{}", text(&out)));
    let (out, noise) = score(&noise, dir.path());
    let noise = noise.unwrap_or_else(|| panic!("{}", text(&out)));
    println!("real {real}, noise {noise}");
    let value = |v: &serde_json::Value, key: &str| v[key].as_f64().unwrap();
    assert!(value(&real, "fd") * 20.0 < value(&noise, "fd"));
    assert!(value(&real, "confident") > 0.8 && value(&real, "classes") == 10.0);
    assert!(value(&noise, "confident") < 0.2);

    let small = idx_folder(dir.path(), "small", &vec![0.0; 4 * 20 * 20], 20);
    let (out, _) = score(&small, dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("--samples: the images are 20x20 grayscale"),
        "{}",
        text(&out)
    );
}
