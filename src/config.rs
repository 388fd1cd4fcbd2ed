//! The full description of one run: what model, on what data, trained how.
//!
//! A `RunConfig` is what presets and config files deserialize into, what `--set key=value` edits, what the
//! GUI's panels edit, and what a run directory records as `config.toml`. Every field has a default so a
//! config file only needs the fields it changes.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Which network family and architecture a run trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    MlpGan,
    Dcgan,
    Ae,
    ConvAe,
    DenoisingAe,
    Vae,
    ConvVae,
}

impl ModelKind {
    pub const ALL: [ModelKind; 7] = [
        ModelKind::MlpGan,
        ModelKind::Dcgan,
        ModelKind::Ae,
        ModelKind::ConvAe,
        ModelKind::DenoisingAe,
        ModelKind::Vae,
        ModelKind::ConvVae,
    ];

    pub fn is_gan(self) -> bool {
        matches!(self, ModelKind::MlpGan | ModelKind::Dcgan)
    }

    pub fn is_vae(self) -> bool {
        matches!(self, ModelKind::Vae | ModelKind::ConvVae)
    }

    /// Whether it makes new items from noise (GANs, VAEs); the other autoencoders only reconstruct theirs.
    pub fn generates(self) -> bool {
        self.is_gan() || self.is_vae()
    }

    /// Convolutional models need image data; MLPs also take 2D points.
    pub fn is_conv(self) -> bool {
        matches!(
            self,
            ModelKind::Dcgan | ModelKind::ConvAe | ModelKind::DenoisingAe | ModelKind::ConvVae
        )
    }

    pub fn label(self) -> &'static str {
        match self {
            ModelKind::MlpGan => "MLP GAN",
            ModelKind::Dcgan => "DCGAN",
            ModelKind::Ae => "AE",
            ModelKind::ConvAe => "conv AE",
            ModelKind::DenoisingAe => "denoising AE",
            ModelKind::Vae => "VAE",
            ModelKind::ConvVae => "conv VAE",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Relu,
    LeakyRelu,
    Gelu,
    Silu,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Norm {
    None,
    Batch,
    Layer,
}

/// Reconstruction loss of autoencoders: BCE on pixels mapped to [0, 1] (sigmoid output) or MSE in [-1, 1] (tanh).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recon {
    Bce,
    Mse,
}

/// How a denoising autoencoder corrupts its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Corruption {
    /// Adds N(0, level²) noise.
    Gaussian,
    /// Sets a `level` fraction of pixels to the background value.
    Mask,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GanLoss {
    /// BCE with the generator maximising log D(G(z)) (Goodfellow's practical form).
    NonSaturating,
    /// BCE with the generator minimising log(1 - D(G(z))) (the original game; saturates early).
    Minimax,
    /// Least squares (LSGAN).
    LeastSquares,
    Hinge,
    /// WGAN critic with weight clipping.
    Wasserstein,
}

impl GanLoss {
    pub const ALL: [GanLoss; 5] = [
        GanLoss::NonSaturating,
        GanLoss::Minimax,
        GanLoss::LeastSquares,
        GanLoss::Hinge,
        GanLoss::Wasserstein,
    ];

    /// Whether D's output is a logit of "real", so sigmoid(D) is a probability worth reporting.
    pub fn is_probabilistic(self) -> bool {
        matches!(self, GanLoss::NonSaturating | GanLoss::Minimax)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    Adam,
    AdamW,
    Sgd,
    Rmsprop,
}

/// How folder images are brought to the square training resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fit {
    /// Scale the shorter side to the target size and cut off the overhanging ends of the longer.
    CenterCrop,
    /// Scale the longer side to the target size and pad the shorter with black.
    Letterbox,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    pub kind: ModelKind,
    /// Size of the latent vector z (GAN noise, autoencoder code).
    pub latent: usize,
    /// Hidden widths of MLPs, from the latent side outwards (G, decoder); D and encoders use them reversed.
    pub hidden: Vec<usize>,
    pub activation: Activation,
    pub norm: Norm,
    /// DCGAN's ngf/ndf and the conv autoencoders' first conv width.
    pub base_width: usize,
    pub recon: Recon,
    /// Weight of the VAE's KL term.
    pub beta: f64,
    pub corruption: Corruption,
    /// Denoising AE: noise std (gaussian) or masked fraction (mask).
    pub noise_level: f64,
    /// GANs on labelled images: G makes an image of the class it is given and D judges an image together
    /// with its class (a conditional GAN with a projection discriminator), over this many classes; 0 is
    /// the plain, unconditional GAN.
    pub classes: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            kind: ModelKind::MlpGan,
            latent: 100,
            hidden: vec![256, 512],
            activation: Activation::LeakyRelu,
            norm: Norm::None,
            base_width: 64,
            recon: Recon::Bce,
            beta: 1.0,
            corruption: Corruption::Gaussian,
            noise_level: 0.3,
            classes: 0,
        }
    }
}

