//! The worker protocol: commands in, events out, the thread owned by the handle.

mod common;

use common::{small, wait_for, wait_for_problem};
use gantry::quality::features::FeatureKind;
use gantry::quality::{CLASSES, CONFIDENT, FD};
use gantry::train::worker::{Command, Event, Problem, RunOptions, RunState, Trainer};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn ready(config: gantry::config::RunConfig) -> Trainer {
    let trainer = Trainer::spawn(config, RunOptions::default(), None);
    wait_for(&trainer, |e| matches!(e, Event::State(RunState::Ready)).then_some(()));
    trainer
}

fn next_state(trainer: &Trainer) -> RunState {
    wait_for(trainer, |e| if let Event::State(s) = e { Some(*s) } else { None })
}

/// The steps reported until the run pauses.
fn steps_until_paused(trainer: &Trainer) -> Vec<u64> {
    let mut steps = Vec::new();
    wait_for(trainer, |e| match e {
        Event::Metrics(row) => {
            steps.push(row.step);
            None
        }
        Event::State(RunState::Paused) => Some(()),
        _ => None,
    });
    steps
}

#[test]
fn step_does_exactly_the_steps_asked_then_pauses() {
    let trainer = ready(small("mlp-gan-digits"));
    trainer.send(Command::Step(1));
    assert_eq!(steps_until_paused(&trainer), vec![1]);
    trainer.send(Command::Step(3));
    assert_eq!(steps_until_paused(&trainer), vec![2, 3, 4]);
    assert!(
        trainer.take_snapshot().is_some(),
        "pausing after steps publishes fresh grids"
    );
}

/// The snapshot published after one step of `config`, trained with or without a window.
fn snapshot_after_a_step(config: gantry::config::RunConfig, headless: bool) -> gantry::train::worker::Snapshot {
    let options = RunOptions {
        headless,
        ..RunOptions::default()
    };
    let trainer = Trainer::spawn(config, options, None);
    wait_for(&trainer, |e| matches!(e, Event::State(RunState::Ready)).then_some(()));
    trainer.send(Command::Step(1));
    steps_until_paused(&trainer);
    trainer.take_snapshot().expect("pausing after a step publishes")
}

#[test]
fn a_headless_run_makes_only_the_pictures_it_saves() {
    let windowed = snapshot_after_a_step(small("vae-digits"), false);
    assert!(windowed.samples.is_some() && windowed.interpolation.is_some());
    let headless = snapshot_after_a_step(small("vae-digits"), true);
    assert!(
        headless.samples.is_some() && headless.reconstructions.is_some(),
        "the grids it saves"
    );
    assert!(headless.interpolation.is_none(), "the strip only a window shows");

    assert!(snapshot_after_a_step(small("mlp-gan-ring"), false).points.is_some());
    assert!(snapshot_after_a_step(small("mlp-gan-ring"), true).points.is_none());
}

#[test]
fn start_pause_resume_and_finish_at_the_budget() {
    let mut config = small("mlp-gan-digits");
    config.train.steps = 40;
    let trainer = ready(config);
    trainer.send(Command::Start);
    assert_eq!(next_state(&trainer), RunState::Running);
    wait_for(&trainer, |e| {
        matches!(e, Event::Metrics(r) if r.step >= 3).then_some(())
    });
    trainer.send(Command::Pause);
    wait_for(&trainer, |e| matches!(e, Event::State(RunState::Paused)).then_some(()));
    // Nothing trains while paused: no metric arrives.
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(!std::iter::from_fn(|| trainer.try_recv()).any(|e| matches!(e, Event::Metrics(_))));
    trainer.send(Command::Resume);
    let mut last = 0;
    let finished = wait_for(&trainer, |e| match e {
        Event::Metrics(r) => {
            last = r.step;
            None
        }
        Event::State(RunState::Finished) => Some(last),
        _ => None,
    });
    assert_eq!(finished, 40);
}

