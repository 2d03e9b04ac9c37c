//! `environment`: devices, precision, workers and the seed.

use crate::macros::settings_struct;
use crate::meta::meta;
use crate::value::choice_enum;

choice_enum! {
    /// The type mixed-precision compute runs in.
    pub enum MixedPrecisionDtype {
        Bfloat16 = "bfloat16",
        Float16 = "float16",
    }
}

settings_struct! {
    /// Environment: where and how reproducibly the experiment runs.
    pub struct Environment in "environment." {
        /// Compute device: `cpu`, `cuda` or `cuda:N`.
        device: String = "cpu".into() => meta();
        /// GPU ids for data-parallel training (empty: the single `device`).
        gpus: Vec<u32> = Vec::new() => meta().label("GPUs").unless("environment.device", "cpu");
        /// Compute in a 16-bit type where it is safe, keeping float32 master weights.
        mixed_precision: bool = false => meta();
        /// 16-bit type of mixed-precision compute.
        mixed_precision_dtype: MixedPrecisionDtype = MixedPrecisionDtype::Bfloat16 => meta().label("Mixed-precision dtype").when("environment.mixed_precision", true);
        /// Threads that load and tokenize data.
        number_of_workers: u32 = 1 => meta().label("Workers").min(1.0);
        /// Random seed (-1: draw one when the run starts; the drawn seed is recorded in the saved config).
        seed: i64 = -1 => meta().min(-1.0);
    }
}
