//! The health of a run: signals that say how a GAN or autoencoder is failing, the diagnoses drawn from
//! them (each a rule with a traffic light, its value against its threshold, since when, and a remedy), and
//! the events the worker records when a rule finds trouble. Plain data: the worker computes it, views
//! read it.

use super::MetricRow;
use crate::config::{GanLoss, HealthConfig, OnTrouble, RunConfig};
use crate::numbers::significant;
use std::collections::{HashMap, VecDeque};

/// A failure a health rule looks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rule {
    Divergence,
    DiscriminatorWinning,
    VanishingGradients,
    ModeCollapse,
    PosteriorCollapse,
    Overfitting,
}

impl Rule {
    pub const ALL: [Rule; 6] = [
        Rule::Divergence,
        Rule::DiscriminatorWinning,
        Rule::VanishingGradients,
        Rule::ModeCollapse,
        Rule::PosteriorCollapse,
        Rule::Overfitting,
    ];

    /// The rule's name in `events.csv` and `health.on_<key>`.
    pub fn key(self) -> &'static str {
        match self {
            Rule::Divergence => "divergence",
            Rule::DiscriminatorWinning => "discriminator_winning",
            Rule::VanishingGradients => "vanishing_gradients",
            Rule::ModeCollapse => "mode_collapse",
            Rule::PosteriorCollapse => "posterior_collapse",
            Rule::Overfitting => "overfitting",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Rule::Divergence => "Divergence",
            Rule::DiscriminatorWinning => "Discriminator winning",
            Rule::VanishingGradients => "Generator gradients vanishing",
            Rule::ModeCollapse => "Mode collapse",
            Rule::PosteriorCollapse => "Posterior collapse",
            Rule::Overfitting => "Overfitting",
        }
    }

    /// Whether the rule can judge a run of `config`.
    pub fn applies_to(self, config: &RunConfig) -> bool {
        let kind = config.model.kind;
        match self {
            Rule::Divergence => true,
            // D(G(z)) is a probability only for the BCE losses.
            Rule::DiscriminatorWinning => kind.is_gan() && config.train.loss.is_probabilistic(),
            Rule::VanishingGradients => kind.is_gan(),
            Rule::ModeCollapse => kind.is_gan() && config.health.every > 0,
            Rule::PosteriorCollapse => kind.is_vae() && config.health.every > 0,
            Rule::Overfitting => !kind.is_gan() && config.data.holdout > 0.0,
        }
    }

    /// What the run does when this rule finds trouble.
    pub fn action(self, health: &HealthConfig) -> OnTrouble {
        let mut health = health.clone();
        *self.action_mut(&mut health)
    }

    /// The setting of what the run does when this rule finds trouble (`health.on_<rule>`).
    pub fn action_mut(self, health: &mut HealthConfig) -> &mut OnTrouble {
        match self {
            Rule::Divergence => &mut health.on_divergence,
            Rule::DiscriminatorWinning => &mut health.on_discriminator_winning,
            Rule::VanishingGradients => &mut health.on_vanishing_gradients,
            Rule::ModeCollapse => &mut health.on_mode_collapse,
            Rule::PosteriorCollapse => &mut health.on_posterior_collapse,
            Rule::Overfitting => &mut health.on_overfitting,
        }
    }

    /// What the failure is, in plain words.
    pub fn diagnosis(self) -> &'static str {
        match self {
            Rule::Divergence => {
                "a loss or gradient norm jumped far off its recent level (or became NaN): \
                                 the updates are too large"
            }
            Rule::DiscriminatorWinning => {
                "D tells real from generated almost perfectly, so G learns little \
                                           from it"
            }
            Rule::VanishingGradients => "G's gradients are near zero: it has stopped learning",
            Rule::ModeCollapse => {
                "generated samples are much less varied than real ones: G produces a few \
                                   modes"
            }
            Rule::PosteriorCollapse => {
                "the decoder ignores the code: no latent dimension carries information \
                                        about the input"
            }
            Rule::Overfitting => {
                "held-out reconstruction is much worse than training's: the model memorises \
                                  the training items"
            }
        }
    }

    /// A change of settings that practice suggests for this failure, from `config`.
    pub fn remedy(self, config: &RunConfig) -> Remedy {
        let mut fixed = config.clone();
        let (o, t) = (&mut fixed.optimizer, &mut fixed.train);
        let summary = match self {
            Rule::Divergence => {
                o.lr *= 0.5;
                o.lr_d = o.lr_d.map(|lr| lr * 0.5);
                format!(
                    "halve the learning rates (lr {} to {})",
                    significant(config.optimizer.lr),
                    significant(o.lr)
                )
            }
            Rule::DiscriminatorWinning => {
                o.lr_d = Some(config.optimizer.lr_d() * 0.5);
                let mut summary = format!(
                    "lower D's learning rate (lr_d {} to {})",
                    significant(config.optimizer.lr_d()),
                    significant(config.optimizer.lr_d() * 0.5)
                );
                if t.label_smoothing < 0.1 {
                    t.label_smoothing = 0.1;
                    summary += " and smooth the real labels (0.1)";
                }
                summary
            }
            Rule::VanishingGradients if t.loss == GanLoss::Minimax => {
                t.loss = GanLoss::NonSaturating;
                "switch to the non-saturating loss".to_string()
            }
            Rule::VanishingGradients => {
                // D keeps its rate while G's doubles.
                o.lr_d = Some(config.optimizer.lr_d());
                o.lr *= 2.0;
                format!(
                    "raise G's learning rate (lr {} to {})",
                    significant(config.optimizer.lr),
                    significant(o.lr)
                )
            }
            Rule::ModeCollapse => {
                t.d_steps = (t.d_steps + 1).min(crate::config::MAX_D_STEPS as usize);
                format!(
                    "train D more per G step (d_steps {} to {})",
                    config.train.d_steps, t.d_steps
                )
            }
            Rule::PosteriorCollapse => {
                fixed.model.beta *= 0.5;
                format!(
                    "lower the KL weight (beta {} to {})",
                    significant(config.model.beta),
                    significant(fixed.model.beta)
                )
            }
            Rule::Overfitting => {
                o.weight_decay = if o.weight_decay > 0.0 {
                    o.weight_decay * 10.0
                } else {
                    1e-4
                };
                format!(
                    "add weight decay ({} to {})",
                    significant(config.optimizer.weight_decay),
                    significant(o.weight_decay)
                )
            }
        };
        Remedy { summary, config: fixed }
    }
}