#[test]
fn a_live_hyperparameter_change_reaches_the_session_and_a_shape_change_is_refused() {
    let trainer = ready(small("vae-digits"));
    let mut config = small("vae-digits");
    config.optimizer.lr = 0.0123;
    trainer.send(Command::SetConfig(Box::new(config.clone())));
    let applied = wait_for(&trainer, |e| {
        if let Event::ConfigApplied { config: c, .. } = e {
            Some(c.clone())
        } else {
            None
        }
    });
    assert_eq!(applied.optimizer.lr, 0.0123);
    config.model.latent = 3;
    trainer.send(Command::SetConfig(Box::new(config)));
    let error = wait_for_problem(&trainer, |p| matches!(p, Problem::Refused(_)));
    assert!(error.contains("model.latent"), "{error}");
}

#[test]
fn a_nan_loss_pauses_the_run_and_names_the_metric() {
    let mut config = small("mlp-gan-digits");
    config.set("optimizer.kind=sgd").unwrap();
    // So large that the update overflows f32: the weights become infinite and the losses NaN.
    config.set("optimizer.lr=1e300").unwrap();
    let trainer = ready(config);
    trainer.send(Command::Start);
    let error = wait_for_problem(&trainer, |p| matches!(p, Problem::Halted(_)));
    assert!(error.contains("at step") && error.contains("paused"), "{error}");
    assert_eq!(next_state(&trainer), RunState::Paused);
}

#[test]
fn dropping_the_handle_stops_and_joins_a_running_thread() {
    let wakes = Arc::new(AtomicUsize::new(0));
    let counter = wakes.clone();
    let trainer = Trainer::spawn(
        small("mlp-gan-digits"),
        RunOptions::default(),
        Some(Arc::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        })),
    );
    trainer.send(Command::Start);
    wait_for(&trainer, |e| matches!(e, Event::Metrics(_)).then_some(()));
    let events = trainer.events().clone();
    drop(trainer);
    // The thread ended: its event sender is gone once everything sent is drained.
    let states: Vec<Event> = events.iter().collect();
    assert!(matches!(states.last(), Some(Event::State(RunState::Stopped))));
    assert!(wakes.load(Ordering::SeqCst) > 0, "the waker is called on events");
}

#[test]
fn bad_data_reaches_the_caller_as_a_fatal_event() {
    let mut config = small("mlp-gan-digits");
    config.data.source = "toy:ring".into();
    config.model.kind = gantry::config::ModelKind::Dcgan;
    let trainer = Trainer::spawn(config, RunOptions::default(), None);
    let error = wait_for_problem(&trainer, |p| matches!(p, Problem::Fatal(_)));
    assert!(error.contains("DCGAN"), "{error}");
    assert_eq!(next_state(&trainer), RunState::Failed);
}

#[test]
fn a_queued_run_whose_data_cannot_load_is_recorded_as_failed() {
    use gantry::runs::{RunMeta, RunStatus};
    let runs = tempfile::tempdir().unwrap();
    let dir = runs.path().join("missing-data");
    let mut config = small("mlp-gan-digits");
    config.data.source = format!("idx:{}", runs.path().join("no-such-folder").display());
    gantry::runs::write_queued(&dir, &config, &[]).unwrap();
    let options = RunOptions {
        out_dir: Some(dir.clone()),
        ..RunOptions::default()
    };
    let trainer = Trainer::spawn(config, options, None);
    wait_for_problem(&trainer, |p| matches!(p, Problem::Fatal(_)));
    assert_eq!(next_state(&trainer), RunState::Failed);
    // Not "queued" for ever: the run list would show it waiting for a slot it never takes.
    assert_eq!(RunMeta::read(&dir).unwrap().status, RunStatus::Failed);
}

#[test]
fn a_panic_in_training_fails_the_run_with_its_message() {
    let options = RunOptions {
        panic_at_step: Some(3),
        ..RunOptions::default()
    };
    let trainer = Trainer::spawn(small("mlp-gan-digits"), options, None);
    trainer.send(Command::Start);
    let fatal = wait_for_problem(&trainer, |p| matches!(p, Problem::Fatal(_)));
    assert!(
        fatal.contains("crashed after step 2") && fatal.contains("asked to crash at step 3"),
        "{fatal}"
    );
    assert_eq!(next_state(&trainer), RunState::Failed);
    assert!(
        !trainer.is_gone(),
        "the thread stays to be stopped, so its owner sees the failure"
    );
}

