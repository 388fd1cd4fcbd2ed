//! One run: models, optimisers, data and step counter. `step()` does one training iteration.
//!
//! Every random draw depends only on (seed, batch index), so the same config and seed give the same
//! metrics, and a session restored from a checkpoint continues exactly where it stopped.

use super::latent_views::{self, LatentMap, LatentPlane, ITEM_COLUMNS, LATENT_ITEMS, MANIFOLD_SIDE};
use super::optim::{Hyper, Optimizer};
use super::toy_views::{self, Heatmap};
use super::{MetricRow, PointCloud};
use crate::config::{Corruption, GanLoss, ModelConfig, ModelKind, Recon, RunConfig, Updates};
use crate::data::{Batcher, Dataset, ItemShape, Split};
use crate::grid::{make_grid, ImageGrid};
use crate::models::ae::Autoencoder;
use crate::models::layers::{tensor, Kernels, Mode};
use crate::models::losses::{bce_sum_per_item, discriminator_loss, generator_loss, kl_per_item, mse_sum_per_item};
use crate::models::{Gan, Model, NetSummary};
use crate::rng::{derive_seed, normal_vec, seeded};
use candle_core::{DType, Device, Result, Tensor};
use rand::Rng;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

const SEED_NOISE: u64 = 20;
const SEED_FIXED: u64 = 21;
const SEED_CORRUPT: u64 = 22;
const SEED_HEALTH: u64 = 23;
const SEED_QUALITY: u64 = 24;
const SEED_DIVERGENCE: u64 = 29;
/// Points of each side in the KL / JS estimate of 2D runs.
const DIVERGENCE_POINTS: usize = 2000;
/// Generated and real items compared for the diversity signal.
const DIVERSITY_ITEMS: usize = 64;
/// Held-out items in the reconstruction grid (shown as input/reconstruction pairs).
const RECON_ITEMS: usize = 32;
/// Points of each kind in the toy-data scatter.
const SCATTER_POINTS: usize = 512;
/// Held-out items evaluated at most: a mean over 256 items is within a few percent, and their forward pass
/// every `eval_every` steps stays a small part of a run (512 took 3 % of the conv AE's, BENCHMARKS.md).
const EVAL_ITEMS: usize = 256;

enum Optimizers {
    Gan { g: Optimizer, d: Optimizer },
    Autoencoder(Optimizer),
}

pub struct Session {
    config: RunConfig,
    data: Arc<Dataset>,
    split: Split,
    batcher: Batcher,
    model: Model,
    optimizers: Optimizers,
    step: u64,
    /// Batches drawn so far: the index that fixes each batch's items and noise.
    batches: u64,
    /// Seconds spent inside `step()` over the run's life (pauses excluded).
    wall_s: f64,
    /// Latent vectors of the sample grid and scatter, fixed for the whole run.
    fixed_z: Tensor,
    /// GANs: the layers whose gradient norms the health signals report, as (column, G or D, indices of
    /// their variables in that network's optimiser).
    layers: Vec<(String, Net, Vec<usize>)>,
    /// GANs with `train.ema` > 0: the moving average of G's trainable weights (in `g_params.trainable`
    /// order) that G's pictures and scores come from; started from the weights of the first update.
    average: Option<Vec<Tensor>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Net {
    G,
    D,
}

/// Columns of the sample grid of a model that is not a conditional GAN.
const SAMPLE_COLUMNS: usize = 8;

/// Columns of `model`'s sample grid: a conditional GAN of up to 16 classes has one column per class (the
/// samples take the classes in turn), any other model 8.
pub fn sample_columns(model: &ModelConfig) -> usize {
    match model.classes {
        2..=16 => model.classes,
        _ => SAMPLE_COLUMNS,
    }
}

/// Images from one end to the other of an interpolation strip, ends included.
pub const INTERPOLATION_STEPS: usize = 8;

/// The model's images between two of the sample grid's latent vectors.
#[derive(Clone, Debug, PartialEq)]
pub struct Interpolation {
    /// The indices of the two ends in the sample grid.
    pub ends: (usize, usize),
    /// Two rows of `INTERPOLATION_STEPS`: the straight line, then slerp.
    pub grid: ImageGrid,
}

/// Latent dimensions the latent walk has sliders for.
pub const WALK_DIMS: usize = 6;

/// The model's image of one sample's latent vector with its first `WALK_DIMS` values set by the user.
#[derive(Clone, Debug, PartialEq)]
pub struct LatentWalk {
    /// The sample (index into the sample grid) the walk starts from, of `samples`.
    pub sample: usize,
    pub samples: usize,
    /// The values of the first latent dimensions (as many as the latent space has, up to `WALK_DIMS`).
    pub values: Vec<f32>,
    pub image: ImageGrid,
}

/// KL and JS divergence (bits) between real and generated 2D points on a histogram, every `eval_every` steps.
pub const TOY_KL: &str = "toy_kl";
pub const TOY_JS: &str = "toy_js";

/// GAN metrics, in CSV column order.
pub const GAN_METRICS: [&str; 7] = [
    "loss_d",
    "loss_g",
    "d_real",
    "d_fake",
    "grad_norm_d",
    "grad_norm_g",
    "images_per_s",
];
/// Autoencoder metrics, in CSV column order (`kl` only for VAEs; `holdout_recon` every `eval_every` steps).
pub const AE_METRICS: [&str; 6] = ["loss", "recon", "kl", "grad_norm", "images_per_s", "holdout_recon"];

impl Session {
    /// Builds the models for `data`; fails with a message if the config cannot work on it.
    pub fn new(config: RunConfig, data: impl Into<Arc<Dataset>>) -> std::result::Result<Session, String> {
        Session::with_kernels(config, data, Kernels::Fast)
    }

    /// A session whose convolutions run on the given kernels (candle's own, to check ours against).
    pub fn with_kernels(
        config: RunConfig,
        data: impl Into<Arc<Dataset>>,
        kernels: Kernels,
    ) -> std::result::Result<Session, String> {
        let data = data.into();
        config.validate().map_err(|e| e.to_string())?;
        let seed = config.train.seed;
        let model = Model::build(&config.model, data.shape, seed, kernels)?;
        crate::models::preflight(&config.model, data.shape)?;
        check_classes(config.model.classes, &data)?;
        let split = Split::new(data.len(), config.data.holdout, seed)?;
        let batcher = Batcher::new(split.train.clone(), config.train.batch_size, seed);
        let o = &config.optimizer;
        let fail = |e: candle_core::Error| e.to_string();
        let optimizers = match &model {
            Model::Gan(gan) => Optimizers::Gan {
                g: Optimizer::new(o.kind, Hyper::new(o, o.lr), gan.g_params.vars()).map_err(fail)?,
                d: Optimizer::new(o.kind, Hyper::new(o, o.lr_d()), gan.d_params.vars()).map_err(fail)?,
            },
            Model::Autoencoder { params, .. } => {
                Optimizers::Autoencoder(Optimizer::new(o.kind, Hyper::new(o, o.lr), params.vars()).map_err(fail)?)
            }
        };
        let fixed_count = if data.shape.is_image() {
            config.train.grid_size
        } else {
            SCATTER_POINTS
        };
        let fixed_z =
            generator_inputs(&config.model, derive_seed(seed, SEED_FIXED, 0), fixed_count, None).map_err(fail)?;
        let layers = match &model {
            Model::Gan(gan) => [layer_groups(&gan.g_params, Net::G), layer_groups(&gan.d_params, Net::D)].concat(),
            Model::Autoencoder { .. } => Vec::new(),
        };
        let mut optimizers = optimizers;
        set_gradient_clipping(&mut optimizers, config.train.max_grad_norm);
        Ok(Session {
            layers,
            config,
            data,
            split,
            batcher,
            model,
            optimizers,
            step: 0,
            batches: 0,
            wall_s: 0.0,
            fixed_z,
            average: None,
        })
    }

    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    pub fn data(&self) -> &Dataset {
        &self.data
    }

