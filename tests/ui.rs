//! The workbench, driven as a user would: through its widgets, found by their accessible names.
//!
//! Training runs on its own thread while the harness draws frames, so a test clicks, then draws frames
//! until what it waits for happens (`Harness::run` would never settle while a run repaints).

use eframe::egui;
use egui::accesskit::Role;
use egui_kittest::kittest::{NodeT as _, Queryable as _};
use egui_kittest::{Harness, SnapshotOptions};
use gantry::app::settings::Settings;
use gantry::app::GantryApp;
use gantry::presets::preset;
use gantry::train::worker::RunState;
use std::time::{Duration, Instant};
use tempfile::TempDir;

#[path = "support/workbench.rs"]
mod workbench;

use workbench::{workbench_harness, WINDOW};

/// The workbench on a small dataset, writing runs into a temporary directory (kept alive by the caller).
fn workbench(preset_name: &str, configure: impl FnOnce(&mut Settings)) -> (Harness<'static, GantryApp>, TempDir) {
    let runs = tempfile::tempdir().unwrap();
    let mut settings = Settings {
        config: preset(preset_name).unwrap(),
        preset: preset_name.into(),
        ..Settings::default()
    };
    settings.config.data.count = 600;
    configure(&mut settings);
    let harness = workbench_harness(settings, runs.path());
    (harness, runs)
}

/// Draws frames until `done` holds, failing after a generous timeout.
fn wait_until(harness: &mut Harness<'_, GantryApp>, what: &str, done: impl Fn(&Harness<'_, GantryApp>) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done(harness) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        harness.step();
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn enabled(harness: &Harness<'_, GantryApp>, label: &str) -> bool {
    !harness.get_by_label(label).accesskit_node().is_disabled()
}

fn state(harness: &Harness<'_, GantryApp>) -> Option<RunState> {
    harness.state().run().state()
}

fn steps(harness: &Harness<'_, GantryApp>) -> usize {
    harness.state().run().history().count("loss_d")
}

/// Starts the run and waits until it has trained a few steps.
fn start(harness: &mut Harness<'_, GantryApp>) {
    wait_until(harness, "the data preview (Start enabled)", |h| enabled(h, "Start"));
    harness.get_by_label("Start").click();
    wait_until(harness, "a few steps", |h| steps(h) >= 3);
}

#[test]
fn start_trains_pause_stops_and_step_does_exactly_one() {
    let (mut harness, _runs) = workbench("mlp-gan-digits", |_| {});
    harness.check_accessibility();
    start(&mut harness);
    assert_eq!(state(&harness), Some(RunState::Running));
    let before = steps(&harness);
    wait_until(&mut harness, "more steps", |h| steps(h) > before + 2);
    assert!(
        harness.state().run().history().count("loss_g") > before,
        "the loss plot's series grow"
    );

    harness.get_by_label("Pause").click();
    wait_until(&mut harness, "the pause", |h| state(h) == Some(RunState::Paused));
    let paused_at = harness.state().run().step();
    std::thread::sleep(Duration::from_millis(300));
    harness.run_steps(3);
    assert_eq!(harness.state().run().step(), paused_at, "nothing trains while paused");

    harness.get_by_label("Step").click();
    wait_until(&mut harness, "one step", |h| {
        h.state().run().step() > paused_at && state(h) == Some(RunState::Paused)
    });
    std::thread::sleep(Duration::from_millis(300));
    harness.run_steps(3);
    assert_eq!(harness.state().run().step(), paused_at + 1);

    // The keyboard does the same: Right arrow steps, Space resumes and pauses.
    harness.key_press(egui::Key::ArrowRight);
    wait_until(&mut harness, "a step by key", |h| {
        h.state().run().step() == paused_at + 2 && state(h) == Some(RunState::Paused)
    });
    harness.key_press(egui::Key::Space);
    wait_until(&mut harness, "resume by key", |h| state(h) == Some(RunState::Running));
    harness.key_press(egui::Key::Space);
    wait_until(&mut harness, "pause by key", |h| state(h) == Some(RunState::Paused));
}

