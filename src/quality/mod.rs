//! How good a run's samples are, as a number that ranks runs: the Fréchet distance between real held-out
//! items and the model's samples (GANs, VAEs) or reconstructions (other autoencoders) in the feature space
//! of a small network trained on the run's data set, and for labelled data the share of samples that
//! network reads with confidence and how many classes they cover.

pub mod evaluator;
pub mod features;
pub mod frechet;

use features::FeatureNet;
use frechet::{Anchor, Gaussian};

use crate::data::Dataset;
use crate::models::layers::tensor;
use crate::numbers::significant;
use candle_core::{Device, Result, Tensor};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// A sample reads as a class when the classifier gives it at least this probability.
pub const CONFIDENCE: f32 = 0.9;
/// A class counts as covered when at least this share of the samples read as it (and at least one does),
/// so that a stray sample does not make a collapsed generator look diverse.
const COVERED_SHARE: f64 = 0.01;
/// Items pushed through the feature network at once.
const CHUNK: usize = 256;

/// The metric columns, in the order they are reported.
pub const FD: &str = "fd";
pub const CONFIDENT: &str = "confident";
pub const CLASSES: &str = "classes";

/// Quality values in words (`fd 12.3, 85 % confident, 10 classes`), read by `get` (a metric row's, say);
/// `None` without an `fd`.
pub fn describe(get: impl Fn(&str) -> Option<f64>) -> Option<String> {
    let mut text = format!("fd {}", significant(get(FD)?));
    if let Some(share) = get(CONFIDENT) {
        text.push_str(&format!(", {:.0} % confident", 100.0 * share));
    }
    if let Some(classes) = get(CLASSES) {
        text.push_str(&format!(", {classes:.0} classes"));
    }
    Some(text)
}

/// Where feature networks are cached unless a run is told otherwise: the user's cache, or without a home the
/// temporary folder (cached for this machine's session).
pub fn default_cache_dir() -> PathBuf {
    crate::data::download::user_cache_dir()
        .map(|d| d.join("features"))
        .unwrap_or_else(|| std::env::temp_dir().join("gantry-features"))
}

/// Real items the samples are compared with (ones the feature network did not train on).
const REAL_ITEMS: usize = 2048;

/// The feature network and the statistics of the real items the samples are compared with.
pub struct Reference {
    pub net: FeatureNet,
    real: Anchor,
}

impl Reference {
    /// `real`: items in the data's range, `[n, ...]` in the data's layout.
    pub fn new(net: FeatureNet, real: &Tensor) -> Result<Reference> {
        let (features, _) = features_of(&net, real)?;
        Ok(Reference {
            real: Anchor::new(features),
            net,
        })
    }

    /// The reference cached at `path`, or one built on `data()` now (a network trained on it, the statistics
    /// of items it did not train on) and cached there. `stop` ends a training early with an error.
    pub fn cached_or_built(
        path: &Path,
        data: impl FnOnce() -> std::result::Result<Arc<Dataset>, String>,
        stop: &AtomicBool,
    ) -> std::result::Result<Reference, String> {
        if let Ok(reference) = Reference::load(path) {
            return Ok(reference);
        }
        let data = data()?;
        let net = FeatureNet::trained_on(&data, stop)?;
        let items = features::reference_items(&data, REAL_ITEMS)?;
        let fail = |e: candle_core::Error| format!("quality metric: {e}");
        let real = tensor(data.gather(&items), &data.shape.batch_dims(items.len())).map_err(fail)?;
        let reference = Reference::new(net, &real).map_err(fail)?;
        // A cache that cannot be written costs a retraining next time, nothing more.
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = reference.save(path);
        Ok(reference)
    }

    /// The reference of a data set by its contents (files the user brought: IDX, image folders).
    pub fn for_data(data: Arc<Dataset>, cache_dir: &Path, stop: &AtomicBool) -> std::result::Result<Reference, String> {
        let path = features::cache_file(cache_dir, &features::dataset_key(&data));
        Reference::cached_or_built(&path, || Ok(data), stop)
    }