impl ModelConfig {
    /// The width of G's input: the noise, then a conditional GAN's one-hot class.
    pub fn generator_input(&self) -> usize {
        self.latent + self.classes
    }

    /// The outputs of D's last layer: the unconditional score, then one per class (a conditional GAN's
    /// class embeddings).
    pub fn critic_outputs(&self) -> usize {
        1 + self.classes
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// `digits`, `shapes`, `toy:NAME`, `drawn`, `idx:DIR`, `mnist`, `fashion-mnist` or `folder:DIR`.
    pub source: String,
    /// The points `drawn` data is made from, as drawn in the Data panel: (x, y) in [-1, 1].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub points: Vec<[f32; 2]>,
    /// How many items generated datasets (digits, shapes, toy) make.
    pub count: usize,
    /// Fraction kept out of training for held-out evaluation.
    pub holdout: f64,
    /// Square resolution for `shapes` and `folder:` data (28, 32 or 64).
    pub image_size: usize,
    /// 1 (grayscale) or 3 (RGB) for `shapes` and `folder:` data.
    pub channels: usize,
    pub fit: Fit,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            source: "digits".into(),
            count: 10_000,
            holdout: 0.1,
            image_size: 32,
            channels: 1,
            fit: Fit::CenterCrop,
            points: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimizerConfig {
    pub kind: OptimizerKind,
    /// Learning rate (of G for GANs).
    pub lr: f64,
    /// Discriminator learning rate; `lr` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr_d: Option<f64>,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled weight decay (AdamW) or L2 penalty (SGD, RMSprop).
    pub weight_decay: f64,
    /// SGD and RMSprop momentum.
    pub momentum: f64,
    /// RMSprop's squared-gradient smoothing.
    pub alpha: f64,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig {
            kind: OptimizerKind::Adam,
            lr: 2e-4,
            lr_d: None,
            beta1: 0.5,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.9,
            alpha: 0.99,
        }
    }
}

impl OptimizerConfig {
    pub fn lr_d(&self) -> f64 {
        self.lr_d.unwrap_or(self.lr)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Step budget: the run finishes after this many steps.
    pub steps: u64,
    pub batch_size: usize,
    pub seed: u64,
    /// Sample/reconstruction grids are made (and saved) every this many steps.
    pub sample_every: u64,
    /// Held-out evaluation of autoencoders every this many steps.
    pub eval_every: u64,
    /// Checkpoints are written every this many steps (and when a run stops).
    pub checkpoint_every: u64,
    /// GANs: discriminator updates per generator update.
    pub d_steps: usize,
    pub loss: GanLoss,
    /// One-sided label smoothing: D's target for real data is 1 - this.
    pub label_smoothing: f64,
    /// Wasserstein loss: critic weights are clipped to [-clip, clip].
    pub clip: f64,
    /// GANs: the samples, scores and views of G's output come from an exponential moving average of G's
    /// weights with this decay per step (0 = from the weights as trained). Averaging smooths the oscillation
    /// of GAN training (Yazıcı et al. 2019); training itself is unchanged.
    pub ema: f64,
    /// Number of images in the sample grid (fixed latent vectors).
    pub grid_size: usize,
    /// Gradients whose global L2 norm (per network) exceeds this are scaled down to it; 0 turns it off.
    pub max_grad_norm: f64,
    /// GANs: which networks a step updates (one alone, to watch what each does).
    pub updates: Updates,
    /// Training steps a second at most, to follow each update by eye; 0 is as fast as it goes.
    pub max_steps_per_s: f64,
}

/// Which networks of a GAN a training step updates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Updates {
    #[default]
    Both,
    Discriminator,
    Generator,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            steps: 2000,
            batch_size: 64,
            seed: 0,
            sample_every: 100,
            eval_every: 100,
            checkpoint_every: 500,
            d_steps: 1,
            loss: GanLoss::NonSaturating,
            label_smoothing: 0.0,
            clip: 0.01,
            ema: 0.0,
            grid_size: 64,
            max_grad_norm: 0.0,
            updates: Updates::Both,
            max_steps_per_s: 0.0,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    pub model: ModelConfig,
    pub data: DataConfig,
    pub optimizer: OptimizerConfig,
    pub train: TrainConfig,
    pub health: HealthConfig,
    pub quality: QualityConfig,
}

/// The sample-quality metric (Fréchet distance in a feature network's space, confident share, classes).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QualityConfig {
    /// Scored every this many steps (on a weight snapshot, off the training thread); 0 turns it off.
    pub every: u64,
    /// Samples (or reconstructions) scored each time.
    pub samples: usize,
}