    /// The data set, to share with another thread (the quality metric's).
    pub fn shared_data(&self) -> Arc<Dataset> {
        self.data.clone()
    }

    pub fn step_count(&self) -> u64 {
        self.step
    }

    pub fn wall_s(&self) -> f64 {
        self.wall_s
    }

    pub fn epoch(&self) -> f64 {
        self.batcher.epochs(self.batches)
    }

    pub fn summaries(&self) -> Vec<NetSummary> {
        self.model.summaries()
    }

    /// The metric columns this run reports.
    pub fn metric_names(&self) -> Vec<String> {
        let kind = self.config.model.kind;
        let mut names: Vec<String> = if kind.is_gan() {
            GAN_METRICS.iter().map(|m| m.to_string()).collect()
        } else {
            let vae = kind.is_vae();
            AE_METRICS
                .iter()
                .filter(|m| vae || **m != "kl")
                .map(|m| m.to_string())
                .collect()
        };
        if self.measures_divergences() {
            names.extend([TOY_KL, TOY_JS].map(String::from));
        }
        if self.data.shape.is_image() {
            names.push(crate::quality::FD.to_string());
            if crate::quality::features::is_labelled(&self.data) {
                names.extend([crate::quality::CONFIDENT, crate::quality::CLASSES].map(String::from));
            }
        }
        if self.config.health.every > 0 {
            if kind.is_gan() {
                names.extend(["diversity".to_string(), "duplicates".to_string()]);
                names.extend(self.layers.iter().map(|(column, _, _)| column.clone()));
            } else if kind.is_vae() {
                names.push("active_units".to_string());
                names.extend((0..self.config.model.latent).map(|k| format!("kl_dim.{k}")));
            }
        }
        names
    }

    /// Whether the run's metrics include the KL / JS divergence of 2D points (models that generate, on 2D data).
    fn measures_divergences(&self) -> bool {
        self.data.shape == ItemShape::Point && self.config.model.kind.generates()
    }

    /// Takes the hyperparameters of `new` that do not change shapes; anything else is refused with the
    /// name of the setting that needs a restart.
    pub fn apply(&mut self, new: RunConfig) -> std::result::Result<(), String> {
        new.validate().map_err(|e| e.to_string())?;
        if let Some(key) = self.config.restart_needed_for(&new) {
            return Err(format!("changing {key} needs a restart of the run"));
        }
        let o = &new.optimizer;
        match &mut self.optimizers {
            Optimizers::Gan { g, d } => {
                g.hyper = Hyper::new(o, o.lr);
                d.hyper = Hyper::new(o, o.lr_d());
            }
            Optimizers::Autoencoder(opt) => opt.hyper = Hyper::new(o, o.lr),
        }
        set_gradient_clipping(&mut self.optimizers, new.train.max_grad_norm);
        if new.train.ema == 0.0 {
            self.average = None;
        }
        self.config = new;
        Ok(())
    }

    /// One training iteration: `d_steps` discriminator updates and one generator update for GANs, one update
    /// for autoencoders.
    pub fn step(&mut self) -> Result<MetricRow> {
        let started = Instant::now();
        let batches_before = self.batches;
        let mut values = match &self.model {
            Model::Gan(_) => self.gan_step()?,
            Model::Autoencoder { .. } => self.autoencoder_step()?,
        };
        self.step += 1;
        let seconds = started.elapsed().as_secs_f64();
        self.wall_s += seconds;
        let images = (self.batches - batches_before) as f64 * self.config.train.batch_size as f64;
        values.push(("images_per_s", images / seconds.max(1e-9)));
        // A VAE's health signals read the held-out items' encoding that the held-out loss has just made.
        let mut held_out_code = None;
        if !self.config.model.kind.is_gan() && self.step.is_multiple_of(self.config.train.eval_every) {
            if let Some((loss, code)) = self.holdout_recon()? {
                values.push(("holdout_recon", loss));
                held_out_code = Some(code);
            }
        }
        if self.measures_divergences() && self.step.is_multiple_of(self.config.train.eval_every) {
            let (kl, js) = self.toy_divergences()?;
            values.extend([(TOY_KL, kl), (TOY_JS, js)]);
        }
        let mut values: Vec<(String, f64)> = values.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let every = self.config.health.every;
        if every > 0 && self.step.is_multiple_of(every) {
            values.extend(self.health_signals_of(held_out_code.as_ref())?);
        }
        Ok(MetricRow {
            step: self.step,
            epoch: self.epoch(),
            wall_s: self.wall_s,
            values,
        })
    }

    /// The signals the health checks read every `health.every` steps: GANs' sample diversity, share of
    /// near-duplicates and per-layer gradient norms (of the step just taken); VAEs' active units and KL per
    /// latent dimension on held-out items.
    pub fn health_signals(&self) -> Result<Vec<(String, f64)>> {
        self.health_signals_of(None)
    }

    /// `health_signals`, for a VAE from `held_out_code` (the encoder's output for `evaluation_items`) where
    /// the caller has it.
    fn health_signals_of(&self, held_out_code: Option<&Tensor>) -> Result<Vec<(String, f64)>> {
        let mut signals = Vec::new();
        match (&self.model, &self.optimizers) {
            (Model::Gan(gan), Optimizers::Gan { g, d }) => {
                let z = self.noise_seeded(
                    derive_seed(self.config.train.seed, SEED_HEALTH, self.step),
                    DIVERSITY_ITEMS,
                )?;
                let generated = gan
                    .generator
                    .forward(&z, Mode::Sample)?
                    .flatten_all()?
                    .to_vec1::<f32>()?;
                let mut rng = seeded(derive_seed(self.config.train.seed, SEED_HEALTH, !self.step));
                let train = &self.split.train;
                let items: Vec<usize> = (0..DIVERSITY_ITEMS.min(train.len()))
                    .map(|_| train[rng.random_range(0..train.len())])
                    .collect();
                let (ratio, duplicates) =
                    super::health::diversity(&generated, &self.data.gather(&items), self.data.shape.len());
                signals.push(("diversity".to_string(), ratio));
                signals.push(("duplicates".to_string(), duplicates));
                for (column, net, indices) in &self.layers {
                    let squares = match net {
                        Net::G => g.grad_squares(),
                        Net::D => d.grad_squares(),
                    };
                    signals.push((column.clone(), indices.iter().map(|i| squares[*i]).sum::<f64>().sqrt()));
                }
            }
            (Model::Autoencoder { net, .. }, _) if net.variational => {
                let code = match held_out_code {
                    Some(code) => code.clone(),
                    None => {
                        let items = self.evaluation_items(EVAL_ITEMS);
                        let x = tensor(self.data.gather(&items), &self.data.shape.batch_dims(items.len()))?;
                        net.encode(&encoder_input(&x, self.config.model.recon)?, Mode::Eval)?
                    }
                };
                let (means, log_variances) = net.split_code(&code)?;
                let units = super::health::active_units(&means.flatten_all()?.to_vec1::<f32>()?, means.dim(1)?);
                signals.push(("active_units".to_string(), units as f64));
                // KL(q(z|x) || N(0, 1)) per latent dimension, averaged over the items: which dimensions carry
                // information and which the prior swallowed.
                let kl = ((means.sqr()? + log_variances.exp()? - &log_variances)? - 1.0)?;
                let per_dimension = (kl.mean(0)? * 0.5)?.to_vec1::<f32>()?;
                for (k, value) in per_dimension.into_iter().enumerate() {
                    signals.push((format!("kl_dim.{k}"), value as f64));
                }
            }
            _ => {}
        }
        Ok(signals)
    }

