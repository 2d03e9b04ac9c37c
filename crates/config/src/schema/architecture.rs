//! `architecture`: the backbone's storage type and the model around it.

use crate::macros::settings_struct;
use crate::meta::meta;
use crate::value::choice_enum;

choice_enum! {
    /// The type the frozen backbone weights are kept in.
    pub enum BackboneDtype {
        Float32 = "float32",
        Bfloat16 = "bfloat16",
        Float16 = "float16",
        /// 8-bit quantized; needs LoRA.
        Int8 = "int8",
        /// 4-bit quantized; needs LoRA.
        Int4 = "int4",
    }
}

settings_struct! {
    /// Architecture: the backbone's weight type, memory savers and the starting weights.
    pub struct Architecture in "architecture." {
        /// Type of the frozen backbone weights; `int8` (absmax) and `int4` (NF4) quantize the decoder's linear weights in blocks of 64 and need LoRA; they compute in float32, or in the mixed-precision dtype.
        backbone_dtype: BackboneDtype = BackboneDtype::Float32 => meta().basic();
        /// With `int4`: also store the 4-bit blocks' scales in 8 bits (QLoRA's double quantization), ≈ 0.03 fewer bytes per weight.
        double_quantization: bool = false => meta().when("architecture.backbone_dtype", "int4");
        /// Recompute activations in the backward pass instead of keeping them: less memory, slower steps.
        gradient_checkpointing: bool = false => meta();
        /// Dropout probability inside the backbone during training (0: as the backbone was trained).
        intermediate_dropout: f64 = 0.0 => meta().min(0.0).below(1.0).grid();
        /// Load the backbone's trained weights; false starts from fresh random weights of its shapes (training from scratch; with `training.lora: false`).
        pretrained: bool = true => meta();
        /// Weights to start from instead of the backbone's (e.g. an earlier experiment's checkpoint); empty: none.
        pretrained_weights: String = String::new() => meta().path();
    }
}