impl Default for QualityConfig {
    fn default() -> Self {
        QualityConfig {
            every: 250,
            samples: 512,
        }
    }
}

/// What a health rule does when it finds trouble.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnTrouble {
    /// Say so (in the Health view, the run's events and the CLI's stderr) and train on.
    Warn,
    /// Pause the run with the diagnosis; Resume continues it.
    Pause,
    /// Go back to the newest in-memory snapshot from before the trouble and apply the rule's remedy.
    Rollback,
}

impl OnTrouble {
    pub const ALL: [OnTrouble; 3] = [OnTrouble::Warn, OnTrouble::Pause, OnTrouble::Rollback];

    pub fn label(self) -> &'static str {
        match self {
            OnTrouble::Warn => "warn",
            OnTrouble::Pause => "pause",
            OnTrouble::Rollback => "roll back",
        }
    }

    pub fn from_key(key: &str) -> Option<OnTrouble> {
        OnTrouble::ALL.into_iter().find(|a| a.key() == key)
    }

    /// As config files, `events.csv` and `--on-divergence` spell it.
    pub fn key(self) -> &'static str {
        match self {
            OnTrouble::Warn => "warn",
            OnTrouble::Pause => "pause",
            OnTrouble::Rollback => "rollback",
        }
    }
}

/// The health checks of a run: how often the signals are measured, the thresholds of the diagnoses, what
/// each does on trouble, and the in-memory snapshots a rollback returns to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// The costlier signals (diversity, per-layer gradient norms, active units) are measured every this
    /// many steps; 0 turns them off.
    pub every: u64,
    /// GANs: D is winning when its mean D(G(z)) stays below this...
    pub d_fake_below: f64,
    /// ...for this many steps.
    pub patience: u64,
    /// GANs: G's gradients are vanishing when their norm is below this.
    pub grad_g_below: f64,
    /// GANs: mode collapse when generated samples are less varied than real ones by this ratio.
    pub diversity_below: f64,
    /// Divergence: a loss or gradient norm this many times its recent median (or NaN/Inf).
    pub spike_factor: f64,
    /// VAEs: posterior collapse when fewer latent dimensions than this are active.
    pub active_units_below: usize,
    /// Autoencoders: overfitting when held-out reconstruction exceeds training's by this factor.
    pub overfit_ratio: f64,
    pub on_divergence: OnTrouble,
    pub on_discriminator_winning: OnTrouble,
    pub on_vanishing_gradients: OnTrouble,
    pub on_mode_collapse: OnTrouble,
    pub on_posterior_collapse: OnTrouble,
    pub on_overfitting: OnTrouble,
    /// A snapshot of weights, optimiser state and progress is kept in memory every this many steps...
    pub snapshot_every: u64,
    /// ...the newest this many of them.
    pub snapshots: usize,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            every: 50,
            d_fake_below: 0.05,
            patience: 200,
            grad_g_below: 1e-3,
            diversity_below: 0.3,
            spike_factor: 50.0,
            active_units_below: 1,
            overfit_ratio: 1.5,
            on_divergence: OnTrouble::Rollback,
            on_discriminator_winning: OnTrouble::Warn,
            on_vanishing_gradients: OnTrouble::Warn,
            on_mode_collapse: OnTrouble::Warn,
            on_posterior_collapse: OnTrouble::Warn,
            on_overfitting: OnTrouble::Warn,
            snapshot_every: 100,
            snapshots: 4,
        }
    }
}

