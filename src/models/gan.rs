//! Generators and discriminators: MLP GANs for any data, DCGANs for 28, 32 and 64 pixel images.

use super::layers::{dense_stack, run_stack, BatchNorm, Builder, Conv, ConvSpec, DenseBlock, Linear, Mode, NormLayer};
use crate::config::{Activation, ModelConfig, ModelKind, Norm};
use crate::data::ItemShape;
use candle_core::{Result, Tensor};

/// The layer plan of a DCGAN: PyTorch's dcgan recipe, with the 28-pixel variant of `torch_reference.py`.
pub struct DcganPlan {
    pub generator: Vec<ConvSpec>,
    pub discriminator: Vec<ConvSpec>,
}

pub fn dcgan_plan(shape: ItemShape, config: &ModelConfig) -> std::result::Result<DcganPlan, String> {
    let ItemShape::Image {
        channels: c,
        height,
        width: w_px,
    } = shape
    else {
        return Err("DCGAN needs image data; use an MLP GAN for 2D points".into());
    };
    let (w, latent, scores) = (config.base_width, config.generator_input(), config.critic_outputs());
    let s = ConvSpec::new;
    let plan = match (height, w_px) {
        (28, 28) => DcganPlan {
            generator: vec![
                s(latent, 4 * w, 4, 1, 0),
                s(4 * w, 2 * w, 3, 2, 1),
                s(2 * w, w, 4, 2, 1),
                s(w, c, 4, 2, 1),
            ],
            discriminator: vec![
                s(c, w, 4, 2, 1),
                s(w, 2 * w, 4, 2, 1),
                s(2 * w, 4 * w, 4, 2, 1),
                s(4 * w, scores, 3, 1, 0),
            ],
        },
        (32, 32) => DcganPlan {
            generator: vec![
                s(latent, 4 * w, 4, 1, 0),
                s(4 * w, 2 * w, 4, 2, 1),
                s(2 * w, w, 4, 2, 1),
                s(w, c, 4, 2, 1),
            ],
            discriminator: vec![
                s(c, w, 4, 2, 1),
                s(w, 2 * w, 4, 2, 1),
                s(2 * w, 4 * w, 4, 2, 1),
                s(4 * w, scores, 4, 1, 0),
            ],
        },
        (64, 64) => DcganPlan {
            generator: vec![
                s(latent, 8 * w, 4, 1, 0),
                s(8 * w, 4 * w, 4, 2, 1),
                s(4 * w, 2 * w, 4, 2, 1),
                s(2 * w, w, 4, 2, 1),
                s(w, c, 4, 2, 1),
            ],
            discriminator: vec![
                s(c, w, 4, 2, 1),
                s(w, 2 * w, 4, 2, 1),
                s(2 * w, 4 * w, 4, 2, 1),
                s(4 * w, 8 * w, 4, 2, 1),
                s(8 * w, scores, 4, 1, 0),
            ],
        },
        (h, w) => {
            return Err(format!(
                "DCGAN makes 28x28, 32x32 or 64x64 images, but the data is {w}x{h}"
            ))
        }
    };
    Ok(plan)
}

pub enum Generator {
    Mlp {
        blocks: Vec<DenseBlock>,
        out: Linear,
        shape: ItemShape,
    },
    Conv {
        stages: Vec<(Conv, Option<BatchNorm>)>,
        latent: usize,
    },
}

impl Generator {
    pub fn new(b: &mut Builder, config: &ModelConfig, shape: ItemShape) -> std::result::Result<Generator, String> {
        let build = |b: &mut Builder| -> Result<Generator> {
            Ok(match config.kind {
                ModelKind::Dcgan => {
                    let plan = dcgan_plan(shape, config).map_err(candle_core::Error::msg)?;
                    let last = plan.generator.len() - 1;
                    let stages = plan
                        .generator
                        .iter()
                        .enumerate()
                        .map(|(i, spec)| {
                            let conv = Conv::transposed(b, &format!("g.{i}.conv"), *spec, false)?;
                            let norm = (i < last && config.norm == Norm::Batch)
                                .then(|| BatchNorm::new(b, &format!("g.{i}.bn"), spec.outputs))
                                .transpose()?;
                            Ok((conv, norm))
                        })
                        .collect::<Result<_>>()?;
                    Generator::Conv {
                        stages,
                        latent: config.generator_input(),
                    }
                }
                _ => {
                    let (blocks, width) = dense_stack(
                        b,
                        "g",
                        config.generator_input(),
                        &config.hidden,
                        config.norm,
                        config.activation,
                    )?;
                    let out = Linear::new(b, "g.out", width, shape.len())?;
                    Generator::Mlp { blocks, out, shape }
                }
            })
        };
        b.dcgan_init = config.kind == ModelKind::Dcgan;
        build(b).map_err(|e| e.to_string())
    }

