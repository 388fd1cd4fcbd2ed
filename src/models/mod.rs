//! Model builders: from a config and the data's item shape to networks with named, seeded parameters.

pub mod ae;
pub mod conv;
mod direct;
mod elementary;
pub mod gan;
pub mod layers;
pub mod losses;
pub mod norm;
mod product;
mod rectifier;

use crate::config::ModelConfig;
use crate::data::ItemShape;
use crate::rng::{derive_seed, seeded};
use ae::Autoencoder;
use gan::{Discriminator, Generator};
use layers::{Builder, Kernels, Params};
pub use product::{product_tally, tally_products, ProductTally};

/// Seed streams for the initial weights of each network.
const SEED_INIT_G: u64 = 10;
const SEED_INIT_D: u64 = 11;
const SEED_INIT_AE: u64 = 12;

/// The f32 values of a contiguous tensor, as the custom ops here read their inputs.
fn slice<'a>(storage: &'a candle_core::CpuStorage, layout: &candle_core::Layout) -> candle_core::Result<&'a [f32]> {
    let values = storage.as_slice::<f32>()?;
    layout
        .contiguous_offsets()
        .map(|(start, end)| &values[start..end])
        .ok_or_else(|| candle_core::Error::msg("gantry's fused ops take contiguous tensors"))
}

/// A kernel's output of `len` values, not zeroed first: each kernel that takes one writes every value before
/// anything reads it. Zeroing a step's megabytes of outputs was a pass of its own on the calling thread while
/// the other threads waited (BENCHMARKS.md).
#[allow(clippy::uninit_vec)]
fn unwritten(len: usize) -> Vec<f32> {
    let mut values = Vec::with_capacity(len);
    // SAFETY: f32 is plain data without drop; the callers write every value before reading any, as with
    // candle's own uninitialised outputs (`alloc_uninit`).
    unsafe { values.set_len(len) };
    values
}

/// The sum of `f(v)` over `values` in 16 independent lanes, which vectorises where a running sum cannot.
#[inline(always)]
fn lane_sum(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0f32; 16];
    let chunks = values.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().map(|v| f(*v)).sum();
    for chunk in chunks {
        lanes.iter_mut().zip(chunk).for_each(|(l, v)| *l += f(*v));
    }
    lanes.iter().sum::<f32>() + tail
}

/// The values the buffer under `t` holds: more than `t`'s own when `t` is a view of a larger one.
#[cfg(test)]
fn values_held(t: &candle_core::Tensor) -> usize {
    let (storage, _) = t.storage_and_layout();
    match &*storage {
        candle_core::Storage::Cpu(values) => values.as_slice::<f32>().map_or(0, |v| v.len()),
        _ => panic!("a CPU tensor"),
    }
}

pub struct Gan {
    pub generator: Generator,
    pub discriminator: Discriminator,
    pub g_params: Params,
    pub d_params: Params,
}

pub enum Model {
    Gan(Gan),
    Autoencoder { net: Autoencoder, params: Params },
}

/// One network's name and trainable parameter count, for the UI's live count and the CLI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetSummary {
    pub name: &'static str,
    pub params: usize,
}

impl Model {
    /// Builds the networks a config describes for data of `shape`; a combination that cannot work (a DCGAN
    /// on points, a conv net on odd image sizes) is an error that says why.
    pub fn build(config: &ModelConfig, shape: ItemShape, seed: u64, kernels: Kernels) -> Result<Model, String> {
        if config.kind.is_gan() {
            let mut gb = Builder::new(seeded(derive_seed(seed, SEED_INIT_G, 0)), kernels);
            let generator = Generator::new(&mut gb, config, shape)?;
            let mut db = Builder::new(seeded(derive_seed(seed, SEED_INIT_D, 0)), kernels);
            let discriminator = Discriminator::new(&mut db, config, shape)?;
            Ok(Model::Gan(Gan {
                generator,
                discriminator,
                g_params: gb.params,
                d_params: db.params,
            }))
        } else {
            let mut b = Builder::new(seeded(derive_seed(seed, SEED_INIT_AE, 0)), kernels);
            let net = Autoencoder::new(&mut b, config, shape)?;
            Ok(Model::Autoencoder { net, params: b.params })
        }
    }