/// A config value that is missing, mistyped or out of range; names the dotted key so the user can fix it.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        message: message.into(),
    }
}

impl RunConfig {
    /// What makes two runs' curves comparable: the kind of model and the data it trains on.
    pub fn experiment(&self) -> (ModelKind, &str) {
        (self.model.kind, &self.data.source)
    }

    /// Parses TOML text; unknown keys and wrong types are errors that name the key.
    pub fn from_toml(text: &str) -> Result<RunConfig, ConfigError> {
        // toml's message quotes the offending line, which names the key.
        let config: RunConfig = toml::from_str(text).map_err(|e| invalid("", e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a RunConfig always serializes")
    }

    /// Applies `section.field=value` (e.g. `optimizer.lr=1e-3`); the value is TOML (`1e-3`, `[256, 512]`,
    /// `true`) or a bare word taken as a string (`dcgan`). The result is validated as a whole.
    pub fn set(&mut self, assignment: &str) -> Result<(), ConfigError> {
        let (key, raw) = assignment
            .split_once('=')
            .ok_or_else(|| invalid(assignment, "expected key=value, e.g. optimizer.lr=1e-3"))?;
        self.set_all(&[(key.trim(), raw.trim())])
    }

    /// Applies several `(section.field, value)` pairs in order (a later one wins for the same field) and
    /// validates only the result, so related fields can change together.
    pub fn set_all(&mut self, pairs: &[(&str, &str)]) -> Result<(), ConfigError> {
        let mut tree = toml::Table::try_from(&*self).expect("a RunConfig always serializes");
        for (key, raw) in pairs {
            let (section, field) = key
                .split_once('.')
                .ok_or_else(|| invalid(key, "expected a dotted key such as optimizer.lr or train.steps"))?;
            let table = tree
                .get_mut(section)
                .and_then(toml::Value::as_table_mut)
                .ok_or_else(|| {
                    invalid(
                        key,
                        "unknown section; expected model, data, optimizer, train, health or quality",
                    )
                })?;
            table.insert(field.to_string(), parse_value(raw));
        }
        let updated: RunConfig = toml::Value::Table(tree).try_into().map_err(|e: toml::de::Error| {
            let keys: Vec<&str> = pairs.iter().map(|(k, _)| *k).collect();
            let values: Vec<&str> = pairs.iter().map(|(_, v)| *v).collect();
            invalid(
                &keys.join(", "),
                format!(
                    "bad value '{}': {}",
                    values.join("', '"),
                    plain_expectation(e.message())
                ),
            )
        })?;
        updated.validate()?;
        *self = updated;
        Ok(())
    }

    /// Checks ranges and combinations before any training starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let (m, d, o, t) = (&self.model, &self.data, &self.optimizer, &self.train);
        positive("model.latent", m.latent as f64)?;
        at_most("model.latent", m.latent as u64, MAX_LATENT)?;
        if m.hidden.len() > MAX_LAYERS {
            return Err(invalid(
                "model.hidden",
                format!(
                    "{} layers are more than the {MAX_LAYERS} an MLP here may have",
                    m.hidden.len()
                ),
            ));
        }
        if let Some(w) = m.hidden.iter().find(|w| **w as u64 > MAX_WIDTH) {
            return Err(invalid(
                "model.hidden",
                format!("layer width {w} is above the largest, {MAX_WIDTH}"),
            ));
        }
        at_most("model.base_width", m.base_width as u64, MAX_BASE_WIDTH)?;
        if m.hidden.is_empty() && !m.kind.is_conv() {
            return Err(invalid(
                "model.hidden",
                "an MLP needs at least one hidden layer, e.g. [256, 512]",
            ));
        }
        if let Some(w) = m.hidden.iter().find(|w| **w == 0) {
            return Err(invalid("model.hidden", format!("layer width {w} must be at least 1")));
        }
        positive("model.base_width", m.base_width as f64)?;
        non_negative("model.beta", m.beta)?;
        match m.corruption {
            Corruption::Mask if !(0.0..1.0).contains(&m.noise_level) => {
                return Err(invalid(
                    "model.noise_level",
                    format!("{} must be in [0, 1) for masking", m.noise_level),
                ))
            }
            _ => non_negative("model.noise_level", m.noise_level)?,
        }
        if m.kind.is_conv() && m.norm == Norm::Layer {
            return Err(invalid("model.norm", "convolutional models take none or batch"));
        }
        at_most("model.classes", m.classes as u64, MAX_CLASSES)?;
        if m.classes > 0 && !m.kind.is_gan() {
            return Err(invalid(
                "model.classes",
                "only GANs are conditioned on classes; autoencoders take 0",
            ));
        }

        let spec = crate::data::DataSpec::parse(&d.source).map_err(|e| invalid("data.source", e))?;
        if spec == crate::data::DataSpec::Drawn {
            crate::data::toy::check_drawn(&d.points).map_err(|e| invalid("data.points", e))?;
        }
        positive("data.count", d.count as f64)?;
        at_most("data.count", d.count as u64, MAX_ITEMS)?;
        if !(0.0..0.9).contains(&d.holdout) {
            return Err(invalid("data.holdout", format!("{} must be in [0, 0.9)", d.holdout)));
        }
        if ![28, 32, 64].contains(&d.image_size) {
            return Err(invalid(
                "data.image_size",
                format!("{} is not one of 28, 32, 64", d.image_size),
            ));
        }
        if ![1, 3].contains(&d.channels) {
            return Err(invalid(
                "data.channels",
                format!("{} is not 1 (grayscale) or 3 (RGB)", d.channels),
            ));
        }

        positive("optimizer.lr", o.lr)?;
        if let Some(lr_d) = o.lr_d {
            positive("optimizer.lr_d", lr_d)?;
        }
        unit_interval("optimizer.beta1", o.beta1)?;
        unit_interval("optimizer.beta2", o.beta2)?;
        positive("optimizer.eps", o.eps)?;
        non_negative("optimizer.weight_decay", o.weight_decay)?;
        unit_interval("optimizer.momentum", o.momentum)?;
        unit_interval("optimizer.alpha", o.alpha)?;

        positive("train.steps", t.steps as f64)?;
        at_most("train.steps", t.steps, MAX_STEPS)?;
        positive("train.batch_size", t.batch_size as f64)?;
        at_most("train.batch_size", t.batch_size as u64, MAX_BATCH)?;
        positive("train.sample_every", t.sample_every as f64)?;
        positive("train.eval_every", t.eval_every as f64)?;
        positive("train.checkpoint_every", t.checkpoint_every as f64)?;
        positive("train.d_steps", t.d_steps as f64)?;
        non_negative("train.max_steps_per_s", t.max_steps_per_s)?;
        at_most("train.d_steps", t.d_steps as u64, MAX_D_STEPS)?;
        if !(0.0..1.0).contains(&t.ema) {
            return Err(invalid("train.ema", format!("{} must be in [0, 1)", t.ema)));
        }
        if !(0.0..0.5).contains(&t.label_smoothing) {
            return Err(invalid(
                "train.label_smoothing",
                format!("{} must be in [0, 0.5)", t.label_smoothing),
            ));
        }
        positive("train.clip", t.clip)?;
        non_negative("train.max_grad_norm", t.max_grad_norm)?;
        let h = &self.health;
        unit_interval("health.d_fake_below", h.d_fake_below)?;
        non_negative("health.grad_g_below", h.grad_g_below)?;
        unit_interval("health.diversity_below", h.diversity_below)?;
        if h.spike_factor <= 1.0 || !h.spike_factor.is_finite() {
            return Err(invalid(
                "health.spike_factor",
                format!("{} must be greater than 1", h.spike_factor),
            ));
        }
        if h.overfit_ratio <= 1.0 || !h.overfit_ratio.is_finite() {
            return Err(invalid(
                "health.overfit_ratio",
                format!("{} must be greater than 1", h.overfit_ratio),
            ));
        }
        positive("health.snapshot_every", h.snapshot_every as f64)?;
        at_most("health.snapshots", h.snapshots as u64, MAX_SNAPSHOTS)?;
        let q = &self.quality;
        if !(MIN_QUALITY_SAMPLES..=MAX_QUALITY_SAMPLES).contains(&q.samples) {
            return Err(invalid(
                "quality.samples",
                format!(
                    "{} must be in {MIN_QUALITY_SAMPLES}..={MAX_QUALITY_SAMPLES} (a covariance needs more samples than features)",
                    q.samples
                ),
            ));
        }
        if !(1..=256).contains(&t.grid_size) {
            return Err(invalid(
                "train.grid_size",
                format!("{} must be in 1..=256", t.grid_size),
            ));
        }
        Ok(())
    }

    /// The first setting whose change would change tensor shapes or data, so a running session cannot take it.
    /// `None` means `other` can be applied live.
    pub fn restart_needed_for(&self, other: &RunConfig) -> Option<&'static str> {
        let (a, b) = (&self.model, &other.model);
        let checks = [
            ("model.kind", a.kind != b.kind),
            ("model.latent", a.latent != b.latent),
            ("model.hidden", a.hidden != b.hidden),
            ("model.activation", a.activation != b.activation),
            ("model.norm", a.norm != b.norm),
            ("model.base_width", a.base_width != b.base_width),
            ("model.recon", a.recon != b.recon),
            ("model.corruption", a.corruption != b.corruption),
            ("model.classes", a.classes != b.classes),
            ("data", self.data != other.data),
            ("optimizer.kind", self.optimizer.kind != other.optimizer.kind),
            ("train.batch_size", self.train.batch_size != other.train.batch_size),
            ("train.seed", self.train.seed != other.train.seed),
            ("train.grid_size", self.train.grid_size != other.train.grid_size),
        ];
        checks.into_iter().find(|(_, changed)| *changed).map(|(key, _)| key)
    }
}