#[test]
fn an_idle_or_paused_workbench_stops_repainting() {
    let (mut harness, _runs) = workbench("mlp-gan-digits", |_| {});
    wait_until(&mut harness, "the data preview", |h| enabled(h, "Start"));
    harness.try_run().expect("idle, no frame asks for another");
    start(&mut harness);
    harness.get_by_label("Pause").click();
    wait_until(&mut harness, "the pause", |h| state(h) == Some(RunState::Paused));
    std::thread::sleep(Duration::from_millis(200));
    harness.try_run().expect("paused, no frame asks for another");
}

#[test]
fn a_learning_rate_change_reaches_the_live_run() {
    let (mut harness, _runs) = workbench("mlp-gan-digits", |_| {});
    start(&mut harness);
    harness.get_by_label("D learning rate").set_value_accesskit(1e-3);
    wait_until(&mut harness, "the worker to apply the new rate", |h| {
        h.state()
            .run()
            .applied_config()
            .is_some_and(|c| c.optimizer.lr_d() == 1e-3)
    });
    assert_eq!(harness.state().settings().config.optimizer.lr_d, Some(1e-3));
    assert!(
        harness.query_by_label_contains("needs a new run").is_none(),
        "a learning rate applies live"
    );
}

#[test]
fn a_shape_change_asks_for_a_restart_and_restart_applies_it() {
    let (mut harness, _runs) = workbench("mlp-gan-digits", |_| {});
    start(&mut harness);
    harness.get_by_label("Latent size").set_value_accesskit(16.0);
    wait_until(&mut harness, "the restart notice", |h| {
        h.query_by_label("Restart run").is_some()
    });
    assert!(harness
        .query_by_label_contains("Changing model.latent needs a new run")
        .is_some());
    assert_eq!(
        harness.state().run().applied_config().unwrap().model.latent,
        100,
        "the live run keeps its shapes"
    );
    harness.get_by_label("Restart run").click();
    wait_until(&mut harness, "the new run", |h| {
        h.state().run().applied_config().is_some_and(|c| c.model.latent == 16) && steps(h) >= 2
    });
    assert!(harness.query_by_label("Restart run").is_none());
}

#[test]
fn the_family_and_model_decide_which_controls_show() {
    let (mut harness, _runs) = workbench("mlp-gan-digits", |_| {});
    harness.run_steps(2);
    for label in [
        "G learning rate",
        "D learning rate",
        "D steps per G step",
        "Hidden layer 1",
    ] {
        assert!(harness.query_by_label(label).is_some(), "{label} shows for an MLP GAN");
    }
    assert!(harness.query_by_label("beta (KL weight)").is_none());

    harness.get_by_label("Autoencoder").click();
    harness.run_steps(2);
    harness.get_by_label("VAE").click();
    harness.run_steps(2);
    assert_eq!(
        harness.state().settings().config.model.kind,
        gantry::config::ModelKind::Vae
    );
    for label in [
        "beta (KL weight)",
        "Learning rate",
        "Reconstruction loss",
        "Evaluate every",
    ] {
        assert!(harness.query_by_label(label).is_some(), "{label} shows for a VAE");
    }
    for label in ["D learning rate", "D steps per G step", "Noise level"] {
        assert!(harness.query_by_label(label).is_none(), "{label} is hidden for a VAE");
    }

    harness.get_by_label("conv AE").click();
    harness.run_steps(2);
    assert!(harness.query_by_label("Base width").is_some());
    assert!(
        harness.query_by_label("Hidden layer 1").is_none(),
        "conv models have no hidden widths"
    );
}