    pub fn summaries(&self) -> Vec<NetSummary> {
        match self {
            Model::Gan(gan) => vec![
                NetSummary {
                    name: "generator",
                    params: gan.g_params.count(),
                },
                NetSummary {
                    name: "discriminator",
                    params: gan.d_params.count(),
                },
            ],
            Model::Autoencoder { params, .. } => vec![NetSummary {
                name: "autoencoder",
                params: params.count(),
            }],
        }
    }

    /// Every named tensor, prefixed by network, for checkpoints.
    pub fn named_tensors(&self) -> Vec<(String, candle_core::Var)> {
        let prefixed = |prefix: &str, params: &Params| {
            params
                .all()
                .map(|(n, v)| (format!("{prefix}/{n}"), v.clone()))
                .collect::<Vec<_>>()
        };
        match self {
            Model::Gan(gan) => [prefixed("g", &gan.g_params), prefixed("d", &gan.d_params)].concat(),
            Model::Autoencoder { params, .. } => prefixed("ae", params),
        }
    }
}

/// Multiply-adds per second of a 256x1024 by 1024x1024 product on Gantry's threads (the best of a few
/// tries), what the pre-flight estimate scales step times by. Takes about 20 ms.
pub fn measure_product_speed() -> f64 {
    let (rows, inner, cols) = (256, 1024, 1024);
    let x = layers::tensor(vec![0.5; rows * inner], &[rows, inner]);
    let w = layers::tensor(vec![0.25; cols * inner], &[cols, inner]);
    let (Ok(x), Ok(w)) = (x, w) else { return 1e9 };
    let best = (0..4)
        .filter_map(|_| {
            let started = std::time::Instant::now();
            product::linear(&x, &w, rectifier::Epilogue::default()).ok()?;
            Some(started.elapsed().as_secs_f64())
        })
        .fold(f64::INFINITY, f64::min);
    (rows * inner * cols) as f64 / best.max(1e-6)
}