/// A remedy: what it changes, in words, and the settings with the change made.
#[derive(Clone, Debug, PartialEq)]
pub struct Remedy {
    pub summary: String,
    pub config: RunConfig,
}

/// A rule's traffic light.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Light {
    /// Not measured yet (too few steps, or the signal is measured every few steps).
    Waiting,
    Good,
    /// Past the threshold, not for long enough yet (or close to it).
    Watch,
    Trouble,
}

/// One rule's state at a step.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub rule: Rule,
    pub light: Light,
    /// The measured value the light is about (`NaN` for a NaN loss).
    pub value: Option<f64>,
    /// What the value is, and the threshold it is held against, e.g. "D(G(z)) below 0.05 for 200 steps".
    pub measure: String,
    /// The step since which the value is past its threshold.
    pub since: Option<u64>,
    /// The metric the value is of, for a rule that watches several (divergence: the loss or gradient norm
    /// that moved most).
    pub metric: Option<String>,
    pub remedy: Remedy,
}

/// The health of a run at a step: every rule that applies to it, and the snapshots a rollback can go to.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthReport {
    pub step: u64,
    pub findings: Vec<Finding>,
    /// Steps of the in-memory snapshots, oldest first.
    pub snapshot_steps: Vec<u64>,
    pub snapshot_bytes: u64,
}

impl HealthReport {
    pub fn finding(&self, rule: Rule) -> Option<&Finding> {
        self.findings.iter().find(|f| f.rule == rule)
    }
}

/// Something the health checks did, as `events.csv` records it.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthEvent {
    /// The step the trouble was found at (or the manual rollback was asked at).
    pub step: u64,
    /// A rule's key, or `manual` for a rollback the user asked for.
    pub rule: String,
    pub value: f64,
    /// What was done: warned, paused or rolled back.
    pub action: OnTrouble,
    /// The step the run went back to (rollbacks only).
    pub to_step: Option<u64>,
    /// What was done, in words (the remedy applied).
    pub detail: String,
}

