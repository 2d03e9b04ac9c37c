//! `augmentation`: random changes to the training samples.

use crate::macros::settings_struct;
use crate::meta::meta;

settings_struct! {
    /// Augmentation: random changes to training samples that can reduce overfitting.
    pub struct Augmentation in "augmentation." {
        /// Probability that each prompt token is replaced by a mask token.
        token_mask_probability: f64 = 0.0 => meta().min(0.0).below(1.0).grid();
        /// Probability of dropping the previous turn of a chained conversation.
        skip_parent_probability: f64 = 0.0 => meta().min(0.0).max(1.0).unless("dataset.parent_id_column", "None");
        /// Probability of replacing the previous turn of a chained conversation with a random one.
        random_parent_probability: f64 = 0.0 => meta().min(0.0).max(1.0).unless("dataset.parent_id_column", "None");
        /// NEFTune: scale of the uniform noise added to input embeddings while training (0: off).
        neftune_noise_alpha: f64 = 0.0 => meta().label("NEFTune noise alpha").min(0.0).grid();
    }
}
