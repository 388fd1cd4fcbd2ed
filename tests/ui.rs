//! The workbench, driven as a user would: through its widgets, found by their accessible names.
//!
//! Training runs on its own thread while the harness draws frames, so a test clicks, then draws frames
//! until what it waits for happens (`Harness::run` would never settle while a run repaints).

use eframe::egui;
use egui::accesskit::Role;
use egui_kittest::kittest::{NodeT as _, Queryable as _};
use egui_kittest::{Harness, SnapshotOptions};
use gantry::app::settings::Settings;
use gantry::app::{AppOptions, GantryApp};
use gantry::numbers::significant;
use gantry::presets::preset;
use gantry::runs::GridKind;
use gantry::train::health::{Light, Rule};
use gantry::train::worker::{Problem, RunState};
use std::time::{Duration, Instant};
use tempfile::TempDir;

#[path = "support/workbench.rs"]
mod workbench;

use workbench::{open_latent_tab, run_name, type_sweep, workbench_harness, WINDOW};

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

/// Presses the toolbar's Stop (the run list has one too) and waits for the run to stop.
fn stop(harness: &mut Harness<'_, GantryApp>) {
    harness
        .query_all_by_role_and_label(Role::Button, "Stop")
        .next()
        .unwrap()
        .click();
    wait_until(harness, "the stop", |h| state(h) == Some(RunState::Stopped));
}

/// `workbench` with a run of its settings started and trained to its step budget.
fn trained_workbench(
    preset_name: &str,
    configure: impl FnOnce(&mut Settings),
) -> (Harness<'static, GantryApp>, TempDir) {
    let (mut harness, runs) = workbench(preset_name, configure);
    train_to_budget(&mut harness);
    (harness, runs)
}

fn train_to_budget(harness: &mut Harness<'_, GantryApp>) {
    wait_until(harness, "Start enabled", |h| enabled(h, "Start"));
    harness.get_by_label("Start").click();
    wait_until(harness, "the budget", |h| state(h) == Some(RunState::Finished));
}

#[test]
fn a_plot_of_more_lines_than_colours_has_no_legend_and_smaller_ones_keep_theirs() {
    let (mut harness, _runs) = trained_workbench("vae-digits", |s| {
        s.config.train.steps = 50;
        s.config.quality.every = 0;
    });
    harness.run_steps(3);
    // The health signals of step 50: 20 KL dimensions and the count of active ones.
    assert!(
        harness.query_by_label("active_units").is_some(),
        "a one-line plot's legend"
    );
    assert!(harness.query_by_label("kl_dim.0").is_none(), "no legend of 20 lines");
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
fn the_cpu_threads_setting_reaches_the_kernels() {
    let (mut harness, _runs) = workbench("mlp-gan-digits", |_| {});
    harness.run_steps(2);
    assert_eq!(harness.state().settings().browser.threads, gantry::threads::pool_size());
    harness
        .get_by_role_and_label(Role::SpinButton, "CPU threads")
        .set_value_accesskit(1.0);
    harness.run_steps(1);
    assert_eq!(harness.state().settings().browser.threads, 1);
    // Other tests' workbenches in this process apply their own setting on each of their frames, so look
    // right after one of this one's.
    wait_until(&mut harness, "the kernels to use one thread", |_| {
        gantry::threads::count() == 1
    });
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
fn a_live_change_is_recorded_in_the_run_marked_on_the_curves_and_continue_resumes_with_it() {
    let (mut harness, runs) = workbench("mlp-gan-digits", |_| {});
    start(&mut harness);
    harness.get_by_label("D learning rate").set_value_accesskit(1e-3);
    wait_until(&mut harness, "the worker to apply the new rate", |h| {
        !h.state().run().history().changes().is_empty()
    });
    let change = harness.state().run().history().changes()[0].clone();
    assert_eq!((change.key.as_str(), change.new.as_str()), ("optimizer.lr_d", "0.001"));
    let dir = harness.state().run().dir().unwrap().to_path_buf();
    assert_eq!(gantry::runs::read_changes(&dir), [change]);
    stop(&mut harness);
    drop(harness);

    // A new workbench lists the run with the changed rate and continues it with that rate.
    let mut reopened = browser_harness(runs.path());
    reopened.get_by_label("Continue").click();
    wait_until(&mut reopened, "the continued run", |h| {
        h.state().run().applied_config().is_some()
    });
    assert_eq!(
        reopened.state().run().applied_config().unwrap().optimizer.lr_d,
        Some(1e-3)
    );
}

#[test]
fn a_finished_run_offers_no_resume_step_or_stop_until_its_budget_is_raised() {
    let (mut harness, _runs) = trained_workbench("mlp-gan-digits", |s| {
        s.config.train.steps = 6;
        s.config.train.sample_every = 4;
    });
    harness.run_steps(2);
    let toolbar_stop = |h: &Harness<'_, GantryApp>| {
        let stop = h.query_all_by_role_and_label(Role::Button, "Stop").next().unwrap();
        !stop.accesskit_node().is_disabled()
    };
    assert!(!enabled(&harness, "Resume") && !enabled(&harness, "Step") && !toolbar_stop(&harness));
    assert!(
        harness.query_by_label_contains("Custom settings").is_some(),
        "no preset is named now"
    );

    harness.get_by_label("D learning rate").set_value_accesskit(1e-3);
    harness.run_steps(3);
    assert!(harness.query_by_label_contains("The run has finished").is_some());
    assert!(harness.query_by_label_contains("The run is paused").is_none());

    // A raised budget lets it train on; after a Step the filmstrip names the step the grids show.
    harness.get_by_label("Step budget").set_value_accesskit(8.0);
    harness.run_steps(2);
    assert!(enabled(&harness, "Resume") && enabled(&harness, "Step"));
    harness.get_by_label("Step").click();
    wait_until(&mut harness, "the step", |h| {
        h.state().run().snapshot().is_some_and(|s| s.step == 7)
    });
    harness.run_steps(3);
    assert!(harness.query_by_label_contains("Samples, step 7").is_some());
    // Step 7 has no saved grid: the slider sits one past the saved ones, on the live grids.
    let dir = harness.state().run().dir().unwrap().to_path_buf();
    let saved = gantry::runs::grid_steps(&dir, GridKind::Samples);
    assert!(!saved.contains(&7), "{saved:?}");
    let slider = harness.get_by_role_and_label(Role::Slider, "Filmstrip step");
    assert_eq!(slider.accesskit_node().numeric_value(), Some(saved.len() as f64));
}

#[test]
fn where_no_file_dialog_opens_a_path_field_saves_the_metrics() {
    let (mut harness, runs) = workbench("mlp-gan-digits", |_| {});
    start(&mut harness);
    harness.get_by_label("Pause").click();
    wait_until(&mut harness, "the pause", |h| state(h) == Some(RunState::Paused));
    let csv = export_csv(&mut harness, &runs.path().join("exported.csv"));
    assert!(csv.starts_with("step,"), "{csv}");
    assert!(harness.query_by_label_contains("Saved").is_some());
}

/// Presses Export CSV..., types `out` into the path field (where no file dialog opens) and returns what was
/// written there.
fn export_csv(harness: &mut Harness<'_, GantryApp>, out: &std::path::Path) -> String {
    export_to(harness, "Export CSV...", out);
    std::fs::read_to_string(out).expect("the metrics are written where the field said")
}

/// Presses `button` and types `out` into the path field that opens where no file dialog does.
fn export_to(harness: &mut Harness<'_, GantryApp>, button: &str, out: &std::path::Path) {
    harness.get_by_label(button).click();
    harness.run_steps(4);
    assert!(harness.query_by_label_contains("Type the path").is_some());
    // The field has the keyboard as the prompt opens.
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness.get_by_label("File").type_text(&out.display().to_string());
    harness.run_steps(1);
    harness.get_by_label("OK").click();
    harness.run_steps(2);
}

#[test]
fn escape_closes_a_path_prompt_without_saving() {
    let (mut harness, _runs) = viewed_trained_run("a");
    harness.get_by_label("Export CSV...").click();
    harness.run_steps(4);
    assert!(harness.query_by_label_contains("Type the path").is_some());
    harness.key_press(egui::Key::Escape);
    harness.run_steps(2);
    assert!(harness.query_by_label_contains("Type the path").is_none());
    assert!(harness.query_by_label_contains("Saved").is_none(), "nothing saved");
}

/// Pixels of the dark theme's error red in the rendered window.
fn red_pixels(harness: &mut Harness<'_, GantryApp>) -> usize {
    let image = harness.render().unwrap();
    image
        .pixels()
        .filter(|p| p[0] > 150 && i32::from(p[0]) - i32::from(p[1].max(p[2])) > 60)
        .count()
}

#[test]
fn an_export_says_on_its_own_tab_what_it_saved_or_in_red_why_not() {
    let (mut harness, runs) = contact_sheet_of_run_a();
    let before = red_pixels(&mut harness);
    export_to(
        &mut harness,
        "Export PNG...",
        &runs.path().join("missing").join("sheet.png"),
    );
    assert!(
        harness.query_by_label_contains("sheet.png").is_some(),
        "the failure names the file"
    );
    let failed = red_pixels(&mut harness);
    assert!(
        failed > before + 200,
        "a failure is framed in red: {before} then {failed} red pixels"
    );
    harness.get_by_label("Dismiss").click();
    harness.run_steps(2);
    assert!(harness.query_by_label_contains("sheet.png").is_none(), "dismissed");
    let out = runs.path().join("sheet.png");
    export_to(&mut harness, "Export PNG...", &out);
    assert!(out.exists());
    let saved = format!("Saved {}", out.display());
    assert!(
        harness.query_by_label(&saved).is_some(),
        "shown on the contact sheet's tab"
    );
    assert!(
        red_pixels(&mut harness) < before + 50,
        "what was done is not shown as a failure"
    );
}

#[test]
fn a_run_viewed_from_its_folder_exports_its_metrics() {
    let runs = tempfile::tempdir().unwrap();
    scored_run(runs.path(), "a", 41.2, &[]);
    let mut harness = browser_harness(runs.path());
    view_run(&mut harness, "a");
    wait_until(&mut harness, "its curves read", |h| enabled(h, "Export CSV..."));
    let csv = export_csv(&mut harness, &runs.path().join("a.csv"));
    assert!(csv.starts_with("step,") && csv.contains("41.2"), "{csv}");
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
        .query_by_label_contains("Changing Latent size (model.latent) needs a new run: the live run keeps its settings")
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
fn the_estimate_shows_beside_the_parameter_counts_and_an_oversized_model_cannot_start() {
    let (mut harness, _runs) = workbench("mlp-gan-digits", |_| {});
    wait_until(&mut harness, "Start enabled", |h| enabled(h, "Start"));
    assert!(
        harness.query_by_label_contains("/step, 1 epoch ≈").is_some(),
        "memory, step and epoch time beside the parameter counts"
    );
    // Twelve layers of 16,384 in G and D: far more than this machine's memory, though each width is allowed.
    harness.state_mut().settings_mut().config.model.hidden = vec![16384; 12];
    wait_until(&mut harness, "the refusal", |h| {
        h.query_by_label_contains("lower model.hidden").is_some()
    });
    assert!(harness
        .query_by_label_contains("Cannot start: this run needs ≈")
        .is_some());
    assert!(!enabled(&harness, "Start"));
}

#[test]
fn a_number_typed_outside_a_fields_range_is_kept_to_it_and_the_field_says_so() {
    let (mut harness, _runs) = workbench("mlp-gan-digits", |_| {});
    let batch_size = |h: &Harness<'_, GantryApp>| h.state().settings().config.train.batch_size;
    type_number(&mut harness, "Batch size", "5000");
    assert_eq!(batch_size(&harness), 4096);
    assert!(
        harness.query_by_label("max 4096").is_some(),
        "the field says which bound it took"
    );
    type_number(&mut harness, "Batch size", "64");
    assert_eq!(batch_size(&harness), 64);
    assert!(
        harness.query_by_label("max 4096").is_none(),
        "a number in range clears it"
    );
}

/// Types `text` over the number in the field named `label` and presses Enter.
fn type_number(harness: &mut Harness<'_, GantryApp>, label: &str, text: &str) {
    harness.get_by_label(label).focus();
    harness.run_steps(2);
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness.get_by_label(label).type_text(text);
    harness.key_press(egui::Key::Enter);
    harness.run_steps(2);
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
fn a_2d_gan_shows_d_as_a_heatmap_that_changes_as_it_trains_and_its_views_toggle() {
    let (mut harness, _runs) = workbench("ganlab-circle", |_| {});
    start(&mut harness);
    let heatmap = |h: &Harness<'_, GantryApp>| {
        let snapshot = h.state().run().snapshot()?;
        Some((snapshot.step, snapshot.points.as_ref()?.heatmap.clone()?))
    };
    wait_until(&mut harness, "a heatmap", |h| heatmap(h).is_some());
    let (first_step, first) = heatmap(&harness).unwrap();
    wait_until(&mut harness, "a later heatmap", |h| {
        heatmap(h).is_some_and(|(step, _)| step > first_step)
    });
    assert_ne!(heatmap(&harness).unwrap().1, first, "D's surface changes between steps");
    harness.run_steps(2);
    assert!(
        harness.query_by_label("D(x): fake 0").is_some(),
        "the colour scale is shown"
    );
    for view in ["D heatmap", "G manifold"] {
        let checked = harness
            .get_by_role_and_label(Role::CheckBox, view)
            .accesskit_node()
            .toggled();
        assert_eq!(checked, Some(egui::accesskit::Toggled::True), "{view} is on by default");
    }
    harness.get_by_role_and_label(Role::CheckBox, "D heatmap").click();
    harness.run_steps(2);
    assert!(
        harness.query_by_label("D(x): fake 0").is_none(),
        "no scale without the heatmap"
    );
    assert!(!harness.state().settings().toy.heatmap);
}

#[test]
fn a_d_only_step_leaves_g_unchanged_and_a_g_only_step_leaves_d_unchanged() {
    let (mut harness, _runs) = workbench("ganlab-circle", |_| {});
    wait_until(&mut harness, "Start enabled", |h| enabled(h, "Start"));
    // G's image of the latent grid tells G's weights; D's heatmap tells D's.
    let views = |h: &Harness<'_, GantryApp>| {
        let snapshot = h.state().run().snapshot()?;
        let points = snapshot.points.as_ref()?;
        Some((snapshot.step, points.manifold.clone()?, points.heatmap.clone()?))
    };
    let step_with = |harness: &mut Harness<'_, GantryApp>, update: &str| {
        harness.get_by_label(update).scroll_to_me();
        harness.run_steps(2);
        harness.get_by_label(update).click();
        harness.run_steps(2);
        let before = views(harness).map_or(0, |v| v.0);
        harness.get_by_label("Step").click();
        wait_until(harness, "one step", |h| {
            views(h).is_some_and(|v| v.0 == before + 1) && state(h) == Some(RunState::Paused)
        });
        views(harness).unwrap()
    };
    let (_, g0, d0) = step_with(&mut harness, "D only");
    let (_, g1, d1) = step_with(&mut harness, "D only");
    assert_eq!(g1, g0, "a D-only step leaves G as it was");
    assert_ne!(d1, d0, "and changes D");
    let (_, g2, d2) = step_with(&mut harness, "G only");
    assert_ne!(g2, g1, "a G-only step changes G");
    assert_eq!(d2, d1, "and leaves D as it was");
}

