//! The small network whose features the quality metric compares: a classifier where the data set has labels,
//! an autoencoder's code otherwise (so any image folder gets one), and the keys its data set's reference is
//! cached under (see `Reference::cached_or_built`), so every run on the data set shares one.

use crate::config::{Activation, Norm, OptimizerConfig, OptimizerKind};
use crate::data::{Batcher, Dataset, Split};
use crate::models::layers::{dense_stack, run_stack, tensor, Builder, DenseBlock, Kernels, Linear, Mode, Params};
use crate::rng::seeded;
use crate::train::optim::{Hyper, Optimizer};
use candle_core::{DType, Device, Result, Tensor, D};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Bumped whenever the architecture or training changes, so cached networks of an older recipe are rebuilt.
const RECIPE: u32 = 1;
const SEED: u64 = 0x6665_6174;
const HIDDEN: usize = 256;
/// Feature dimensions of the classifier (its last hidden layer) and of the autoencoder (its code).
const CLASSIFIER_FEATURES: usize = 64;
const CODE_FEATURES: usize = 32;
const BATCH: usize = 128;
const EPOCHS: usize = 12;
const MIN_STEPS: usize = 300;
const MAX_STEPS: usize = 1500;
/// Values hashed at once by `dataset_key`.
const HASH_BLOCK: usize = 16_384;
/// Items the fit on held-out data is measured on.
const FIT_ITEMS: usize = 2000;

/// What the network was trained to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeatureKind {
    Classifier { classes: usize },
    Autoencoder,
}

/// What the user is told about the network behind the metric.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureInfo {
    pub kind: FeatureKind,
    /// Held-out accuracy (classifier) or mean squared error per value in [-1, 1] (autoencoder).
    pub fit: f64,
    /// Seconds it took to train, or `None` when it came from the cache.
    pub trained_s: Option<f64>,
}

impl FeatureInfo {
    /// E.g. `features of a 10-class classifier (97.1 % held-out accuracy, cached)`.
    pub fn describe(&self) -> String {
        let source = match self.trained_s {
            Some(s) => format!("trained in {s:.1} s"),
            None => "cached".to_string(),
        };
        match self.kind {
            FeatureKind::Classifier { classes } => format!(
                "features of a {classes}-class classifier ({:.1} % held-out accuracy, {source})",
                100.0 * self.fit
            ),
            FeatureKind::Autoencoder => format!(
                "code of an autoencoder (held-out reconstruction error {:.4}, {source})",
                self.fit
            ),
        }
    }
}

enum Head {
    Classifier(Linear),
    Decoder(Vec<DenseBlock>, Linear),
}

pub struct FeatureNet {
    trunk: Vec<DenseBlock>,
    features: Linear,
    head: Head,
    params: Params,
    pub info: FeatureInfo,
}

/// The held-out part of a data set the feature network never trains on; fixed by the data set alone, so
/// every run on it gets the same network.
fn feature_split(data: &Dataset) -> std::result::Result<Split, String> {
    Split::new(data.len(), 0.1, SEED)
}

/// Up to `count` items of `data` the feature network did not train on: the real side of the comparison.
pub fn reference_items(data: &Dataset, count: usize) -> std::result::Result<Vec<usize>, String> {
    Ok(feature_split(data)?.holdout.into_iter().take(count).collect())
}

fn classes(data: &Dataset) -> Option<usize> {
    let classes = data.label_names.len().max(data.labels_used()?);
    (classes >= 2).then_some(classes)
}

/// Whether `data` has the labels a classifier needs (else the features are an autoencoder's code).
pub fn is_labelled(data: &Dataset) -> bool {
    classes(data).is_some()
}

/// A hash of everything the network would learn from: shape, items, labels and the recipe.
pub fn dataset_key(data: &Dataset) -> String {
    let mut hash = Sha256::new();
    hash.update(b"contents");
    hash.update(RECIPE.to_le_bytes());
    hash.update(data.shape.describe().as_bytes());
    hash.update((data.len() as u64).to_le_bytes());
    // In blocks: one update per value made hashing a 60,000-image set take seconds.
    let mut block = Vec::with_capacity(4 * HASH_BLOCK);
    for values in data.items.chunks(HASH_BLOCK) {
        block.clear();
        block.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        hash.update(&block);
    }
    for labels in data.labels.iter().flat_map(|l| l.chunks(HASH_BLOCK)) {
        block.clear();
        block.extend(labels.iter().flat_map(|l| l.to_le_bytes()));
        hash.update(&block);
    }
    hex(hash)
}

