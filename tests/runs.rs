//! Runs on disk: forks continue their parent exactly, sweeps write a run per point, runs read back.

mod common;

use common::{deterministic_values, small, wait_for};
use gantry::config::RunConfig;
use gantry::runs::{self, RunDir, RunMeta, RunStatus};
use gantry::train::worker::{Command, Event, RunOptions, RunState, Trainer};
use std::path::Path;
use std::process::Command as Process;

/// Trains the run in `dir` (new, or resumed from its newest checkpoint) to its step budget.
fn train_to_budget(config: RunConfig, dir: &Path, resume: bool) {
    let trainer = Trainer::spawn(
        config,
        RunOptions {
            out_dir: Some(dir.to_path_buf()),
            resume,
            ..RunOptions::default()
        },
        None,
    );
    wait_for(&trainer, |e| matches!(e, Event::State(RunState::Ready)).then_some(()));
    trainer.send(Command::Start);
    wait_for(&trainer, |e| {
        matches!(e, Event::State(RunState::Finished)).then_some(())
    });
}

fn values_after(dir: &Path, step: u64) -> Vec<Vec<(String, f64)>> {
    runs::read_metrics(dir)
        .unwrap()
        .rows
        .iter()
        .filter(|r| r.step > step)
        .map(deterministic_values)
        .collect()
}

#[test]
fn a_fork_continues_its_parent_exactly_unless_a_setting_changed() {
    let root = tempfile::tempdir().unwrap();
    let parent = root.path().join("parent");
    let mut config = small("mlp-gan-digits");
    config.train.steps = 12;
    config.train.checkpoint_every = 6;
    config.train.sample_every = 4;
    train_to_budget(config.clone(), &parent, false);
    assert_eq!(runs::checkpoint_steps(&parent), vec![6, 12]);

    let same = root.path().join("same");
    runs::fork(&parent, 6, &same, &config).unwrap();
    train_to_budget(config.clone(), &same, true);
    assert_eq!(
        values_after(&same, 6),
        values_after(&parent, 6),
        "same settings: bit-identical continuation"
    );
    let rows = runs::read_metrics(&same).unwrap().rows;
    assert_eq!(
        rows.iter().map(|r| r.step).collect::<Vec<_>>(),
        (1..=12).collect::<Vec<_>>()
    );

    let faster = root.path().join("faster");
    let mut changed = config.clone();
    changed.optimizer.lr = 1e-3;
    runs::fork(&parent, 6, &faster, &changed).unwrap();
    train_to_budget(changed, &faster, true);
    assert_ne!(values_after(&faster, 6), values_after(&parent, 6));

    let meta = RunMeta::read(&faster).unwrap();
    assert_eq!(
        (meta.parent.as_deref(), meta.fork_step),
        (Some(parent.as_path()), Some(6))
    );
    assert_eq!((meta.status, meta.steps_done), (RunStatus::Finished, 12));
    assert_eq!(
        RunMeta::read(&parent).unwrap().status,
        RunStatus::Finished,
        "the parent is left as it was"
    );

    let gif = root.path().join("film.gif");
    let frames = runs::export_gif(&parent, runs::GridKind::Samples, &gif, 200).unwrap();
    assert_eq!(frames, runs::grid_steps(&parent, runs::GridKind::Samples).len());
    let decoder = image::codecs::gif::GifDecoder::new(std::io::BufReader::new(std::fs::File::open(&gif).unwrap()));
    assert_eq!(image::AnimationDecoder::into_frames(decoder.unwrap()).count(), frames);
    let pngs = root.path().join("frames");
    assert_eq!(
        runs::export_png_sequence(&parent, runs::GridKind::Samples, &pngs).unwrap(),
        frames
    );
    assert!(pngs.join("frame-0000.png").exists());

    let mut reshaped = config;
    reshaped.model.latent = 7;
    let err = runs::fork(&parent, 6, &root.path().join("never"), &reshaped).unwrap_err();
    assert!(err.contains("model.latent"), "{err}");
}

#[test]
fn runs_list_with_their_differences_and_read_back() {
    let root = tempfile::tempdir().unwrap();
    for (name, lr) in [("a", 2e-4), ("b", 1e-3)] {
        let mut config = small("vae-digits");
        config.train.steps = 3;
        config.optimizer.lr = lr;
        train_to_budget(config, &root.path().join(name), false);
    }
    std::fs::create_dir(root.path().join("not-a-run")).unwrap();
    let (listed, problems) = runs::list_runs(root.path());
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(listed.len(), 2);
    assert!(listed
        .iter()
        .all(|r| r.meta.status == RunStatus::Finished && r.last.as_ref().unwrap().step == 3));
    let configs: Vec<&RunConfig> = listed.iter().map(|r| &r.config).collect();
    let diffs = runs::config_differences(&configs);
    assert!(
        diffs.iter().all(|d| d.len() == 1 && d[0].0 == "optimizer.lr"),
        "{diffs:?}"
    );
}

