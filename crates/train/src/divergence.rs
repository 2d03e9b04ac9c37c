//! Telling a wrecked run from a slow one: a learning rate far too large drives the loss up to the value of a
//! uniform guess while the gradients vanish, and the run would otherwise end `finished`. The watch sees every
//! optimizer step and fails the run, naming the step, when
//! - the gradient norm is zero (or not finite) for [`STALLED_STEPS`] steps in a row: nothing learns any more
//!   (the adapters' `B` start at zero, but their gradients do not, so a sound run never has a zero norm), or
//! - the loss stays above [`FAR_ABOVE`] × its starting value for [`HIGH_STEPS`] steps in a row.

use crate::error::{Error, Result};

/// Steps in a row with a vanished gradient that make a divergence.
pub const STALLED_STEPS: u32 = 3;
/// Steps in a row far above the starting loss that make a divergence.
pub const HIGH_STEPS: u32 = 5;
/// How far above its starting value the loss must stay.
pub const FAR_ABOVE: f64 = 3.0;

/// Watches the train loss and gradient norm of each optimizer step.
#[derive(Debug, Clone, Default)]
pub struct DivergenceWatch {
    can_be_flat: bool,
    first_loss: Option<f64>,
    stalled: u32,
    high: u32,
}

impl DivergenceWatch {
    /// A watch; with `can_be_flat`, a zero gradient norm is a sound state (only a non-finite one is not).
    pub fn new(can_be_flat: bool) -> Self {
        DivergenceWatch {
            can_be_flat,
            ..Self::default()
        }
    }

    /// Takes optimizer step `step` into account; an error when the run has diverged.
    pub fn observe(&mut self, step: u64, loss: f64, grad_norm: f64) -> Result<()> {
        let first = *self.first_loss.get_or_insert(loss);
        // NaN counts as vanished too.
        let vanished = grad_norm.is_nan()
            || grad_norm.is_infinite()
            || (grad_norm <= 0.0 && !self.can_be_flat);
        self.stalled = if vanished { self.stalled + 1 } else { 0 };
        self.high = if loss > FAR_ABOVE * first.max(1e-3) {
            self.high + 1
        } else {
            0
        };
        if self.stalled >= STALLED_STEPS || self.high >= HIGH_STEPS {
            return Err(Error::Diverged {
                step,
                loss,
                first_loss: first,
                grad_norm,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vanished_gradient_fails_on_the_third_step() {
        // As measured on the tiny fixture at learning rate 1e6: the loss settles at ln(vocab) = ln(320).
        let mut w = DivergenceWatch::default();
        w.observe(1, 6.988, 9.12).unwrap();
        w.observe(2, 5.768, 0.0).unwrap();
        w.observe(3, 5.768, 0.0).unwrap();
        let err = w.observe(4, 5.768, 0.0).unwrap_err().to_string();
        assert!(
            err.contains("step 4") && err.contains("learning_rate"),
            "{err}"
        );
    }

    #[test]
    fn a_loss_far_above_its_start_fails_and_a_falling_one_never_does() {
        let mut w = DivergenceWatch::default();
        w.observe(1, 1.0, 1.0).unwrap();
        for step in 2..6 {
            w.observe(step, 4.0, 1.0).unwrap();
        }
        assert!(w.observe(6, 4.0, 1.0).is_err());
        let mut ok = DivergenceWatch::default();
        for step in 1..100 {
            ok.observe(step, 3.0 / step as f64, 0.5).unwrap();
        }
        // A spike shorter than the window is forgiven.
        let mut spike = DivergenceWatch::default();
        spike.observe(1, 1.0, 1.0).unwrap();
        for step in 2..5 {
            spike.observe(step, 5.0, 1.0).unwrap();
        }
        spike.observe(5, 0.9, 1.0).unwrap();
    }
}
