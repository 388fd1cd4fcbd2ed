//! Optimisers over our own parameter lists, with PyTorch's update rules. Their hyperparameters can change
//! between steps, and their state is saved in checkpoints.

use crate::config::{OptimizerConfig, OptimizerKind};
use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

/// The hyperparameters one optimiser uses; the learning rate differs between G and D.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hyper {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub momentum: f64,
    pub alpha: f64,
}

impl Hyper {
    pub fn new(config: &OptimizerConfig, lr: f64) -> Hyper {
        Hyper {
            lr,
            beta1: config.beta1,
            beta2: config.beta2,
            eps: config.eps,
            weight_decay: config.weight_decay,
            momentum: config.momentum,
            alpha: config.alpha,
        }
    }
}

pub struct Optimizer {
    kind: OptimizerKind,
    pub hyper: Hyper,
    vars: Vec<Var>,
    /// Per variable: Adam (m, v), SGD (momentum buffer), RMSprop (square average, momentum buffer).
    state: Vec<Vec<Tensor>>,
    steps: u64,
}

impl Optimizer {
    pub fn new(kind: OptimizerKind, hyper: Hyper, vars: Vec<Var>) -> Result<Optimizer> {
        let slots = match kind {
            OptimizerKind::Adam | OptimizerKind::AdamW | OptimizerKind::Rmsprop => 2,
            OptimizerKind::Sgd => 1,
        };
        let state = vars
            .iter()
            .map(|v| (0..slots).map(|_| v.zeros_like()).collect::<Result<Vec<_>>>())
            .collect::<Result<_>>()?;
        Ok(Optimizer {
            kind,
            hyper,
            vars,
            state,
            steps: 0,
        })
    }

    /// Applies one update from the gradients in `grads`; variables without a gradient stay as they are.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.steps += 1;
        let h = self.hyper;
        let t = self.steps as i32;
        for (var, state) in self.vars.iter().zip(self.state.iter_mut()) {
            let Some(grad) = grads.get(var) else { continue };
            let theta = var.as_tensor();
            // L2 penalty in the gradient for all but AdamW, which decays the weights directly.
            let grad = if h.weight_decay > 0.0 && self.kind != OptimizerKind::AdamW {
                (grad + (theta * h.weight_decay)?)?
            } else {
                grad.clone()
            };
            let updated = match self.kind {
                OptimizerKind::Adam | OptimizerKind::AdamW => {
                    let theta = if self.kind == OptimizerKind::AdamW && h.weight_decay > 0.0 {
                        (theta * (1.0 - h.lr * h.weight_decay))?
                    } else {
                        theta.clone()
                    };
                    let m = ((&state[0] * h.beta1)? + (&grad * (1.0 - h.beta1))?)?;
                    let v = ((&state[1] * h.beta2)? + (grad.sqr()? * (1.0 - h.beta2))?)?;
                    let (bc1, bc2) = (1.0 - h.beta1.powi(t), 1.0 - h.beta2.powi(t));
                    let denom = ((v.sqrt()? / bc2.sqrt())? + h.eps)?;
                    let next = (theta - (m.div(&denom)? * (h.lr / bc1))?)?;
                    state[0] = m;
                    state[1] = v;
                    next
                }
                OptimizerKind::Sgd => {
                    let step = if h.momentum > 0.0 {
                        // PyTorch starts the buffer at the first gradient.
                        let buf = if t == 1 {
                            grad.clone()
                        } else {
                            ((&state[0] * h.momentum)? + &grad)?
                        };
                        state[0] = buf.clone();
                        buf
                    } else {
                        grad
                    };
                    (theta - (step * h.lr)?)?
                }
                OptimizerKind::Rmsprop => {
                    let sq = ((&state[0] * h.alpha)? + (grad.sqr()? * (1.0 - h.alpha))?)?;
                    let scaled = grad.div(&(sq.sqrt()? + h.eps)?)?;
                    state[0] = sq;
                    let step = if h.momentum > 0.0 {
                        let buf = ((&state[1] * h.momentum)? + scaled)?;
                        state[1] = buf.clone();
                        buf
                    } else {
                        scaled
                    };
                    (theta - (step * h.lr)?)?
                }
            };
            var.set(&updated)?;
        }
        Ok(())
    }

    /// Named state tensors (and the step count) for a checkpoint.
    pub fn state_tensors(&self, prefix: &str) -> Result<Vec<(String, Tensor)>> {
        let mut out = vec![(
            format!("{prefix}/steps"),
            Tensor::new(&[self.steps as i64], &candle_core::Device::Cpu)?,
        )];
        for (i, slots) in self.state.iter().enumerate() {
            for (j, t) in slots.iter().enumerate() {
                out.push((format!("{prefix}/{i}/{j}"), t.clone()));
            }
        }
        Ok(out)
    }

    /// Restores what `state_tensors` saved; `get` looks a name up in the checkpoint.
    pub fn load_state(&mut self, prefix: &str, get: &dyn Fn(&str) -> Option<Tensor>) -> Result<()> {
        let missing = |name: &str| candle_core::Error::msg(format!("checkpoint lacks optimiser state '{name}'"));
        let steps_name = format!("{prefix}/steps");
        let steps = get(&steps_name).ok_or_else(|| missing(&steps_name))?;
        self.steps = steps.to_vec1::<i64>()?[0] as u64;
        for (i, slots) in self.state.iter_mut().enumerate() {
            for (j, slot) in slots.iter_mut().enumerate() {
                let name = format!("{prefix}/{i}/{j}");
                let t = get(&name).ok_or_else(|| missing(&name))?;
                if t.dims() != slot.dims() {
                    return Err(candle_core::Error::msg(format!(
                        "optimiser state '{name}' has shape {:?}, expected {:?}",
                        t.dims(),
                        slot.dims()
                    )));
                }
                *slot = t;
            }
        }
        Ok(())
    }
}