impl HealthEvent {
    pub const COLUMNS: [&'static str; 6] = ["step", "rule", "value", "action", "to_step", "detail"];

    pub fn cells(&self) -> Vec<String> {
        vec![
            self.step.to_string(),
            self.rule.clone(),
            self.value.to_string(),
            self.action.key().to_string(),
            self.to_step.map(|s| s.to_string()).unwrap_or_default(),
            self.detail.clone(),
        ]
    }

    /// An event from a row of `events.csv`; `None` when the row is not one.
    pub fn from_cells(cells: &csv::StringRecord) -> Option<HealthEvent> {
        Some(HealthEvent {
            step: cells.get(0)?.parse().ok()?,
            rule: cells.get(1)?.to_string(),
            value: cells.get(2)?.parse().ok()?,
            action: OnTrouble::from_key(cells.get(3)?)?,
            to_step: cells.get(4).and_then(|s| s.parse().ok()),
            detail: cells.get(5).unwrap_or_default().to_string(),
        })
    }

    /// One line for a banner, stderr or a tooltip.
    pub fn describe(&self) -> String {
        let rule = Rule::ALL
            .iter()
            .find(|r| r.key() == self.rule)
            .map_or("Manual rollback", |r| r.label());
        let done = match (self.action, self.to_step) {
            (OnTrouble::Rollback, Some(to)) => format!("rolled back to step {to}"),
            (OnTrouble::Pause, _) => "paused".to_string(),
            _ => "warned".to_string(),
        };
        let detail = match self.detail.is_empty() {
            true => String::new(),
            false => format!("; {}", self.detail),
        };
        format!(
            "step {}: {rule} ({}), {done}{detail}",
            self.step,
            significant(self.value)
        )
    }
}

/// Values kept per metric for the spike check's median.
const SPIKE_WINDOW: usize = 64;
/// Values needed before spikes are judged: an absurd learning rate breaks a GAN in its first steps.
const SPIKE_WARM_UP: usize = 2;
/// Medians below this count as this, so a metric that sat near zero is not a spike when it leaves it.
const SPIKE_FLOOR: f64 = 0.01;
/// Steps a metric must stay far off its level before it counts: GAN losses and gradient norms jump for a
/// step and come back (a NaN counts at once).
const PERSIST_STEPS: u32 = 3;

/// Reads the metric rows of a run as they come and keeps each rule's light.
pub struct Monitor {
    states: Vec<RuleState>,
    /// Recent finite values of the metrics the spike check watches.
    recent: HashMap<String, VecDeque<f64>>,
    /// Metrics now far off their recent level: since which step, for how many steps.
    off_level: HashMap<String, (u64, u32)>,
}

/// How far a row's metrics moved off their recent level.
struct Spike<'a> {
    /// The metric that moved most.
    metric: &'a str,
    /// The largest factor of a move, up or down.
    ratio: f64,
    /// The step the move began.
    since: u64,
    /// Whether it held long enough (or is a NaN) to be trouble.
    lasting: bool,
}

#[derive(Clone, Debug)]
struct RuleState {
    rule: Rule,
    light: Light,
    value: Option<f64>,
    since: Option<u64>,
    /// The metric `value` is of, for a rule that watches several (divergence).
    metric: Option<String>,
}

impl Monitor {
    pub fn new() -> Monitor {
        Monitor {
            states: Rule::ALL
                .iter()
                .map(|&rule| RuleState {
                    rule,
                    light: Light::Waiting,
                    value: None,
                    since: None,
                    metric: None,
                })
                .collect(),
            recent: HashMap::new(),
            off_level: HashMap::new(),
        }
    }