#[test]
fn the_sweep_cli_writes_a_run_per_point_and_a_summary_row_each() {
    let out = tempfile::tempdir().unwrap();
    let result = Process::new(env!("CARGO_BIN_EXE_gantry"))
        .args([
            "sweep",
            "--preset",
            "vae-digits",
            "--set",
            "data.count=400",
            "--steps",
            "4",
        ])
        .args([
            "--grid",
            "optimizer.lr=1e-4..1e-2:3",
            "--grid",
            "train.batch_size=16,32",
        ])
        .args(["--parallel", "2", "--out", out.path().to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&result.stdout).to_string() + &String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{text}");
    let summary = std::fs::read_to_string(out.path().join("summary.csv")).unwrap();
    let lines: Vec<&str> = summary.lines().collect();
    assert_eq!(lines.len(), 1 + 6, "{summary}");
    assert!(
        lines[0].starts_with("run,optimizer.lr,train.batch_size,steps,final_loss"),
        "{}",
        lines[0]
    );
    assert!(lines[1..].iter().all(|l| l.split(',').nth(3) == Some("4")), "{summary}");
    assert_eq!(runs::list_runs(out.path()).0.len(), 6);

    let bad = Process::new(env!("CARGO_BIN_EXE_gantry"))
        .args([
            "sweep",
            "--grid",
            "optimizer.lr=0,1",
            "--out",
            out.path().join("bad").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("optimizer.lr"));
}

#[test]
fn the_fork_cli_continues_a_run_with_changed_settings() {
    let root = tempfile::tempdir().unwrap();
    let (parent, child) = (root.path().join("parent"), root.path().join("child"));
    let gantry = |args: &[&str]| Process::new(env!("CARGO_BIN_EXE_gantry")).args(args).output().unwrap();
    let out = gantry(&[
        "train",
        "--preset",
        "vae-digits",
        "--set",
        "data.count=400",
        "--steps",
        "8",
        "--set",
        "train.checkpoint_every=4",
        "--out",
        parent.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = gantry(&[
        "fork",
        parent.to_str().unwrap(),
        "--step",
        "4",
        "--steps",
        "10",
        "--set",
        "optimizer.lr=3e-3",
        "--out",
        child.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = runs::read_metrics(&child).unwrap().rows;
    assert_eq!(
        rows.iter().map(|r| r.step).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    assert_eq!(RunDir::read_config(&child).unwrap().optimizer.lr, 3e-3);
    assert_eq!(RunMeta::read(&child).unwrap().fork_step, Some(4));
    let refused = gantry(&[
        "fork",
        parent.to_str().unwrap(),
        "--set",
        "model.latent=3",
        "--out",
        root.path().join("never").to_str().unwrap(),
    ]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("model.latent"));
}

#[test]
fn a_planned_sweep_writes_the_configs_sweep_would_train_and_cluster_files_whose_tasks_train_them() {
    let root = tempfile::tempdir().unwrap();
    let (plan, runs_dir) = (root.path().join("plan"), root.path().join("runs"));
    let gantry = env!("CARGO_BIN_EXE_gantry");
    let base = ["--preset", "vae-digits", "--set", "data.count=300", "--steps", "3"];
    let grids = ["--grid", "optimizer.lr=1e-4,1e-3", "--grid", "train.batch_size=16"];
    let out = Process::new(gantry)
        .arg("sweep")
        .args(base)
        .args(grids)
        .args(["--out", runs_dir.to_str().unwrap(), "--plan", plan.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!runs_dir.exists(), "planning trains nothing");

    // The planned configs are exactly the points `gantry sweep` trains.
    let mut config = gantry::presets::preset("vae-digits").unwrap();
    config.set("data.count=300").unwrap();
    config.train.steps = 3;
    let axes = [
        gantry::sweep::Axis::parse("optimizer.lr=1e-4,1e-3").unwrap(),
        gantry::sweep::Axis::parse("train.batch_size=16").unwrap(),
    ];
    let points = gantry::sweep::expand(&config, &axes).unwrap();
    for point in &points {
        let text = std::fs::read_to_string(gantry::sweep::planned_config(&plan, &point.name())).unwrap();
        assert_eq!(RunConfig::from_toml(&text).unwrap(), point.config, "{}", point.name());
    }

    let sbatch = plan.join(gantry::sweep::SLURM_FILE);
    let syntax = Process::new("bash").arg("-n").arg(&sbatch).output().unwrap();
    assert!(syntax.status.success(), "{}", String::from_utf8_lossy(&syntax.stderr));
    let script = std::fs::read_to_string(&sbatch).unwrap();
    assert!(script.contains("#SBATCH --array=0-1"), "{script}");
    let manifest: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(plan.join(gantry::sweep::KUBERNETES_FILE)).unwrap()).unwrap();
    assert_eq!(manifest["kind"], "Job");
    assert_eq!(manifest["spec"]["completionMode"], "Indexed");
    assert_eq!(manifest["spec"]["completions"], 2);

    // Slurm runs task 1 (as a node would, with the binary named by GANTRY); task 0 never ran.
    let task = Process::new("bash")
        .arg(&sbatch)
        .env("SLURM_ARRAY_TASK_ID", "1")
        .env("GANTRY", gantry)
        .output()
        .unwrap();
    assert!(task.status.success(), "{}", String::from_utf8_lossy(&task.stderr));
    let trained = runs_dir.join(points[1].name());
    assert_eq!(runs::read_metrics(&trained).unwrap().rows.len(), 3);

    let out = Process::new(gantry)
        .args(["sweep", "--summarize", plan.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a point is missing: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let summary = std::fs::read_to_string(runs_dir.join("summary.csv")).unwrap();
    let lines: Vec<&str> = summary.lines().collect();
    assert!(
        lines[0].starts_with("run,optimizer.lr,train.batch_size,steps,"),
        "{summary}"
    );
    assert!(
        lines[1].starts_with(&format!("{},1e-4,16,0,", points[0].name())),
        "{summary}"
    );
    assert!(lines[1].ends_with("not trained yet"), "{summary}");
    assert!(
        lines[2].starts_with(&format!("{},1e-3,16,3,", points[1].name())),
        "{summary}"
    );
}
