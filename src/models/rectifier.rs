//! ReLU and leaky ReLU as fused ops, alone or after a dense layer's bias: one pass forward and one
//! backward, where candle's tensor ops take a broadcast add, the activation (leaky ReLU alone is five ops)
//! and about five more passes for their gradients.

use super::{lane_sum, slice, unwritten};
use crate::config::Activation;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

/// The slope of leaky ReLU below zero (PyTorch's DCGAN and GAN examples use 0.2).
pub const LEAKY_SLOPE: f32 = 0.2;

/// An activation the fused ops have (those whose gradient follows from the output's sign).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Rectifier {
    Relu,
    Leaky,
}

impl Rectifier {
    pub(super) fn of(activation: Activation) -> Option<Rectifier> {
        match activation {
            Activation::Relu => Some(Rectifier::Relu),
            Activation::LeakyRelu => Some(Rectifier::Leaky),
            Activation::Gelu | Activation::Silu => None,
        }
    }

    /// The slope below zero.
    pub(super) fn negative_slope(self) -> f32 {
        match self {
            Rectifier::Relu => 0.0,
            Rectifier::Leaky => LEAKY_SLOPE,
        }
    }
}

/// `rectifier(x)` as one op.
pub(super) fn rectify(x: &Tensor, rectifier: Rectifier) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Rectify(rectifier))
}

struct Rectify(Rectifier);

impl CustomOp1 for Rectify {
    fn name(&self) -> &'static str {
        "gantry-rectifier"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(storage, layout)?;
        let slope = self.0.negative_slope();
        let mut y = unwritten(x.len());
        crate::threads::in_spans(&mut y, 1, move |at, y| {
            for (y, x) in y.iter_mut().zip(&x[at..]) {
                *y = if *x > 0.0 { *x } else { slope * x };
            }
        });
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(y.apply_op2_no_bwd(&dy.contiguous()?, &RectifierGradient(self.0))?))
    }
}

/// `rectifier(z + bias)` as one op (just the bias without a rectifier), the bias broadcast over every
/// dimension of `z` but the second: (batch, features) for dense layers, (batch, channels, height, width) for
/// convolutions. Its gradient sums in one pass where candle reduces over strided dimensions slowly.
pub(super) fn add_bias(z: &Tensor, bias: &Tensor, rectifier: Option<Rectifier>) -> Result<Tensor> {
    let plane = z.dims().iter().skip(2).product();
    z.contiguous()?
        .apply_op2(&bias.contiguous()?, Bias { rectifier, plane })
}

struct Bias {
    rectifier: Option<Rectifier>,
    /// Values per channel and image (1 for dense layers).
    plane: usize,
}

