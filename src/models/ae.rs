//! Autoencoders: MLP and convolutional, plain, denoising and variational.

use super::layers::{dense_stack, run_stack, Builder, Conv, ConvSpec, DenseBlock, Linear, Mode, NormLayer};
use crate::config::{ModelConfig, Norm};
use crate::data::ItemShape;
use candle_core::{Result, Tensor};

/// Two stride-2 convolutions, like `torch_reference.py`'s convae: the image side shrinks by 4.
const CONV_STAGES: usize = 2;

pub enum Encoder {
    Mlp {
        blocks: Vec<DenseBlock>,
        head: Linear,
    },
    Conv {
        convs: Vec<(Conv, NormLayer)>,
        head: Linear,
    },
}

pub enum Decoder {
    Mlp {
        blocks: Vec<DenseBlock>,
        out: Linear,
    },
    Conv {
        fc: Linear,
        start: [usize; 3],
        convs: Vec<(Conv, NormLayer)>,
        out: Conv,
    },
}

/// An encoder/decoder pair. Variational encoders output (mu, logvar); the decoder returns pre-activation
/// values (logits for BCE, pre-tanh for MSE).
pub struct Autoencoder {
    pub encoder: Encoder,
    pub decoder: Decoder,
    pub variational: bool,
    pub latent: usize,
    pub shape: ItemShape,
    config: ModelConfig,
}

/// Channels and side of the conv encoder's last feature map.
pub(crate) fn conv_geometry(
    shape: ItemShape,
    width: usize,
) -> std::result::Result<(usize, usize, Vec<ConvSpec>), String> {
    let ItemShape::Image {
        channels,
        height,
        width: w_px,
    } = shape
    else {
        return Err("convolutional autoencoders need image data; use the MLP AE or VAE for 2D points".into());
    };
    if height != w_px || height % 4 != 0 {
        return Err(format!(
            "conv autoencoders need square images whose side divides by 4, but the data is {w_px}x{height}"
        ));
    }
    let specs: Vec<ConvSpec> = (0..CONV_STAGES)
        .map(|i| {
            let inputs = if i == 0 { channels } else { width << (i - 1) };
            ConvSpec::new(inputs, width << i, 4, 2, 1)
        })
        .collect();
    Ok((width << (CONV_STAGES - 1), height >> CONV_STAGES, specs))
}

impl Autoencoder {
    pub fn new(b: &mut Builder, config: &ModelConfig, shape: ItemShape) -> std::result::Result<Autoencoder, String> {
        let variational = config.kind.is_vae();
        let code = if variational { 2 * config.latent } else { config.latent };
        let build = |b: &mut Builder| -> Result<(Encoder, Decoder)> {
            if config.kind.is_conv() {
                let (feat_c, feat_s, specs) =
                    conv_geometry(shape, config.base_width).map_err(candle_core::Error::msg)?;
                let flat = feat_c * feat_s * feat_s;
                let norm = |b: &mut Builder, name: &str, features| NormLayer::new(b, name, config.norm, features);
                let mut convs = Vec::new();
                for (i, spec) in specs.iter().enumerate() {
                    convs.push((
                        Conv::new(b, &format!("enc.{i}"), *spec, true)?,
                        norm(b, &format!("enc.{i}.norm"), spec.outputs)?,
                    ));
                }
                let head = Linear::new(b, "enc.head", flat, code)?;
                let fc = Linear::new(b, "dec.fc", config.latent, flat)?;
                let mut up = Vec::new();
                // Mirror of the encoder: transposed convs in reverse, the last one back to the image channels.
                let mirrored: Vec<ConvSpec> = specs
                    .iter()
                    .rev()
                    .map(|s| ConvSpec::new(s.outputs, s.inputs, s.kernel, s.stride, s.padding))
                    .collect();
                let (hidden, last) = mirrored.split_at(mirrored.len() - 1);
                for (i, spec) in hidden.iter().enumerate() {
                    up.push((
                        Conv::transposed(b, &format!("dec.{i}"), *spec, true)?,
                        norm(b, &format!("dec.{i}.norm"), spec.outputs)?,
                    ));
                }
                let out = Conv::transposed(b, "dec.out", last[0], true)?;
                Ok((
                    Encoder::Conv { convs, head },
                    Decoder::Conv {
                        fc,
                        start: [feat_c, feat_s, feat_s],
                        convs: up,
                        out,
                    },
                ))
            } else {
                let inputs = shape.len();
                let enc_widths: Vec<usize> = config.hidden.iter().rev().copied().collect();
                let (blocks, width) = dense_stack(b, "enc", inputs, &enc_widths, config.norm, config.activation)?;
                let head = Linear::new(b, "enc.head", width, code)?;
                let (dec_blocks, width) =
                    dense_stack(b, "dec", config.latent, &config.hidden, config.norm, config.activation)?;
                let out = Linear::new(b, "dec.out", width, inputs)?;
                Ok((
                    Encoder::Mlp { blocks, head },
                    Decoder::Mlp {
                        blocks: dec_blocks,
                        out,
                    },
                ))
            }
        };
        if config.kind.is_conv() && config.norm == Norm::Layer {
            return Err("convolutional autoencoders take norm none or batch".into());
        }
        let (encoder, decoder) = build(b).map_err(|e| e.to_string())?;
        Ok(Autoencoder {
            encoder,
            decoder,
            variational,
            latent: config.latent,
            shape,
            config: config.clone(),
        })
    }

    /// The encoder's output: the code, or (mu, logvar) concatenated for a VAE.
    pub fn encode(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        match &self.encoder {
            Encoder::Mlp { blocks, head } => head.forward(&run_stack(blocks, x, mode)?, mode),
            Encoder::Conv { convs, head } => {
                let mut h = x.clone();
                for (conv, norm) in convs {
                    h = conv.forward_activated(&h, norm, self.config.activation, mode)?;
                }
                head.forward(&h, mode)
            }
        }
    }

    /// Decodes codes (N, latent) to pre-activation outputs shaped like the data.
    pub fn decode(&self, z: &Tensor, mode: Mode) -> Result<Tensor> {
        let n = z.dim(0)?;
        let y = match &self.decoder {
            Decoder::Mlp { blocks, out } => out.forward(&run_stack(blocks, z, mode)?, mode)?,
            Decoder::Conv { fc, start, convs, out } => {
                let mut h = fc
                    .forward_activated(z, self.config.activation, mode)?
                    .reshape((n, start[0], start[1], start[2]))?;
                for (conv, norm) in convs {
                    h = conv.forward_activated(&h, norm, self.config.activation, mode)?;
                }
                out.forward(&h, mode)?
            }
        };
        y.reshape(self.shape.batch_dims(n))
    }

    /// Splits a VAE encoder output into (mu, logvar).
    pub fn split_code(&self, code: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((
            code.narrow(1, 0, self.latent)?,
            code.narrow(1, self.latent, self.latent)?,
        ))
    }
}
