//! What the workbench remembers across restarts (through eframe's storage).

use super::browser::BrowserSettings;
use super::history::XAxis;
use super::pacing::LiveRefresh;
use crate::config::RunConfig;
use crate::presets::{preset, DEFAULT_PRESET};
use eframe::egui;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The key the settings are stored under.
pub const STORAGE_KEY: &str = "gantry.settings";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Theme {
    #[default]
    Dark,
    Light,
}

impl From<Theme> for egui::Theme {
    fn from(theme: Theme) -> Self {
        match theme {
            Theme::Dark => egui::Theme::Dark,
            Theme::Light => egui::Theme::Light,
        }
    }
}

/// Which left-panel sections are open.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sections {
    pub experiment: bool,
    pub data: bool,
    pub optimisation: bool,
}

impl Default for Sections {
    fn default() -> Self {
        Sections {
            experiment: true,
            data: true,
            optimisation: true,
        }
    }
}

/// The title of the images/s plot, hidden until asked for.
pub const THROUGHPUT_PLOT: &str = "Throughput (images/s)";

/// How the loss curves are drawn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CurveSettings {
    /// EMA weight, 0 (raw) to 0.999, as TensorBoard's smoothing slider.
    pub smoothing: f64,
    pub log_scale: bool,
    pub x_axis: XAxis,
    /// Titles of the plots the user hid.
    pub hidden: Vec<String>,
}

impl Default for CurveSettings {
    fn default() -> Self {
        CurveSettings {
            smoothing: 0.6,
            log_scale: false,
            x_axis: XAxis::Step,
            // Throughput is in the status bar already; its plot is one click away.
            hidden: vec![THROUGHPUT_PLOT.to_string()],
        }
    }
}

/// How the sample and reconstruction grids are scaled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GridZoom {
    /// Scale the grids to the space they have.
    pub fit: bool,
    /// Screen pixels per image pixel when not fitting.
    pub factor: f32,
}

impl Default for GridZoom {
    fn default() -> Self {
        GridZoom { fit: true, factor: 2.0 }
    }
}

/// Which views of the model the 2D scatter draws under and over its points.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ToyViews {
    pub heatmap: bool,
    pub manifold: bool,
    pub arrows: bool,
}

impl Default for ToyViews {
    fn default() -> Self {
        ToyViews {
            heatmap: true,
            manifold: true,
            arrows: false,
        }
    }
}

/// What the central area shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CentralView {
    /// Curves and pictures of the viewed run (curves of every ticked run overlaid).
    #[default]
    Training,
    /// Two grids, A and B.
    Compare,
    /// The grids of the ticked runs at one step.
    ContactSheet,
    /// The health rules of the viewed run, its snapshots and what the checks did.
    Health,
    /// The latent plane of the viewed autoencoder.
    Latent,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The config the panels edit: the next run's, and the live run's for settings that apply live.
    pub config: RunConfig,
    /// The preset the config came from; names run directories while the model and data are its own.
    pub preset: String,
    pub sections: Sections,
    pub curves: CurveSettings,
    pub zoom: GridZoom,
    pub toy: ToyViews,
    pub theme: Theme,
    /// How often training news redraws the window.
    pub live_refresh: LiveRefresh,
    pub view: CentralView,
    pub browser: BrowserSettings,
    /// The folder runs are listed from and written to; `None` is the platform's data directory.
    pub runs_dir: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            config: preset(DEFAULT_PRESET).expect("the default preset is valid"),
            preset: DEFAULT_PRESET.to_string(),
            sections: Sections::default(),
            curves: CurveSettings::default(),
            zoom: GridZoom::default(),
            toy: ToyViews::default(),
            theme: Theme::default(),
            live_refresh: LiveRefresh::default(),
            view: CentralView::default(),
            browser: BrowserSettings::default(),
            runs_dir: None,
        }
    }
}

impl Settings {
    /// The panels take a run's settings (the run put in view): the preset they came from is the one they
    /// match, if any. The one picked before named new runs after it ("quick-dcgan-digits" for a
    /// dcgan-digits run's settings).
    pub fn take_run_config(&mut self, config: RunConfig) {
        self.preset = crate::presets::matching(&config).unwrap_or_default().to_string();
        self.config = config;
    }

    /// A new run's name: the preset's while the model and data are still the preset's, else the model and
    /// the data's own name ("denoising-ae-cats" for a denoising AE on `folder:/photos/cats`), so that a name
    /// never claims data the run did not train on.
    pub fn run_name(&self) -> String {
        let (model, data) = (&self.config.model, &self.config.data);
        if preset(&self.preset).is_ok_and(|p| p.model.kind == model.kind && p.data.source == data.source) {
            return self.preset.clone();
        }
        // The last part of a path or of `toy:NAME`.
        let data_name = data
            .source
            .rsplit(['/', '\\', ':'])
            .find(|part| !part.is_empty())
            .unwrap_or("data");
        format!("{}-{}", slug(model.kind.label()), slug(data_name))
    }
}

/// `text` in lower case with each run of other characters than letters and digits as one `-`.
fn slug(text: &str) -> String {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    words.join("-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelKind;

    #[test]
    fn a_runs_settings_name_new_runs_after_the_preset_they_match_not_the_one_picked_before() {
        let mut settings = Settings {
            config: preset("quick-dcgan-digits").unwrap(),
            preset: "quick-dcgan-digits".into(),
            ..Settings::default()
        };
        let mut run = preset("dcgan-digits").unwrap();
        settings.take_run_config(run.clone());
        assert_eq!(settings.run_name(), "dcgan-digits");
        run.optimizer.lr = 1e-3;
        settings.take_run_config(run);
        assert_eq!(settings.run_name(), "dcgan-digits", "the model's and data's names");
        settings.preset = "quick-dcgan-digits".into();
        assert_eq!(
            settings.run_name(),
            "quick-dcgan-digits",
            "what picking the preset gave"
        );
    }

    #[test]
    fn a_run_is_named_after_its_preset_until_its_model_or_data_change() {
        let mut settings = Settings {
            config: preset("denoising-ae-shapes").unwrap(),
            preset: "denoising-ae-shapes".into(),
            ..Settings::default()
        };
        settings.config.optimizer.lr = 3e-4;
        assert_eq!(settings.run_name(), "denoising-ae-shapes", "a tuned preset");
        settings.config.data.source = "folder:/photos/My Cats/".into();
        assert_eq!(settings.run_name(), "denoising-ae-my-cats");
        settings.config.model.kind = ModelKind::ConvVae;
        settings.config.data.source = "toy:ring".into();
        assert_eq!(settings.run_name(), "conv-vae-ring");
    }

    #[test]
    fn settings_round_trip_and_missing_fields_take_defaults() {
        let mut settings = Settings::default();
        settings.curves.smoothing = 0.9;
        settings.theme = Theme::Light;
        settings.config.optimizer.lr = 1e-3;
        let text = serde_json::to_string(&settings).unwrap();
        assert_eq!(serde_json::from_str::<Settings>(&text).unwrap(), settings);
        // Settings written by an older version lack newer fields; those start at their defaults.
        let old: Settings = serde_json::from_str(r#"{"theme": "Light", "curves": {"log_scale": true}}"#).unwrap();
        assert_eq!(old.theme, Theme::Light);
        assert!(old.curves.log_scale);
        assert_eq!(old.curves.smoothing, CurveSettings::default().smoothing);
        assert_eq!(old.config, Settings::default().config);
    }
}