    /// Takes one metric row of a run of `config`; returns the rules that turned to trouble at it.
    pub fn observe(&mut self, row: &MetricRow, config: &RunConfig) -> Vec<Rule> {
        let h = &config.health;
        let step = row.step;
        let spike = self.spike(row, config);
        // Only the held-out loss, every `eval_every` steps, is held against it.
        let recon_median = row.get("holdout_recon").and_then(|_| self.median("recon"));
        let mut turned = Vec::new();
        for state in &mut self.states {
            if !state.rule.applies_to(config) {
                continue;
            }
            let before = state.light;
            match state.rule {
                Rule::Divergence => {
                    if let Some(Spike {
                        metric,
                        ratio,
                        since,
                        lasting,
                    }) = spike
                    {
                        state.value = Some(ratio);
                        // Named anew only when another metric moves most: no string a step.
                        if state.metric.as_deref() != Some(metric) {
                            state.metric = Some(metric.to_string());
                        }
                        if lasting {
                            state.since = Some(since);
                            state.light = Light::Trouble;
                        } else {
                            state.since = None;
                            state.light = if ratio > h.spike_factor / 2.0 {
                                Light::Watch
                            } else {
                                Light::Good
                            };
                        }
                    }
                }
                Rule::DiscriminatorWinning => {
                    if let Some(v) = row.get("d_fake") {
                        state.persist(step, v, v < h.d_fake_below, h.patience);
                    }
                }
                Rule::VanishingGradients => {
                    if let Some(v) = row.get("grad_norm_g") {
                        state.persist(step, v, v < h.grad_g_below, h.patience);
                    }
                }
                Rule::ModeCollapse => {
                    if let Some(v) = row.get("diversity") {
                        state.persist(step, v, v < h.diversity_below, h.patience);
                    }
                }
                Rule::PosteriorCollapse => {
                    if let Some(v) = row.get("active_units") {
                        state.persist(step, v, v < h.active_units_below as f64, h.patience);
                    }
                }
                Rule::Overfitting => {
                    if let (Some(held_out), Some(train)) = (row.get("holdout_recon"), recon_median) {
                        let ratio = held_out / train.max(f64::MIN_POSITIVE);
                        state.persist(step, ratio, ratio > h.overfit_ratio, h.patience);
                    }
                }
            }
            if state.light == Light::Trouble && before != Light::Trouble {
                turned.push(state.rule);
            }
        }
        self.remember(row);
        turned
    }

    /// How far the watched metrics of `row` moved off their recent medians (the largest factor; infinite
    /// for NaN/Inf), once enough values are known; `None` before. Losses and gradient norms count upwards,
    /// gradient norms also downwards: a network whose gradients fall to nothing has broken (dead units,
    /// saturated outputs) as surely as one whose gradients explode. A move is lasting once it held for
    /// `PERSIST_STEPS` rows.
    fn spike<'a>(&mut self, row: &'a MetricRow, config: &RunConfig) -> Option<Spike<'a>> {
        let factor = config.health.spike_factor;
        let mut worst: Option<Spike> = None;
        for (name, value) in &row.values {
            if !watched_for_spikes(name, config) {
                continue;
            }
            if !value.is_finite() {
                let (ratio, since, lasting) = (f64::INFINITY, row.step, true);
                return Some(Spike {
                    metric: name,
                    ratio,
                    since,
                    lasting,
                });
            }
            let Some(recent) = self.recent.get(name).filter(|r| r.len() >= SPIKE_WARM_UP) else {
                continue;
            };
            let level = median(recent).abs();
            let mut ratio = value.abs() / level.max(SPIKE_FLOOR);
            if name.starts_with("grad_norm") && level > SPIKE_FLOOR {
                ratio = ratio.max(level / value.abs().max(1e-12));
            }
            let (since, lasting) = if ratio > factor {
                let (since, steps) = self.off_level.entry(name.clone()).or_insert((row.step, 0));
                *steps += 1;
                (*since, *steps >= PERSIST_STEPS)
            } else {
                self.off_level.remove(name);
                (row.step, false)
            };
            let spike = Spike {
                metric: name,
                ratio,
                since,
                lasting,
            };
            if worst
                .as_ref()
                .is_none_or(|w| (spike.lasting, spike.ratio) > (w.lasting, w.ratio))
            {
                worst = Some(spike);
            }
        }
        worst
    }

    fn median(&self, name: &str) -> Option<f64> {
        self.recent.get(name).filter(|r| !r.is_empty()).map(median)
    }

    fn remember(&mut self, row: &MetricRow) {
        for (name, value) in &row.values {
            // A value far off its level stays out of it, which would otherwise move to meet it.
            let off_level = self.off_level.contains_key(name);
            let watched = name.starts_with("loss") || name.starts_with("grad_norm") || name == "recon";
            if value.is_finite() && watched && !off_level {
                let recent = self.recent.entry(name.clone()).or_default();
                if recent.len() == SPIKE_WINDOW {
                    recent.pop_front();
                }
                recent.push_back(*value);
            }
        }
    }

    /// The run went back to an earlier step: what was seen after it no longer holds.
    pub fn rewind(&mut self) {
        for state in &mut self.states {
            state.light = Light::Waiting;
            state.value = None;
            state.since = None;
            state.metric = None;
        }
        self.off_level.clear();
    }

    /// Each applying rule's state, for the Health view.
    pub fn findings(&self, config: &RunConfig) -> Vec<Finding> {
        self.states
            .iter()
            .filter(|s| s.rule.applies_to(config))
            .map(|s| Monitor::describe(s, config))
            .collect()
    }

    /// One rule's state, if it applies to runs of `config`.
    pub fn finding(&self, rule: Rule, config: &RunConfig) -> Option<Finding> {
        let state = self.states.iter().find(|s| s.rule == rule && rule.applies_to(config))?;
        Some(Monitor::describe(state, config))
    }

    fn describe(s: &RuleState, config: &RunConfig) -> Finding {
        let h = &config.health;
        Finding {
            rule: s.rule,
            light: s.light,
            value: s.value,
            since: s.since,
            metric: s.metric.clone(),
            measure: match s.rule {
                Rule::Divergence => format!(
                    "largest jump of a loss or gradient norm off its recent median; trouble above {}x or NaN",
                    h.spike_factor
                ),
                Rule::DiscriminatorWinning => {
                    format!("D(G(z)); trouble below {} for {} steps", h.d_fake_below, h.patience)
                }
                Rule::VanishingGradients => {
                    format!(
                        "G's gradient norm; trouble below {} for {} steps",
                        h.grad_g_below, h.patience
                    )
                }
                Rule::ModeCollapse => format!(
                    "sample diversity over real diversity; trouble below {} for {} steps",
                    h.diversity_below, h.patience
                ),
                Rule::PosteriorCollapse => format!(
                    "active latent dimensions; trouble below {} for {} steps",
                    h.active_units_below, h.patience
                ),
                Rule::Overfitting => format!(
                    "held-out over training reconstruction; trouble above {} for {} steps",
                    h.overfit_ratio, h.patience
                ),
            },
            remedy: s.rule.remedy(config),
        }
    }
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor::new()
    }
}