    /// Maps generator inputs (N, latent + classes: the noise, then a conditional GAN's one-hot class) to
    /// samples shaped like the data.
    pub fn forward(&self, z: &Tensor, mode: Mode) -> Result<Tensor> {
        match self {
            Generator::Mlp { blocks, out, shape } => {
                let h = run_stack(blocks, z, mode)?;
                let y = match shape.is_image() {
                    true => out.forward_tanh(&h, mode)?,
                    false => out.forward(&h, mode)?,
                };
                y.reshape(shape.batch_dims(z.dim(0)?))
            }
            Generator::Conv { stages, latent } => {
                let mut h = z.reshape((z.dim(0)?, *latent, 1, 1))?;
                let last = stages.len() - 1;
                for (i, (conv, norm)) in stages.iter().enumerate() {
                    if i == last {
                        return conv.forward_tanh(&h, mode);
                    }
                    h = match norm {
                        Some(bn) => conv.forward_normalised(&h, bn, Activation::Relu, mode)?,
                        None => conv.forward_activated(&h, &NormLayer::None, Activation::Relu, mode)?,
                    };
                }
                unreachable!("a DCGAN plan has at least one stage")
            }
        }
    }
}

pub enum Discriminator {
    Mlp { blocks: Vec<DenseBlock>, out: Linear },
    Conv { stages: Vec<(Conv, NormLayer)> },
}

impl Discriminator {
    pub fn new(b: &mut Builder, config: &ModelConfig, shape: ItemShape) -> std::result::Result<Discriminator, String> {
        let build = |b: &mut Builder| -> Result<Discriminator> {
            Ok(match config.kind {
                ModelKind::Dcgan => {
                    let plan = dcgan_plan(shape, config).map_err(candle_core::Error::msg)?;
                    let last = plan.discriminator.len() - 1;
                    let stages = plan
                        .discriminator
                        .iter()
                        .enumerate()
                        .map(|(i, spec)| {
                            let conv = Conv::new(b, &format!("d.{i}.conv"), *spec, false)?;
                            // The recipe normalises every hidden stage but the first.
                            let norm = if i > 0 && i < last { config.norm } else { Norm::None };
                            Ok((conv, NormLayer::new(b, &format!("d.{i}.bn"), norm, spec.outputs)?))
                        })
                        .collect::<Result<_>>()?;
                    Discriminator::Conv { stages }
                }
                _ => {
                    let widths: Vec<usize> = config.hidden.iter().rev().copied().collect();
                    let (blocks, width) = dense_stack(b, "d", shape.len(), &widths, config.norm, config.activation)?;
                    let out = Linear::new(b, "d.out", width, config.critic_outputs())?;
                    Discriminator::Mlp { blocks, out }
                }
            })
        };
        b.dcgan_init = config.kind == ModelKind::Dcgan;
        build(b).map_err(|e| e.to_string())
    }

    /// Whether a sample's score depends on the other samples of its batch (batch norm): then real and
    /// generated samples must be scored in batches of their own.
    pub fn mixes_batch(&self) -> bool {
        match self {
            Discriminator::Mlp { blocks, .. } => blocks.iter().any(DenseBlock::mixes_batch),
            Discriminator::Conv { stages } => stages.iter().any(|(_, norm)| norm.mixes_batch()),
        }
    }

    /// Maps a batch of samples to one logit (critic score) each, shaped (N, 1). A conditional D scores each
    /// sample against its class (`classes`, one-hot rows): the unconditional score plus the inner product of
    /// the class's embedding with the last features, which is the last layer's output for that class.
    pub fn forward(&self, x: &Tensor, classes: Option<&Tensor>, mode: Mode) -> Result<Tensor> {
        let n = x.dim(0)?;
        let scores = match self {
            Discriminator::Mlp { blocks, out } => out.forward(&run_stack(blocks, x, mode)?, mode)?,
            Discriminator::Conv { stages } => {
                let last = stages.len() - 1;
                let mut h = x.clone();
                for (i, (conv, norm)) in stages.iter().enumerate() {
                    h = match i < last {
                        true => conv.forward_activated(&h, norm, Activation::LeakyRelu, mode)?,
                        false => conv.forward(&h, mode)?,
                    };
                }
                h.reshape((n, ()))?
            }
        };
        match scores.dim(1)? - 1 {
            0 => Ok(scores),
            count => {
                let classes =
                    classes.ok_or_else(|| candle_core::Error::msg("a conditional D scores a sample with its class"))?;
                let projection = (scores.narrow(1, 1, count)? * classes)?.sum_keepdim(1)?;
                scores.narrow(1, 0, 1)? + projection
            }
        }
    }
}
