//! Learning-rate schedules as transformers' `get_*_schedule_with_warmup` compute them, with H2O LLM Studio's
//! minimum learning-rate ratio: linear warmup from 0, then Cosine (half cycle), Linear, or Constant.

/// The decay after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleKind {
    Cosine,
    Linear,
    Constant,
}

impl From<ferrotune_config::Schedule> for ScheduleKind {
    fn from(s: ferrotune_config::Schedule) -> Self {
        use ferrotune_config::Schedule as S;
        match s {
            S::Cosine => Self::Cosine,
            S::Linear => Self::Linear,
            S::Constant => Self::Constant,
        }
    }
}

/// A schedule over `total_steps` optimizer steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub kind: ScheduleKind,
    pub base_lr: f64,
    pub warmup_steps: u64,
    pub total_steps: u64,
    pub min_lr_ratio: f64,
}

impl Schedule {
    /// The learning rate of optimizer step `step` (0-based).
    pub fn lr(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.base_lr * step as f64 / self.warmup_steps.max(1) as f64;
        }
        let span = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
        let factor = match self.kind {
            ScheduleKind::Constant => 1.0,
            ScheduleKind::Linear => 1.0 - progress,
            ScheduleKind::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
        };
        let min = self.min_lr_ratio;
        self.base_lr * (min + (1.0 - min) * factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_to_the_minimum() {
        let s = Schedule {
            kind: ScheduleKind::Cosine,
            base_lr: 1.0,
            warmup_steps: 10,
            total_steps: 110,
            min_lr_ratio: 0.1,
        };
        assert_eq!(s.lr(0), 0.0);
        assert!((s.lr(5) - 0.5).abs() < 1e-12);
        assert!((s.lr(10) - 1.0).abs() < 1e-12);
        assert!((s.lr(60) - 0.55).abs() < 1e-12);
        assert!((s.lr(110) - 0.1).abs() < 1e-12);
        let l = Schedule {
            kind: ScheduleKind::Linear,
            min_lr_ratio: 0.0,
            ..s
        };
        assert!((l.lr(60) - 0.5).abs() < 1e-12);
        let c = Schedule {
            kind: ScheduleKind::Constant,
            ..s
        };
        assert_eq!(c.lr(100), 1.0);
    }
}