impl RuleState {
    /// A condition that is trouble once it has held for `patience` steps.
    fn persist(&mut self, step: u64, value: f64, past_threshold: bool, patience: u64) {
        self.value = Some(value);
        if !past_threshold {
            self.since = None;
            self.light = Light::Good;
            return;
        }
        let since = *self.since.get_or_insert(step);
        self.light = if step - since >= patience {
            Light::Trouble
        } else {
            Light::Watch
        };
    }
}

/// Losses and gradient norms are watched for spikes; the hinge and Wasserstein losses swing through zero
/// by design, so only their gradient norms are.
fn watched_for_spikes(name: &str, config: &RunConfig) -> bool {
    let signed_losses = matches!(config.train.loss, GanLoss::Hinge | GanLoss::Wasserstein);
    let is_loss = name.starts_with("loss");
    let is_norm = name == "grad_norm" || name == "grad_norm_d" || name == "grad_norm_g";
    is_norm || (is_loss && !(config.model.kind.is_gan() && signed_losses))
}

fn median(values: &VecDeque<f64>) -> f64 {
    let mut values: Vec<f64> = values.iter().copied().collect();
    let middle = values.len() / 2;
    *values.select_nth_unstable_by(middle, f64::total_cmp).1
}

/// Sample diversity: the mean pairwise distance of `generated` items over that of `real` ones (each a row
/// of `dim` values), near 0 when G collapses onto a few outputs; and the share of near-duplicates:
/// generated items whose nearest generated neighbour is closer than a fifth of the real items' mean
/// nearest-neighbour distance (relative to the data's own spacing, so 2-D points and images compare alike).
pub fn diversity(generated: &[f32], real: &[f32], dim: usize) -> (f64, f64) {
    let (real_mean, real_nearest) = pairwise(real, dim);
    let (generated_mean, nearest) = pairwise(generated, dim);
    let spacing = real_nearest.iter().sum::<f64>() / real_nearest.len().max(1) as f64;
    let duplicates = nearest.iter().filter(|d| **d < 0.2 * spacing).count() as f64 / nearest.len().max(1) as f64;
    (generated_mean / real_mean.max(f64::MIN_POSITIVE), duplicates)
}

