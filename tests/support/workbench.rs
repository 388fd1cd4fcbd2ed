//! The workbench in a headless egui_kittest harness, shared by the UI tests and the examples that render or
//! time it (included with `#[path]`, since tests and examples cannot share a module otherwise).

use eframe::egui;
use egui::accesskit::Role;
use egui_kittest::kittest::{By, NodeT as _, Queryable as _};
use egui_kittest::Harness;
use gantry::app::settings::Settings;
use gantry::app::{AppOptions, GantryApp};
use std::path::Path;

/// The matrix-product speed the estimates in the panels assume, so that pictures do not vary by machine.
pub const SPEED: f64 = 2e10;

/// The window size the tests, snapshots and screenshots use.
pub const WINDOW: egui::Vec2 = egui::vec2(1440.0, 900.0);

/// The workbench with `settings`, writing its runs under `runs_dir`; each harness step is one frame.
pub fn workbench_harness(settings: Settings, runs_dir: &Path) -> Harness<'static, GantryApp> {
    harness_with(
        settings,
        AppOptions {
            runs_dir: Some(runs_dir.to_path_buf()),
            machine_speed: Some(SPEED),
            no_system_dialogs: true,
            ..AppOptions::default()
        },
    )
}

/// The workbench with `settings` and `options`.
pub fn harness_with(settings: Settings, options: AppOptions) -> Harness<'static, GantryApp> {
    let app = GantryApp::with_settings(settings, options);
    Harness::builder().with_size(WINDOW).build_ui_state(
        |ui, app: &mut GantryApp| {
            app.tick(ui.ctx());
            app.show(ui);
        },
        app,
    )
}

/// Opens the run list's sweep form and types `settings` into its fields, one `key=values` each.
#[allow(dead_code)]
pub fn type_sweep(harness: &mut Harness<'_, GantryApp>, settings: &[&str]) {
    harness.get_by_label("Sweep...").click();
    harness.run_steps(2);
    for (i, text) in settings.iter().enumerate() {
        let label = format!("Sweep setting {}", i + 1);
        harness.get_by_label(&label).focus();
        harness.get_by_label(&label).type_text(text);
    }
    harness.run_steps(2);
}

/// A run's name in the run browser (the name also labels the run's tick box, which queries leave out unless
/// asked). Not every user of the harness looks for runs.
#[allow(dead_code)]
pub fn run_name<'h>(harness: &'h Harness<'_, GantryApp>, name: &'h str) -> egui_kittest::Node<'h> {
    harness
        .query_all(By::new().label(name).include_labels())
        .find(|n| n.accesskit_node().role() != Role::CheckBox)
        .expect("the run is listed")
}

/// Opens the Latent space tab and steps until the viewed run's snapshot carries its latent views (the open tab
/// asks the run for them: an autoencoder's map or a GAN's walk), then draws them.
#[allow(dead_code)]
pub fn open_latent_tab(harness: &mut Harness<'_, GantryApp>) {
    harness.get_by_label("Latent space").click();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let made = |h: &Harness<'_, GantryApp>| {
        h.state()
            .run()
            .snapshot()
            .is_some_and(|s| s.latent.is_some() || s.walk.is_some())
    };
    while !made(harness) {
        assert!(std::time::Instant::now() < deadline, "the run made no latent views");
        harness.step();
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    harness.run_steps(2);
}
