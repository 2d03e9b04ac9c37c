//! Preference losses on sequence log-probabilities: the DPO family (H2O LLM Studio's `DPOLoss`, `DPOHingeLoss`,
//! `DPOIPOLoss`, `KTOPairLoss`), the reference-free `CPOLoss` and `SimPOLoss`, and `ORPOLoss`.
//!
//! A loss here is a function of a few numbers per pair — the summed log-probabilities of the chosen and rejected
//! answers under the policy (and the reference) — so it is computed in f64 with its gradient with respect to
//! each sum, by hand ([`pair_loss`]). The objective then back-propagates through the model once, with each
//! answer token's log-probability weighted by its sequence's gradient: the same gradients as autograd through
//! the whole expression, with none of its small-tensor graph. Each formula and gradient is tested against finite
//! differences here and against TRL in `tests/dpo.rs`.
//!
//! Which log-probabilities a loss takes follows H2O (`LOSS_REDUCTION`): token-averaged for the hinge, IPO, SimPO
//! (and ORPO, as TRL), summed for the others. Rewards are β × (policy − reference) for the losses with a
//! reference model and β × policy for the others, over the same log-probabilities.

use ferrotune_config::LossFunction;
use ferrotune_home::Rewards;

/// A preference loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreferenceLoss {
    Dpo,
    Hinge,
    Ipo,
    KtoPair,
    Cpo,
    SimPo,
    Orpo,
}

impl PreferenceLoss {
    /// The preference loss of the config's `loss_function`; `None` for the causal-LM losses.
    pub fn from_config(loss: LossFunction) -> Option<Self> {
        use LossFunction as L;
        match loss {
            L::TokenAveragedCrossEntropy
            | L::SampleAveragedCrossEntropy
            | L::BinaryCrossEntropyLoss
            | L::CrossEntropyLoss
            | L::MseLoss
            | L::MaeLoss => None,
            L::DpoLoss => Some(Self::Dpo),
            L::DpoHingeLoss => Some(Self::Hinge),
            L::DpoIpoLoss => Some(Self::Ipo),
            L::KtoPairLoss => Some(Self::KtoPair),
            L::CpoLoss => Some(Self::Cpo),
            L::SimPoLoss => Some(Self::SimPo),
            L::OrpoLoss => Some(Self::Orpo),
        }
    }

    /// Whether the loss compares with the reference model (the backbone with its adapters off).
    pub fn needs_reference(self) -> bool {
        matches!(self, Self::Dpo | Self::Hinge | Self::Ipo | Self::KtoPair)
    }

    /// Whether the loss takes token-averaged log-probabilities rather than sums.
    pub fn averages(self) -> bool {
        matches!(self, Self::Hinge | Self::Ipo | Self::SimPo | Self::Orpo)
    }

    /// Whether a zero gradient can be a sound state (the hinge is flat once every pair clears its margin).
    pub fn can_be_flat(self) -> bool {
        self == Self::Hinge
    }
}

/// The settings a loss reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PreferenceSettings {
    pub loss: PreferenceLoss,
    /// `training.beta`.
    pub beta: f64,
    /// `training.simpo_gamma`.
    pub simpo_gamma: f64,
}

/// Summed answer log-probabilities of a batch of pairs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PairLogps {
    pub policy_chosen: Vec<f64>,
    pub policy_rejected: Vec<f64>,
    /// Empty for the losses without a reference.
    pub reference_chosen: Vec<f64>,
    pub reference_rejected: Vec<f64>,
    /// Labelled tokens of each answer (the divisor of averaged log-probabilities).
    pub chosen_tokens: Vec<usize>,
    pub rejected_tokens: Vec<usize>,
}

/// A batch's loss, its gradient with respect to each summed log-probability, and the rewards per pair.
#[derive(Debug, Clone, PartialEq)]
pub struct PairLoss {
    pub loss: f64,
    pub grad_chosen: Vec<f64>,
    pub grad_rejected: Vec<f64>,
    pub chosen_rewards: Vec<f64>,
    pub rejected_rewards: Vec<f64>,
}

