//! Optimizers over LoRA parameters, step for step as `torch.optim` computes them (AdamW, Adam, SGD with
//! momentum, RMSprop, Adadelta), with per-parameter learning-rate multipliers (differential learning rates) and a
//! state that can be saved and restored exactly (resume).

use std::collections::HashMap;

use candle_core::{Tensor, Var};

use crate::error::Result;

/// Which update rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptimizerKind {
    AdamW,
    Adam,
    Sgd,
    RmsProp,
    Adadelta,
}

impl From<ferrotune_config::Optimizer> for OptimizerKind {
    /// H2O LLM Studio's optimizer names, as the config declares them.
    fn from(o: ferrotune_config::Optimizer) -> Self {
        use ferrotune_config::Optimizer as O;
        match o {
            O::AdamW => Self::AdamW,
            O::Adam => Self::Adam,
            O::Sgd => Self::Sgd,
            O::RmsProp => Self::RmsProp,
            O::Adadelta => Self::Adadelta,
        }
    }
}

/// Hyper-parameters (torch's defaults where H2O uses them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptimizerConfig {
    pub kind: OptimizerKind,
    pub weight_decay: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub momentum: f64,
    pub alpha: f64,
    pub rho: f64,
}

impl OptimizerConfig {
    /// torch's defaults for `kind` (SGD with momentum 0.9, Adadelta eps 1e-6).
    pub fn new(kind: OptimizerKind, weight_decay: f64) -> Self {
        Self {
            kind,
            weight_decay,
            betas: (0.9, 0.999),
            eps: if kind == OptimizerKind::Adadelta {
                1e-6
            } else {
                1e-8
            },
            momentum: 0.9,
            alpha: 0.99,
            rho: 0.9,
        }
    }
}

/// One trainable tensor with its name and learning-rate multiplier.
#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    pub var: Var,
    pub lr_scale: f64,
}

/// The optimizer and its per-parameter state.
pub struct Optimizer {
    config: OptimizerConfig,
    params: Vec<Param>,
    /// State tensors by `<param name>.<slot>` (`exp_avg`, `exp_avg_sq`, `momentum_buffer`, `square_avg`,
    /// `acc_delta`).
    state: HashMap<String, Tensor>,
    step: u64,
}

impl Optimizer {
    pub fn new(config: OptimizerConfig, params: Vec<Param>) -> Self {
        Self {
            config,
            params,
            state: HashMap::new(),
            step: 0,
        }
    }

    /// The parameters.
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// Number of steps taken.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Applies one update with base learning rate `lr` given each parameter's gradient (by name).
    pub fn step(&mut self, grads: &HashMap<String, Tensor>, lr: f64) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let c = self.config;
        for p in &self.params {
            let Some(g) = grads.get(&p.name) else {
                continue;
            };
            let lr = lr * p.lr_scale;
            let w = p.var.as_tensor();
            let slot = |s: &str| format!("{}.{s}", p.name);
            let l2 = |g: &Tensor| -> Result<Tensor> {
                Ok(if c.weight_decay != 0.0 {
                    (g + (w * c.weight_decay)?)?
                } else {
                    g.clone()
                })
            };
            let new = match c.kind {
                OptimizerKind::AdamW | OptimizerKind::Adam => {
                    let (w, g) = if c.kind == OptimizerKind::AdamW {
                        ((w * (1.0 - lr * c.weight_decay))?, g.clone())
                    } else {
                        (w.clone(), l2(g)?)
                    };
                    let m = ema(&mut self.state, &slot("exp_avg"), &g, c.betas.0)?;
                    let v = ema(&mut self.state, &slot("exp_avg_sq"), &g.sqr()?, c.betas.1)?;
                    let bc1 = 1.0 - c.betas.0.powi(t);
                    let bc2 = 1.0 - c.betas.1.powi(t);
                    let denom = ((v.sqrt()? / bc2.sqrt())? + c.eps)?;
                    (w - ((m / denom)? * (lr / bc1))?)?
                }
                OptimizerKind::Sgd => {
                    let g = l2(g)?;
                    let buf = match self.state.get(&slot("momentum_buffer")) {
                        Some(b) if c.momentum != 0.0 => ((b * c.momentum)? + &g)?,
                        _ => g,
                    };
                    self.state.insert(slot("momentum_buffer"), buf.clone());
                    (w - (buf * lr)?)?
                }
                OptimizerKind::RmsProp => {
                    let g = l2(g)?;
                    let sq = ema(&mut self.state, &slot("square_avg"), &g.sqr()?, c.alpha)?;
                    (w - ((g / (sq.sqrt()? + c.eps)?)? * lr)?)?
                }
                OptimizerKind::Adadelta => {
                    let g = l2(g)?;
                    let sq = ema(&mut self.state, &slot("square_avg"), &g.sqr()?, c.rho)?;
                    let acc = self
                        .state
                        .get(&slot("acc_delta"))
                        .cloned()
                        .unwrap_or(g.zeros_like()?);
                    let std = (sq + c.eps)?.sqrt()?;
                    let delta = (((&acc + c.eps)?.sqrt()? / std)? * &g)?;
                    let acc = ((acc * c.rho)? + (delta.sqr()? * (1.0 - c.rho))?)?;
                    self.state.insert(slot("acc_delta"), acc);
                    (w - (delta * lr)?)?
                }
            };
            p.var.set(&new)?;
        }
        Ok(())
    }

    /// The state as named tensors plus the step count, for checkpoints.
    pub fn state(&self) -> (HashMap<String, Tensor>, u64) {
        (self.state.clone(), self.step)
    }

    /// Restores a state saved by [`Self::state`].
    pub fn load_state(&mut self, state: HashMap<String, Tensor>, step: u64) {
        self.state = state;
        self.step = step;
    }
}

/// `state[key] = beta·state[key] + (1−beta)·x` (starting from zero), returned.
fn ema(state: &mut HashMap<String, Tensor>, key: &str, x: &Tensor, beta: f64) -> Result<Tensor> {
    let next = match state.get(key) {
        Some(prev) => ((prev * beta)? + (x * (1.0 - beta))?)?,
        None => (x * (1.0 - beta))?,
    };
    state.insert(key.to_string(), next.clone());
    Ok(next)
}

/// Global L2 norm of all gradients.
pub fn global_norm(grads: &HashMap<String, Tensor>) -> Result<f64> {
    let mut total = 0f64;
    for g in grads.values() {
        total += g
            .sqr()?
            .sum_all()?
            .to_dtype(candle_core::DType::F64)?
            .to_scalar::<f64>()?;
    }
    Ok(total.sqrt())
}

/// Scales gradients so their global norm is at most `max_norm` (torch's `clip_grad_norm_`, eps 1e-6); returns
/// the norm before clipping.
pub fn clip_grad_norm(grads: &mut HashMap<String, Tensor>, max_norm: f64) -> Result<f64> {
    let norm = global_norm(grads)?;
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for g in grads.values_mut() {
            *g = (&*g * coef)?;
        }
    }
    Ok(norm)
}