/// The pixels of tile `index` of a grid of `size`-pixel tiles in `columns` columns.
fn tile(grid: &gantry::grid::ImageGrid, index: usize, columns: usize, size: usize) -> Vec<u8> {
    let cell = size + gantry::grid::GRID_PADDING;
    let (x0, y0) = ((index % columns) * cell + 2, (index / columns) * cell + 2);
    (y0..y0 + size)
        .flat_map(|y| grid.rgba[(y * grid.width + x0) * 4..(y * grid.width + x0 + size) * 4].to_vec())
        .collect()
}

#[test]
fn clicking_a_sample_moves_an_end_of_the_interpolation_strip_whose_ends_are_those_samples() {
    let (mut harness, _runs) = workbench("mlp-gan-digits", |_| {});
    start(&mut harness);
    harness.get_by_label("Pause").click();
    wait_until(&mut harness, "the pause", |h| state(h) == Some(RunState::Paused));
    harness.run_steps(3);
    let snapshot = |h: &Harness<'_, GantryApp>| h.state().run().snapshot().cloned().unwrap();
    assert_eq!(
        snapshot(&harness).interpolation.unwrap().ends,
        (0, 1),
        "the first two samples to begin with"
    );

    // Click the middle of sample 11 (row 1, column 2 of 8).
    let samples = snapshot(&harness).samples.unwrap();
    let rect = harness.get_by_label("samples").accesskit_node().bounding_box().unwrap();
    let scale = (rect.x1 - rect.x0) as f32 / samples.width as f32;
    let cell = ((samples.width - 2) / 8) as f32;
    let at = egui::pos2(
        rect.x0 as f32 + (2.5 * cell + 1.0) * scale,
        rect.y0 as f32 + (1.5 * cell + 1.0) * scale,
    );
    harness.event(egui::Event::PointerMoved(at));
    for pressed in [true, false] {
        harness.event(egui::Event::PointerButton {
            pos: at,
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: egui::Modifiers::NONE,
        });
        harness.run_steps(1);
    }
    wait_until(&mut harness, "the strip to start at sample 11", |h| {
        h.state()
            .run()
            .snapshot()
            .and_then(|s| s.interpolation.as_ref())
            .is_some_and(|i| i.ends == (10, 1))
    });
    harness.run_steps(2);
    assert!(harness.query_by_label("From sample 11 to sample 2").is_some());
    let snapshot = snapshot(&harness);
    let (samples, strip) = (snapshot.samples.unwrap(), snapshot.interpolation.unwrap().grid);
    // 28-pixel digits; the strip's rows (straight line, then slerp) both start and end at the chosen samples.
    for row in 0..2 {
        assert_eq!(
            tile(&strip, row * 8, 8, 28),
            tile(&samples, 10, 8, 28),
            "row {row} starts at sample 11"
        );
        assert_eq!(
            tile(&strip, row * 8 + 7, 8, 28),
            tile(&samples, 1, 8, 28),
            "row {row} ends at sample 2"
        );
    }
    assert_ne!(
        tile(&strip, 3, 8, 28),
        tile(&samples, 10, 8, 28),
        "the middle is neither end"
    );
}

#[test]
fn the_wheel_over_the_toy_data_preview_leaves_its_view_alone() {
    let (mut harness, _runs) = workbench("mlp-gan-ring", |_| {});
    let id = egui::Id::unique(gantry::app::data_panel::DATA_PREVIEW_PLOT);
    wait_until(&mut harness, "the preview", |h| {
        egui_plot::PlotMemory::load(&h.ctx, id).is_some()
    });
    harness.run_steps(2);
    let before = egui_plot::PlotMemory::load(&harness.ctx, id).unwrap();
    let center = before.transform().frame().center();
    harness.event(egui::Event::PointerMoved(center));
    for modifiers in [egui::Modifiers::NONE, egui::Modifiers::COMMAND] {
        harness.event(egui::Event::MouseWheel {
            unit: egui::MouseWheelUnit::Line,
            delta: egui::vec2(0.0, 3.0),
            modifiers,
            phase: egui::TouchPhase::Move,
            source: egui::MouseWheelSource::Unknown,
        });
        harness.run_steps(2);
    }
    let after = egui_plot::PlotMemory::load(&harness.ctx, id).unwrap();
    assert_eq!(after.bounds(), before.bounds());
}

#[test]
fn data_that_cannot_load_is_named_and_blocks_start() {
    let (mut harness, _runs) = workbench("mlp-gan-digits", |s| s.config.data.source = "toy:nope".into());
    wait_until(&mut harness, "the data preview", |h| {
        h.query_by_label_contains("Cannot load the data").is_some()
    });
    // Named where the dataset is chosen (and again where the launch check lists what blocks Start).
    assert!(
        harness
            .query_all_by_label_contains("Cannot load the data: unknown toy dataset 'nope'")
            .count()
            == 1
    );
    assert!(!enabled(&harness, "Start"));
}

/// A workbench whose run diverged at once, rolled back (each time with the rates halved) until it gave up
/// and paused.
fn paused_by_divergence() -> (Harness<'static, GantryApp>, TempDir) {
    let (mut harness, runs) = workbench("mlp-gan-digits", |s| {
        s.config.set("optimizer.kind=sgd").unwrap();
        // So large that the update overflows f32: the weights become infinite and the losses NaN.
        s.config.set("optimizer.lr=1e300").unwrap();
    });
    wait_until(&mut harness, "Start enabled", |h| enabled(h, "Start"));
    harness.get_by_label("Start").click();
    wait_until(&mut harness, "the pause", |h| state(h) == Some(RunState::Paused));
    (harness, runs)
}