    /// The next training batch, its index (which also seeds its noise) and its items.
    fn next_batch(&mut self) -> Result<(Tensor, u64, Vec<usize>)> {
        let index = self.batches;
        self.batches += 1;
        let items = self.batcher.indices(index);
        let x = tensor(self.data.gather(&items), &self.data.shape.batch_dims(items.len()))?;
        Ok((x, index, items))
    }

    /// G's inputs for `n` samples from `seed`, a conditional GAN's classes in turn.
    fn noise_seeded(&self, seed: u64, n: usize) -> Result<Tensor> {
        generator_inputs(&self.config.model, seed, n, None)
    }

    /// The one-hot classes in G's inputs `z` (a conditional GAN's), which D judges its samples against.
    fn classes_of(&self, z: &Tensor) -> Result<Option<Tensor>> {
        let m = &self.config.model;
        (m.classes > 0).then(|| z.narrow(1, m.latent, m.classes)).transpose()
    }

    fn gan_step(&mut self) -> Result<Vec<(&'static str, f64)>> {
        let t = self.config.train.clone();
        // With one network held still, its losses are still measured, but it takes no update (and so has no
        // gradient norm in the row).
        let (train_d, train_g) = (t.updates != Updates::Generator, t.updates != Updates::Discriminator);
        let (mut d_loss, mut d_real, mut d_fake, mut d_norm) = (0.0, 0.0, 0.0, None);
        let mut fake = None;
        for _ in 0..if train_d { t.d_steps } else { 1 } {
            let (x, index, items) = self.next_batch()?;
            // A conditional G makes a sample of each real item's class, so both halves have the same classes.
            let labels = (self.config.model.classes > 0)
                .then(|| self.data.labels_of(&items))
                .flatten();
            let seed = derive_seed(self.config.train.seed, SEED_NOISE, index);
            let z = generator_inputs(&self.config.model, seed, items.len(), labels.as_deref())?;
            let classes = self.classes_of(&z)?;
            let (Model::Gan(gan), Optimizers::Gan { d: opt_d, .. }) = (&self.model, &mut self.optimizers) else {
                unreachable!("GAN sessions hold GAN models and optimisers")
            };
            let generated = gan.generator.forward(&z, Mode::Train)?;
            let (real_logits, fake_logits) = if gan.discriminator.mixes_batch() {
                let real = gan.discriminator.forward(&x, classes.as_ref(), Mode::Train)?;
                let fake = gan
                    .discriminator
                    .forward(&generated.detach(), classes.as_ref(), Mode::Train)?;
                (real, fake)
            } else {
                // Scores that do not depend on the rest of the batch come out the same from one pass over
                // both batches, with half the products and no gradient sums across two passes.
                let both = Tensor::cat(&[&x, &generated.detach()], 0)?;
                let both_classes = classes.as_ref().map(|c| Tensor::cat(&[c, c], 0)).transpose()?;
                let logits = gan.discriminator.forward(&both, both_classes.as_ref(), Mode::Train)?;
                let n = x.dim(0)?;
                (logits.narrow(0, 0, n)?, logits.narrow(0, n, both.dim(0)? - n)?)
            };
            let loss = discriminator_loss(t.loss, &real_logits, &fake_logits, t.label_smoothing)?;
            if train_d {
                d_norm = Some(opt_d.step(&loss.backward()?)?);
                if t.loss == GanLoss::Wasserstein {
                    clip_weights(&gan.d_params.vars(), t.clip)?;
                }
            }
            d_loss = scalar(&loss)?;
            d_real = score(t.loss, &real_logits)?;
            d_fake = score(t.loss, &fake_logits)?;
            fake = Some((generated, classes));
        }
        let (Model::Gan(gan), Optimizers::Gan { g: opt_g, .. }) = (&self.model, &mut self.optimizers) else {
            unreachable!("GAN sessions hold GAN models and optimisers")
        };
        // The generator step reuses the last generated batch, judged by the just-updated discriminator
        // (whose weights are constants here: only the generator's gradients are wanted).
        let (fake, classes) = fake.expect("d_steps is at least 1");
        let g_loss = generator_loss(
            t.loss,
            &gan.discriminator.forward(&fake, classes.as_ref(), Mode::Judge)?,
        )?;
        let g_norm = match train_g {
            true => Some(opt_g.step(&g_loss.backward()?)?),
            false => None,
        };
        if train_g {
            self.update_average()?;
        }
        let mut values = vec![
            ("loss_d", d_loss),
            ("loss_g", scalar(&g_loss)?),
            ("d_real", d_real),
            ("d_fake", d_fake),
        ];
        values.extend(d_norm.map(|n| ("grad_norm_d", n)));
        values.extend(g_norm.map(|n| ("grad_norm_g", n)));
        Ok(values)
    }

    /// Moves the average of G's weights towards the weights just trained (`train.ema` of the old average
    /// stays), or starts it from them.
    fn update_average(&mut self) -> Result<()> {
        let (Model::Gan(gan), decay) = (&self.model, self.config.train.ema) else {
            return Ok(());
        };
        if decay == 0.0 {
            return Ok(());
        }
        let weights = gan.g_params.vars();
        self.average = Some(match self.average.take() {
            Some(average) => average
                .iter()
                .zip(&weights)
                .map(|(a, w)| a.affine(decay, 0.0)? + w.as_tensor().affine(1.0 - decay, 0.0)?)
                .collect::<Result<_>>()?,
            None => weights.iter().map(|w| w.as_tensor().copy()).collect::<Result<_>>()?,
        });
        Ok(())
    }

    fn autoencoder_step(&mut self) -> Result<Vec<(&'static str, f64)>> {
        let (x, index, _) = self.next_batch()?;
        let input = self.corrupt(&x, derive_seed(self.config.train.seed, SEED_CORRUPT, index))?;
        let noise_seed = derive_seed(self.config.train.seed, SEED_NOISE, index);
        let (Model::Autoencoder { net, .. }, Optimizers::Autoencoder(opt)) = (&self.model, &mut self.optimizers) else {
            unreachable!("autoencoder sessions hold autoencoders")
        };
        let (recon, kl, _) = reconstruction_loss(net, &self.config, &input, &x, Some(noise_seed), Mode::Train)?;
        let loss = match &kl {
            Some(kl) => (&recon + (kl * self.config.model.beta)?)?,
            None => recon.clone(),
        };
        let grads = loss.backward()?;
        let norm = opt.step(&grads)?;
        let mut values = vec![("loss", scalar(&loss)?), ("recon", scalar(&recon)?)];
        if let Some(kl) = kl {
            values.push(("kl", scalar(&kl)?));
        }
        values.push(("grad_norm", norm));
        Ok(values)
    }

    /// The denoising autoencoder's corrupted input (other models see the clean batch).
    fn corrupt(&self, x: &Tensor, seed: u64) -> Result<Tensor> {
        let m = &self.config.model;
        if m.kind != ModelKind::DenoisingAe || m.noise_level == 0.0 {
            return Ok(x.clone());
        }
        let n = x.elem_count();
        let mut rng = seeded(seed);
        match m.corruption {
            Corruption::Gaussian => {
                let noise = tensor(normal_vec(&mut rng, n), x.dims())?;
                (x + (noise * m.noise_level)?)?.clamp(-1f32, 1f32)
            }
            Corruption::Mask => {
                let keep: Vec<f32> = (0..n)
                    .map(|_| if rng.random::<f64>() < m.noise_level { 0.0 } else { 1.0 })
                    .collect();
                let keep = tensor(keep, x.dims())?;
                // Masked pixels become -1, the background of images in [-1, 1].
                ((x + 1.0)? * keep)? - 1.0
            }
        }
    }

