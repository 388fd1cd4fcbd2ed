//! Training: one run's [`session::Session`], the worker thread that owns it ([`worker::Trainer`]), and the
//! plain data they report.

pub mod health;
pub mod latent_views;
pub mod optim;
pub mod session;
pub mod toy_views;
pub mod worker;
mod writer;

/// One step's measurements. `values` holds only what was measured at this step (held-out losses appear every
/// few steps), keyed by metric name.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricRow {
    pub step: u64,
    pub epoch: f64,
    /// Training seconds since the run began, pauses excluded.
    pub wall_s: f64,
    pub values: Vec<(String, f64)>,
}

impl MetricRow {
    pub fn get(&self, name: &str) -> Option<f64> {
        self.values.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }

    /// The first metric that is NaN or infinite, if any.
    pub fn first_non_finite(&self) -> Option<(&str, f64)> {
        self.values
            .iter()
            .find(|(_, v)| !v.is_finite())
            .map(|(k, v)| (k.as_str(), *v))
    }
}

/// Real points beside the model's points, for 2D toy data.
#[derive(Clone, Debug, PartialEq)]
pub struct PointCloud {
    pub real: Vec<[f32; 2]>,
    pub generated: Vec<[f32; 2]>,
    /// The mode/component of each real point, where the data has them.
    pub labels: Option<Vec<u32>>,
    /// D's output over the plane (GANs).
    pub heatmap: Option<toy_views::Heatmap>,
    /// The image of a regular latent grid through G (or a VAE's decoder), row by row.
    pub manifold: Option<Vec<[f32; 2]>>,
    /// For each generated point, the direction G's loss moves it (GANs).
    pub arrows: Option<Vec<[f32; 2]>>,
}