    fn save(&self, path: &Path) -> std::result::Result<(), String> {
        let mut tensors = self.net.tensors().map_err(|e| e.to_string())?;
        let mean = Tensor::new(self.real.gaussian.mean.as_slice(), &Device::Cpu).map_err(|e| e.to_string())?;
        tensors.insert("real/mean".into(), mean);
        tensors.insert(
            "real/cov".into(),
            Tensor::new(self.real.gaussian.cov.as_slice(), &Device::Cpu).map_err(|e| e.to_string())?,
        );
        crate::fsio::write_tensors(path, &tensors)
    }

    fn load(path: &Path) -> Result<Reference> {
        let tensors = candle_core::safetensors::load(path, &Device::Cpu)?;
        let net = FeatureNet::from_tensors(&tensors)?;
        let get = |name: &str| {
            tensors
                .get(name)
                .ok_or_else(|| candle_core::Error::msg(format!("no '{name}'")))
        };
        let mean = get("real/mean")?.to_vec1::<f64>()?;
        let cov = get("real/cov")?.to_vec1::<f64>()?;
        let dims = mean.len();
        if cov.len() != dims * dims {
            candle_core::bail!("'real/cov' does not match 'real/mean'");
        }
        Ok(Reference {
            net,
            real: Anchor::new(Gaussian { mean, cov, dims }),
        })
    }

    /// `fd` of `outputs` against the real items, and for classifiers `confident` and `classes`.
    pub fn score(&self, outputs: &Tensor) -> Result<Vec<(String, f64)>> {
        let (generated, probabilities) = features_of(&self.net, outputs)?;
        let mut values = vec![(FD.to_string(), self.real.distance(&generated))];
        if let Some((probabilities, classes)) = probabilities {
            let (share, covered) = confidence(&probabilities, classes);
            values.push((CONFIDENT.to_string(), share));
            values.push((CLASSES.to_string(), covered as f64));
        }
        Ok(values)
    }
}

/// The Gaussian of `x`'s features and, for classifiers, the class probabilities (flat) and class count.
#[allow(clippy::type_complexity)]
fn features_of(net: &FeatureNet, x: &Tensor) -> Result<(Gaussian, Option<(Vec<f32>, usize)>)> {
    let n = x.dim(0)?;
    let (mut features, mut probabilities, mut dims, mut classes) = (Vec::new(), Vec::new(), 0, 0);
    for start in (0..n).step_by(CHUNK) {
        let chunk = x.narrow(0, start, CHUNK.min(n - start))?;
        let f = net.features(&chunk)?;
        dims = f.dim(1)?;
        if let Some(p) = net.probabilities(&f)? {
            classes = p.dim(1)?;
            probabilities.extend(p.flatten_all()?.to_vec1::<f32>()?);
        }
        features.extend(f.flatten_all()?.to_vec1::<f32>()?);
    }
    let probabilities = (classes > 0).then_some((probabilities, classes));
    Ok((Gaussian::fit(&features, dims), probabilities))
}