impl PairLoss {
    /// The means over the pairs (see [`Rewards`]).
    pub fn rewards(&self) -> Rewards {
        let n = self.chosen_rewards.len().max(1) as f64;
        let pairs = self.chosen_rewards.iter().zip(&self.rejected_rewards);
        Rewards {
            chosen: self.chosen_rewards.iter().sum::<f64>() / n,
            rejected: self.rejected_rewards.iter().sum::<f64>() / n,
            accuracy: pairs.clone().filter(|(c, r)| c > r).count() as f64 / n,
            margin: pairs.map(|(c, r)| c - r).sum::<f64>() / n,
        }
    }
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// log σ(x), stable for large |x|.
fn log_sigmoid(x: f64) -> f64 {
    x.min(0.0) - (-x.abs()).exp().ln_1p()
}

/// What a batch's loss is normalised by: its pairs (the mean) and, for ORPO's NLL, its chosen answers' tokens.
/// A part of a batch computed on its own keeps the whole batch's, so the parts' losses and gradients add up to
/// the batch's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchNorm {
    pub pairs: usize,
    pub chosen_tokens: usize,
}

impl BatchNorm {
    /// The normalisation of the batch `logps` itself.
    pub fn of(logps: &PairLogps) -> BatchNorm {
        BatchNorm {
            pairs: logps.policy_chosen.len(),
            chosen_tokens: logps.chosen_tokens.iter().sum(),
        }
    }
}

/// The loss of the batch `logps` under `settings`, with its gradients.
pub fn pair_loss(settings: &PreferenceSettings, logps: &PairLogps) -> PairLoss {
    pair_loss_of_part(settings, logps, BatchNorm::of(logps))
}