    /// Mean reconstruction loss per item over (part of) the held-out split, in evaluation mode, and the
    /// encoder's output for those items (`evaluation_items`; corrupted first for a denoising AE); `None` when
    /// nothing is held out.
    fn holdout_recon(&self) -> Result<Option<(f64, Tensor)>> {
        let Model::Autoencoder { net, .. } = &self.model else {
            return Err(candle_core::Error::msg(
                "only autoencoders have a held-out reconstruction loss",
            ));
        };
        if self.split.holdout.is_empty() {
            return Ok(None);
        }
        // The items a VAE's health signals read, so that they can take this encoding.
        let items = self.evaluation_items(EVAL_ITEMS);
        let x = tensor(self.data.gather(&items), &self.data.shape.batch_dims(items.len()))?;
        let input = self.corrupt(&x, derive_seed(self.config.train.seed, SEED_CORRUPT, u64::MAX))?;
        let (recon, _, code) = reconstruction_loss(net, &self.config, &input, &x, None, Mode::Eval)?;
        Ok(Some((scalar(&recon)?, code)))
    }

    /// The fixed-noise sample grid: G(z) for GANs, the decoder's output for VAEs; `None` for plain
    /// autoencoders and point data.
    pub fn samples(&self) -> Result<Option<ImageGrid>> {
        if !self.data.shape.is_image() {
            return Ok(None);
        }
        match self.generate(&self.fixed_z)? {
            Some(images) => Ok(Some(self.grid(&images, sample_columns(&self.config.model))?)),
            None => Ok(None),
        }
    }

    /// The model's images along the way from fixed latent vector `ends.0` to `ends.1` (indices into the
    /// sample grid): the straight line on the top row, the great circle (slerp) below, `INTERPOLATION_STEPS`
    /// each, ends included. Made in one batch with the fixed vectors, so that batch normalisation sees the
    /// statistics the sample grid does; without it the ends are exactly the grid's tiles.
    pub fn interpolation(&self, ends: (usize, usize)) -> Result<Option<Interpolation>> {
        if !self.data.shape.is_image() {
            return Ok(None);
        }
        let n = self.fixed_z.dim(0)?;
        let ends = (ends.0.min(n - 1), ends.1.min(n - 1));
        let (a, b) = (
            self.fixed_z.get(ends.0)?.to_vec1::<f32>()?,
            self.fixed_z.get(ends.1)?.to_vec1::<f32>()?,
        );
        let steps = INTERPOLATION_STEPS;
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let cos = a.iter().zip(&b).map(|(x, y)| x * y).sum::<f32>() / (norm(&a) * norm(&b)).max(1e-12);
        let angle = cos.clamp(-1.0, 1.0).acos();
        let mut z = Vec::with_capacity(2 * steps * a.len());
        for slerp in [false, true] {
            for k in 0..steps {
                let t = k as f32 / (steps - 1) as f32;
                // Nearly parallel ends make slerp a straight line (and sin(angle) a division by zero).
                let (wa, wb) = match slerp && angle > 1e-4 {
                    true => (((1.0 - t) * angle).sin() / angle.sin(), (t * angle).sin() / angle.sin()),
                    false => (1.0 - t, t),
                };
                z.extend(a.iter().zip(&b).map(|(x, y)| wa * x + wb * y));
            }
        }
        let path = tensor(z, &[2 * steps, a.len()])?;
        let Some(images) = self.generate(&Tensor::cat(&[&self.fixed_z, &path], 0)?)? else {
            return Ok(None);
        };
        Ok(Some(Interpolation {
            ends,
            grid: self.grid(&images.narrow(0, n, 2 * steps)?, steps)?,
        }))
    }

    /// G's image of sample `sample`'s latent vector with its first dimensions set to `values` (the sample's
    /// own values when `None`), for image GANs. Made in one batch with the fixed vectors, as the samples are.
    pub fn latent_walk(&self, sample: usize, values: Option<&[f32]>) -> Result<Option<LatentWalk>> {
        if !self.data.shape.is_image() || !self.config.model.kind.is_gan() {
            return Ok(None);
        }
        let n = self.fixed_z.dim(0)?;
        let sample = sample.min(n - 1);
        let mut z = self.fixed_z.get(sample)?.to_vec1::<f32>()?;
        let dims = WALK_DIMS.min(self.config.model.latent);
        if let Some(values) = values {
            z.iter_mut().zip(values).take(dims).for_each(|(z, v)| *z = *v);
        }
        let walked = tensor(z.clone(), &[1, z.len()])?;
        let Some(images) = self.generate(&Tensor::cat(&[&self.fixed_z, &walked], 0)?)? else {
            return Ok(None);
        };
        Ok(Some(LatentWalk {
            sample,
            samples: n,
            values: z[..dims].to_vec(),
            image: self.grid(&images.narrow(0, n, 1)?, 1)?,
        }))
    }

    /// The held-out items on the latent plane (autoencoders on images), with the manifold of a
    /// two-dimensional latent space and the decode of `decode_at`, a point the user picked on the plane.
    pub fn latent_map(&self, decode_at: Option<[f32; 2]>) -> Result<Option<LatentMap>> {
        let Model::Autoencoder { net, .. } = &self.model else {
            return Ok(None);
        };
        if !self.data.shape.is_image() {
            return Ok(None);
        }
        let items = self.evaluation_items(LATENT_ITEMS);
        let x = tensor(self.data.gather(&items), &self.data.shape.batch_dims(items.len()))?;
        let code = self.codes(net, &x)?;
        let dim = code.dim(1)?;
        let codes = code.flatten_all()?.to_vec1::<f32>()?;
        let (plane, principal, explained) = match dim {
            ..=2 => (LatentPlane::latent_axes(dim), false, 1.0),
            _ => {
                let (plane, explained) = LatentPlane::principal(&codes, dim);
                (plane, true, explained)
            }
        };
        let points: Vec<[f32; 2]> = codes.chunks(dim).map(|code| plane.project(code)).collect();
        let decode = |at: &[[f32; 2]]| -> Result<ImageGrid> {
            let z: Vec<f32> = at.iter().flat_map(|p| plane.latent(*p)).collect();
            let images = self.decoded(net, &tensor(z, &[at.len(), dim])?)?;
            self.grid(&images, MANIFOLD_SIDE.min(at.len()))
        };
        let manifold = match dim {
            2 => {
                let bounds = latent_views::padded_bounds(&points);
                Some((decode(&latent_views::manifold_points(bounds))?, bounds))
            }
            _ => None,
        };
        let decoded = decode_at.map(|at| decode(&[at]).map(|grid| (at, grid))).transpose()?;
        Ok(Some(LatentMap {
            labels: self.data.labels_of(&items),
            label_names: self.data.label_names.clone(),
            items: self.grid(&x, ITEM_COLUMNS)?,
            points,
            plane,
            principal,
            explained,
            manifold,
            decoded,
        }))
    }

    /// What the model makes of latent vectors `z`, in the data's range: G(z) for GANs, the decoder's output
    /// for VAEs; `None` for plain autoencoders, which generate nothing.
    fn generate(&self, z: &Tensor) -> Result<Option<Tensor>> {
        match &self.model {
            Model::Gan(Gan {
                generator, g_params, ..
            }) => match &self.average {
                Some(average) => with_weights(&g_params.vars(), average, || generator.forward(z, Mode::Sample)),
                None => generator.forward(z, Mode::Sample),
            }
            .map(Some),
            Model::Autoencoder { net, .. } if net.variational => self.decoded(net, z).map(Some),
            Model::Autoencoder { .. } => Ok(None),
        }
    }