/// Upper bounds of counts, far above any useful setting and below what would exhaust a machine before the
/// pre-flight estimate could say so (a billion generated items would take minutes to make, say).
pub const MAX_LATENT: u64 = 4096;
pub const MAX_CLASSES: u64 = 1000;
pub const MAX_WIDTH: u64 = 16384;
pub const MAX_LAYERS: usize = 16;
pub const MIN_QUALITY_SAMPLES: usize = 128;
pub const MAX_QUALITY_SAMPLES: usize = 20_000;
pub const MAX_BASE_WIDTH: u64 = 1024;
pub const MAX_ITEMS: u64 = 1_000_000;
pub const MAX_BATCH: u64 = 8192;
pub const MAX_STEPS: u64 = 1_000_000_000;
pub const MAX_D_STEPS: u64 = 100;
/// Each snapshot is a copy of the weights and optimiser state.
pub const MAX_SNAPSHOTS: u64 = 64;

fn at_most(key: &str, value: u64, max: u64) -> Result<(), ConfigError> {
    if value <= max {
        Ok(())
    } else {
        Err(invalid(key, format!("{value} is above the largest allowed, {max}")))
    }
}

/// A deserializer's complaint in a user's words: serde's "invalid type: string \"abc\", expected f64" (the
/// value is quoted beside it already) reads "expected a number".
fn plain_expectation(message: &str) -> String {
    let Some((_, expected)) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        .and_then(|rest| rest.rsplit_once(", expected "))
    else {
        return message.to_string();
    };
    let expected = match expected {
        "f32" | "f64" => "a number",
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number, 0 or more",
        "a sequence" => "a list, e.g. [256, 256]",
        "a boolean" => "true or false",
        other => other,
    };
    format!("expected {expected}")
}