/// L2 norm of all gradients of `vars` together.
pub fn grad_norm(vars: &[Var], grads: &GradStore) -> Result<f64> {
    let mut sum = 0.0f64;
    for var in vars {
        if let Some(g) = grads.get(var) {
            sum += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        }
    }
    Ok(sum.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OptimizerConfig;
    use candle_core::Device;

    /// Minimises (x - 3)² from x = 0 and returns x after `steps` updates.
    fn descend(kind: OptimizerKind, lr: f64, steps: usize) -> f32 {
        let x = Var::new(&[0f32], &Device::Cpu).unwrap();
        let config = OptimizerConfig {
            kind,
            momentum: 0.5,
            ..OptimizerConfig::default()
        };
        let mut opt = Optimizer::new(kind, Hyper::new(&config, lr), vec![x.clone()]).unwrap();
        for _ in 0..steps {
            let loss = (x.as_tensor() - 3.0).unwrap().sqr().unwrap().sum_all().unwrap();
            opt.step(&loss.backward().unwrap()).unwrap();
        }
        x.to_vec1::<f32>().unwrap()[0]
    }

    #[test]
    fn every_optimiser_finds_a_quadratics_minimum() {
        for kind in [
            OptimizerKind::Adam,
            OptimizerKind::AdamW,
            OptimizerKind::Sgd,
            OptimizerKind::Rmsprop,
        ] {
            let x = descend(kind, 0.05, 400);
            assert!((x - 3.0).abs() < 0.05, "{kind:?} ended at {x}");
        }
    }

    #[test]
    fn adam_first_step_moves_by_the_learning_rate() {
        // With bias correction the first Adam step is lr * sign(grad).
        let x = descend(OptimizerKind::Adam, 0.1, 1);
        assert!((x - 0.1).abs() < 1e-5, "{x}");
    }
}
