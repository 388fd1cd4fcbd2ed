//! The presets shipped in `assets/presets/`, compiled into the binary so they work from anywhere.

use crate::config::RunConfig;

/// (name, TOML text) of every shipped preset.
pub const PRESETS: [(&str, &str); 11] = [
    (
        "conditional-dcgan-digits",
        include_str!("../assets/presets/conditional-dcgan-digits.toml"),
    ),
    (
        "quick-dcgan-digits",
        include_str!("../assets/presets/quick-dcgan-digits.toml"),
    ),
    ("mlp-gan-digits", include_str!("../assets/presets/mlp-gan-digits.toml")),
    ("dcgan-digits", include_str!("../assets/presets/dcgan-digits.toml")),
    ("mlp-gan-ring", include_str!("../assets/presets/mlp-gan-ring.toml")),
    ("ganlab-circle", include_str!("../assets/presets/ganlab-circle.toml")),
    ("vae-digits", include_str!("../assets/presets/vae-digits.toml")),
    ("conv-ae-digits", include_str!("../assets/presets/conv-ae-digits.toml")),
    (
        "denoising-ae-shapes",
        include_str!("../assets/presets/denoising-ae-shapes.toml"),
    ),
    (
        "quick-dcgan64-color",
        include_str!("../assets/presets/quick-dcgan64-color.toml"),
    ),
    (
        "dcgan64-color-shapes",
        include_str!("../assets/presets/dcgan64-color-shapes.toml"),
    ),
];

/// The preset the workbench and `gantry train` start from.
pub const DEFAULT_PRESET: &str = "conditional-dcgan-digits";

pub fn preset(name: &str) -> Result<RunConfig, String> {
    let (_, text) = PRESETS.iter().find(|(n, _)| *n == name).ok_or_else(|| {
        let names: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
        format!("unknown preset '{name}': expected one of {}", names.join(", "))
    })?;
    RunConfig::from_toml(text).map_err(|e| format!("preset {name}: {e}"))
}

/// The shipped preset whose settings are exactly `config` (none for edited settings or another run's).
pub fn matching(config: &RunConfig) -> Option<&'static str> {
    static PARSED: std::sync::OnceLock<Vec<(&'static str, RunConfig)>> = std::sync::OnceLock::new();
    let parsed = PARSED.get_or_init(|| {
        PRESETS
            .iter()
            .map(|(name, _)| (*name, preset(name).expect("shipped presets are valid")))
            .collect()
    });
    parsed.iter().find(|(_, c)| c == config).map(|(name, _)| *name)
}

/// A preset's one-line description: its first comment line.
pub fn description(text: &str) -> &str {
    text.lines().find_map(|l| l.strip_prefix("# ")).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses_validates_and_describes_itself() {
        for (name, text) in PRESETS {
            preset(name).unwrap();
            assert!(!description(text).is_empty(), "{name} has no description");
        }
        assert!(preset("nope").unwrap_err().contains("dcgan-digits"));
        let mut edited = preset("vae-digits").unwrap();
        assert_eq!(matching(&edited), Some("vae-digits"));
        edited.optimizer.lr *= 2.0;
        assert_eq!(matching(&edited), None);
    }
}