    /// Fixed held-out items beside their reconstructions, in (input, reconstruction) column pairs.
    pub fn reconstructions(&self) -> Result<Option<ImageGrid>> {
        let Model::Autoencoder { net, .. } = &self.model else {
            return Ok(None);
        };
        if !self.data.shape.is_image() {
            return Ok(None);
        }
        let (input, output) = self.reconstruct_fixed(net, RECON_ITEMS)?;
        let n = input.dim(0)?;
        let dims = self.data.shape.batch_dims(n);
        let pairs = Tensor::stack(&[input, output], 1)?.reshape(&[vec![2 * n], dims[1..].to_vec()].concat()[..])?;
        Ok(Some(self.grid(&pairs, 8)?))
    }

    /// Real points beside generated (GAN, VAE) or reconstructed (AE) ones, for 2D data.
    pub fn points(&self) -> Result<Option<PointCloud>> {
        if self.data.shape != ItemShape::Point {
            return Ok(None);
        }
        let real_items: Vec<usize> = self.split.train.iter().take(SCATTER_POINTS).copied().collect();
        let real = pairs(&self.data.gather(&real_items));
        let generated = match (self.generate(&self.fixed_z)?, &self.model) {
            (Some(generated), _) => generated,
            (None, Model::Autoencoder { net, .. }) => self.reconstruct_fixed(net, SCATTER_POINTS)?.1,
            (None, Model::Gan(_)) => unreachable!("GANs always generate"),
        };
        let labels = self.data.labels_of(&real_items);
        let (heatmap, arrows) = match &self.model {
            Model::Gan(gan) => (Some(self.heatmap(gan)?), Some(self.loss_directions(gan, &generated)?)),
            Model::Autoencoder { .. } => (None, None),
        };
        let z = toy_views::manifold_latents(self.config.model.latent);
        let side = toy_views::MANIFOLD_CELLS + 1;
        let manifold = self
            .generate(&tensor(z, &[side * side, self.config.model.latent])?)?
            .map(|points| tensor_pairs(&points))
            .transpose()?;
        Ok(Some(PointCloud {
            real,
            generated: tensor_pairs(&generated)?,
            labels,
            heatmap,
            manifold,
            arrows,
        }))
    }

    /// D's probability of "real" over the plane.
    fn heatmap(&self, gan: &Gan) -> Result<Heatmap> {
        let cells = toy_views::HEATMAP_CELLS;
        let x = tensor(Heatmap::centres(cells), &[cells * cells, 2])?;
        let probability = candle_nn::ops::sigmoid(&gan.discriminator.forward(&x, None, Mode::Eval)?)?;
        Ok(Heatmap {
            cells,
            values: probability.flatten_all()?.to_vec1::<f32>()?,
        })
    }

    /// For each generated point, the direction in which G's loss (the run's own) falls fastest:
    /// -∂ loss_G / ∂ x through D.
    fn loss_directions(&self, gan: &Gan, generated: &Tensor) -> Result<Vec<[f32; 2]>> {
        let x = candle_core::Var::from_tensor(&generated.detach())?;
        let logits = gan.discriminator.forward(x.as_tensor(), None, Mode::Eval)?;
        let grads = generator_loss(self.config.train.loss, &logits)?.backward()?;
        let gradient = grads
            .get(x.as_tensor())
            .ok_or_else(|| candle_core::Error::msg("D's output does not depend on its input"))?;
        tensor_pairs(&gradient.neg()?)
    }

    /// KL and JS divergence between the training points and as many fresh generated ones (2D data).
    fn toy_divergences(&self) -> Result<(f64, f64)> {
        let items: Vec<usize> = self.split.train.iter().take(DIVERGENCE_POINTS).copied().collect();
        let real = pairs(&self.data.gather(&items));
        let z = self.noise_seeded(
            derive_seed(self.config.train.seed, SEED_DIVERGENCE, self.step),
            items.len(),
        )?;
        let generated = self.generate(&z)?.expect("only models that generate are measured");
        Ok(toy_views::divergences(&real, &tensor_pairs(&generated)?))
    }

    /// What the quality metric scores, in the data's range: `count` samples from fixed noise (GANs, VAEs) or
    /// reconstructions of held-out items (other autoencoders); `None` for point data.
    pub fn quality_outputs(&self, count: usize) -> Result<Option<Tensor>> {
        if !self.data.shape.is_image() {
            return Ok(None);
        }
        // In chunks: a large generator's feature maps for thousands of samples at once would not fit.
        let chunk = 128;
        let mut parts = Vec::new();
        match &self.model {
            Model::Autoencoder { net, .. } if !net.variational => {
                for items in self.evaluation_items(count).chunks(chunk) {
                    parts.push(self.reconstruct(net, items)?.1);
                }
            }
            _ => {
                let z = self.noise_seeded(derive_seed(self.config.train.seed, SEED_QUALITY, 0), count)?;
                for start in (0..count).step_by(chunk) {
                    let z = z.narrow(0, start, chunk.min(count - start))?;
                    parts.extend(self.generate(&z)?);
                }
            }
        }
        Tensor::cat(&parts, 0).map(Some)
    }

    /// Copies of the model's tensors (weights and batch-norm statistics), as a checkpoint names them.
    pub fn model_weights(&self) -> Result<HashMap<String, Tensor>> {
        self.model
            .named_tensors()
            .into_iter()
            .map(|(n, v)| Ok((format!("model/{n}"), v.as_tensor().copy()?)))
            .collect()
    }

    /// The model's tensors as its pictures and scores use them: `model_weights` with G's averaged weights
    /// where `train.ema` keeps an average (a session that loads them generates as this one does).
    pub fn sampling_weights(&self) -> Result<HashMap<String, Tensor>> {
        let mut weights = self.model_weights()?;
        weights.extend(self.average_tensors("model/g")?);
        Ok(weights)
    }

    /// G's averaged weights under `prefix`, named as G's trainable weights; none without an average.
    fn average_tensors(&self, prefix: &str) -> Result<Vec<(String, Tensor)>> {
        let (Model::Gan(gan), Some(average)) = (&self.model, &self.average) else {
            return Ok(Vec::new());
        };
        gan.g_params
            .trainable
            .iter()
            .zip(average)
            .map(|((name, _), a)| Ok((format!("{prefix}/{name}"), a.copy()?)))
            .collect()
    }

    /// Sets the model's tensors from `tensors` (a checkpoint or `model_weights` of a session of the same
    /// model config).
    pub fn load_model_weights(&self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        for (name, var) in self.model.named_tensors() {
            let key = format!("model/{name}");
            let t = tensors
                .get(&key)
                .ok_or_else(|| candle_core::Error::msg(format!("checkpoint lacks '{key}'")))?;
            if t.dims() != var.dims() {
                return Err(candle_core::Error::msg(format!(
                    "'{key}' has shape {:?} in the checkpoint, the model has {:?}",
                    t.dims(),
                    var.dims()
                )));
            }
            var.set(&t.to_dtype(DType::F32)?)?;
        }
        Ok(())
    }

    /// The first `count` held-out items, or training items when nothing is held out.
    fn evaluation_items(&self, count: usize) -> Vec<usize> {
        let pool = if self.split.holdout.is_empty() {
            &self.split.train
        } else {
            &self.split.holdout
        };
        pool.iter().take(count).copied().collect()
    }

    fn reconstruct_fixed(&self, net: &Autoencoder, count: usize) -> Result<(Tensor, Tensor)> {
        self.reconstruct(net, &self.evaluation_items(count))
    }