#[test]
fn a_diverging_run_shows_the_cause_and_the_app_stays_usable() {
    let (mut harness, _runs) = paused_by_divergence();
    let error = harness.state().run().problem().unwrap().message().to_string();
    assert!(
        error.contains("became") && error.contains("paused"),
        "the message names the metric: {error}"
    );
    assert!(
        error.contains("(rolled back 5 times to step 0 and the trouble came back)"),
        "and why rolling back did not help: {error}"
    );
    harness.run_steps(2);
    assert!(
        harness.query_by_label(&format!("Paused: {error}")).is_some(),
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

#[test]
fn why_a_run_paused_is_shown_until_it_stops() {
    let (mut harness, _runs) = paused_by_divergence();
    assert!(matches!(harness.state().run().problem(), Some(Problem::Halted(_))));
    stop(&mut harness);
    harness.run_steps(2);
    assert!(
        harness.state().run().problem().is_none(),
        "{:?}",
        harness.state().run().problem()
    );
    assert!(
        harness.query_by_label_contains("Paused: ").is_none(),
        "no banner of a pause that is over"
    );
}

#[test]
fn a_crash_in_training_fails_the_run_frees_its_slot_and_says_why() {
    let runs = tempfile::tempdir().unwrap();
    let mut settings = Settings {
        config: preset("mlp-gan-digits").unwrap(),
        ..Settings::default()
    };
    settings.config.data.count = 600;
    settings.browser.parallel = 1;
    let options = AppOptions {
        runs_dir: Some(runs.path().to_path_buf()),
        crash_training_at_step: Some(4),
        machine_speed: Some(workbench::SPEED),
        no_system_dialogs: true,
    };
    let mut harness = workbench::harness_with(settings, options);
    wait_until(&mut harness, "Start enabled", |h| enabled(h, "Start"));
    harness.get_by_label("Start").click();
    wait_until(&mut harness, "the failure", |h| state(h) == Some(RunState::Failed));
    let problem = harness.state().run().problem().cloned().unwrap();
    assert!(
        problem.is_fatal() && problem.message().contains("crashed after step 3"),
        "{problem:?}"
    );
    harness.run_steps(2);
    assert!(
        harness
            .query_by_label(&format!("Failed: {}", problem.message()))
            .is_some(),
        "a banner says why"
    );
    let dir = harness.state().run().dir().unwrap().to_path_buf();
    assert_eq!(
        gantry::runs::RunMeta::read(&dir).unwrap().status,
        gantry::runs::RunStatus::Failed
    );
    // The crashed run holds no training slot: the next one starts (and crashes the same way).
    harness.get_by_label("Start").click();
    wait_until(&mut harness, "the second run to fail", |h| {
        h.state().run().dir() != Some(dir.as_path()) && state(h) == Some(RunState::Failed)
    });
}

/// Snapshots hold what is deterministic for a fixed seed and step count: the run list and the status bar
/// (run folders, creation times, speed) are masked, and the throughput plot is hidden (as by default).
fn snapshot_options() -> SnapshotOptions {
    SnapshotOptions::new().threshold(1.0).max_failed_pixels(300)
}

/// Masks everything from the run list's heading down.
fn mask_run_list_and_status(harness: &mut Harness<'_, GantryApp>) {
    let runs = harness.get_by_role_and_label(Role::Label, "Runs").rect();
    harness.mask(egui::Rect::from_min_max(
        egui::pos2(0.0, runs.top() - 4.0),
        WINDOW.to_pos2(),
    ));
}

fn finished_snapshot(preset_name: &str, name: &str) {
    let (mut harness, _runs) = trained_workbench(preset_name, |s| s.config.train.steps = 30);
    harness.run_steps(2);
    harness.remove_cursor();
    harness.run_steps(30);
    mask_run_list_and_status(&mut harness);
    harness.snapshot_options(name, &snapshot_options());
}

#[test]
fn snapshot_of_the_workbench_before_a_run() {
    let (mut harness, _runs) = workbench("mlp-gan-digits", |_| {});
    wait_until(&mut harness, "the data preview", |h| enabled(h, "Start"));
    harness.run_steps(3);
    mask_run_list_and_status(&mut harness);
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

/// GAN Lab's preset: D's heatmap, G's manifold mesh and the points, KL and JS.
#[test]
fn snapshot_of_a_2d_gan_after_thirty_steps() {
    finished_snapshot("ganlab-circle", "workbench_ganlab_30_steps");
}

#[test]
fn snapshot_of_a_2d_vaes_latent_space_after_thirty_steps() {
    let (mut harness, _runs) = trained_workbench("vae-digits", |s| {
        s.config.model.latent = 2;
        s.config.train.steps = 30;
    });
    open_latent_tab(&mut harness);
    harness.remove_cursor();
    harness.run_steps(3);
    mask_run_list_and_status(&mut harness);
    harness.snapshot_options("latent_vae_30_steps", &snapshot_options());
}

#[test]
fn snapshot_of_a_drawn_distribution_on_its_canvas() {
    let (mut harness, _runs) = workbench("mlp-gan-ring", |s| {
        s.config.data.source = "drawn".into();
        s.config.data.points = (0..60)
            .map(|k| {
                let (sin, cos) = (k as f32 / 60.0 * std::f32::consts::TAU).sin_cos();
                [0.6 * cos, 0.3 * sin + 0.2 * (k % 2) as f32]
            })
            .collect();
    });
    wait_until(&mut harness, "the data (Start enabled)", |h| enabled(h, "Start"));
    harness.get_by_label("drawing canvas").scroll_to_me();
    harness.run_steps(3);
    mask_run_list_and_status(&mut harness);
    harness.snapshot_options("drawn_canvas", &snapshot_options());
}

/// Trains a small MLP GAN run to 20 steps in `root/name` (grids every 5 steps, checkpoints every 10), as an
/// earlier session of the workbench would have left it.
fn trained_run(root: &std::path::Path, name: &str, settings: &[&str]) -> std::path::PathBuf {
    use gantry::train::worker::{Command, Event, RunOptions, Trainer};
    let mut config = preset("mlp-gan-digits").unwrap();
    let common = [
        "data.count=600",
        "train.steps=20",
        "train.sample_every=5",
        "train.checkpoint_every=10",
    ];
    for setting in common.iter().chain(settings) {
        config.set(setting).unwrap();
    }
    let dir = root.join(name);
    let options = RunOptions {
        out_dir: Some(dir.clone()),
        ..RunOptions::default()
    };
    let trainer = Trainer::spawn(config, options, None);
    trainer.send(Command::Start);
    loop {
        match trainer
            .events()
            .recv_timeout(Duration::from_secs(120))
            .expect("the run reports")
        {
            Event::State(RunState::Finished) => break,
            Event::Problem(problem @ (Problem::Fatal(_) | Problem::Halted(_))) => panic!("{problem:?}"),
            _ => {}
        }
    }
    dir
}

/// The workbench listing the runs under `runs` (default settings on a small dataset).
fn browser_harness(runs: &std::path::Path) -> Harness<'static, GantryApp> {
    let mut settings = Settings::default();
    settings.config.data.count = 600;
    let mut harness = workbench_harness(settings, runs);
    harness.run_steps(3);
    settle(&mut harness);
    harness
}

/// Draws frames until the run list and curves read in the background have arrived.
fn settle(harness: &mut Harness<'_, GantryApp>) {
    harness.run_steps(1);
    wait_until(harness, "the runs folder to be read", |h| h.state().runs_settled());
    harness.run_steps(1);
}

/// Ticks these runs in the run browser (for overlays, the contact sheet and A/B compare).
fn tick(harness: &mut Harness<'_, GantryApp>, names: &[&str]) {
    for name in names {
        harness.get_by_role_and_label(Role::CheckBox, name).click();
        harness.run_steps(2);
        settle(harness);
    }
}

/// Ticks these runs and opens the contact sheet of them.
fn open_contact_sheet(harness: &mut Harness<'_, GantryApp>, names: &[&str]) {
    tick(harness, names);
    harness.get_by_label("Contact sheet").click();
    harness.run_steps(3);
}

/// A workbench over two scored runs: "a" (fd 41.2) and "b" (fd 12.5).
fn runs_a_and_b_scored() -> (Harness<'static, GantryApp>, TempDir) {
    let runs = tempfile::tempdir().unwrap();
    scored_run(runs.path(), "a", 41.2, &[]);
    scored_run(runs.path(), "b", 12.5, &[]);
    (browser_harness(runs.path()), runs)
}

/// The contact sheet of one scored run, "a", showing its grid of step 10.
fn contact_sheet_of_run_a() -> (Harness<'static, GantryApp>, TempDir) {
    let runs = tempfile::tempdir().unwrap();
    scored_run(runs.path(), "a", 41.2, &[]);
    let mut harness = browser_harness(runs.path());
    open_contact_sheet(&mut harness, &["a"]);
    wait_until(&mut harness, "the sheet at step 10", |h| {
        h.query_by_label_contains("1. a (step 10)").is_some()
    });
    (harness, runs)
}

/// A workbench over a folder with one run named `name`, trained for 20 steps, viewed from its folder.
fn viewed_trained_run(name: &str) -> (Harness<'static, GantryApp>, TempDir) {
    let (mut harness, runs, _) = listed_trained_run(name, |_| {});
    view_run(&mut harness, name);
    (harness, runs)
}

/// A workbench over a folder with one run named `name`, trained for 20 steps (checkpoints at 10 and 20) and
/// then changed on disk by `edit` (as a killed or closed app leaves a run), and the run's folder.
fn listed_trained_run(
    name: &str,
    edit: impl FnOnce(&std::path::Path),
) -> (Harness<'static, GantryApp>, TempDir, std::path::PathBuf) {
    let runs = tempfile::tempdir().unwrap();
    let dir = trained_run(runs.path(), name, &[]);
    edit(&dir);
    let harness = browser_harness(runs.path());
    (harness, runs, dir)
}

/// Clicks a run's name in the run browser, which puts it in view.
fn view_run(harness: &mut Harness<'_, GantryApp>, name: &str) {
    run_name(harness, name).scroll_to_me();
    harness.run_steps(2);
    run_name(harness, name).click();
    harness.run_steps(3);
    settle(harness);
}

#[test]
fn ticking_two_runs_in_the_browser_overlays_their_curves() {
    let runs = tempfile::tempdir().unwrap();
    trained_run(runs.path(), "slow", &["optimizer.lr=2e-4"]);
    // Its checkpoints come at other steps too, which does not change how it learns.
    trained_run(runs.path(), "fast", &["optimizer.lr=1e-3", "train.checkpoint_every=5"]);
    let mut harness = browser_harness(runs.path());
    assert!(harness.state().shown_curves().is_empty(), "nothing in view yet");
    for name in ["slow", "fast"] {
        harness.get_by_role_and_label(Role::CheckBox, name).click();
        harness.run_steps(2);
        settle(&mut harness);
    }
    let mut shown = harness.state().shown_curves().to_vec();
    shown.sort();
    assert_eq!(
        shown,
        ["lr=0.0002", "lr=0.001"],
        "one series per run, named by what differs"
    );
    // The run legend names each run once; its hover has the run's name and every setting that differs.
    harness.get_by_label("lr=0.0002");
    harness.get_by_label("lr=0.001").hover();
    harness.run_steps(40);
    assert!(harness.query_by_label_contains("train.checkpoint_every = 5").is_some());

    // Unticking one leaves the other.
    harness.get_by_role_and_label(Role::CheckBox, "fast").click();
    harness.run_steps(2);
    assert_eq!(harness.state().shown_curves().len(), 1);
}

#[test]
fn the_filmstrip_slider_and_a_click_on_a_curve_change_the_shown_grid() {
    let (mut harness, _runs) = viewed_trained_run("film");
    assert_eq!(
        harness.state().shown_grid_step(),
        Some(20),
        "the newest saved grid first"
    );
    // The slider moves over the saved grids (steps 5, 10, 15, 20) by position.
    harness
        .get_by_role_and_label(Role::Slider, "Filmstrip step")
        .set_value_accesskit(1.0);
    harness.run_steps(3);
    assert_eq!(harness.state().shown_grid_step(), Some(10));

    // A click on a loss curve shows the grid saved nearest the clicked step.
    let plot = harness.get_by_role_and_label(Role::Label, "GAN losses").rect();
    let near_the_start = egui::pos2(plot.left() + 90.0, plot.bottom() + 40.0);
    harness.hover_at(near_the_start);
    harness.run_steps(1);
    harness.event(egui::Event::PointerButton {
        pos: near_the_start,
        button: egui::PointerButton::Primary,
        pressed: true,
        modifiers: egui::Modifiers::NONE,
    });
    harness.run_steps(1);
    harness.event(egui::Event::PointerButton {
        pos: near_the_start,
        button: egui::PointerButton::Primary,
        pressed: false,
        modifiers: egui::Modifiers::NONE,
    });
    harness.run_steps(3);
    let step = harness.state().shown_grid_step().unwrap();
    assert!(
        step < 10,
        "a click near the first steps shows an early grid, not step {step}"
    );
}

#[test]
fn runs_reopened_in_a_new_workbench_show_the_same_curves_and_grids() {
    let (mut harness, runs) = trained_workbench("mlp-gan-digits", |s| {
        s.config.train.steps = 20;
        s.config.train.sample_every = 5;
    });
    harness.run_steps(2);
    let curves = harness.state().run().history().to_csv();
    let dir = harness.state().viewed_run().unwrap().to_path_buf();
    let samples = harness.state().run().snapshot().unwrap().samples.clone().unwrap();
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    drop(harness);

    let mut reopened = browser_harness(runs.path());
    view_run(&mut reopened, &name);
    assert!(
        reopened.state().run().state().is_none(),
        "read from disk, not trained again"
    );
    assert_eq!(reopened.state_mut().viewed_history().unwrap().to_csv(), curves);
    assert_eq!(reopened.state().shown_grid_step(), Some(20));
    assert_eq!(
        gantry::runs::read_grid(&dir, gantry::runs::GridKind::Samples, 20).unwrap(),
        samples,
        "the saved grid is the one that was shown live"
    );
    assert_eq!(reopened.state().shown_curves().len(), 1);
}

#[test]
fn fork_starts_a_child_run_that_the_browser_lists() {
    let (mut harness, _runs) = workbench("mlp-gan-digits", |_| {});
    start(&mut harness);
    harness.get_by_label("Pause").click();
    wait_until(&mut harness, "the pause", |h| state(h) == Some(RunState::Paused));
    let parent = harness.state().viewed_run().unwrap().to_path_buf();
    let fork_step = harness.state().run().step();
    harness.get_by_label("D learning rate").set_value_accesskit(1e-3);
    harness.run_steps(3);
    assert!(harness.query_by_label_contains("The run is paused").is_some());
    harness.get_by_label("Fork").click();
    wait_until(&mut harness, "the child to train", |h| {
        h.state().viewed_run().is_some_and(|d| d != parent) && h.state().run().step() > fork_step
    });
    let child = harness.state().viewed_run().unwrap().to_path_buf();
    let child_name = child.file_name().unwrap().to_string_lossy().into_owned();
    assert!(child_name.contains(&format!("-fork{fork_step}-")), "{child_name}");
    assert_eq!(harness.state().run().applied_config().unwrap().optimizer.lr_d(), 1e-3);
    assert_eq!(
        harness.state().run().history().count("loss_d") as u64,
        harness.state().run().step(),
        "the child's curve continues the parent's from step 1"
    );
    let parent_run = harness.state().open_run(&parent).unwrap();
    assert_eq!(
        parent_run.state(),
        Some(RunState::Paused),
        "the parent is left as it was"
    );
    assert_eq!(parent_run.step(), fork_step);
    assert_ne!(parent_run.applied_config().unwrap().optimizer.lr_d(), 1e-3);
    let meta = gantry::runs::RunMeta::read(&child).unwrap();
    assert_eq!(
        (meta.parent.as_deref(), meta.fork_step),
        (Some(parent.as_path()), Some(fork_step))
    );
    harness.run_steps(2);
    assert!(
        harness.query_by_label(&child_name).is_some(),
        "the browser lists the child"
    );
}

#[test]
fn a_sweep_queues_one_run_per_value_and_the_contact_sheet_orders_them() {
    // A run that trains until stopped holds the one training slot, so the sweep's runs stay queued for as
    // long as the test looks (a short first sweep run could finish before the browser lists it, leaving
    // nothing queued to see on a busy machine).
    let (mut harness, runs) = workbench("mlp-gan-digits", |s| {
        s.config.train.steps = 1_000_000;
        s.config.train.sample_every = 75;
        s.browser.parallel = 1;
    });
    start(&mut harness);
    let holder = harness.state().run().dir().unwrap().to_path_buf();
    let holder_name = holder.file_name().unwrap().to_string_lossy().into_owned();
    type_sweep(&mut harness, &["optimizer.lr=1e-3,1e-4", "train.steps=150"]);
    harness.get_by_label("Queue 2 runs").click();
    // Both rows of the run list, and the status bar of the run in view (the sweep's first).
    wait_until(&mut harness, "the browser to show both sweep runs queued", |h| {
        h.query_all_by_label("queued").count() == 3
    });
    settle(&mut harness);
    let listed: Vec<_> = harness
        .state()
        .listed_runs()
        .into_iter()
        .filter(|r| r.path != holder)
        .collect();
    assert_eq!(listed.len(), 2, "one run per value");
    assert!(listed
        .iter()
        .all(|r| r.meta.tags.iter().any(|t| t.starts_with("sweep-"))));
    // Stopping the run that held the slot lets the sweep's runs train, one at a time.
    harness.state_mut().settings_mut().browser.filter.clear();
    settle(&mut harness);
    view_run(&mut harness, &holder_name);
    stop(&mut harness);
    wait_until(&mut harness, "both sweep runs to finish", |_| {
        gantry::runs::list_runs(runs.path())
            .0
            .iter()
            .filter(|r| r.path != holder)
            .all(|r| r.meta.status == gantry::runs::RunStatus::Finished)
    });
    harness.run_steps(3);
    // Clicking a run's name views it.
    for run in &listed {
        view_run(&mut harness, &run.meta.name);
        assert_eq!(harness.state().viewed_run(), Some(run.path.as_path()));
    }
    harness.get_by_label("Contact sheet").click();
    harness.run_steps(3);
    harness.get_by_label("Sort by").click();
    harness.run_steps(2);
    // The sort choice, not the browser's column of the same name (the popup is drawn last).
    harness.query_all_by_label("lr").last().unwrap().click();
    // The grids load off the UI thread.
    // A sweep's runs pause where a rollback would halve the rate they are named after (the run that held the
    // slot rolls back): that tells them apart from it too.
    wait_until(&mut harness, "the newest grids, ordered by learning rate", |h| {
        h.query_by_label_contains(
            "1. on_divergence=pause, lr=0.0001 (step 150)   2. on_divergence=pause, lr=0.001 (step 150)",
        )
        .is_some()
    });
    harness.get_by_label("A/B compare").click();
    harness.run_steps(2);
    harness.get_by_label("difference").click();
    // The two runs' grids load off the UI thread; the difference shows once both are in.
    wait_until(&mut harness, "the difference of the two runs' grids", |h| {
        h.query_by_label_contains("A: ").is_some()
    });
    assert!(harness.query_by_label_contains("differ in size").is_none());
}

#[test]
fn continue_in_the_run_list_trains_a_finished_run_to_the_budget_raised_in_the_panel() {
    let (mut harness, runs) = trained_workbench("mlp-gan-digits", |s| {
        s.config.train.steps = 10;
        s.config.train.sample_every = 5;
    });
    harness.get_by_label("Step budget").set_value_accesskit(20.0);
    harness.run_steps(2);
    harness.get_by_role_and_label(Role::Button, "Continue").click();
    wait_until(&mut harness, "the raised budget", |h| steps(h) >= 20);
    wait_until(&mut harness, "the finish", |h| state(h) == Some(RunState::Finished));
    assert_eq!(steps(&harness), 20);
    assert_eq!(
        harness.state().settings().config.train.steps,
        20,
        "the panel keeps the budget"
    );

    // Closed and viewed from its folder, the run continues to the budget raised for it as well.
    let dir = harness.state().run().dir().unwrap().to_path_buf();
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    drop(harness);
    let mut reopened = browser_harness(runs.path());
    view_run(&mut reopened, &name);
    reopened.get_by_label("Step budget").set_value_accesskit(30.0);
    reopened.run_steps(2);
    reopened.get_by_role_and_label(Role::Button, "Continue").click();
    wait_until(&mut reopened, "the run's finish at the raised budget", |h| {
        state(h) == Some(RunState::Finished)
    });
    assert_eq!(reopened.state().run().step(), 30);
}

#[test]
fn restart_run_waits_for_data_that_loads_as_start_does() {
    let (mut harness, runs) = trained_workbench("mlp-gan-digits", |s| s.config.train.steps = 10);
    let missing = runs.path().join("no-such-folder");
    harness.state_mut().settings_mut().config.data.source = format!("idx:{}", missing.display());
    wait_until(&mut harness, "the data's failure", |h| {
        h.query_by_label_contains("directory does not exist").is_some()
    });
    harness.run_steps(2);
    assert!(!enabled(&harness, "Start"));
    assert!(!enabled(&harness, "Restart run"), "a new run on data that cannot load");
}

#[test]
fn a_sweep_value_the_setting_cannot_take_is_named_before_anything_is_queued() {
    let (mut harness, runs) = workbench("mlp-gan-digits", |_| {});
    wait_until(&mut harness, "Start enabled", |h| enabled(h, "Start"));
    type_sweep(&mut harness, &["optimizer.lr=1e-3,abc"]);
    harness.get_by_label_contains("optimizer.lr: bad value 'abc'");
    assert!(!enabled(&harness, "Queue 0 runs"));
    // Mending the value makes the runs queueable.
    harness.get_by_label("Sweep setting 1").focus();
    harness.key_press(egui::Key::Backspace);
    harness.key_press(egui::Key::Backspace);
    harness.key_press(egui::Key::Backspace);
    harness.get_by_label("Sweep setting 1").type_text("1e-4");
    harness.run_steps(2);
    assert!(enabled(&harness, "Queue 2 runs"));
    assert!(gantry::runs::list_runs(runs.path()).0.is_empty(), "nothing was queued");
}

#[test]
fn a_new_run_is_listed_under_a_filter_and_ticked_runs_of_another_model_are_not_overlaid() {
    let runs = tempfile::tempdir().unwrap();
    trained_run(runs.path(), "mlp-baseline", &[]);
    let mut harness = browser_harness(runs.path());
    harness.get_by_role_and_label(Role::CheckBox, "mlp-baseline").click();
    harness.get_by_label("Filter").focus();
    harness.get_by_label("Filter").type_text("mlp-baseline");
    harness.run_steps(2);

    // The default preset is a DCGAN: another model than the ticked run.
    start(&mut harness);
    settle(&mut harness);
    let dir = harness.state().run().dir().unwrap().to_path_buf();
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    assert!(!name.contains("mlp-baseline"), "{name}");
    run_name(&harness, &name);
    assert_eq!(
        harness.state().shown_curves().len(),
        1,
        "{:?}",
        harness.state().shown_curves()
    );
    assert!(harness
        .query_by_label_contains("1 ticked run(s) not overlaid")
        .is_some());
}

#[test]
fn a_run_that_finished_in_this_window_can_be_deleted_and_filtered_out() {
    let (mut harness, _runs) = trained_workbench("mlp-gan-digits", |s| s.config.train.steps = 5);
    settle(&mut harness);
    assert!(enabled(&harness, "Delete"), "nothing to stop first");
    harness.get_by_label("Filter").focus();
    harness.get_by_label("Filter").type_text("no such run");
    harness.run_steps(2);
    assert!(harness.query_by_label("No run matches the filter.").is_some());
}

/// Backtraces are captured as `RUST_BACKTRACE` said when the process first asked, so this test runs itself
/// again in a child process with it set, where the checks run.
#[test]
fn a_failure_shows_its_message_without_a_backtrace_when_rust_backtrace_is_set() {
    const CHILD: &str = "GANTRY_TEST_WITH_BACKTRACES";
    if std::env::var_os(CHILD).is_none() {
        let name = "a_failure_shows_its_message_without_a_backtrace_when_rust_backtrace_is_set";
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([name, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success() && log.contains("1 passed"), "{log}");
        return;
    }
    // A run whose checkpoints are another model's: continuing it fails on every one.
    let runs = tempfile::tempdir().unwrap();
    let run = trained_run(runs.path(), "mismatched", &[]);
    let other = trained_run(runs.path(), "other-shape", &["model.hidden=[64]"]);
    for step in gantry::runs::checkpoint_steps(&run) {
        let [to, from] = [&run, &other].map(|dir| gantry::runs::checkpoint_path(dir, step));
        std::fs::copy(from, to).unwrap();
    }
    std::fs::remove_dir_all(&other).unwrap();
    let mut harness = browser_harness(runs.path());
    harness.get_by_label("Continue").click();
    wait_until(&mut harness, "the failure", |h| {
        h.query_all_by_label_contains("no checkpoint could be read")
            .next()
            .is_some()
    });
    for node in harness.query_all_by_label_contains("no checkpoint could be read") {
        let shown = node.accesskit_node().value().unwrap_or_default();
        assert!(shown.contains("shape"), "the cause is named: {shown}");
        assert!(
            !shown.contains(".rs:") && !shown.contains('\n'),
            "no backtrace: {shown}"
        );
    }
}

#[test]
fn a_presets_description_shows_beside_the_list_not_over_the_entries_below() {
    let (mut harness, _runs) = workbench("mlp-gan-digits", |_| {});
    harness.get_by_role_and_label(Role::ComboBox, "Preset").click();
    harness.run_steps(2);
    let (name, text) = gantry::presets::PRESETS[0];
    harness.get_by_label(name).hover();
    harness.run_steps(30);
    let entry = harness.get_by_label(name).accesskit_node().bounding_box().unwrap();
    let description = gantry::presets::description(text);
    let tip = harness
        .get_by_label(description)
        .accesskit_node()
        .bounding_box()
        .unwrap();
    assert!(
        tip.x0 >= entry.x1,
        "the description starts at x = {}, the list ends at {}",
        tip.x0,
        entry.x1
    );
}

#[test]
fn a_run_put_in_view_names_new_runs_after_its_own_settings_not_the_preset_picked_before() {
    let runs = tempfile::tempdir().unwrap();
    trained_run(runs.path(), "a", &["model.kind=dcgan", "train.batch_size=16"]);
    let mut harness = browser_harness(runs.path());
    // The default preset is a DCGAN on digits too: its name fitted the viewed run's model and data.
    assert_eq!(harness.state().settings().run_name(), gantry::presets::DEFAULT_PRESET);
    view_run(&mut harness, "a");
    assert_eq!(harness.state().settings().run_name(), "dcgan-digits");
}

#[test]
fn a_run_being_renamed_offers_no_other_action_and_escape_keeps_its_name() {
    let (mut harness, runs) = viewed_trained_run("a");
    harness.get_by_role_and_label(Role::Button, "Rename").click();
    harness.run_steps(2);
    // The name's editor widens the row: its buttons would land under the pointer that clicked Rename.
    assert!(harness.query_by_role_and_label(Role::Button, "Continue").is_none());
    // The field takes the keyboard as it opens.
    assert!(harness.get_by_label("New name").is_focused());
    harness.get_by_label("New name").type_text(" v2");
    harness.run_steps(1);
    assert_eq!(harness.get_by_label("New name").value().as_deref(), Some("a v2"));
    harness.key_press(egui::Key::Escape);
    harness.run_steps(2);
    assert!(harness.query_by_label("New name").is_none(), "the editor closed");
    assert_eq!(gantry::runs::RunMeta::read(&runs.path().join("a")).unwrap().name, "a");
    assert!(harness.query_by_role_and_label(Role::Button, "Continue").is_some());
}

#[test]
fn runs_can_be_renamed_tagged_filtered_and_deleted_after_confirmation() {
    let runs = tempfile::tempdir().unwrap();
    trained_run(runs.path(), "first-try", &["optimizer.lr=2e-4"]);
    trained_run(runs.path(), "other", &["optimizer.lr=1e-3"]);
    let mut harness = browser_harness(runs.path());
    // Every row's actions are in sight at the default window size, whatever columns follow them.
    for button in ["Continue", "Rename", "Tags", "Delete"] {
        for node in harness.query_all_by_label(button) {
            let right = node.accesskit_node().bounding_box().unwrap().x1;
            assert!(right <= f64::from(WINDOW.x), "{button} ends at x = {right}");
        }
    }

    harness.get_all_by_label("Rename").next().unwrap().click();
    harness.run_steps(2);
    // The field starts with the current name; typing adds to it.
    harness.get_by_label("New name").focus();
    harness.get_by_label("New name").type_text(" v2");
    harness.run_steps(1);
    harness.get_by_label("Save name").click();
    harness.run_steps(3);
    settle(&mut harness);
    let names: Vec<String> = ["first-try", "other"]
        .map(|d| gantry::runs::RunMeta::read(&runs.path().join(d)).unwrap().name)
        .into();
    let renamed = names
        .iter()
        .find(|n| n.ends_with(" v2"))
        .expect("run.toml holds the new name");
    assert!(harness.query_by_label(renamed).is_some(), "the list shows it");

    harness
        .query_all_by_role_and_label(Role::Button, "Tags")
        .next()
        .unwrap()
        .click();
    harness.run_steps(2);
    harness.get_by_label("Tags (comma separated)").focus();
    harness.get_by_label("Tags (comma separated)").type_text("keep, lr");
    harness.run_steps(1);
    // Enter saves them, as it does a name.
    harness.key_press(egui::Key::Enter);
    harness.run_steps(3);
    settle(&mut harness);
    let listed = harness.state().listed_runs();
    assert!(listed.iter().any(|r| r.meta.tags == ["keep", "lr"]));

    // The filter matches tags (and names, models, data, settings).
    harness.get_by_label("Filter").focus();
    harness.get_by_label("Filter").type_text("keep");
    harness.run_steps(3);
    assert_eq!(
        harness.query_all_by_label("Delete").count(),
        1,
        "one run passes the filter"
    );

    harness.get_by_label("Delete").click();
    harness.run_steps(2);
    assert!(
        harness.query_by_label_contains("is removed from disk").is_some(),
        "asks first"
    );
    harness.get_by_label("Cancel").click();
    harness.run_steps(2);
    settle(&mut harness);
    assert_eq!(harness.state().listed_runs().len(), 2, "cancel keeps the run");
    harness.get_by_label("Delete").click();
    harness.run_steps(2);
    harness.get_by_label("Delete run").click();
    harness.run_steps(3);
    settle(&mut harness);
    assert_eq!(harness.state().listed_runs().len(), 1);
}

#[test]
fn the_health_view_shows_a_divergence_in_trouble_and_its_remedy_changes_the_setting() {
    let (mut harness, _runs) = workbench("mlp-gan-digits", |s| {
        s.config.set("optimizer.kind=sgd").unwrap();
        // So large that the update overflows f32: the losses become NaN at the first step.
        s.config.set("optimizer.lr=1e300").unwrap();
        s.config.set("health.on_divergence=\"pause\"").unwrap();
    });
    wait_until(&mut harness, "Start enabled", |h| enabled(h, "Start"));
    harness.get_by_label("Start").click();
    wait_until(&mut harness, "the pause", |h| state(h) == Some(RunState::Paused));
    harness.get_by_label("Health").click();
    harness.run_steps(2);
    let divergence = harness
        .state()
        .run()
        .health()
        .unwrap()
        .finding(Rule::Divergence)
        .unwrap()
        .clone();
    let last = harness.state().run().history().last_step();
    assert_eq!(
        (divergence.light, divergence.since),
        (Light::Trouble, last),
        "trouble since the NaN"
    );
    assert!(
        harness.query_all_by_label("trouble").count() >= 1,
        "the light says trouble"
    );
    let value = format!(
        "{} ({})",
        significant(divergence.value.unwrap()),
        divergence.metric.as_deref().unwrap()
    );
    assert!(
        harness.query_by_label(&value).is_some(),
        "its value shows, and of what: {value}"
    );
    // An edit the paused run takes when it resumes: the remedy keeps it.
    harness.state_mut().settings_mut().config.train.label_smoothing = 0.05;
    harness.run_steps(2);
    harness
        .get_by_label(&format!("Apply: {}", divergence.remedy.summary))
        .click();
    harness.run_steps(2);
    let draft = &harness.state().settings().config;
    assert_eq!(draft.optimizer.lr, 5e299, "the remedy halved the rate");
    assert_eq!(draft.train.label_smoothing, 0.05, "and kept the edit not yet taken");
    // With another model's settings in the panels, the run's rules offer no remedy to them, not even one
    // every model has, until the run's settings are back.
    harness.state_mut().settings_mut().config = preset("vae-digits").unwrap();
    harness.run_steps(2);
    let apply = |h: &Harness<'_, GantryApp>, start: &str| {
        let label = format!("Apply: {start}");
        !h.get_by_label_contains(&label).accesskit_node().is_disabled()
    };
    assert!(!apply(&harness, "lower D's learning rate"), "a GAN's rule");
    assert!(!apply(&harness, "halve the learning rates"), "every model's rule");
    harness.get_by_label("Use this run's settings").click();
    harness.run_steps(2);
    assert!(harness.state().settings().config.model.kind.is_gan());
    assert!(apply(&harness, "lower D's learning rate") && apply(&harness, "halve the learning rates"));
}

#[test]
fn a_run_viewed_from_its_folder_forks_from_a_checkpoint_in_the_health_tab() {
    let (mut harness, _runs) = viewed_trained_run("a");
    harness.get_by_label("Health").click();
    harness.run_steps(2);
    wait_until(&mut harness, "its checkpoints", |h| {
        h.query_by_label("Fork from it").is_some()
    });
    let roll_back = harness.get_by_role_and_label(Role::Button, "Roll back");
    assert!(
        roll_back.accesskit_node().is_disabled(),
        "it is not open to go back in place"
    );
    harness.get_by_label("Fork from it").click();
    harness.run_steps(2);
    settle(&mut harness);
    let names: Vec<String> = harness
        .state()
        .listed_runs()
        .iter()
        .map(|r| r.meta.name.clone())
        .collect();
    assert!(names.iter().any(|n| n.starts_with("a-fork20-")), "{names:?}");
}

#[test]
fn a_run_viewed_from_its_folder_opens_at_its_checkpoint_for_the_latent_space_and_closes_as_it_was() {
    let (mut harness, runs) = viewed_trained_run("a");
    let dir = runs.path().join("a");
    let metrics = std::fs::read(dir.join("metrics.csv")).unwrap();
    harness.get_by_label("Latent space").click();
    harness.run_steps(2);
    assert!(harness.state().open_run(&dir).is_none(), "viewed from its folder");
    harness.get_by_label("Open it at step 20").click();
    harness.run_steps(1);
    wait_until(&mut harness, "the latent walk of its model", |h| {
        h.query_by_role_and_label(Role::Slider, "z1").is_some()
    });
    let run = harness.state().open_run(&dir).expect("open");
    assert_eq!(run.state(), Some(RunState::Ready), "loaded, not training");
    assert_eq!(run.snapshot().unwrap().step, 20);
    // At its budget: nothing to resume, and a step would train past it.
    assert!(!enabled(&harness, "Step") && !enabled(&harness, "Resume"));
    // Stopped, it closes: the tab is back to the run's folder, whose record is as it was (still finished, no
    // row lost or added).
    harness
        .query_all_by_role_and_label(Role::Button, "Stop")
        .next()
        .unwrap()
        .click();
    harness.run_steps(2);
    assert!(harness.state().open_run(&dir).is_none());
    assert!(
        harness.query_by_label("Open it at step 20").is_some(),
        "the folder's view"
    );
    assert!(harness
        .query_by_label_contains("Viewing a from disk: finished")
        .is_some());
    assert_eq!(
        gantry::runs::RunMeta::read(&dir).unwrap().status,
        gantry::runs::RunStatus::Finished
    );
    assert_eq!(std::fs::read(dir.join("metrics.csv")).unwrap(), metrics);
}

#[test]
fn continue_on_a_run_killed_after_its_newest_checkpoint_says_which_rows_it_drops() {
    let (mut harness, _runs, _) = listed_trained_run("a", |dir| {
        std::fs::remove_file(gantry::runs::checkpoint_path(dir, 20)).unwrap();
    });
    harness.get_by_role_and_label(Role::Button, "Continue").hover();
    harness.run_steps(30);
    assert!(harness
        .query_by_label_contains("of step 10: its metric rows of steps 11 to 20 are dropped")
        .is_some());
}

#[test]
fn continue_on_a_run_trained_to_its_budget_says_how_to_train_it_on() {
    let (mut harness, _runs) = viewed_trained_run("a");
    harness.get_by_role_and_label(Role::Button, "Continue").click();
    harness.run_steps(2);
    assert!(harness
        .query_by_label_contains("It has trained its 20 steps: raise its Step budget")
        .is_some());
}

#[test]
fn a_run_left_running_by_a_closed_app_reads_interrupted_in_the_list_and_the_status_bar() {
    let (mut harness, _runs, _) = listed_trained_run("a", |dir| {
        gantry::runs::RunMeta::update(dir, |meta| meta.status = gantry::runs::RunStatus::Running).unwrap();
    });
    view_run(&mut harness, "a");
    assert!(harness.query_by_label("interrupted").is_some(), "its row");
    assert!(harness
        .query_by_label_contains("Viewing a from disk: interrupted")
        .is_some());
}

#[test]
fn a_run_opened_while_another_holds_the_only_slot_keeps_its_folder_when_it_leaves_the_queue() {
    let runs = tempfile::tempdir().unwrap();
    let dir = trained_run(runs.path(), "a", &[]);
    let mut settings = Settings {
        config: preset("mlp-gan-digits").unwrap(),
        ..Settings::default()
    };
    settings.config.data.count = 600;
    settings.config.train.steps = 100_000;
    settings.browser.parallel = 1;
    let mut harness = workbench_harness(settings, runs.path());
    harness.get_by_label("Start").click();
    wait_until(&mut harness, "the other run to train", |h| {
        h.state().run().state() == Some(RunState::Running)
    });
    view_run(&mut harness, "a");
    harness.get_by_label("Open it at step 20").click();
    harness.run_steps(2);
    assert!(harness.state().open_run(&dir).is_some_and(|r| r.is_queued()));
    // The toolbar's Stop takes it out of the queue.
    harness
        .query_all_by_role_and_label(Role::Button, "Stop")
        .next()
        .unwrap()
        .click();
    harness.run_steps(2);
    assert!(harness.state().open_run(&dir).is_none());
    assert_eq!(gantry::runs::checkpoint_steps(&dir), [10, 20], "its folder is kept");
}

#[test]
fn a_2d_run_viewed_from_its_folder_opens_from_the_status_bar_and_shows_its_points_again() {
    let runs = tempfile::tempdir().unwrap();
    trained_run(runs.path(), "ring", &["data.source=toy:ring"]);
    let mut harness = browser_harness(runs.path());
    view_run(&mut harness, "ring");
    // 2D runs save no pictures: from the folder, the run has no points to show.
    assert!(harness.state().run().snapshot().is_none());
    harness.get_by_label("Open it at step 20").click();
    harness.run_steps(1);
    wait_until(&mut harness, "its real and generated points", |h| {
        h.state().run().snapshot().is_some_and(|s| s.points.is_some())
    });
}

/// A 10-step run trained to its budget with checkpoints at steps 5 and 10, its folder, and the Health tab's
/// roll-back list set to step 5.
fn finished_run_with_step_five_picked() -> (Harness<'static, GantryApp>, TempDir, std::path::PathBuf) {
    let (mut harness, runs) = trained_workbench("mlp-gan-digits", |s| {
        s.config.train.steps = 10;
        s.config.train.checkpoint_every = 5;
        s.config.train.sample_every = 5;
        s.config.health.snapshot_every = 10;
    });
    let dir = harness.state().run().dir().unwrap().to_path_buf();
    settle(&mut harness);
    harness.get_by_label("Health").click();
    harness.run_steps(2);
    harness.get_by_role_and_label(Role::ComboBox, "Roll back to").click();
    harness.run_steps(2);
    // Step 10 is a snapshot and a checkpoint: either way back.
    assert!(harness.query_by_label("step 10 (in memory and on disk)").is_some());
    harness.get_by_label("step 5 (checkpoint)").click();
    harness.run_steps(1);
    (harness, runs, dir)
}

#[test]
fn roll_back_returns_a_run_to_the_weights_of_the_chosen_checkpoint() {
    let (mut harness, _runs, dir) = finished_run_with_step_five_picked();
    // The samples G made from the step-5 weights, saved beside the step-5 checkpoint.
    let at_five = gantry::runs::read_grid(&dir, GridKind::Samples, 5).unwrap();
    harness.get_by_role_and_label(Role::Button, "Roll back").click();
    wait_until(&mut harness, "the rollback", |h| {
        h.state().run().history().last_step() == Some(5) && h.state().run().snapshot().is_some_and(|s| s.step == 5)
    });
    let samples = harness.state().run().snapshot().unwrap().samples.clone();
    assert_eq!(
        samples,
        Some(at_five),
        "the weights are the checkpoint's: G makes the same samples"
    );
    assert_eq!(gantry::runs::checkpoint_steps(&dir), [5], "later checkpoints are gone");
    let events = gantry::runs::read_events(&dir);
    assert_eq!((events.len(), events[0].to_step), (1, Some(5)), "{events:?}");
}

#[test]
fn fork_from_an_older_checkpoint_starts_a_run_from_it() {
    let (mut harness, runs, parent) = finished_run_with_step_five_picked();
    harness.get_by_role_and_label(Role::Button, "Fork from it").click();
    wait_until(&mut harness, "the child run", |h| {
        h.state().viewed_run().is_some_and(|d| d != parent)
    });
    let child = harness.state().viewed_run().unwrap().to_path_buf();
    let meta = gantry::runs::RunMeta::read(&child).unwrap();
    assert_eq!(
        (meta.parent.as_deref(), meta.fork_step),
        (Some(parent.as_path()), Some(5))
    );
    assert!(child.starts_with(runs.path()));

    // A fork of the fork (from step 5 again, still picked) is named after the first run and its own step, not
    // after the whole chain.
    wait_until(&mut harness, "the child's finish", |h| {
        state(h) == Some(RunState::Finished)
    });
    harness.run_steps(2);
    harness.get_by_role_and_label(Role::Button, "Fork from it").click();
    wait_until(&mut harness, "the grandchild run", |h| {
        h.state().viewed_run().is_some_and(|d| d != child)
    });
    let grandchild = gantry::runs::dir_name(harness.state().viewed_run().unwrap());
    let first = gantry::runs::dir_name(&parent);
    assert!(grandchild.starts_with(&format!("{first}-fork5-")), "{grandchild}");
    assert_eq!(grandchild.matches("-fork").count(), 1, "{grandchild}");
}

/// A finished run of mlp-gan-digits with `settings` on disk whose quality metric scored `fd` at step 10, with a
/// saved sample grid there.
fn scored_run(root: &std::path::Path, name: &str, fd: f64, settings: &[&str]) {
    use gantry::data::ItemShape;
    use gantry::runs::{GridKind, RunDir, RunStatus};
    let mut config = preset("mlp-gan-digits").unwrap();
    for setting in settings {
        config.set(setting).unwrap();
    }
    let dir = root.join(name);
    let mut run = RunDir::create(&dir, &config, &["loss_g", "fd", "confident", "classes"]).unwrap();
    let values = [("loss_g", 1.0), ("fd", fd), ("confident", 0.5), ("classes", 7.0)];
    run.append(&gantry::train::MetricRow {
        step: 10,
        epoch: 0.1,
        wall_s: 1.0,
        values: values.map(|(k, v)| (k.to_string(), v)).into(),
    })
    .unwrap();
    let shape = ItemShape::Image {
        channels: 1,
        height: 4,
        width: 4,
    };
    let grid = gantry::grid::make_grid(&[0.0; 16], shape, 1, 1);
    run.files().save_grid(GridKind::Samples, 10, &grid).unwrap();
    run.set_status(RunStatus::Finished, 10).unwrap();
}

#[test]
fn a_metric_that_never_changes_is_drawn_on_a_range_around_its_value() {
    let (mut harness, _runs) = classes_plotted(&[10, 20, 30]);
    // What keeps the range is not drawn (egui_plot gives a transparent line a colour of its own: red first).
    assert_eq!(red_pixels(&mut harness), 0, "red pixels");
}

#[test]
fn a_metric_measured_once_is_a_marker_on_a_range_around_its_value() {
    let (mut harness, _runs) = classes_plotted(&[10]);
    let image = harness.render().unwrap();
    // The plot's one metric is drawn in the first colour of its palette: its legend's swatch takes 30 pixels
    // of it, the marker as many again (a line of one point drew 0).
    let drawn = image.pixels().filter(|p| p.0[..3] == [70, 150, 255]).count();
    assert!(drawn > 50, "{drawn} pixels of the metric's colour");
}

#[test]
fn a_plot_of_many_metrics_names_them_above_it_instead_of_in_a_legend_over_its_lines() {
    let layers: Vec<String> = ["g", "d"]
        .iter()
        .flat_map(|net| (0..3).map(move |k| format!("grad_norm_{net}.{k}")))
        .collect();
    let row = || layers.iter().map(|name| (name.clone(), 1.0)).collect();
    let (harness, _runs) = viewed_run_of_rows(&layers, vec![(10, row()), (20, row())]);
    for name in &layers {
        assert!(harness.query_by_label(&format!("\u{2014} {name}")).is_some(), "{name}");
    }
}

#[test]
fn a_metric_measured_from_a_later_step_on_is_drawn_on_the_runs_whole_span_of_steps() {
    let rows = (10..=100).step_by(10).map(|step| {
        let mut values = vec![("loss_g".to_string(), 1.0 + step as f64 / 100.0)];
        if step >= 50 {
            values.push(("classes".to_string(), step as f64 / 10.0));
        }
        (step, values)
    });
    let columns = ["loss_g", "classes"].map(String::from);
    let (mut harness, _runs) = viewed_run_of_rows(&columns, rows.collect());
    let ids = ["GAN losses", "Classes the confident samples cover"].map(gantry::app::curves::plot_id);
    wait_until(&mut harness, "the plots", |h| {
        ids.iter().all(|id| egui_plot::PlotMemory::load(&h.ctx, *id).is_some())
    });
    harness.run_steps(2);
    let [losses, classes] = ids.map(|id| {
        let bounds = *egui_plot::PlotMemory::load(&harness.ctx, id).unwrap().bounds();
        (bounds.min()[0], bounds.max()[0])
    });
    assert!(losses.0 < 10.0, "{losses:?}");
    assert_eq!(classes, losses, "step 10 is at one x in both plots");
}

/// A workbench viewing a finished MLP GAN run, "rows", from its folder: its metrics are `columns`, its
/// metric rows `rows` (a step and its values).
fn viewed_run_of_rows(
    columns: &[String],
    rows: Vec<(u64, Vec<(String, f64)>)>,
) -> (Harness<'static, GantryApp>, TempDir) {
    use gantry::runs::{RunDir, RunStatus};
    let runs = tempfile::tempdir().unwrap();
    let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
    let config = preset("mlp-gan-digits").unwrap();
    let mut run = RunDir::create(&runs.path().join("rows"), &config, &columns).unwrap();
    let last = rows.last().map_or(0, |(step, _)| *step);
    for (step, values) in rows {
        run.append(&gantry::train::MetricRow {
            step,
            epoch: 0.1,
            wall_s: 1.0,
            values,
        })
        .unwrap();
    }
    run.write_rows().unwrap();
    run.set_status(RunStatus::Finished, last).unwrap();
    let mut harness = browser_harness(runs.path());
    view_run(&mut harness, "rows");
    (harness, runs)
}

/// A run viewed from its folder whose one metric, "classes", was 10 at each of `steps`, with the plot of it
/// checked to show a range around 10.
fn classes_plotted(steps: &[u64]) -> (Harness<'static, GantryApp>, TempDir) {
    let rows = steps.iter().map(|&step| (step, vec![("classes".to_string(), 10.0)]));
    let (mut harness, runs) = viewed_run_of_rows(&["classes".to_string()], rows.collect());
    let id = gantry::app::curves::plot_id("Classes the confident samples cover");
    wait_until(&mut harness, "the plot", |h| {
        egui_plot::PlotMemory::load(&h.ctx, id).is_some()
    });
    harness.run_steps(2);
    let bounds = *egui_plot::PlotMemory::load(&harness.ctx, id).unwrap().bounds();
    let (low, high) = (bounds.min()[1], bounds.max()[1]);
    // egui_plot alone makes a flat line's range as tall as the plot is wide (20 steps: 0 to 20).
    assert!(low < 10.0 && 10.0 < high && high - low < 3.0, "{low}..{high}");
    (harness, runs)
}

#[test]
fn the_run_list_shows_each_runs_quality_and_the_contact_sheet_ranks_runs_by_it() {
    let (mut harness, _runs) = runs_a_and_b_scored();
    for fd in ["41.2", "12.5"] {
        assert!(harness.query_by_label(fd).is_some(), "the Quality column shows fd {fd}");
    }
    open_contact_sheet(&mut harness, &["a", "b"]);
    harness.get_by_label("Sort by").click();
    harness.run_steps(2);
    harness.get_by_label("quality (fd, best first)").click();
    harness.run_steps(3);
    wait_until(&mut harness, "the sheet's grids", |h| {
        h.query_by_label_contains("1. b, fd 12.5 (step 10)   2. a, fd 41.2 (step 10)")
            .is_some()
    });
}

#[test]
fn the_contact_sheet_sorted_by_name_orders_runs_by_name_not_by_their_labels() {
    let runs = tempfile::tempdir().unwrap();
    scored_run(runs.path(), "a", 10.0, &["optimizer.lr=1e-3"]);
    scored_run(runs.path(), "b", 10.0, &["optimizer.lr=1e-4"]);
    let mut harness = browser_harness(runs.path());
    open_contact_sheet(&mut harness, &["a", "b"]);
    // Labelled by what tells them apart, which sorts the other way ("lr=0.0001" before "lr=0.001").
    wait_until(&mut harness, "the sheet in name order", |h| {
        h.query_by_label_contains("1. lr=0.001 (step 10)   2. lr=0.0001 (step 10)")
            .is_some()
    });
}

#[test]
fn a_b_compare_says_which_run_has_no_grids_of_the_kind_shown() {
    use gantry::runs::{GridKind, RunDir};
    let runs = tempfile::tempdir().unwrap();
    scored_run(runs.path(), "a", 41.2, &[]);
    scored_run(runs.path(), "b", 12.5, &[]);
    // "b" saved reconstructions only, as a plain autoencoder does.
    let b = runs.path().join("b");
    std::fs::remove_dir_all(b.join(GridKind::Samples.folder())).unwrap();
    let grid = gantry::grid::ImageGrid::filled(6, 6, 100);
    let run = RunDir::reopen(&b, 10).unwrap();
    run.files().save_grid(GridKind::Reconstructions, 10, &grid).unwrap();
    let mut harness = browser_harness(runs.path());
    tick(&mut harness, &["a", "b"]);
    harness.get_by_label("A/B compare").click();
    harness.run_steps(3);
    for (kind, wanted) in [
        ("samples", "saved no sample grids"),
        ("reconstructions", "saved no reconstruction grids"),
    ] {
        harness.get_by_label(kind).click();
        harness.run_steps(2);
        wait_until(&mut harness, wanted, |h| h.query_by_label_contains(wanted).is_some());
        assert!(harness.query_by_label_contains("cannot read").is_none());
    }
}

#[test]
fn compare_and_the_contact_sheet_show_autoencoders_reconstructions() {
    use gantry::runs::{GridKind, RunDir};
    let runs = tempfile::tempdir().unwrap();
    // Two plain autoencoders: reconstructions saved, no samples.
    for name in ["a", "b"] {
        scored_run(runs.path(), name, 41.2, &["model.kind=\"ae\""]);
        let dir = runs.path().join(name);
        std::fs::remove_dir_all(dir.join(GridKind::Samples.folder())).unwrap();
        let run = RunDir::reopen(&dir, 10).unwrap();
        run.files()
            .save_grid(
                GridKind::Reconstructions,
                10,
                &gantry::grid::ImageGrid::filled(6, 6, 100),
            )
            .unwrap();
    }
    let mut harness = browser_harness(runs.path());
    open_contact_sheet(&mut harness, &["a", "b"]);
    wait_until(&mut harness, "the sheet of reconstructions", |h| {
        h.query_by_label_contains("1. a (step 10)").is_some()
    });
    harness.get_by_label("A/B compare").click();
    harness.run_steps(3);
    wait_until(&mut harness, "both grids", |h| {
        h.query_by_label("grid A").is_some() && h.query_by_label("grid B").is_some()
    });
    assert!(harness.query_by_label_contains("saved no").is_none());
    // Asked for samples, the sheet says the runs have none (it asked for runs to be ticked).
    harness.get_by_label("Contact sheet").click();
    harness.run_steps(2);
    harness.get_by_label("samples").click();
    harness.run_steps(3);
    assert!(harness
        .query_by_label_contains("None of the 2 runs saved sample grids")
        .is_some());
}

#[test]
fn a_b_wipe_draws_a_line_where_it_splits() {
    let (mut harness, _runs) = runs_a_and_b_scored();
    tick(&mut harness, &["a", "b"]);
    harness.get_by_label("A/B compare").click();
    harness.run_steps(3);
    let white = |harness: &mut Harness<'_, GantryApp>, mode: &str| {
        harness.get_by_label(mode).click();
        harness.run_steps(3);
        wait_until(harness, "the composite", |h| {
            h.query_by_label("A/B composite").is_some()
        });
        let image = harness.render().unwrap();
        image.pixels().filter(|p| p.0[..3] == [255, 255, 255]).count()
    };
    // The difference view has the same captions and grid (grey: the runs' grids are alike).
    let (wipe, difference) = (white(&mut harness, "wipe"), white(&mut harness, "difference"));
    assert!(
        wipe > difference + 40,
        "white pixels: wipe {wipe}, difference {difference}"
    );
}

#[test]
fn the_contact_sheet_shows_the_newest_grids_until_a_step_is_picked() {
    use gantry::runs::{GridKind, RunDir};
    let (mut harness, runs) = contact_sheet_of_run_a();
    // The run saves a newer grid (as one training in a terminal would) and the list is read again.
    let grid = gantry::grid::ImageGrid::filled(6, 6, 200);
    let run = RunDir::reopen(&runs.path().join("a"), 10).unwrap();
    run.files().save_grid(GridKind::Samples, 20, &grid).unwrap();
    harness.get_by_label("Refresh").click();
    harness.run_steps(2);
    settle(&mut harness);
    wait_until(&mut harness, "the sheet at the newer step", |h| {
        h.query_by_label_contains("1. a (step 20)").is_some()
    });
}

#[test]
fn live_frames_setting_paces_the_frames_a_training_run_asks_for() {
    let (mut harness, _runs) = workbench("mlp-gan-digits", |s| s.config.train.steps = 100_000);
    // Every repaint request's delay: a running trainer asks for frames through the pacer's waker.
    let delays: std::sync::Arc<std::sync::Mutex<Vec<Duration>>> = Default::default();
    let seen = delays.clone();
    harness
        .ctx
        .set_repaint_observer(move |info| seen.lock().unwrap().push(info.delay));
    harness.get_by_role_and_label(Role::ComboBox, "Live frames").click();
    harness.run_steps(2);
    harness.get_by_label("2 per s").click();
    harness.run_steps(2);
    assert_eq!(
        harness.state().settings().live_refresh,
        gantry::app::pacing::LiveRefresh::PerSecond(2)
    );
    start(&mut harness);
    delays.lock().unwrap().clear();
    let before = steps(&harness);
    wait_until(&mut harness, "more steps", |h| steps(h) > before + 20);
    let delays = delays.lock().unwrap().clone();
    let half_second = Duration::from_millis(500);
    assert!(
        delays.contains(&half_second),
        "the trainer asks for frames 0.5 s ahead: {delays:?}"
    );
    assert!(
        delays.iter().all(|d| d.is_zero() || *d >= half_second),
        "no request for a frame sooner than the setting allows, but for input and the app's own: {delays:?}"
    );
}

#[test]
fn latent_tab_places_items_and_a_click_on_the_plane_decodes_it() {
    let (mut harness, _runs) = trained_workbench("vae-digits", |s| {
        s.config.model.latent = 2;
        s.config.train.steps = 20;
        s.config.train.sample_every = 10;
    });
    open_latent_tab(&mut harness);
    let map = harness
        .state()
        .run()
        .snapshot()
        .and_then(|s| s.latent.clone())
        .expect("a VAE's map");
    assert!(map.decoded.is_none());
    assert!(harness
        .query_by_label_contains("the latent space's own two axes")
        .is_some());
    assert!(
        harness.query_by_label("latent manifold").is_some(),
        "a 2-D latent space's decodes over the plane"
    );
    // A click in the middle of the plane decodes the point there.
    harness.get_by_label("latent plane").click();
    wait_until(&mut harness, "the decode", |h| {
        h.state()
            .run()
            .snapshot()
            .is_some_and(|s| s.latent.as_ref().is_some_and(|m| m.decoded.is_some()))
    });
    harness.run_steps(2);
    let decoded = harness
        .state()
        .run()
        .snapshot()
        .unwrap()
        .latent
        .clone()
        .unwrap()
        .decoded
        .unwrap();
    let [x0, x1, y0, y1] = gantry::train::latent_views::padded_bounds(&map.points);
    let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
    assert!(
        (decoded.0[0] - cx).abs() < 0.15 * (x1 - x0) && (decoded.0[1] - cy).abs() < 0.15 * (y1 - y0),
        "the click decodes where it fell: {:?} in {:?}",
        decoded.0,
        [x0, x1, y0, y1]
    );
    assert!(harness.query_by_label("decoded image").is_some(), "the decode is shown");
    assert!(harness.query_by_label_contains("Decoded at").is_some());
}

#[test]
fn latent_walk_sliders_set_a_samples_latent_values_and_redraw_it() {
    let (mut harness, _runs) = trained_workbench("mlp-gan-digits", |s| {
        s.config.train.steps = 20;
        s.config.train.sample_every = 10;
    });
    open_latent_tab(&mut harness);
    let walk = |h: &Harness<'_, GantryApp>| h.state().run().snapshot().and_then(|s| s.walk.clone()).expect("a walk");
    let before = walk(&harness);
    assert_eq!(
        (before.sample, before.values.len()),
        (0, 6),
        "sample 1's first six dimensions"
    );
    assert!(
        before.values[0].abs() > 0.05,
        "a random start, not the slider's middle: {}",
        before.values[0]
    );
    // A click in the middle of z1's slider sets it to 0; the run draws the sample with it.
    harness.get_by_role_and_label(Role::Slider, "z1").click();
    wait_until(&mut harness, "the walked image", |h| walk(h).values[0].abs() < 0.05);
    let after = walk(&harness);
    assert_eq!(after.values[1..], before.values[1..], "the other dimensions stay");
    assert_ne!(after.image.rgba, before.image.rgba, "G's image of the changed vector");
    // The sample's own values back.
    harness.get_by_label("Back to the sample").click();
    wait_until(&mut harness, "the reset", |h| walk(h).values == before.values);
    harness.run_steps(2);
    assert_eq!(walk(&harness).image.rgba, before.image.rgba);
}

#[test]
fn points_drawn_on_the_canvas_become_the_training_data() {
    let (mut harness, _runs) = workbench("mlp-gan-ring", |s| {
        s.config.data.source = "drawn".into();
        s.config.train.steps = 10;
        s.config.train.sample_every = 5;
    });
    harness.run_steps(3);
    assert!(!enabled(&harness, "Start"), "nothing to train on yet");
    assert!(harness.query_by_label_contains("at least 2 points").is_some());
    // Presses in the middle of the plane spray points around its centre, within the brush.
    harness.get_by_label("drawing canvas").scroll_to_me();
    harness.run_steps(2);
    for _ in 0..3 {
        harness.get_by_label("drawing canvas").click();
        harness.run_steps(1);
    }
    let drawn = harness.state().settings().config.data.points.clone();
    assert!(drawn.len() >= 12, "{} points", drawn.len());
    let radius = |p: &[f32; 2]| p[0].hypot(p[1]);
    assert!(drawn.iter().all(|p| radius(p) < 0.25), "{drawn:?}");
    train_to_budget(&mut harness);
    let real = harness.state().run().snapshot().unwrap().points.clone().unwrap().real;
    // The preset's own ring lies at radius 0.8.
    assert!(
        real.iter().all(|p| radius(p) < 0.4),
        "trained on what was drawn: {real:?}"
    );
    let dir = harness.state().run().dir().unwrap().to_path_buf();
    let saved = gantry::runs::RunDir::read_config(&dir).unwrap();
    assert_eq!(saved.data.points, drawn, "the drawing is saved with the run");
    harness.get_by_label("Clear points").click();
    harness.run_steps(1);
    assert!(harness.state().settings().config.data.points.is_empty());
}