/// A hash of the settings that fix a generated data set (the generator draws the same items from them), so
/// its reference is found without drawing the items.
pub fn generated_key(description: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(b"generated");
    hash.update(RECIPE.to_le_bytes());
    hash.update(description.as_bytes());
    hex(hash)
}

fn hex(hash: Sha256) -> String {
    hash.finalize()[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// Where the reference under `key` is cached.
pub fn cache_file(cache_dir: &Path, key: &str) -> PathBuf {
    cache_dir.join(format!("reference-{key}.safetensors"))
}

impl FeatureNet {
    fn build(inputs: usize, kind: FeatureKind) -> Result<FeatureNet> {
        let mut b = Builder::new(seeded(SEED), Kernels::Fast);
        let (trunk, _) = dense_stack(&mut b, "f.trunk", inputs, &[HIDDEN], Norm::None, Activation::Relu)?;
        let (features, head) = match kind {
            FeatureKind::Classifier { classes } => (
                Linear::new(&mut b, "f.features", HIDDEN, CLASSIFIER_FEATURES)?,
                Head::Classifier(Linear::new(&mut b, "f.head", CLASSIFIER_FEATURES, classes)?),
            ),
            FeatureKind::Autoencoder => {
                let features = Linear::new(&mut b, "f.features", HIDDEN, CODE_FEATURES)?;
                let (hidden, _) = dense_stack(
                    &mut b,
                    "f.decoder",
                    CODE_FEATURES,
                    &[HIDDEN],
                    Norm::None,
                    Activation::Relu,
                )?;
                (
                    features,
                    Head::Decoder(hidden, Linear::new(&mut b, "f.output", HIDDEN, inputs)?),
                )
            }
        };
        Ok(FeatureNet {
            trunk,
            features,
            head,
            params: b.params,
            info: FeatureInfo {
                kind,
                fit: 0.0,
                trained_s: None,
            },
        })
    }

    /// A network for `data` (a classifier where it has labels), trained now; `stop` ends the training early
    /// with an error.
    pub fn trained_on(data: &Dataset, stop: &AtomicBool) -> std::result::Result<FeatureNet, String> {
        let kind = match classes(data) {
            Some(classes) => FeatureKind::Classifier { classes },
            None => FeatureKind::Autoencoder,
        };
        let fail = |e: candle_core::Error| format!("the quality metric's feature network: {e}");
        let mut net = FeatureNet::build(data.shape.len(), kind).map_err(fail)?;
        let started = Instant::now();
        net.train(data, stop)?;
        net.info.trained_s = Some(started.elapsed().as_secs_f64());
        Ok(net)
    }

    /// Feature vectors of `x` (items in the data's range, any batch layout), `[n, features]`.
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        let hidden = run_stack(&self.trunk, &x.flatten_from(1)?, Mode::Eval)?;
        match self.head {
            Head::Classifier(_) => self.features.forward_activated(&hidden, Activation::Relu, Mode::Eval),
            Head::Decoder(..) => self.features.forward(&hidden, Mode::Eval),
        }
    }

    /// Class probabilities of `features`, for classifiers.
    pub fn probabilities(&self, features: &Tensor) -> Result<Option<Tensor>> {
        match &self.head {
            Head::Classifier(head) => Ok(Some(candle_nn::ops::softmax(
                &head.forward(features, Mode::Eval)?,
                D::Minus1,
            )?)),
            Head::Decoder(..) => Ok(None),
        }
    }

    fn loss(&self, x: &Tensor, labels: Option<&Tensor>) -> Result<Tensor> {
        let features = self.features(x)?;
        match (&self.head, labels) {
            (Head::Classifier(head), Some(labels)) => {
                candle_nn::loss::cross_entropy(&head.forward(&features, Mode::Train)?, labels)
            }
            (Head::Decoder(hidden, output), _) => {
                let out = output
                    .forward(&run_stack(hidden, &features, Mode::Train)?, Mode::Train)?
                    .tanh()?;
                (out - x.flatten_from(1)?)?.sqr()?.mean_all()
            }
            (Head::Classifier(_), None) => candle_core::bail!("a classifier trains on labels"),
        }
    }

    fn train(&mut self, data: &Dataset, stop: &AtomicBool) -> std::result::Result<(), String> {
        let fail = |e: candle_core::Error| format!("training the quality metric's feature network: {e}");
        let split = feature_split(data)?;
        let adam = OptimizerConfig {
            kind: OptimizerKind::Adam,
            lr: 1e-3,
            beta1: 0.9,
            ..OptimizerConfig::default()
        };
        let mut optimizer = Optimizer::new(adam.kind, Hyper::new(&adam, adam.lr), self.params.vars()).map_err(fail)?;
        let mut batcher = Batcher::new(split.train.clone(), BATCH, SEED);
        let steps = (EPOCHS * split.train.len() / BATCH).clamp(MIN_STEPS, MAX_STEPS);
        for index in 0..steps as u64 {
            if stop.load(Ordering::Relaxed) {
                return Err("stopped".into());
            }
            let items = batcher.indices(index);
            let (x, labels) = self.batch(data, &items).map_err(fail)?;
            let grads = self
                .loss(&x, labels.as_ref())
                .and_then(|l| l.backward())
                .map_err(fail)?;
            optimizer.step(&grads).map_err(fail)?;
        }
        let held_out: Vec<usize> = split.holdout.iter().take(FIT_ITEMS).copied().collect();
        self.info.fit = self.fit(data, &held_out).map_err(fail)?;
        Ok(())
    }

    fn batch(&self, data: &Dataset, items: &[usize]) -> Result<(Tensor, Option<Tensor>)> {
        let x = tensor(data.gather(items), &[items.len(), data.shape.len()])?;
        let labels = match (&self.head, data.labels_of(items)) {
            (Head::Classifier(_), Some(picked)) => Some(Tensor::from_vec(picked, items.len(), &Device::Cpu)?),
            _ => None,
        };
        Ok((x, labels))
    }

    /// Accuracy (classifier) or reconstruction error (autoencoder) on `items`.
    fn fit(&self, data: &Dataset, items: &[usize]) -> Result<f64> {
        if items.is_empty() {
            return Ok(f64::NAN);
        }
        let (x, labels) = self.batch(data, items)?;
        match (self.probabilities(&self.features(&x)?)?, labels) {
            (Some(probabilities), Some(labels)) => {
                let predicted = probabilities.argmax(D::Minus1)?;
                let right = predicted.eq(&labels)?.to_dtype(DType::F64)?.mean_all()?;
                right.to_scalar::<f64>()
            }
            _ => self.loss(&x, None)?.to_dtype(DType::F64)?.to_scalar::<f64>(),
        }
    }

    /// The weights and what the network is, for the cache.
    pub fn tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut tensors: HashMap<String, Tensor> = self
            .params
            .all()
            .map(|(name, var)| (name.clone(), var.as_tensor().clone()))
            .collect();
        let classes = match self.info.kind {
            FeatureKind::Classifier { classes } => classes,
            FeatureKind::Autoencoder => 0,
        };
        // The trunk's first weight is [hidden, inputs].
        let inputs = self.params.trainable[0].1.dims()[1];
        tensors.insert("info/fit".into(), Tensor::new(&[self.info.fit], &Device::Cpu)?);
        tensors.insert(
            "info/shape".into(),
            Tensor::new(&[classes as u32, inputs as u32], &Device::Cpu)?,
        );
        Ok(tensors)
    }

    /// The network `tensors` (of [`FeatureNet::tensors`]) describe.
    pub fn from_tensors(tensors: &HashMap<String, Tensor>) -> Result<FeatureNet> {
        let get = |name: &str| {
            tensors
                .get(name)
                .ok_or_else(|| candle_core::Error::msg(format!("no '{name}'")))
        };
        let shape = get("info/shape")?.to_vec1::<u32>()?;
        let (classes, inputs) = (shape[0] as usize, shape[1] as usize);
        let kind = match classes {
            0 => FeatureKind::Autoencoder,
            classes => FeatureKind::Classifier { classes },
        };
        let mut net = FeatureNet::build(inputs, kind)?;
        for (name, var) in net.params.all() {
            let t = get(name)?;
            if t.dims() != var.dims() {
                candle_core::bail!("'{name}' has another shape");
            }
            var.set(t)?;
        }
        net.info.fit = get("info/fit")?.to_vec1::<f64>()?[0];
        Ok(net)
    }
}
