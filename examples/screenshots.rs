//! Renders the workbench mid-training and saves the pictures in `screenshots/`:
//!
//!     cargo run --example screenshots
//!
//! Each scene starts a preset through the real app (the same headless wgpu renderer as the UI tests; on a
//! Linux box without a GPU that is Mesa's lavapipe: `apt-get install mesa-vulkan-drivers libvulkan1`),
//! trains until a step count, hovers a loss plot and saves the frame. Runs go to a temporary directory.

use eframe::egui;
use egui::accesskit::Role;
use egui_kittest::kittest::{NodeT as _, Queryable as _};
use egui_kittest::Harness;
use gantry::app::settings::{Settings, Theme};
use gantry::app::GantryApp;
use gantry::presets::{preset, DEFAULT_PRESET};
use std::path::Path;
use tempfile::TempDir;

#[path = "../tests/support/workbench.rs"]
mod workbench;

use std::time::{Duration, Instant};
use workbench::{open_latent_tab, run_name, type_sweep, workbench_harness};

struct Scene {
    file: &'static str,
    preset: &'static str,
    /// Shot once the run has trained this many steps (it keeps running).
    at_step: u64,
    configure: fn(&mut Settings),
}

const SCENES: [Scene; 4] = [
    Scene {
        file: "dcgan-digits.png",
        preset: DEFAULT_PRESET,
        at_step: 1000,
        // The default preset a minute in: digits of every class, the quality scores falling.
        configure: |s| {
            s.config.train.sample_every = 20;
        },
    },
    Scene {
        file: "vae-reconstructions.png",
        preset: "vae-digits",
        at_step: 400,
        // The loss falls over two orders of magnitude: the log scale shows all of it.
        configure: |s| {
            s.theme = Theme::Light;
            s.curves.log_scale = true;
            s.config.train.sample_every = 20;
            s.config.train.eval_every = 25;
        },
    },
    Scene {
        file: "mlp-gan-ring.png",
        preset: "mlp-gan-ring",
        // Early on the generator sits on one or two modes; by now it has spread over most of the ring.
        at_step: 1500,
        configure: |s| {
            s.config.data.count = 4000;
            s.config.train.sample_every = 10;
        },
    },
    Scene {
        file: "ganlab-circle.png",
        preset: "ganlab-circle",
        // GAN Lab's defaults: D's decision surface under the points, G's latent grid folded onto the ring.
        at_step: 1500,
        configure: |_| {},
    },
];

/// Names of the pictures of a learning-rate sweep: its curves overlaid, and its contact sheet.
const SWEEP_SHOTS: [&str; 2] = ["compare-runs.png", "contact-sheet.png"];
/// The Health view of a DCGAN whose learning rate breaks it.
const HEALTH_SHOT: &str = "health-divergence.png";
/// The Latent space tab of a VAE with a two-dimensional latent space on digits.
const LATENT_SHOT: &str = "vae-latent-space.png";
/// The latent walk of the default DCGAN.
const WALK_SHOT: &str = "dcgan-latent-walk.png";
/// An MLP GAN learning a distribution drawn on the Data section's canvas.
const DRAWN_SHOT: &str = "mlp-gan-drawn.png";

/// Writes every picture, or only those whose file names contain an argument (`-- sweep`).
fn main() {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("screenshots");
    std::fs::create_dir_all(&out).expect("can create screenshots/");
    let filters: Vec<String> = std::env::args().skip(1).collect();
    let wanted = |file: &str| filters.is_empty() || filters.iter().any(|f| file.contains(f.as_str()));
    for scene in SCENES.iter().filter(|s| wanted(s.file)) {
        let path = out.join(scene.file);
        shoot(scene, &path);
    }
    if SWEEP_SHOTS.iter().any(|f| wanted(f)) {
        shoot_sweep(&out);
    }
    if wanted(HEALTH_SHOT) {
        shoot_health(&out.join(HEALTH_SHOT));
    }
    if wanted(LATENT_SHOT) {
        shoot_latent(&out.join(LATENT_SHOT));
    }
    if wanted(WALK_SHOT) {
        shoot_walk(&out.join(WALK_SHOT));
    }
    if wanted(DRAWN_SHOT) {
        shoot_drawn(&out.join(DRAWN_SHOT));
    }
}