/// The share of items whose most likely class has probability ≥ `CONFIDENCE`, and the number of classes
/// covered by them.
pub fn confidence(probabilities: &[f32], classes: usize) -> (f64, usize) {
    let mut per_class = vec![0usize; classes];
    let mut items = 0;
    for row in probabilities.chunks_exact(classes) {
        items += 1;
        let (best, p) = row
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .expect("at least one class");
        if *p >= CONFIDENCE {
            per_class[best] += 1;
        }
    }
    let confident: usize = per_class.iter().sum();
    let needed = ((items as f64 * COVERED_SHARE).ceil() as usize).max(1);
    let covered = per_class.iter().filter(|c| **c >= needed).count();
    (confident as f64 / items.max(1) as f64, covered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DataConfig;

    fn digits(count: usize, seed: u64) -> Dataset {
        let config = DataConfig {
            count,
            ..DataConfig::default()
        };
        crate::data::load(&config, seed, &|_, _, _| {}).unwrap()
    }

    #[test]
    fn real_digits_score_near_zero_and_read_confidently_while_noise_scores_far() {
        let cache = tempfile::tempdir().unwrap();
        let reference =
            Reference::for_data(Arc::new(digits(10_000, 7)), cache.path(), &AtomicBool::new(false)).unwrap();
        println!("{}", reference.net.info.describe());

        // Digits of another draw, none of which the network trained on.
        let other = digits(1000, 8);
        let x = tensor(other.items.clone(), &other.shape.batch_dims(other.len())).unwrap();
        let real_scores = reference.score(&x).unwrap();
        let noise: Vec<f32> = crate::rng::normal_vec(&mut crate::rng::seeded(1), other.items.len())
            .into_iter()
            .map(|v| v.clamp(-1.0, 1.0))
            .collect();
        let noise_scores = reference.score(&tensor(noise, x.dims()).unwrap()).unwrap();
        println!("real {real_scores:?}\nnoise {noise_scores:?}");
        let get = |scores: &[(String, f64)], name: &str| scores.iter().find(|(n, _)| n == name).unwrap().1;
        let (real_fd, noise_fd) = (get(&real_scores, FD), get(&noise_scores, FD));
        assert!(noise_fd > 20.0 * real_fd, "real {real_fd}, noise {noise_fd}");
        assert!(get(&real_scores, CONFIDENT) > 0.8);
        assert_eq!(get(&real_scores, CLASSES), 10.0);
        assert!(get(&noise_scores, CONFIDENT) < 0.5);
    }

    #[test]
    fn the_cached_reference_is_reused_and_rebuilt_when_the_data_set_changes() {
        let cache = tempfile::tempdir().unwrap();
        let stop = AtomicBool::new(false);
        let mut data = digits(600, 3);
        let first = Reference::for_data(Arc::new(data.clone()), cache.path(), &stop).unwrap();
        assert!(first.net.info.trained_s.is_some(), "nothing cached yet: trained");
        let again = Reference::for_data(Arc::new(data.clone()), cache.path(), &stop).unwrap();
        assert_eq!(
            again.net.info.trained_s, None,
            "the same data set: taken from the cache"
        );
        assert_eq!(again.net.info.fit, first.net.info.fit);
        let x = tensor(data.gather(&[0, 1, 2]), &data.shape.batch_dims(3)).unwrap();
        assert_eq!(
            first.score(&x).unwrap(),
            again.score(&x).unwrap(),
            "the same network and statistics"
        );

        data.items[5] = -data.items[5] + 0.5;
        let changed = Reference::for_data(Arc::new(data), cache.path(), &stop).unwrap();
        assert!(changed.net.info.trained_s.is_some(), "one value changed: trained anew");
        assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 2);
    }

    #[test]
    fn confidence_counts_sure_items_and_the_classes_they_cover() {
        let p = [
            0.95, 0.05, 0.0, // class 0, sure
            0.5, 0.5, 0.0, // unsure
            0.0, 0.02, 0.98, // class 2, sure
            0.91, 0.09, 0.0, // class 0, sure
        ];
        let (share, covered) = confidence(&p, 3);
        assert_eq!(share, 0.75);
        assert_eq!(covered, 2);
    }

    #[test]
    fn a_stray_sample_does_not_cover_a_class() {
        // 300 items: 299 sure of class 0, one sure of class 1; a class needs 1 % (3 items).
        let mut p = Vec::new();
        for i in 0..300 {
            p.extend(if i == 0 { [0.0, 1.0] } else { [1.0, 0.0] });
        }
        assert_eq!(confidence(&p, 2), (1.0, 1));
    }
}