#[test]
fn an_impossible_combination_disables_start_and_says_why() {
    let (mut harness, _runs) = workbench("mlp-gan-digits", |_| {});
    wait_until(&mut harness, "Start enabled", |h| enabled(h, "Start"));
    harness.get_by_label("DCGAN").click();
    harness.run_steps(2);
    harness.get_by_role_and_label(Role::ComboBox, "Dataset").click();
    harness.run_steps(2);
    harness.get_by_label("toy:ring").click();
    wait_until(&mut harness, "the check", |h| {
        h.query_by_label_contains("DCGAN needs image data").is_some()
    });
    assert!(!enabled(&harness, "Start"));
    assert!(!enabled(&harness, "Step"));

    // Fixing it (an MLP GAN takes 2D points) enables Start again.
    harness.get_by_label("MLP GAN").click();
    wait_until(&mut harness, "Start enabled", |h| enabled(h, "Start"));
    assert!(harness.query_by_label_contains("DCGAN needs image data").is_none());
}

#[test]
fn data_that_cannot_load_is_named_and_blocks_start() {
    let (mut harness, _runs) = workbench("mlp-gan-digits", |s| s.config.data.source = "toy:nope".into());
    harness.run_steps(2);
    // Named where the dataset is chosen (and again where the launch check lists what blocks Start).
    assert!(
        harness
            .query_all_by_label_contains("Cannot load the data: unknown toy dataset 'nope'")
            .count()
            == 1
    );
    assert!(!enabled(&harness, "Start"));
}

#[test]
fn a_diverging_run_shows_the_cause_and_the_app_stays_usable() {
    let (mut harness, _runs) = workbench("mlp-gan-digits", |s| {
        s.config.set("optimizer.kind=sgd").unwrap();
        // So large that the update overflows f32: the weights become infinite and the losses NaN.
        s.config.set("optimizer.lr=1e300").unwrap();
    });
    wait_until(&mut harness, "Start enabled", |h| enabled(h, "Start"));
    harness.get_by_label("Start").click();
    wait_until(&mut harness, "the error", |h| h.state().run().last_error().is_some());
    let error = harness.state().run().last_error().unwrap().to_string();
    assert!(
        error.contains("became") && error.contains("paused"),
        "the message names the metric: {error}"
    );
    harness.run_steps(2);
    assert!(
        harness.query_by_label(&format!("Error: {error}")).is_some(),
        "a banner shows the cause"
    );
    wait_until(&mut harness, "the pause", |h| state(h) == Some(RunState::Paused));
    harness.get_by_label("Dismiss").click();
    harness.run_steps(2);
    assert!(harness.query_by_label("Dismiss").is_none());
    harness.get_by_label("Reset").click();
    harness.run_steps(2);
    assert_eq!(state(&harness), None);
    assert!(enabled(&harness, "Start"), "a new run can start");
}

/// Snapshots hold what is deterministic for a fixed seed and step count: the status bar (speed, time, run
/// directory) is masked, and the throughput plot is hidden (as it is by default).
fn snapshot_options() -> SnapshotOptions {
    SnapshotOptions::new().threshold(1.0).max_failed_pixels(300)
}

fn finished_snapshot(preset_name: &str, name: &str) {
    let (mut harness, _runs) = workbench(preset_name, |s| s.config.train.steps = 30);
    wait_until(&mut harness, "Start enabled", |h| enabled(h, "Start"));
    harness.get_by_label("Start").click();
    wait_until(&mut harness, "the budget", |h| state(h) == Some(RunState::Finished));
    harness.run_steps(2);
    harness.remove_cursor();
    harness.run_steps(3);
    let status = harness.get_by_label("finished").rect();
    harness.mask(egui::Rect::from_min_max(
        egui::pos2(0.0, status.top() - 4.0),
        WINDOW.to_pos2(),
    ));
    harness.snapshot_options(name, &snapshot_options());
}

#[test]
fn snapshot_of_the_workbench_before_a_run() {
    let (mut harness, _runs) = workbench("mlp-gan-digits", |_| {});
    wait_until(&mut harness, "the data preview", |h| enabled(h, "Start"));
    harness.run_steps(3);
    harness.snapshot_options("workbench_idle", &snapshot_options());
}

#[test]
fn snapshot_of_a_gan_after_thirty_steps() {
    finished_snapshot("mlp-gan-digits", "workbench_gan_30_steps");
}

#[test]
fn snapshot_of_a_vae_after_thirty_steps() {
    finished_snapshot("vae-digits", "workbench_vae_30_steps");
}