fn parse_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.trim_matches('"').to_string()))
}

fn positive(key: &str, value: f64) -> Result<(), ConfigError> {
    if value > 0.0 && value.is_finite() {
        Ok(())
    } else {
        Err(invalid(key, format!("{value} must be greater than 0")))
    }
}

fn non_negative(key: &str, value: f64) -> Result<(), ConfigError> {
    if value >= 0.0 && value.is_finite() {
        Ok(())
    } else {
        Err(invalid(key, format!("{value} must be 0 or more")))
    }
}

fn unit_interval(key: &str, value: f64) -> Result<(), ConfigError> {
    if (0.0..1.0).contains(&value) {
        Ok(())
    } else {
        Err(invalid(key, format!("{value} must be in [0, 1)")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_changes_a_nested_field() {
        let mut c = RunConfig::default();
        c.set("optimizer.lr=1e-3").unwrap();
        assert_eq!(c.optimizer.lr, 1e-3);
        c.set("model.kind=dcgan").unwrap();
        assert_eq!(c.model.kind, ModelKind::Dcgan);
        c.set("model.hidden=[32, 64]").unwrap();
        assert_eq!(c.model.hidden, vec![32, 64]);
        c.set("optimizer.lr_d=4e-4").unwrap();
        assert_eq!(c.optimizer.lr_d(), 4e-4);
    }

    #[test]
    fn set_rejects_unknown_keys_wrong_types_and_ranges() {
        let mut c = RunConfig::default();
        let err = c.set("optimizer.learning_rate=1").unwrap_err();
        assert_eq!(err.key, "optimizer.learning_rate");
        assert!(err.message.contains("unknown field"), "{err}");
        let err = c.set("train.steps=lots").unwrap_err();
        assert_eq!(err.key, "train.steps");
        assert_eq!(err.message, "bad value 'lots': expected a whole number, 0 or more");
        let err = c.set("optimizer.lr=abc").unwrap_err();
        assert_eq!(err.message, "bad value 'abc': expected a number");
        let err = c.set("model.hidden=abc").unwrap_err();
        assert_eq!(err.message, "bad value 'abc': expected a list, e.g. [256, 256]");
        let err = c.set("model.norm=foo").unwrap_err();
        assert!(err.message.contains("expected one of `none`, `batch`"), "{err}");
        let err = c.set("optimizer.lr=-1").unwrap_err();
        assert_eq!(err.key, "optimizer.lr");
        let err = c.set("train.batch_size=0").unwrap_err();
        assert_eq!(err.key, "train.batch_size");
        let err = c.set("train.batch_size=100000000").unwrap_err();
        assert_eq!(err.key, "train.batch_size");
        assert!(err.message.contains("largest"), "{err}");
        assert_eq!(c.set("model.hidden=[100000000]").unwrap_err().key, "model.hidden");
        assert_eq!(c.set("data.count=1000000000").unwrap_err().key, "data.count");
        let err = c.set("model.classes=1001").unwrap_err();
        assert_eq!(err.key, "model.classes");
        c.set("model.kind=vae").unwrap();
        let err = c.set("model.classes=10").unwrap_err();
        assert!(err.key == "model.classes" && err.message.contains("only GANs"), "{err}");
        c.set("model.kind=mlp_gan").unwrap();
        let err = c.set("nosuch.key=1").unwrap_err();
        assert!(err.message.contains("unknown section"));
        assert_eq!(
            c,
            RunConfig::default(),
            "a rejected assignment leaves the config as it was"
        );
    }

    #[test]
    fn toml_round_trips() {
        let mut c = RunConfig::default();
        c.optimizer.lr_d = Some(1e-3);
        assert_eq!(RunConfig::from_toml(&c.to_toml()).unwrap(), c);
    }

    #[test]
    fn restart_needed_only_for_shape_changes() {
        let a = RunConfig::default();
        let mut b = a.clone();
        b.optimizer.lr = 1e-2;
        b.train.label_smoothing = 0.1;
        assert_eq!(a.restart_needed_for(&b), None);
        b.model.latent = 8;
        assert_eq!(a.restart_needed_for(&b), Some("model.latent"));
    }
}