    /// `items` (corrupted for the denoising autoencoder) and their reconstructions.
    fn reconstruct(&self, net: &Autoencoder, items: &[usize]) -> Result<(Tensor, Tensor)> {
        let x = tensor(self.data.gather(items), &self.data.shape.batch_dims(items.len()))?;
        let input = self.corrupt(&x, derive_seed(self.config.train.seed, SEED_CORRUPT, u64::MAX))?;
        let output = self.decoded(net, &self.codes(net, &input)?)?;
        Ok((input, output))
    }

    /// `net`'s codes of items `x` (in the data's range): a VAE's posterior means, a plain autoencoder's codes.
    fn codes(&self, net: &Autoencoder, x: &Tensor) -> Result<Tensor> {
        let code = net.encode(&encoder_input(x, self.config.model.recon)?, Mode::Eval)?;
        match net.variational {
            true => Ok(net.split_code(&code)?.0),
            false => Ok(code),
        }
    }

    /// `net`'s decoder output for `codes`, in the data's range.
    fn decoded(&self, net: &Autoencoder, codes: &Tensor) -> Result<Tensor> {
        output_to_data(&net.decode(codes, Mode::Eval)?, self.config.model.recon)
    }

    fn grid(&self, images: &Tensor, nrow: usize) -> Result<ImageGrid> {
        let n = images.dim(0)?;
        Ok(make_grid(
            &images.flatten_all()?.to_vec1::<f32>()?,
            self.data.shape,
            n,
            nrow,
        ))
    }

    /// Everything a checkpoint holds: weights, batch-norm statistics, optimiser state and progress.
    pub fn checkpoint_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = self.model_weights()?;
        let states = match &self.optimizers {
            Optimizers::Gan { g, d } => [g.state_tensors("optim/g")?, d.state_tensors("optim/d")?].concat(),
            Optimizers::Autoencoder(o) => o.state_tensors("optim/ae")?,
        };
        out.extend(states);
        out.insert(
            "progress/counters".into(),
            Tensor::new(&[self.step as i64, self.batches as i64], &Device::Cpu)?,
        );
        out.insert("progress/wall_s".into(), Tensor::new(&[self.wall_s], &Device::Cpu)?);
        out.extend(self.average_tensors(AVERAGE)?);
        Ok(out)
    }

    /// Restores a checkpoint made by `checkpoint_tensors` of a session with the same config.
    pub fn restore(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        let get = |name: &str| tensors.get(name).cloned();
        let missing = |name: &str| candle_core::Error::msg(format!("checkpoint lacks '{name}'"));
        self.load_model_weights(tensors)?;
        match &mut self.optimizers {
            Optimizers::Gan { g, d } => {
                g.load_state("optim/g", &get)?;
                d.load_state("optim/d", &get)?;
            }
            Optimizers::Autoencoder(o) => o.load_state("optim/ae", &get)?,
        }
        let counters = get("progress/counters")
            .ok_or_else(|| missing("progress/counters"))?
            .to_vec1::<i64>()?;
        (self.step, self.batches) = (counters[0] as u64, counters[1] as u64);
        self.wall_s = get("progress/wall_s")
            .ok_or_else(|| missing("progress/wall_s"))?
            .to_vec1::<f64>()?[0];
        // A checkpoint without an average (made with `train.ema` = 0) starts one at the next update.
        self.average = match &self.model {
            Model::Gan(gan) => gan
                .g_params
                .trainable
                .iter()
                .map(|(name, _)| get(&format!("{AVERAGE}/{name}")))
                .collect::<Option<Vec<_>>>()
                .filter(|_| self.config.train.ema > 0.0),
            Model::Autoencoder { .. } => None,
        };
        Ok(())
    }
}

/// Where checkpoints keep G's averaged weights.
const AVERAGE: &str = "average/g";

/// G's inputs for `n` samples: normal noise from `seed`, then for a conditional GAN the one-hot classes
/// `labels`, or the classes in turn (0, 1, 2, ...) where none are given.
fn generator_inputs(model: &ModelConfig, seed: u64, n: usize, labels: Option<&[u32]>) -> Result<Tensor> {
    let (latent, classes) = (model.latent, model.classes);
    let noise = normal_vec(&mut seeded(seed), n * latent);
    if classes == 0 {
        return tensor(noise, &[n, latent]);
    }
    let mut inputs = Vec::with_capacity(n * (latent + classes));
    for (i, noise) in noise.chunks_exact(latent).enumerate() {
        let class = labels.map_or(i % classes, |labels| labels[i] as usize);
        inputs.extend_from_slice(noise);
        inputs.extend((0..classes).map(|c| if c == class { 1.0 } else { 0.0 }));
    }
    tensor(inputs, &[n, latent + classes])
}

/// Whether `data` has the labels a GAN conditioned on `classes` classes needs (any data for 0).
fn check_classes(classes: usize, data: &Dataset) -> std::result::Result<(), String> {
    if classes == 0 {
        return Ok(());
    }
    let name = &data.name;
    match data.labels_used() {
        None => Err(format!(
            "model.classes: {name} has no labels to condition on; set model.classes = 0, or use labelled \
             data (digits, MNIST files, a folder with one subfolder per class)"
        )),
        Some(used) if used > classes => Err(format!(
            "model.classes = {classes}, but {name}'s labels go up to {}: set it to {used}",
            used - 1
        )),
        Some(_) => Ok(()),
    }
}

/// `f()` run with `vars` set to `weights`, and the vars' own values back afterwards.
fn with_weights<T>(vars: &[candle_core::Var], weights: &[Tensor], f: impl FnOnce() -> Result<T>) -> Result<T> {
    let own = vars.iter().map(|v| v.as_tensor().copy()).collect::<Result<Vec<_>>>()?;
    for (var, weight) in vars.iter().zip(weights) {
        var.set(weight)?;
    }
    let out = f();
    for (var, weight) in vars.iter().zip(&own) {
        var.set(weight)?;
    }
    out
}

/// Reconstruction loss (and KL for VAEs) of `net` on `input` against the clean `target`, and the encoder's
/// output. `noise_seed` draws the VAE's reparameterisation noise; without it the VAE decodes its mean.
fn reconstruction_loss(
    net: &Autoencoder,
    config: &RunConfig,
    input: &Tensor,
    target: &Tensor,
    noise_seed: Option<u64>,
    mode: Mode,
) -> Result<(Tensor, Option<Tensor>, Tensor)> {
    let encoded = encoder_input(input, config.model.recon)?;
    let code = net.encode(&encoded, mode)?;
    let (z, kl) = if net.variational {
        let (mu, logvar) = net.split_code(&code)?;
        let z = match noise_seed {
            Some(seed) => {
                let eps = tensor(normal_vec(&mut seeded(seed), mu.elem_count()), mu.dims())?;
                (&mu + (eps * (&logvar * 0.5)?.exp()?)?)?
            }
            None => mu.clone(),
        };
        (z, Some(kl_per_item(&mu, &logvar)?))
    } else {
        (code.clone(), None)
    };
    let out = net.decode(&z, mode)?;
    let recon = match config.model.recon {
        // Without corruption the target is the input, already in [0, 1].
        Recon::Bce if target.id() == input.id() => bce_sum_per_item(&out, &encoded)?,
        Recon::Bce => bce_sum_per_item(&out, &encoder_input(target, Recon::Bce)?)?,
        Recon::Mse => mse_sum_per_item(&out.tanh()?, target)?,
    };
    Ok((recon, kl, code))
}