/// The ring preset (G at a lower learning rate, one D step) on a heart drawn as a user would trace it (points along the
/// curve), after 2,000 steps, with the canvas in view.
fn shoot_drawn(path: &Path) {
    let (mut harness, _runs) = started("mlp-gan-ring", |s| {
        s.config.data.source = "drawn".into();
        s.config.data.points = (0..400)
            .map(|k| {
                let t = k as f32 / 400.0 * std::f32::consts::TAU;
                let x = 16.0 * t.sin().powi(3);
                let y = 13.0 * t.cos() - 5.0 * (2.0 * t).cos() - 2.0 * (3.0 * t).cos() - (4.0 * t).cos();
                [x / 20.0, y / 20.0 + 0.1]
            })
            .collect();
        s.config.train.sample_every = 10;
        // G at 2e-4 against D's 1e-3, one D step per G step, spreads over the whole heart (KL 0.2-0.3 bits by
        // step 1900, seeds 1-3); both at the ring's 1e-3, or both at 2e-4, collapse onto one stretch of it, and
        // the ring's two D steps leave the heart's tip uncovered (KL 2.4 bits at step 2000).
        s.config.optimizer.lr = 2e-4;
        s.config.train.d_steps = 1;
    });
    trained_to(&mut harness, 2000);
    harness.get_by_label("drawing canvas").scroll_to_me();
    harness.run_steps(4);
    save_frame(&mut harness, path);
}

/// The default DCGAN after 1,000 steps, one sample's first latent dimension moved by its slider.
fn shoot_walk(path: &Path) {
    let (mut harness, _runs) = started(DEFAULT_PRESET, |s| s.config.train.steps = 1000);
    wait_until(&mut harness, |h| {
        h.state().run().state() == Some(gantry::train::worker::RunState::Finished)
    });
    open_latent_tab(&mut harness);
    harness.get_by_role_and_label(Role::Slider, "z1").click();
    wait_until(&mut harness, |h| {
        h.state()
            .run()
            .snapshot()
            .and_then(|s| s.walk.as_ref())
            .is_some_and(|w| w.values[0].abs() < 0.05)
    });
    harness.run_steps(4);
    save_frame(&mut harness, path);
}

/// A VAE with two latent dimensions after 3,000 steps: the digits' clusters on the latent plane, a point
/// picked and decoded, and the grid of decodes over the plane; an item's image under the pointer.
fn shoot_latent(path: &Path) {
    let (mut harness, _runs) = started("vae-digits", |s| {
        s.config.model.latent = 2;
        s.config.train.steps = 3000;
        s.config.train.sample_every = 500;
    });
    wait_until(&mut harness, |h| {
        h.state().run().state() == Some(gantry::train::worker::RunState::Finished)
    });
    open_latent_tab(&mut harness);
    let plane = harness.get_by_label("latent plane").rect();
    harness.get_by_label("latent plane").click();
    wait_until(&mut harness, |h| {
        h.state()
            .run()
            .snapshot()
            .is_some_and(|s| s.latent.as_ref().is_some_and(|m| m.decoded.is_some()))
    });
    // Hover the first item, to show its image.
    let map = harness
        .state()
        .run()
        .snapshot()
        .and_then(|s| s.latent.clone())
        .expect("the map");
    let bounds = gantry::train::latent_views::padded_bounds(&map.points);
    let at = map.points[0];
    let fraction = egui::vec2(
        (at[0] - bounds[0]) / (bounds[1] - bounds[0]),
        (bounds[3] - at[1]) / (bounds[3] - bounds[2]),
    );
    harness.hover_at(plane.min + fraction * plane.size());
    harness.run_steps(6);
    save_frame(&mut harness, path);
}

/// The DCGAN preset at 2,500 times its learning rate: G's gradients die within a few steps, the run rolls
/// back with its rates halved (more than once), and the Health view shows what happened.
fn shoot_health(path: &Path) {
    let (mut harness, _runs) = started("dcgan-digits", |s| {
        s.config.optimizer.lr = 0.5;
        s.config.health.every = 10;
    });
    wait_until(&mut harness, |h| {
        let run = h.state().run();
        run.history().events().len() >= 2 && run.step() >= 40
    });
    harness.get_by_label("Health").click();
    harness.run_steps(4);
    save_frame(&mut harness, path);
}