/// Checks that a config makes a working model for data of `shape` (a dry forward pass of two items through
/// every network) and returns the networks' sizes. This is the pre-flight check of the CLI and the UI.
pub fn preflight(config: &ModelConfig, shape: ItemShape) -> Result<Vec<NetSummary>, String> {
    use layers::{tensor, Mode};
    if config.classes > 0 && !shape.is_image() {
        return Err("model.classes: a conditional GAN makes images, but the data is 2D points; set it to 0".into());
    }
    let model = Model::build(config, shape, 0, Kernels::Fast)?;
    let fail = |e: candle_core::Error| format!("the model cannot process {}: {e}", shape.describe());
    let x = tensor(vec![0.0; 2 * shape.len()], &shape.batch_dims(2)).map_err(fail)?;
    let z = tensor(vec![0.0; 2 * config.generator_input()], &[2, config.generator_input()]).map_err(fail)?;
    let classes = tensor(vec![0.0; 2 * config.classes], &[2, config.classes]).map_err(fail)?;
    let expected = shape.batch_dims(2);
    let out_dims = match &model {
        Model::Gan(gan) => {
            let logits = gan
                .discriminator
                .forward(&x, Some(&classes), Mode::Eval)
                .map_err(fail)?;
            if logits.dims() != [2, 1] {
                return Err(format!(
                    "the discriminator outputs {:?} per batch, expected one logit per item",
                    logits.dims()
                ));
            }
            gan.generator.forward(&z, Mode::Eval).map_err(fail)?.dims().to_vec()
        }
        Model::Autoencoder { net, .. } => {
            let code = net.encode(&x, Mode::Eval).map_err(fail)?;
            let z = if net.variational {
                net.split_code(&code).map_err(fail)?.0
            } else {
                code
            };
            net.decode(&z, Mode::Eval).map_err(fail)?.dims().to_vec()
        }
    };
    if out_dims != expected {
        return Err(format!(
            "the model makes items of shape {:?} but the data's are {:?}",
            &out_dims[1..],
            &expected[1..]
        ));
    }
    Ok(model.summaries())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Activation, ModelKind, Norm};

    const MNIST: ItemShape = ItemShape::Image {
        channels: 1,
        height: 28,
        width: 28,
    };

    fn config(kind: ModelKind, hidden: &[usize], latent: usize, width: usize) -> ModelConfig {
        ModelConfig {
            kind,
            hidden: hidden.to_vec(),
            latent,
            base_width: width,
            ..ModelConfig::default()
        }
    }

    fn counts(config: &ModelConfig, shape: ItemShape) -> Vec<usize> {
        preflight(config, shape).unwrap().iter().map(|s| s.params).collect()
    }

    // Parameter counts of torch_reference.py's models (sum of p.numel() in PyTorch).
    #[test]
    fn reference_models_have_pytorchs_parameter_counts() {
        let mut dcgan = config(ModelKind::Dcgan, &[], 100, 64);
        dcgan.norm = Norm::Batch;
        assert_eq!(counts(&dcgan, MNIST), vec![837_504, 659_456]);
        assert_eq!(
            counts(&config(ModelKind::MlpGan, &[256, 512], 100, 64), MNIST),
            vec![559_632, 533_505]
        );
        let mut vae = config(ModelKind::Vae, &[400], 20, 64);
        vae.activation = Activation::Relu;
        assert_eq!(counts(&vae, MNIST), vec![652_824]);
        assert_eq!(counts(&config(ModelKind::ConvAe, &[], 32, 32), MNIST), vec![270_561]);
    }

    #[test]
    fn every_model_fits_every_image_size_it_claims() {
        for size in [28, 32, 64] {
            for channels in [1, 3] {
                let shape = ItemShape::Image {
                    channels,
                    height: size,
                    width: size,
                };
                for kind in ModelKind::ALL {
                    let mut c = config(kind, &[32, 16], 8, 8);
                    c.norm = if kind.is_conv() { Norm::Batch } else { Norm::Layer };
                    preflight(&c, shape).unwrap_or_else(|e| panic!("{kind:?} at {size}x{size}x{channels}: {e}"));
                }
            }
        }
    }

    #[test]
    fn impossible_combinations_explain_themselves() {
        let err = preflight(&config(ModelKind::Dcgan, &[], 8, 8), ItemShape::Point).unwrap_err();
        assert!(err.contains("MLP GAN"), "{err}");
        let odd = ItemShape::Image {
            channels: 1,
            height: 30,
            width: 30,
        };
        let err = preflight(&config(ModelKind::Dcgan, &[], 8, 8), odd).unwrap_err();
        assert!(err.contains("30x30"), "{err}");
        preflight(&config(ModelKind::MlpGan, &[16], 4, 8), ItemShape::Point).unwrap();
        preflight(&config(ModelKind::Vae, &[16], 2, 8), ItemShape::Point).unwrap();
    }

    #[test]
    fn the_same_seed_builds_the_same_weights() {
        let c = config(ModelKind::MlpGan, &[8], 4, 8);
        let weights = |seed| {
            Model::build(&c, ItemShape::Point, seed, Kernels::Fast)
                .unwrap()
                .named_tensors()[0]
                .1
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(weights(1), weights(1));
        assert_ne!(weights(1), weights(2));
    }

    /// While the generator trains, the discriminator passes the gradient through to the samples but keeps
    /// none for its own weights (nor changes what it computes), on every discriminator kind.
    #[test]
    fn a_judging_discriminator_gives_gradients_only_to_its_input() {
        let image = ItemShape::Image {
            channels: 1,
            height: 28,
            width: 28,
        };
        for (kind, norm) in [(ModelKind::Dcgan, Norm::Batch), (ModelKind::MlpGan, Norm::Layer)] {
            for kernels in [Kernels::Fast, Kernels::Candle] {
                let mut c = config(kind, &[16], 4, 8);
                c.norm = norm;
                let Model::Gan(gan) = Model::build(&c, image, 3, kernels).unwrap() else {
                    panic!("{kind:?} is a GAN")
                };
                let samples =
                    candle_core::Var::ones((2, 1, 28, 28), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
                let score = |mode| gan.discriminator.forward(&samples, None, mode).unwrap();
                let (judged, trained) = (score(layers::Mode::Judge), score(layers::Mode::Train));
                let values = |t: &candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                assert_eq!(values(&judged), values(&trained), "{kind:?} {kernels:?}");
                let grads = judged.sum_all().unwrap().backward().unwrap();
                assert!(
                    grads.get(&samples).is_some(),
                    "{kind:?} {kernels:?}: no gradient for the samples"
                );
                for (name, var) in &gan.d_params.trainable {
                    assert!(grads.get(var).is_none(), "{kind:?} {kernels:?}: {name} got a gradient");
                }
                let grads = trained.sum_all().unwrap().backward().unwrap();
                assert!(gan.d_params.trainable.iter().all(|(_, v)| grads.get(v).is_some()));
            }
        }
    }
}