/// What the encoder sees: with BCE the model works on [0, 1] pixels throughout (input and target, as in
/// PyTorch's VAE example); with MSE on the data's [-1, 1].
fn encoder_input(x: &Tensor, recon: Recon) -> Result<Tensor> {
    match recon {
        // One pass over the batch: x * 0.5 + 0.5.
        Recon::Bce => x.affine(0.5, 0.5),
        Recon::Mse => Ok(x.clone()),
    }
}

/// Maps decoder outputs back to the data's range ([-1, 1]).
fn output_to_data(out: &Tensor, recon: Recon) -> Result<Tensor> {
    match recon {
        Recon::Bce => (candle_nn::ops::sigmoid(out)? * 2.0)? - 1.0,
        Recon::Mse => out.tanh(),
    }
}

/// What D says about a batch: the mean probability of "real" for BCE losses, the mean raw score otherwise.
fn score(loss: GanLoss, logits: &Tensor) -> Result<f64> {
    if loss.is_probabilistic() {
        scalar(&candle_nn::ops::sigmoid(logits)?.mean_all()?)
    } else {
        scalar(&logits.mean_all()?)
    }
}

fn scalar(t: &Tensor) -> Result<f64> {
    t.to_dtype(DType::F64)?.to_scalar::<f64>()
}

fn clip_weights(vars: &[candle_core::Var], clip: f64) -> Result<()> {
    for v in vars {
        v.set(&v.as_tensor().clamp(-clip as f32, clip as f32)?)?;
    }
    Ok(())
}

/// The trainable variables of `params` grouped by layer (`g.0.conv.weight` and `g.0.bn.bias` are layer `0`
/// of G), each with its gradient-norm column, `grad_norm_g.0`.
fn layer_groups(params: &crate::models::layers::Params, net: Net) -> Vec<(String, Net, Vec<usize>)> {
    let mut groups: Vec<(String, Net, Vec<usize>)> = Vec::new();
    for (index, (name, _)) in params.trainable.iter().enumerate() {
        let layer = name.split('.').nth(1).unwrap_or(name);
        let column = format!("grad_norm_{}.{layer}", if net == Net::G { "g" } else { "d" });
        match groups.iter_mut().find(|(c, _, _)| *c == column) {
            Some((_, _, indices)) => indices.push(index),
            None => groups.push((column, net, vec![index])),
        }
    }
    groups
}

fn set_gradient_clipping(optimizers: &mut Optimizers, max_norm: f64) {
    match optimizers {
        Optimizers::Gan { g, d } => (g.max_grad_norm, d.max_grad_norm) = (max_norm, max_norm),
        Optimizers::Autoencoder(o) => o.max_grad_norm = max_norm,
    }
}

fn pairs(values: &[f32]) -> Vec<[f32; 2]> {
    values.chunks_exact(2).map(|p| [p[0], p[1]]).collect()
}

