//! Integration tests of ferrotune-train: a module per theme, one test binary. The parity modules (`lora_step`,
//! `packing`, `bleu`) check the maths against torch/PEFT/sacrebleu fixtures; the run modules (`runs`,
//! `augmentations`, `quantized`) call `ferrotune_train::run::run` in-process on the tiny `llama3_rope` backbone
//! (helpers in `common`).

mod augmentations;
mod bleu;
mod common;
mod dpo;
mod dpo_parity;
mod full_ft;
mod heads;
mod judge;
mod lora_step;
mod packing;
mod quantized;
mod runs;
mod scores;
mod trackers;