/// Puts something in the way of `path`: a folder where a file is, a file where there is nothing yet.
/// Writes to it then fail, as on a full disk or in a folder made read-only.
fn block(path: &std::path::Path) {
    if path.is_file() {
        std::fs::remove_file(path).unwrap();
        std::fs::create_dir(path).unwrap();
    } else {
        std::fs::write(path, "in the way").unwrap();
    }
}

/// An MLP GAN run with `settings` whose checkpoint folder (and the other files of `blocked`) cannot be
/// written, started and paused by that: the runs' folder, the run's and its handle. The pause is reported
/// once: what else cannot be written then is not reported again.
fn run_halted_by_a_blocked_folder(
    settings: &[&str],
    blocked: &[&str],
) -> (tempfile::TempDir, std::path::PathBuf, Trainer) {
    let runs = tempfile::tempdir().unwrap();
    let dir = runs.path().join("run");
    let mut config = small("mlp-gan-digits");
    for setting in settings {
        config.set(setting).unwrap();
    }
    let options = RunOptions {
        out_dir: Some(dir.clone()),
        ..RunOptions::default()
    };
    let trainer = Trainer::spawn(config, options, None);
    wait_for(&trainer, |e| matches!(e, Event::State(RunState::Ready)).then_some(()));
    for name in [gantry::runs::CHECKPOINT_DIR].iter().chain(blocked) {
        block(&dir.join(name));
    }
    trainer.send(Command::Start);
    expect_halted_once(&trainer);
    (runs, dir, trainer)
}

/// Waits for the run to pause because a file cannot be written, and checks that nothing else is reported
/// from the halt to the pause.
fn expect_halted_once(trainer: &Trainer) {
    let halted = wait_for_problem(trainer, |p| matches!(p, Problem::Halted(_)));
    assert!(halted.contains("checkpoints") && halted.contains("Resume"), "{halted}");
    let mut more = Vec::new();
    let state = wait_for(trainer, |e| match e {
        Event::State(state) => Some(*state),
        Event::Problem(problem) => {
            more.push(problem.clone());
            None
        }
        _ => None,
    });
    assert_eq!(state, RunState::Paused);
    assert!(more.is_empty(), "one message: {more:?}");
}

#[test]
fn a_folder_that_cannot_be_written_pauses_the_run_once_and_resume_continues_it() {
    let (_runs, dir, trainer) = run_halted_by_a_blocked_folder(&["train.steps=6", "train.checkpoint_every=3"], &[]);
    let more: Vec<Event> = std::iter::from_fn(|| trainer.try_recv()).collect();
    assert!(
        more.iter().all(|e| e.problem().is_none()),
        "one message, not one per step: {more:?}"
    );
    std::fs::remove_file(dir.join("checkpoints")).unwrap();
    trainer.send(Command::Resume);
    wait_for(&trainer, |e| {
        matches!(e, Event::State(RunState::Finished)).then_some(())
    });
    drop(trainer);
    assert_eq!(gantry::runs::checkpoint_steps(&dir), [6]);
    let steps: Vec<u64> = gantry::runs::read_metrics(&dir)
        .unwrap()
        .rows
        .iter()
        .map(|r| r.step)
        .collect();
    assert_eq!(steps, [1, 2, 3, 4, 5, 6], "no row is lost or repeated");
}

/// A folder that takes no writes at all: besides the checkpoint, the pause cannot be recorded in `run.toml`
/// either. The halt names the checkpoint and nothing more is reported.
#[test]
fn a_run_halted_by_its_folder_reports_what_else_fails_no_more() {
    let (_runs, _dir, trainer) = run_halted_by_a_blocked_folder(
        &["train.steps=6", "train.checkpoint_every=3"],
        &[gantry::runs::META_FILE],
    );
    drop(trainer);
}