/// A tensor of 2D points, (N, 2), as pairs.
fn tensor_pairs(points: &Tensor) -> Result<Vec<[f32; 2]>> {
    Ok(pairs(&points.flatten_all()?.to_vec1::<f32>()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session of `config` on its data.
    fn loaded(config: RunConfig) -> Session {
        let data = crate::data::load(&config.data, config.train.seed, &|_, _, _| {}).unwrap();
        Session::new(config, data).unwrap()
    }

    #[test]
    fn the_2d_views_follow_the_model_and_the_arrows_point_where_g_loss_falls() {
        let mut config = crate::presets::preset("ganlab-circle").unwrap();
        config.data.count = 1000;
        config.train.eval_every = 20;
        let mut session = loaded(config);
        let before = session.points().unwrap().unwrap();
        let mut measured = Vec::new();
        for _ in 0..40 {
            let row = session.step().unwrap();
            measured.extend([TOY_KL, TOY_JS].iter().filter_map(|m| row.get(m)));
        }
        assert_eq!(measured.len(), 4, "KL and JS every eval_every steps: {measured:?}");
        assert!(measured.iter().all(|v| v.is_finite() && *v >= 0.0), "{measured:?}");
        let after = session.points().unwrap().unwrap();
        let (heatmap, manifold) = (after.heatmap.as_ref().unwrap(), after.manifold.as_ref().unwrap());
        assert_eq!(heatmap.values.len(), toy_views::HEATMAP_CELLS.pow(2));
        assert!(heatmap.values.iter().all(|p| (0.0..=1.0).contains(p)));
        assert_ne!(Some(heatmap), before.heatmap.as_ref(), "D's surface moves as it trains");
        assert_eq!(manifold.len(), (toy_views::MANIFOLD_CELLS + 1).pow(2));

        // A small move of every generated point along its arrow lowers G's loss.
        let Model::Gan(gan) = &session.model else {
            unreachable!("a GAN preset")
        };
        let loss_at = |points: &[[f32; 2]]| {
            let x = tensor(points.iter().flatten().copied().collect(), &[points.len(), 2]).unwrap();
            let logits = gan.discriminator.forward(&x, None, Mode::Eval).unwrap();
            generator_loss(session.config.train.loss, &logits)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        let arrows = after.arrows.as_ref().unwrap();
        let moved: Vec<[f32; 2]> = after
            .generated
            .iter()
            .zip(arrows)
            .map(|(p, a)| {
                let length = a[0].hypot(a[1]).max(1e-12);
                [p[0] + 1e-3 * a[0] / length, p[1] + 1e-3 * a[1] / length]
            })
            .collect();
        assert!(loss_at(&moved) < loss_at(&after.generated));
    }

    #[test]
    fn a_vae_row_reads_its_health_from_the_held_out_encoding_as_a_fresh_one_would() {
        // Held-out loss and health signals fall on the same step: the row's signals come from the held-out
        // loss's encoding, and equal those made from scratch with the same weights.
        let mut config = crate::presets::preset("vae-digits").unwrap();
        config.data.count = 600;
        config.train.eval_every = 4;
        config.health.every = 4;
        let mut session = loaded(config);
        let rows: Vec<MetricRow> = (0..4).map(|_| session.step().unwrap()).collect();
        let row = &rows[3];
        assert!(row.get("holdout_recon").is_some(), "{row:?}");
        let fresh = session.health_signals().unwrap();
        assert!(fresh.len() > 1 && fresh[0].0 == "active_units", "{fresh:?}");
        for (name, value) in &fresh {
            assert_eq!(row.get(name), Some(*value), "{name}");
        }
        // The signals come from the encoding handed in, not from one made afresh: means and log-variances of
        // zero are the prior itself, with no active unit and no KL in any dimension.
        assert!(
            fresh
                .iter()
                .any(|(name, value)| name.starts_with("kl_dim") && *value > 0.0),
            "{fresh:?}"
        );
        let prior = Tensor::zeros((8, 2 * session.config.model.latent), DType::F32, &Device::Cpu).unwrap();
        for (name, value) in session.health_signals_of(Some(&prior)).unwrap() {
            assert_eq!(value, 0.0, "{name}");
        }
    }

    #[test]
    fn latent_map_places_held_out_items_and_decodes_the_plane() {
        // A VAE with a two-dimensional latent space: its own axes, the manifold, a decode where asked.
        let mut config = crate::presets::preset("vae-digits").unwrap();
        config.model.latent = 2;
        config.data.count = 600;
        let mut session = loaded(config);
        for _ in 0..5 {
            session.step().unwrap();
        }
        let (a, b) = ([0.5, -1.0], [-1.5, 1.0]);
        let map = session.latent_map(Some(a)).unwrap().expect("an autoencoder on images");
        let items = session.evaluation_items(latent_views::LATENT_ITEMS);
        assert_eq!(map.points.len(), items.len());
        let labels = session.data.labels.as_ref().unwrap();
        assert_eq!(map.labels, Some(items.iter().map(|&i| labels[i]).collect()));
        assert!(!map.principal);
        // Each point is the posterior mean of its item.
        let Model::Autoencoder { net, .. } = &session.model else {
            unreachable!()
        };
        let x = tensor(session.data.gather(&items[..1]), &session.data.shape.batch_dims(1)).unwrap();
        let code = net
            .encode(&encoder_input(&x, session.config.model.recon).unwrap(), Mode::Eval)
            .unwrap();
        let mean = net
            .split_code(&code)
            .unwrap()
            .0
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!((map.points[0][0] - mean[0]).abs() < 1e-4 && (map.points[0][1] - mean[1]).abs() < 1e-4);
        let (manifold, bounds) = map.manifold.as_ref().expect("a 2-D latent space has a manifold");
        let tile = 28 + crate::grid::GRID_PADDING;
        assert_eq!(
            manifold.width,
            latent_views::MANIFOLD_SIDE * tile + crate::grid::GRID_PADDING
        );
        assert!(map.points.iter().all(|p| (bounds[0]..=bounds[1]).contains(&p[0])));
        let (at, decoded) = map.decoded.as_ref().expect("the point asked for");
        assert_eq!(*at, a);
        assert_eq!(decoded.width, tile + crate::grid::GRID_PADDING);
        let other = session.latent_map(Some(b)).unwrap().unwrap().decoded.unwrap().1;
        assert_ne!(decoded.rgba, other.rgba, "another point decodes to another image");

        // A conv AE with 16 latent dimensions: the plane of its principal components.
        let mut config = crate::presets::preset("conv-ae-digits").unwrap();
        config.model.latent = 16;
        config.data.count = 300;
        let session = loaded(config);
        let map = session.latent_map(None).unwrap().unwrap();
        assert!(map.principal && map.manifold.is_none() && map.decoded.is_none());
        assert!(map.explained > 0.0 && map.explained <= 1.0, "{}", map.explained);
        // GANs have no encoder, so no map.
        let config = crate::presets::preset("mlp-gan-digits").unwrap();
        assert!(loaded(config).latent_map(None).unwrap().is_none());
    }

    fn small_gan(ema: f64) -> Session {
        let mut config = crate::presets::preset("mlp-gan-digits").unwrap();
        config.data.count = 256;
        config.model.hidden = vec![32, 64];
        config.model.latent = 8;
        config.train.batch_size = 16;
        config.train.ema = ema;
        loaded(config)
    }

    /// G's trainable weights by name, flattened.
    fn g_weights(weights: &HashMap<String, Tensor>, session: &Session) -> Vec<(String, Vec<f32>)> {
        let Model::Gan(gan) = &session.model else {
            unreachable!()
        };
        gan.g_params
            .trainable
            .iter()
            .map(|(name, _)| {
                let key = format!("model/g/{name}");
                (key.clone(), weights[&key].flatten_all().unwrap().to_vec1().unwrap())
            })
            .collect()
    }

    #[test]
    fn samples_come_from_the_moving_average_of_g_which_checkpoints_keep() {
        let decay = 0.5;
        let mut session = small_gan(decay);
        let mut expected: Option<Vec<(String, Vec<f32>)>> = None;
        for _ in 0..3 {
            session.step().unwrap();
            let trained = g_weights(&session.model_weights().unwrap(), &session);
            expected = Some(match expected {
                None => trained,
                Some(average) => average
                    .into_iter()
                    .zip(trained)
                    .map(|((name, a), (_, w))| {
                        let mixed = a
                            .iter()
                            .zip(&w)
                            .map(|(a, w)| decay as f32 * a + (1.0 - decay as f32) * w);
                        (name, mixed.collect())
                    })
                    .collect(),
            });
        }
        let sampled = session.sampling_weights().unwrap();
        for ((name, want), (_, got)) in expected.unwrap().iter().zip(g_weights(&sampled, &session)) {
            let off = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(off < 1e-6, "{name}: the average is off by {off}");
        }

        // The grid is G's output with the averaged weights, not with the trained ones.
        let plain = small_gan(0.0);
        plain.load_model_weights(&sampled).unwrap();
        let grid = session.samples().unwrap().unwrap();
        assert_eq!(grid.rgba, plain.samples().unwrap().unwrap().rgba);
        plain.load_model_weights(&session.model_weights().unwrap()).unwrap();
        assert_ne!(
            grid.rgba,
            plain.samples().unwrap().unwrap().rgba,
            "averaging changes the pictures"
        );

        // A restored checkpoint (resume, fork, roll back) samples from the same average.
        let mut resumed = small_gan(decay);
        resumed.restore(&session.checkpoint_tensors().unwrap()).unwrap();
        assert_eq!(resumed.samples().unwrap().unwrap().rgba, grid.rgba);
        // Turned off, the pictures show G as trained.
        let mut off = session.config().clone();
        off.train.ema = 0.0;
        session.apply(off).unwrap();
        assert_eq!(
            session.samples().unwrap().unwrap().rgba,
            plain.samples().unwrap().unwrap().rgba
        );
    }

    #[test]
    fn a_conditional_gan_takes_a_class_with_its_noise_and_needs_labels_below_its_classes() {
        let mut config = crate::presets::preset("quick-dcgan-digits").unwrap();
        config.data.count = 200;
        config.model.classes = 10;
        let latent = config.model.latent;
        let mut session = loaded(config.clone());
        // The sample grid's inputs take the classes in turn after their noise.
        for (i, row) in session.fixed_z.to_vec2::<f32>().unwrap().iter().enumerate() {
            let one_hot: Vec<f32> = (0..10).map(|c| if c == i % 10 { 1.0 } else { 0.0 }).collect();
            assert_eq!(row[latent..], one_hot[..], "sample {i}");
        }
        for _ in 0..3 {
            assert!(session.step().unwrap().values.iter().all(|(_, v)| v.is_finite()));
        }
        // The same noise or the same image with another class: G makes another sample, D scores another.
        let Model::Gan(gan) = &session.model else {
            unreachable!()
        };
        let inputs = |class| generator_inputs(&config.model, 7, 1, Some(&[class])).unwrap();
        let z = Tensor::cat(&[inputs(0), inputs(3)], 0).unwrap();
        let samples = gan.generator.forward(&z, Mode::Eval).unwrap();
        let rows = samples.flatten_from(1).unwrap().to_vec2::<f32>().unwrap();
        assert_ne!(rows[0], rows[1]);
        let image = samples.narrow(0, 0, 1).unwrap();
        let both = Tensor::cat(&[&image, &image], 0).unwrap();
        let classes = z.narrow(1, latent, 10).unwrap();
        let scores = gan.discriminator.forward(&both, Some(&classes), Mode::Eval).unwrap();
        let scores = scores.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_ne!(scores[0], scores[1]);

        let mut data = crate::data::load(&config.data, 0, &|_, _, _| {}).unwrap();
        config.model.classes = 5;
        let refused = Session::new(config.clone(), data.clone()).err().unwrap();
        assert!(
            refused.contains("model.classes = 5") && refused.contains("set it to 10"),
            "{refused}"
        );
        data.labels = None;
        config.model.classes = 10;
        let refused = Session::new(config.clone(), data).err().unwrap();
        assert!(
            refused.contains("model.classes") && refused.contains("no labels"),
            "{refused}"
        );
        config.data.source = "toy:ring".into();
        config.model.kind = ModelKind::MlpGan;
        let data = crate::data::load(&config.data, 0, &|_, _, _| {}).unwrap();
        let refused = Session::new(config, data).err().unwrap();
        assert!(refused.contains("2D points"), "{refused}");
    }
}