/// The mean Euclidean distance over all pairs of the rows of `items`, and each row's distance to its
/// nearest other row.
fn pairwise(items: &[f32], dim: usize) -> (f64, Vec<f64>) {
    let rows: Vec<&[f32]> = items.chunks_exact(dim).collect();
    let n = rows.len();
    let mut nearest = vec![f64::INFINITY; n];
    let (mut total, mut pairs) = (0.0, 0u64);
    for i in 0..n {
        for j in i + 1..n {
            let d = squared_distance(rows[i], rows[j]).sqrt() as f64;
            total += d;
            pairs += 1;
            nearest[i] = nearest[i].min(d);
            nearest[j] = nearest[j].min(d);
        }
    }
    (total / pairs.max(1) as f64, nearest)
}

/// The squared Euclidean distance of `a` and `b`, summed in 16 lanes: a single running sum cannot be
/// reordered, so the compiler would add one product at a time (the GANs' health checks took 1 % of a
/// small model's run here).
fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let (a_lanes, b_lanes) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let rest: f32 = a_lanes
        .remainder()
        .iter()
        .zip(b_lanes.remainder())
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    let mut sums = [0f32; LANES];
    for (x, y) in a_lanes.zip(b_lanes) {
        for k in 0..LANES {
            sums[k] += (x[k] - y[k]) * (x[k] - y[k]);
        }
    }
    sums.iter().sum::<f32>() + rest
}