/// The last step's checkpoint cannot be written: the run pauses instead of finishing without it, pauses
/// again on Resume while the folder still takes no writes, and once it does, Resume writes the checkpoint
/// and finishes without training further.
#[test]
fn a_last_checkpoint_that_cannot_be_written_is_written_on_resume() {
    let (_runs, dir, trainer) = run_halted_by_a_blocked_folder(&["train.steps=3"], &[]);
    trainer.send(Command::Resume);
    expect_halted_once(&trainer);
    std::fs::remove_file(dir.join("checkpoints")).unwrap();
    trainer.send(Command::Resume);
    let saved = wait_for(&trainer, |e| match e {
        Event::CheckpointSaved { step, .. } => Some(*step),
        _ => None,
    });
    assert_eq!(saved, 3);
    assert_eq!(next_state(&trainer), RunState::Finished);
    drop(trainer);
    assert_eq!(gantry::runs::checkpoint_steps(&dir), [3]);
    let rows = gantry::runs::read_metrics(&dir).unwrap().rows;
    assert_eq!(rows.last().map(|r| r.step), Some(3), "no step trained past the budget");
}

#[test]
fn a_diverging_dcgan_is_rolled_back_with_its_learning_rate_halved_and_trains_on() {
    let runs = tempfile::tempdir().unwrap();
    let dir = runs.path().join("diverging");
    // 2,500 times the preset's rate: G's gradients die within two steps (saturated outputs).
    let mut config = small("dcgan-digits");
    config.set("optimizer.lr=0.5").unwrap();
    config.set("train.steps=40").unwrap();
    config.set("health.on_divergence=\"rollback\"").unwrap();
    let options = RunOptions {
        out_dir: Some(dir.clone()),
        ..RunOptions::default()
    };
    let trainer = Trainer::spawn(config, options, None);
    let (mut rollbacks, mut last_lr, mut finite_after) = (Vec::new(), 0.5, 0);
    let ending = trainer.run_to_end(&crossbeam_channel::never(), |event| match event {
        Event::HealthAction(action) => {
            eprintln!("{}", action.describe());
            rollbacks.push(action.clone());
            finite_after = 0;
        }
        Event::ConfigApplied { config, .. } => last_lr = config.optimizer.lr,
        Event::Metrics(row) if row.first_non_finite().is_none() => finite_after += 1,
        _ => {}
    });
    assert_eq!(ending, gantry::train::worker::Ending::Finished);
    assert!(!rollbacks.is_empty() && rollbacks.len() <= 5, "{rollbacks:?}");
    assert!(rollbacks
        .iter()
        .all(|a| a.rule == "divergence" && a.action == gantry::config::OnTrouble::Rollback));
    // Each names the metric that moved (the rule watches every loss and gradient norm).
    assert!(
        rollbacks
            .iter()
            .all(|a| ["loss", "grad_norm"].iter().any(|m| a.detail.starts_with(m))
                && (a.detail.contains("x off its recent median;") || a.detail.contains(" not a number;"))),
        "{rollbacks:?}"
    );
    assert_eq!(
        last_lr,
        0.5 * 0.5f64.powi(rollbacks.len() as i32),
        "each rollback halves the rate"
    );
    assert!(
        finite_after >= 20,
        "it trains on with finite losses ({finite_after} steps)"
    );
    let recorded = gantry::runs::read_events(&dir);
    assert_eq!(recorded, rollbacks, "the events are in the run directory");
    // Each remedy is on the record at the step the run went back to, and config.toml has the last rate.
    let changes = gantry::runs::read_changes(&dir);
    let lr_changes: Vec<u64> = changes
        .iter()
        .filter(|c| c.key == "optimizer.lr")
        .map(|c| c.step)
        .collect();
    let rolled_to: Vec<u64> = rollbacks.iter().filter_map(|a| a.to_step).collect();
    assert_eq!(lr_changes, rolled_to, "{changes:?}");
    assert_eq!(gantry::runs::RunDir::read_config(&dir).unwrap().optimizer.lr, last_lr);
    let metrics = gantry::runs::read_metrics(&dir).unwrap();
    let steps: Vec<u64> = metrics.rows.iter().map(|r| r.step).collect();
    assert_eq!(steps, (1..=40).collect::<Vec<_>>(), "metrics.csv has each step once");
}