/// Queues a learning-rate sweep of a narrow DCGAN through the run browser, lets it finish, then shoots the
/// overlaid curves and the contact sheet sorted by learning rate.
fn shoot_sweep(out: &Path) {
    let runs = tempfile::tempdir().expect("a temporary directory");
    let mut settings = Settings {
        config: preset("dcgan-digits").expect("a shipped preset"),
        preset: "dcgan-digits".into(),
        ..Settings::default()
    };
    settings.config.model.base_width = 16;
    settings.config.train.steps = 300;
    settings.config.train.sample_every = 50;
    settings.browser.parallel = 3;
    let mut harness = workbench_harness(settings, runs.path());
    wait_until(&mut harness, |h| {
        !h.get_by_label("Start").accesskit_node().is_disabled()
    });
    type_sweep(&mut harness, &["optimizer.lr=2e-5..2e-3:3"]);
    harness.get_by_label("Queue 3 runs").click();
    wait_until(&mut harness, |h| {
        h.state().run().state() == Some(gantry::train::worker::RunState::Finished)
            && gantry::runs::list_runs(runs.path())
                .0
                .iter()
                .all(|r| r.meta.status == gantry::runs::RunStatus::Finished)
    });
    harness.run_steps(4);
    wait_until(&mut harness, |h| h.state().runs_settled());
    // The middle learning rate learns best: its pictures go beside the curves.
    let middle = harness
        .state()
        .listed_runs()
        .into_iter()
        .find(|r| (r.config.optimizer.lr - 2e-4).abs() < 1e-9)
        .expect("the sweep's middle run")
        .meta
        .name;
    run_name(&harness, &middle).scroll_to_me();
    harness.run_steps(2);
    run_name(&harness, &middle).click();
    harness.run_steps(4);
    let save = |harness: &mut Harness<'_, GantryApp>, file: &str| {
        harness.remove_cursor();
        harness.run_steps(4);
        save_frame(harness, &out.join(file));
    };
    save(&mut harness, SWEEP_SHOTS[0]);
    harness.get_by_label("Contact sheet").click();
    harness.run_steps(2);
    harness.get_by_label("Sort by").click();
    harness.run_steps(2);
    harness
        .query_all_by_label("lr")
        .last()
        .expect("the sort choice")
        .click();
    save(&mut harness, SWEEP_SHOTS[1]);
}

/// The workbench on a preset changed by `configure`, its run started (runs go to the returned directory).
fn started(preset_name: &str, configure: impl FnOnce(&mut Settings)) -> (Harness<'static, GantryApp>, TempDir) {
    let runs = tempfile::tempdir().expect("a temporary directory");
    let mut settings = Settings {
        config: preset(preset_name).expect("a shipped preset"),
        preset: preset_name.into(),
        ..Settings::default()
    };
    configure(&mut settings);
    let mut harness = workbench_harness(settings, runs.path());
    wait_until(&mut harness, |h| {
        !h.get_by_label("Start").accesskit_node().is_disabled()
    });
    harness.get_by_label("Start").click();
    (harness, runs)
}

fn shoot(scene: &Scene, path: &Path) {
    let (mut harness, _runs) = started(scene.preset, scene.configure);
    trained_to(&mut harness, scene.at_step);
    // Hover the first loss plot, a little right of its middle, to show the read-out.
    let plot = harness.get_by_role_and_label(Role::Slider, "Smoothing").rect();
    harness.hover_at(egui::pos2(plot.left() + 260.0, plot.bottom() + 160.0));
    harness.run_steps(4);
    save_frame(&mut harness, path);
}

/// Steps until the run has trained `step` steps and its pictures are from no more than 10 steps before.
fn trained_to(harness: &mut Harness<'_, GantryApp>, step: u64) {
    wait_until(harness, |h| {
        let run = h.state().run();
        run.step() >= step && run.snapshot().is_some_and(|s| s.step + 10 >= step)
    });
}

/// Renders the frame and writes it to `path`.
fn save_frame(harness: &mut Harness<'_, GantryApp>, path: &Path) {
    let image = harness.render().expect("the wgpu renderer draws the frame");
    image.save(path).expect("can write the PNG");
    println!("wrote {}", path.display());
}

fn wait_until(harness: &mut Harness<'_, GantryApp>, done: impl Fn(&Harness<'_, GantryApp>) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while !done(harness) {
        assert!(Instant::now() < deadline, "the scene took too long");
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
}