/// Burda et al.'s active units: latent dimensions whose posterior mean varies across the data (variance
/// over items above 0.01). `means` holds one row of `dim` posterior means per item.
pub fn active_units(means: &[f32], dim: usize) -> usize {
    let rows: Vec<&[f32]> = means.chunks_exact(dim).collect();
    let n = rows.len().max(1) as f64;
    (0..dim)
        .filter(|&k| {
            let mean = rows.iter().map(|r| r[k] as f64).sum::<f64>() / n;
            let variance = rows.iter().map(|r| (r[k] as f64 - mean).powi(2)).sum::<f64>() / n;
            variance > 0.01
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelKind;

    fn row(step: u64, values: &[(&str, f64)]) -> MetricRow {
        MetricRow {
            step,
            epoch: 0.0,
            wall_s: 0.0,
            values: values.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    #[test]
    fn identical_samples_have_no_diversity_and_varied_ones_do() {
        let real: Vec<f32> = (0..64 * 10).map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0).collect();
        let same: Vec<f32> = real[..10].repeat(64);
        let (ratio, duplicates) = diversity(&same, &real, 10);
        assert_eq!((ratio, duplicates), (0.0, 1.0));
        let (ratio, duplicates) = diversity(&real, &real, 10);
        assert_eq!((ratio, duplicates), (1.0, 0.0));
    }

    #[test]
    fn distances_summed_in_lanes_match_one_running_sum() {
        // 784 values (a digit: 49 full lanes) and 37 (two lanes and a rest of 5).
        for dim in [784, 37] {
            let a: Vec<f32> = (0..dim).map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0).collect();
            let b: Vec<f32> = (0..dim).map(|i| ((i * 104729) % 97) as f32 / 40.0 - 1.0).collect();
            let exact: f64 = a.iter().zip(&b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum();
            let summed = squared_distance(&a, &b) as f64;
            assert!(
                (summed - exact).abs() < 1e-5 * exact,
                "{dim} values: {summed} against {exact}"
            );
        }
    }

    #[test]
    fn active_units_count_dimensions_that_vary_across_items() {
        // Dimension 0 varies, dimension 1 is constant, dimension 2 barely moves.
        let means: Vec<f32> = (0..100)
            .flat_map(|i| [i as f32 / 10.0, 0.5, (i % 2) as f32 * 0.01])
            .collect();
        assert_eq!(active_units(&means, 3), 1);
    }

    #[test]
    fn a_nan_or_a_spike_is_divergence_at_once_and_a_low_d_fake_only_after_its_patience() {
        let mut config = RunConfig::default();
        config.health.patience = 10;
        let mut monitor = Monitor::new();
        for step in 1..=40 {
            let turned = monitor.observe(
                &row(
                    step,
                    &[
                        ("loss_d", 1.0),
                        ("grad_norm_g", 1.0 + step as f64 * 0.01),
                        ("d_fake", 0.5),
                    ],
                ),
                &config,
            );
            assert!(turned.is_empty(), "healthy at {step}");
        }
        let finding = |m: &Monitor, rule| m.findings(&config).into_iter().find(|f| f.rule == rule).unwrap();
        assert_eq!(finding(&monitor, Rule::Divergence).light, Light::Good);
        // A jump for a step is a GAN's way; three in a row are trouble, since the first.
        assert!(monitor.observe(&row(41, &[("grad_norm_g", 100.0)]), &config).is_empty());
        assert_eq!(finding(&monitor, Rule::Divergence).light, Light::Watch);
        assert!(monitor.observe(&row(42, &[("grad_norm_g", 1.2)]), &config).is_empty());
        assert_eq!(finding(&monitor, Rule::Divergence).light, Light::Good);
        for step in 43..45 {
            assert!(monitor
                .observe(&row(step, &[("grad_norm_g", 100.0)]), &config)
                .is_empty());
        }
        assert_eq!(
            monitor.observe(&row(45, &[("grad_norm_g", 100.0)]), &config),
            vec![Rule::Divergence]
        );
        assert_eq!(finding(&monitor, Rule::Divergence).since, Some(43));
        for step in 46..=49 {
            monitor.observe(&row(step, &[("grad_norm_g", 1.2)]), &config);
        }
        // A NaN is trouble at once.
        assert_eq!(
            monitor.observe(&row(50, &[("loss_g", f64::NAN)]), &config),
            vec![Rule::Divergence]
        );
        // A gradient norm that dips for a step is no trouble; one that stays fallen is, since its fall.
        for step in 51..=53 {
            monitor.observe(&row(step, &[("grad_norm_g", 1.2)]), &config);
        }
        assert_eq!(finding(&monitor, Rule::Divergence).light, Light::Good);
        assert!(monitor.observe(&row(54, &[("grad_norm_g", 1e-4)]), &config).is_empty());
        assert!(monitor.observe(&row(55, &[("grad_norm_g", 1.1)]), &config).is_empty());
        assert!(monitor.observe(&row(56, &[("grad_norm_g", 0.0)]), &config).is_empty());
        assert!(monitor.observe(&row(57, &[("grad_norm_g", 0.0)]), &config).is_empty());
        assert_eq!(
            monitor.observe(&row(58, &[("grad_norm_g", 0.0)]), &config),
            vec![Rule::Divergence]
        );
        assert_eq!(finding(&monitor, Rule::Divergence).since, Some(56));

        for step in 60..70 {
            assert!(
                monitor.observe(&row(step, &[("d_fake", 0.01)]), &config).is_empty(),
                "{step}"
            );
        }
        assert_eq!(finding(&monitor, Rule::DiscriminatorWinning).light, Light::Watch);
        assert_eq!(
            monitor.observe(&row(70, &[("d_fake", 0.01)]), &config),
            vec![Rule::DiscriminatorWinning]
        );
        let winning = finding(&monitor, Rule::DiscriminatorWinning);
        assert_eq!((winning.since, winning.value), (Some(60), Some(0.01)));
        assert!(winning.remedy.config.optimizer.lr_d() < config.optimizer.lr_d());
        monitor.observe(&row(71, &[("d_fake", 0.3)]), &config);
        assert_eq!(finding(&monitor, Rule::DiscriminatorWinning).light, Light::Good);
    }

    #[test]
    fn rules_apply_to_the_models_they_judge() {
        let mut config = RunConfig::default();
        let applying = |c: &RunConfig| Rule::ALL.into_iter().filter(|r| r.applies_to(c)).collect::<Vec<_>>();
        assert_eq!(
            applying(&config),
            [
                Rule::Divergence,
                Rule::DiscriminatorWinning,
                Rule::VanishingGradients,
                Rule::ModeCollapse
            ]
        );
        config.model.kind = ModelKind::Vae;
        assert_eq!(
            applying(&config),
            [Rule::Divergence, Rule::PosteriorCollapse, Rule::Overfitting]
        );
    }

    #[test]
    fn events_round_trip_through_their_csv_cells() {
        let event = HealthEvent {
            step: 120,
            rule: "divergence".into(),
            value: f64::INFINITY,
            action: OnTrouble::Rollback,
            to_step: Some(100),
            detail: "halve the learning rates, \"lr\" 0.1 to 0.05".into(),
        };
        let bytes = crate::runs::csv_bytes(HealthEvent::COLUMNS, [event.cells()]);
        let mut reader = csv::Reader::from_reader(&bytes[..]);
        let record = reader.records().next().unwrap().unwrap();
        assert_eq!(HealthEvent::from_cells(&record), Some(event.clone()));
        assert!(
            event.describe().contains("rolled back to step 100"),
            "{}",
            event.describe()
        );
    }
}