/// A started MLP GAN run scored every 40 steps into `out/run` (its feature network cached in `cache`), with
/// `adjust` applied to its config; the run's handle and folder.
fn scored_run(
    cache: &tempfile::TempDir,
    out: &tempfile::TempDir,
    adjust: impl FnOnce(&mut gantry::config::RunConfig),
) -> (Trainer, std::path::PathBuf) {
    let dir = out.path().join("run");
    let mut config = small("mlp-gan-digits");
    config.train.steps = 100_000;
    config.quality.every = 40;
    adjust(&mut config);
    let options = RunOptions {
        out_dir: Some(dir.clone()),
        cache_dir: Some(cache.path().to_path_buf()),
        ..RunOptions::default()
    };
    let trainer = Trainer::spawn(config, options, None);
    wait_for(&trainer, |e| matches!(e, Event::State(RunState::Ready)).then_some(()));
    trainer.send(Command::Start);
    (trainer, dir)
}

#[test]
fn quality_scores_land_in_the_rows_of_their_steps_on_disk_and_no_row_is_lost() {
    let (cache, out) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (trainer, dir) = scored_run(&cache, &out, |_| {});
    let info = wait_for(&trainer, |e| match e {
        Event::QualityReady(info) => Some(info.clone()),
        _ => None,
    });
    assert!(matches!(info.kind, FeatureKind::Classifier { classes: 10 }), "{info:?}");
    let mut scored = Vec::new();
    wait_for(&trainer, |e| {
        if let Event::Metrics(row) = e {
            if let Some(fd) = row.get(FD) {
                scored.push((row.step, fd, row.get(CONFIDENT).unwrap(), row.get(CLASSES).unwrap()));
            }
        }
        (scored.len() == 2).then_some(())
    });
    trainer.send(Command::Pause);
    wait_for(&trainer, |e| matches!(e, Event::State(RunState::Paused)).then_some(()));
    for (step, fd, confident, classes) in &scored {
        assert_eq!(step % 40, 0, "scored at a multiple of quality.every");
        assert!(*fd > 0.0 && fd.is_finite());
        assert!((0.0..=1.0).contains(confident) && (0.0..=10.0).contains(classes) && classes.fract() == 0.0);
    }
    // On disk: every row up to the pause (the held ones were written before it), the scores in their rows.
    let rows = gantry::runs::read_metrics(&dir).unwrap().rows;
    let steps: Vec<u64> = rows.iter().map(|r| r.step).collect();
    assert_eq!(steps, (1..=steps.len() as u64).collect::<Vec<_>>());
    for (step, fd, _, _) in &scored {
        assert_eq!(rows[*step as usize - 1].get(FD), Some(*fd));
    }
}

#[test]
fn a_checkpoint_due_with_a_score_trains_on_and_reaches_disk_after_the_rows_up_to_it() {
    let (cache, out) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (trainer, dir) = scored_run(&cache, &out, |config| {
        config.train.checkpoint_every = 40;
        // A score many steps long (the most samples a score takes: with 4,096 a run of the whole suite once
        // starved the training thread for as long as the score took), and a snapshot every step to show
        // that training went on meanwhile.
        config.quality.samples = gantry::config::MAX_QUALITY_SAMPLES;
        config.train.sample_every = 1;
    });
    let mut newest_snapshot = 0;
    let scored = wait_for(&trainer, |e| match e {
        Event::Snapshot { step } => {
            newest_snapshot = *step;
            None
        }
        Event::Metrics(row) if row.get(FD).is_some() => Some(row.step),
        _ => None,
    });
    assert!(
        newest_snapshot > scored,
        "steps after {scored} were trained while its score was computed (newest snapshot {newest_snapshot})"
    );
    wait_for(&trainer, |e| match e {
        Event::CheckpointSaved { step, .. } if *step == scored => Some(()),
        _ => None,
    });
    let rows = gantry::runs::read_metrics(&dir).unwrap().rows;
    assert!(
        rows.len() as u64 >= scored,
        "{} rows on disk before the checkpoint of step {scored}",
        rows.len()
    );
    assert!(
        rows[scored as usize - 1].get(FD).is_some(),
        "the score is in its row on disk"
    );
    trainer.send(Command::Pause);
    wait_for(&trainer, |e| matches!(e, Event::State(RunState::Paused)).then_some(()));
}