impl CustomOp2 for Bias {
    fn name(&self) -> &'static str {
        "gantry-bias"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (z, bias) = (slice(s1, l1)?, slice(s2, l2)?);
        let (plane, image) = (self.plane, bias.len() * self.plane);
        if image == 0 || z.len() % image != 0 {
            return Err(candle_core::Error::msg(format!(
                "a bias of {} values does not fit an output of {:?}",
                bias.len(),
                l1.dims()
            )));
        }
        // Without a rectifier the slope 1 below zero keeps every value as it is.
        let slope = self.rectifier.map_or(1.0, Rectifier::negative_slope);
        let activate = move |pre: f32| if pre > 0.0 { pre } else { slope * pre };
        let mut y = unwritten(z.len());
        crate::threads::in_spans(&mut y, image, move |at, y| {
            for (y, z) in y.chunks_exact_mut(image).zip(z[at..].chunks_exact(image)) {
                if plane == 1 {
                    for ((y, z), b) in y.iter_mut().zip(z).zip(bias) {
                        *y = activate(z + b);
                    }
                } else {
                    for ((y, z), b) in y.chunks_exact_mut(plane).zip(z.chunks_exact(plane)).zip(bias) {
                        for (y, z) in y.iter_mut().zip(z) {
                            *y = activate(z + b);
                        }
                    }
                }
            }
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(&self, _z: &Tensor, bias: &Tensor, y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // Both rectifiers keep the sign, so the output says which side of zero the input was on.
        let dz = match self.rectifier {
            Some(rectifier) => y.apply_op2_no_bwd(&dy.contiguous()?, &RectifierGradient(rectifier))?,
            None => dy.contiguous()?,
        };
        let sums = ChannelSums {
            channels: bias.elem_count(),
            plane: self.plane,
        };
        let dbias = dz.apply_op1_no_bwd(&sums)?;
        Ok((Some(dz), Some(dbias)))
    }
}

/// Per channel, the sum over the batch and the plane of a (batch, channels, plane) tensor.
struct ChannelSums {
    channels: usize,
    plane: usize,
}

impl CustomOp1 for ChannelSums {
    fn name(&self) -> &'static str {
        "gantry-channel-sums"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let values = slice(storage, layout)?;
        let (channels, plane) = (self.channels, self.plane);
        let mut sums = vec![0f32; channels];
        for image in values.chunks_exact(channels * plane) {
            if plane == 1 {
                sums.iter_mut().zip(image).for_each(|(s, v)| *s += v);
            } else {
                for (s, values) in sums.iter_mut().zip(image.chunks_exact(plane)) {
                    *s += lane_sum(values, |v| v);
                }
            }
        }
        Ok((CpuStorage::F32(sums), Shape::from(channels)))
    }
}

/// dz = dy where y > 0, else slope * dy: the gradient through a rectifier, from its output (y, dy).
pub(super) struct RectifierGradient(pub(super) Rectifier);

impl CustomOp2 for RectifierGradient {
    fn name(&self) -> &'static str {
        "gantry-rectifier-backward"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (y, dy) = (slice(s1, l1)?, slice(s2, l2)?);
        let slope = self.0.negative_slope();
        let mut dz = unwritten(y.len());
        crate::threads::in_spans(&mut dz, 1, move |at, dz| {
            for ((dz, y), dy) in dz.iter_mut().zip(&y[at..]).zip(&dy[at..]) {
                *dz = if *y > 0.0 { *dy } else { slope * dy };
            }
        });
        Ok((CpuStorage::F32(dz), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::layers::{activate, Kernels};
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn fused_bias_and_rectifiers_match_the_tensor_ops_in_value_and_gradients() {
        // Inputs and biases on different grids (1009ths and 1013ths) never sum to exactly zero, where the
        // rectifiers' gradient is a matter of convention.
        let values = |n: usize, seed: usize, grid: usize| -> Vec<f32> {
            (0..n)
                .map(|i| (((i * 7919 + seed) % grid) as f32 / grid as f32 - 0.5) * 4.0)
                .collect()
        };
        // Dense and convolution layouts; the larger ones (over `threads::PARALLEL_MIN` values) are split into
        // spans over the threads.
        let shapes: [&[usize]; 4] = [&[5, 7], &[20000, 7], &[3, 7, 4, 5], &[40, 7, 30, 30]];
        for dims in shapes {
            let (n, features) = (dims.iter().product(), dims[1]);
            let z = Var::from_vec(values(n, 1, 1009), dims, &Device::Cpu).unwrap();
            let b = Var::from_vec(values(features, 2, 1013), features, &Device::Cpu).unwrap();
            let probe = Tensor::from_vec(values(n, 3, 1009), dims, &Device::Cpu).unwrap();
            let view: Vec<usize> = (0..dims.len()).map(|d| if d == 1 { features } else { 1 }).collect();
            let z_plus_b = z.broadcast_add(&b.reshape(view).unwrap()).unwrap();
            let run = |y: Tensor| {
                let grads = (&y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
                let grad = |v: &Var| {
                    grads
                        .get(v.as_tensor())
                        .map(|g| g.flatten_all().unwrap().to_vec1::<f32>().unwrap())
                };
                (y.flatten_all().unwrap().to_vec1::<f32>().unwrap(), grad(&z), grad(&b))
            };
            let mut pairs = vec![("bias", run(add_bias(&z, &b, None).unwrap()), run(z_plus_b.clone()))];
            for activation in [Activation::Relu, Activation::LeakyRelu] {
                let rectifier = Rectifier::of(activation).unwrap();
                let candle = |x: &Tensor| activate(x, activation, Kernels::Candle).unwrap();
                pairs.push((
                    "bias + rectifier",
                    run(add_bias(&z, &b, Some(rectifier)).unwrap()),
                    run(candle(&z_plus_b)),
                ));
                pairs.push(("rectifier", run(rectify(&z, rectifier).unwrap()), run(candle(&z))));
            }
            for (op, fused, reference) in pairs {
                let fields = [
                    ("value", Some(fused.0), Some(reference.0)),
                    ("dz", fused.1, reference.1),
                    ("dbias", fused.2, reference.2),
                ];
                for (name, ours, theirs) in fields {
                    assert_eq!(ours.is_some(), theirs.is_some(), "{op} {name}");
                    for (a, r) in ours.iter().flatten().zip(theirs.iter().flatten()) {
                        assert!(
                            (a - r).abs() <= 1e-4 * r.abs().max(1.0),
                            "{op} {dims:?} {name}: {a} vs {r}"
                        );
                    }
                }
            }
        }
    }
}