/// The share of a batch normalised as `norm` says that the pairs `logps` contribute: their part of the loss and
/// its gradients. Not for [`PreferenceLoss::KtoPair`], whose batch means couple every pair (its parts would
/// not add up): compute it on the whole batch.
pub fn pair_loss_of_part(
    settings: &PreferenceSettings,
    logps: &PairLogps,
    norm: BatchNorm,
) -> PairLoss {
    let n = logps.policy_chosen.len();
    let beta = settings.beta;
    let loss = settings.loss;
    // The log-probabilities the loss takes (sums or averages) and d(taken)/d(sum).
    let per_token = |sums: &[f64], tokens: &[usize]| -> (Vec<f64>, Vec<f64>) {
        if loss.averages() {
            let div: Vec<f64> = tokens.iter().map(|&t| t.max(1) as f64).collect();
            (
                sums.iter().zip(&div).map(|(s, d)| s / d).collect(),
                div.iter().map(|d| 1.0 / d).collect(),
            )
        } else {
            (sums.to_vec(), vec![1.0; sums.len()])
        }
    };
    let (pc, dc) = per_token(&logps.policy_chosen, &logps.chosen_tokens);
    let (pr, dr) = per_token(&logps.policy_rejected, &logps.rejected_tokens);
    let (rc, rr) = if loss.needs_reference() {
        (
            per_token(&logps.reference_chosen, &logps.chosen_tokens).0,
            per_token(&logps.reference_rejected, &logps.rejected_tokens).0,
        )
    } else {
        (vec![0.0; n], vec![0.0; n])
    };
    let mut value = 0.0;
    let mut gc = vec![0.0; n];
    let mut gr = vec![0.0; n];
    let nf = norm.pairs.max(1) as f64;
    match loss {
        PreferenceLoss::Dpo | PreferenceLoss::Hinge | PreferenceLoss::Ipo => {
            for i in 0..n {
                let x = (pc[i] - pr[i]) - (rc[i] - rr[i]);
                let (l, dl) = match loss {
                    PreferenceLoss::Dpo => (-log_sigmoid(beta * x), -beta * sigmoid(-beta * x)),
                    PreferenceLoss::Hinge => {
                        let m = 1.0 - beta * x;
                        if m > 0.0 {
                            (m, -beta)
                        } else {
                            (0.0, 0.0)
                        }
                    }
                    _ => {
                        let d = x - 1.0 / (2.0 * beta);
                        (d * d, 2.0 * d)
                    }
                };
                value += l / nf;
                gc[i] = dl / nf;
                gr[i] = -dl / nf;
            }
        }
        PreferenceLoss::KtoPair => {
            let cr: Vec<f64> = (0..n).map(|i| pc[i] - rc[i]).collect();
            let rj: Vec<f64> = (0..n).map(|i| pr[i] - rr[i]).collect();
            let (mc, mr) = (cr.iter().sum::<f64>() / nf, rj.iter().sum::<f64>() / nf);
            // torch's clamp(min=0) passes the gradient where the input is ≥ 0.
            let (chosen_kl, rejected_kl) = (mc.max(0.0), mr.max(0.0));
            let (open_c, open_r) = (
                f64::from(u8::from(mc >= 0.0)),
                f64::from(u8::from(mr >= 0.0)),
            );
            // d(1 − σ(z))/dz = −σ(z)(1 − σ(z)).
            let slope = |z: f64| -sigmoid(z) * (1.0 - sigmoid(z));
            let s1: Vec<f64> = (0..n)
                .map(|i| slope(beta * (cr[i] - rejected_kl)))
                .collect();
            let s2: Vec<f64> = (0..n).map(|i| slope(beta * (chosen_kl - rj[i]))).collect();
            let (sum1, sum2): (f64, f64) = (s1.iter().sum(), s2.iter().sum());
            for i in 0..n {
                value += (1.0 - sigmoid(beta * (cr[i] - rejected_kl)))
                    + (1.0 - sigmoid(beta * (chosen_kl - rj[i])));
                gc[i] = (s1[i] * beta + sum2 * beta * open_c / nf) / (2.0 * nf);
                gr[i] = (-sum1 * beta * open_r / nf - s2[i] * beta) / (2.0 * nf);
            }
            value /= 2.0 * nf;
        }
        PreferenceLoss::Cpo | PreferenceLoss::SimPo => {
            let margin = if loss == PreferenceLoss::SimPo {
                settings.simpo_gamma / beta
            } else {
                0.0
            };
            for i in 0..n {
                let x = pc[i] - pr[i] - margin;
                value += -log_sigmoid(beta * x) / nf;
                let dl = -beta * sigmoid(-beta * x);
                gc[i] = dl / nf;
                gr[i] = -dl / nf;
            }
        }
        PreferenceLoss::Orpo => {
            // TRL's ORPO: the chosen answers' token-averaged NLL minus β · mean log σ(log odds ratio).
            let total = norm.chosen_tokens.max(1) as f64;
            value = -logps.policy_chosen.iter().sum::<f64>() / total;
            let log1m_exp = |x: f64| (-x.exp()).ln_1p();
            for i in 0..n {
                let log_odds = (pc[i] - pr[i]) - (log1m_exp(pc[i]) - log1m_exp(pr[i]));
                value -= beta * log_sigmoid(log_odds) / nf;
                let dl = -beta * sigmoid(-log_odds) / nf;
                gc[i] = dl / (1.0 - pc[i].exp());
                gr[i] = -dl / (1.0 - pr[i].exp());
            }
        }
    }
    for i in 0..n {
        gc[i] *= dc[i];
        gr[i] *= dr[i];
    }
    if loss == PreferenceLoss::Orpo {
        // The NLL's part: d(−Σ sums / total tokens)/d(sum).
        let total = norm.chosen_tokens.max(1) as f64;
        for g in &mut gc {
            *g -= 1.0 / total;
        }
    }
    let rewards = |policy: &[f64], reference: &[f64]| -> Vec<f64> {
        policy
            .iter()
            .zip(reference)
            .map(|(p, r)| beta * (p - r))
            .collect()
    };
    PairLoss {
        loss: value,
        grad_chosen: gc,
        grad_rejected: gr,
        chosen_rewards: rewards(&pc, &rc),
        rejected_rewards: rewards(&pr, &rr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [PreferenceLoss; 7] = [
        PreferenceLoss::Dpo,
        PreferenceLoss::Hinge,
        PreferenceLoss::Ipo,
        PreferenceLoss::KtoPair,
        PreferenceLoss::Cpo,
        PreferenceLoss::SimPo,
        PreferenceLoss::Orpo,
    ];

    fn logps() -> PairLogps {
        PairLogps {
            policy_chosen: vec![-12.0, -7.5, -20.0],
            policy_rejected: vec![-11.0, -15.0, -6.0],
            reference_chosen: vec![-12.5, -7.0, -21.0],
            reference_rejected: vec![-10.0, -14.0, -6.5],
            chosen_tokens: vec![5, 3, 7],
            rejected_tokens: vec![4, 6, 2],
        }
    }

    #[test]
    fn each_gradient_matches_finite_differences() {
        for loss in ALL {
            let s = PreferenceSettings {
                loss,
                beta: 0.2,
                simpo_gamma: 1.0,
            };
            let base = logps();
            let out = pair_loss(&s, &base);
            let h = 1e-6;
            for i in 0..3 {
                for chosen in [true, false] {
                    let mut up = base.clone();
                    let mut down = base.clone();
                    let (u, d) = if chosen {
                        (&mut up.policy_chosen[i], &mut down.policy_chosen[i])
                    } else {
                        (&mut up.policy_rejected[i], &mut down.policy_rejected[i])
                    };
                    *u += h;
                    *d -= h;
                    let numeric = (pair_loss(&s, &up).loss - pair_loss(&s, &down).loss) / (2.0 * h);
                    let analytic = if chosen {
                        out.grad_chosen[i]
                    } else {
                        out.grad_rejected[i]
                    };
                    assert!(
                        (numeric - analytic).abs() < 1e-6,
                        "{loss:?} pair {i} chosen={chosen}: {numeric} vs {analytic}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_parts_of_a_batch_add_up_to_the_batch() {
        let whole = logps();
        let norm = BatchNorm::of(&whole);
        for loss in ALL.into_iter().filter(|l| *l != PreferenceLoss::KtoPair) {
            let s = PreferenceSettings {
                loss,
                beta: 0.2,
                simpo_gamma: 1.0,
            };
            let all = pair_loss(&s, &whole);
            let mut sum = 0.0;
            for i in 0..3 {
                let pick = |v: &Vec<f64>| if v.is_empty() { Vec::new() } else { vec![v[i]] };
                let part = PairLogps {
                    policy_chosen: pick(&whole.policy_chosen),
                    policy_rejected: pick(&whole.policy_rejected),
                    reference_chosen: pick(&whole.reference_chosen),
                    reference_rejected: pick(&whole.reference_rejected),
                    chosen_tokens: vec![whole.chosen_tokens[i]],
                    rejected_tokens: vec![whole.rejected_tokens[i]],
                };
                let out = pair_loss_of_part(&s, &part, norm);
                sum += out.loss;
                assert!(
                    (out.grad_chosen[0] - all.grad_chosen[i]).abs() < 1e-12,
                    "{loss:?}"
                );
                assert!(
                    (out.grad_rejected[0] - all.grad_rejected[i]).abs() < 1e-12,
                    "{loss:?}"
                );
            }
            assert!(
                (sum - all.loss).abs() < 1e-12,
                "{loss:?}: {sum} vs {}",
                all.loss
            );
        }
    }

    #[test]
    fn dpo_at_the_reference_is_ln_2_and_rewards_are_zero() {
        let mut l = logps();
        l.reference_chosen = l.policy_chosen.clone();
        l.reference_rejected = l.policy_rejected.clone();
        let s = PreferenceSettings {
            loss: PreferenceLoss::Dpo,
            beta: 0.2,
            simpo_gamma: 1.0,
        };
        let out = pair_loss(&s, &l);
        assert_eq!(out.loss, std::f64::consts::LN_2);
        let r = out.rewards();
        assert_eq!((r.chosen, r.rejected, r.margin), (0.0, 0.0, 0.0));
    }

    #[test]
    fn rewards_follow_the_reference_or_not() {
        let l = logps();
        let s = |loss| PreferenceSettings {
            loss,
            beta: 0.2,
            simpo_gamma: 1.0,
        };
        let dpo = pair_loss(&s(PreferenceLoss::Dpo), &l);
        assert!((dpo.chosen_rewards[0] - 0.2 * 0.5).abs() < 1e-12);
        let cpo = pair_loss(&s(PreferenceLoss::Cpo), &l);
        assert!((cpo.chosen_rewards[0] - 0.2 * -12.0).abs() < 1e-12);
        let simpo = pair_loss(&s(PreferenceLoss::SimPo), &l);
        assert!((simpo.chosen_rewards[0] - 0.2 * -12.0 / 5.0).abs() < 1e-12);
        // DPO's rewards prefer every chosen answer (margins 0.3, 0.1, 0.1); CPO's raw log-probabilities only the
        // second pair's.
        let r = dpo.rewards();
        assert_eq!(r.accuracy, 1.0);
        assert!((r.margin - 0.5 / 3.0).abs() < 1e-12, "{r:?}");
        assert_eq!(cpo.rewards().accuracy, 1.0 / 3.0);
    }
}