#[test]
fn a_speed_cap_holds_training_to_that_many_steps_a_second() {
    let mut config = gantry::presets::preset("ganlab-circle").unwrap();
    config.data.count = 600;
    config.train.max_steps_per_s = 20.0;
    let trainer = Trainer::spawn(config, RunOptions::default(), None);
    trainer.send(Command::Start);
    wait_for(&trainer, |e| matches!(e, Event::State(RunState::Running)).then_some(()));
    let started = std::time::Instant::now();
    let mut steps = 0;
    while started.elapsed() < std::time::Duration::from_millis(600) {
        if let Ok(Event::Metrics(_)) = trainer.events().recv_timeout(std::time::Duration::from_millis(50)) {
            steps += 1;
        }
    }
    // Uncapped, this model takes thousands of steps a second.
    let allowed = 20.0 * started.elapsed().as_secs_f64() + 2.0;
    assert!(
        steps > 0 && f64::from(steps) <= allowed,
        "{steps} steps, at most {allowed}"
    );
}

#[test]
fn the_latent_map_is_made_only_while_a_view_asks_for_it() {
    let trainer = ready(small("vae-digits"));
    let snapshot_after = |command: Command| {
        trainer.send(command);
        wait_for(&trainer, |e| matches!(e, Event::Snapshot { .. }).then_some(()));
        trainer.take_snapshot().expect("a snapshot was published")
    };
    let unasked = snapshot_after(Command::Step(1));
    assert!(unasked.reconstructions.is_some() && unasked.latent.is_none());
    assert!(snapshot_after(Command::LatentViews(true)).latent.is_some());
    assert!(
        snapshot_after(Command::Step(1)).latent.is_some(),
        "later snapshots keep it"
    );
    trainer.send(Command::LatentViews(false));
    assert!(snapshot_after(Command::Step(1)).latent.is_none());
}

/// A run opened to be looked at (not trained) whose newest checkpoint cannot be read is not opened from the
/// one before it, which would drop the metric rows after that one.
#[test]
fn a_run_opened_only_from_its_newest_checkpoint_keeps_its_rows_when_that_one_is_unreadable() {
    let runs = tempfile::tempdir().unwrap();
    let dir = runs.path().join("looked-at");
    let mut config = small("mlp-gan-digits");
    for setting in ["train.steps=4", "train.checkpoint_every=2"] {
        config.set(setting).unwrap();
    }
    let options = |resume, newest_checkpoint_only| RunOptions {
        out_dir: Some(dir.clone()),
        resume,
        newest_checkpoint_only,
        ..RunOptions::default()
    };
    let trainer = Trainer::spawn(config.clone(), options(false, false), None);
    trainer.send(Command::Start);
    wait_for(&trainer, |e| {
        matches!(e, Event::State(RunState::Finished)).then_some(())
    });
    drop(trainer);
    assert_eq!(gantry::runs::checkpoint_steps(&dir), [2, 4]);
    std::fs::write(gantry::runs::checkpoint_path(&dir, 4), b"torn").unwrap();
    let metrics = std::fs::read(dir.join("metrics.csv")).unwrap();
    let trainer = Trainer::spawn(config.clone(), options(true, true), None);
    let error = wait_for_problem(&trainer, |p| matches!(p, Problem::Fatal(_)));
    assert!(error.contains("step-000004") && error.contains("(step 2)"), "{error}");
    drop(trainer);
    assert_eq!(
        std::fs::read(dir.join("metrics.csv")).unwrap(),
        metrics,
        "no row dropped"
    );
    // Continuing (to train on) falls back to the checkpoint before it, as it always has.
    let trainer = Trainer::spawn(config, options(true, false), None);
    wait_for(&trainer, |e| matches!(e, Event::State(RunState::Ready)).then_some(()));
}
