//! `training`: loss, optimizer, schedule, LoRA and checkpoints.

use crate::macros::settings_struct;
use crate::meta::meta;
use crate::value::choice_enum;

choice_enum! {
    /// The loss; each problem type takes its own (`ProblemType::losses`).
    pub enum LossFunction {
        /// Causal LM: mean over all answer tokens of the batch.
        TokenAveragedCrossEntropy = "TokenAveragedCrossEntropy",
        /// Causal LM: mean over samples of each sample's mean token loss.
        SampleAveragedCrossEntropy = "SampleAveragedCrossEntropy",
        /// DPO (Rafailov et al., 2023): −log σ(β·(policy − reference log-ratio of chosen over rejected)).
        DpoLoss = "DPOLoss",
        /// DPO with the hinge loss max(0, 1 − β·logits) on token-averaged log-probabilities.
        DpoHingeLoss = "DPOHingeLoss",
        /// IPO (Azar et al., 2023): (logits − 1/(2β))² on token-averaged log-probabilities.
        DpoIpoLoss = "DPOIPOLoss",
        /// Paired KTO (Ethayarajh et al., 2024), as H2O LLM Studio computes it.
        KtoPairLoss = "KTOPairLoss",
        /// CPO (Xu et al., 2024): DPO's sigmoid loss without a reference model.
        CpoLoss = "CPOLoss",
        /// SimPO (Meng et al., 2024): length-normalised, no reference model, target margin `simpo_gamma`.
        SimPoLoss = "SimPOLoss",
        /// ORPO (Hong et al., 2024): the chosen answers' NLL plus β times an odds-ratio loss; no reference model.
        OrpoLoss = "ORPOLoss",
        /// Classification: binary cross-entropy on each class's logit (binary and multilabel).
        BinaryCrossEntropyLoss = "BinaryCrossEntropyLoss",
        /// Classification: softmax cross-entropy over the classes (one label per sample).
        CrossEntropyLoss = "CrossEntropyLoss",
        /// Regression: mean squared error.
        MseLoss = "MSELoss",
        /// Regression: mean absolute error.
        MaeLoss = "MAELoss",
    }
}

choice_enum! {
    /// The optimizer.
    pub enum Optimizer {
        Adam = "Adam",
        AdamW = "AdamW",
        Sgd = "SGD",
        RmsProp = "RMSprop",
        Adadelta = "Adadelta",
    }
}

choice_enum! {
    /// How the learning rate changes over training (after warmup).
    pub enum Schedule {
        Cosine = "Cosine",
        Linear = "Linear",
        Constant = "Constant",
    }
}

choice_enum! {
    /// A linear layer LoRA can adapt (Llama-family names).
    pub enum LoraModule {
        QProj = "q_proj",
        KProj = "k_proj",
        VProj = "v_proj",
        OProj = "o_proj",
        GateProj = "gate_proj",
        UpProj = "up_proj",
        DownProj = "down_proj",
    }
}

choice_enum! {
    /// Which checkpoints are kept.
    pub enum SaveCheckpoint {
        /// The weights after the last epoch.
        Last = "last",
        /// The weights with the best validation metric.
        Best = "best",
        /// A checkpoint after each evaluation.
        EachEvaluationEpoch = "each_evaluation_epoch",
        /// No checkpoint.
        Disable = "disable",
    }
}

settings_struct! {
    /// Training: loss, optimizer, learning-rate schedule, batches, LoRA and checkpoints.
    pub struct Training in "training." {
        /// The loss: for causal LM how token losses are averaged; for DPO which preference loss.
        loss_function: LossFunction = LossFunction::TokenAveragedCrossEntropy => meta();
        /// Preference losses: β, the strength of the preference (and, with a reference model, how far the model may move from it).
        beta: f64 = 0.2 => meta().label("Beta").min(0.05).max(1.0).grid().when("problem_type", "text_dpo_modeling");
        /// SimPO's target reward margin γ.
        simpo_gamma: f64 = 1.0 => meta().label("SimPO gamma").min(0.05).max(2.0).grid().when("problem_type", "text_dpo_modeling").when("training.loss_function", "SimPOLoss");
        /// Optimizer of the trained weights.
        optimizer: Optimizer = Optimizer::AdamW => meta().grid();
        /// Peak learning rate (reached after warmup).
        learning_rate: f64 = 1e-4 => meta().basic().above(0.0).grid();
        /// Modules (name prefixes, e.g. `lm_head`) trained with `differential_learning_rate` instead.
        differential_learning_rate_layers: Vec<String> = Vec::new() => meta();
        /// Learning rate of the `differential_learning_rate_layers`.
        differential_learning_rate: f64 = 1e-5 => meta().above(0.0).grid().when_not_empty("training.differential_learning_rate_layers");
        /// Samples per optimizer step on each device (before gradient accumulation).
        batch_size: u32 = 2 => meta().basic().min(1.0).grid();
        /// Passes over the training data (0: evaluate only).
        epochs: u32 = 1 => meta().basic().min(0.0).grid();
        /// Learning-rate schedule after warmup.
        schedule: Schedule = Schedule::Cosine => meta().grid();
        /// The schedule decays to this share of the learning rate, not to 0.
        min_learning_rate_ratio: f64 = 0.0 => meta().label("Minimum learning-rate ratio").min(0.0).max(1.0).grid().unless("training.schedule", "Constant");
        /// Epochs (may be fractional) over which the learning rate rises linearly from 0.
        warmup_epochs: f64 = 0.0 => meta().min(0.0).grid();
        /// Decoupled weight decay (AdamW) or L2 penalty (the others).
        weight_decay: f64 = 0.0 => meta().min(0.0).grid();
        /// Clip the gradient norm to this value (0: no clipping).
        gradient_clip: f64 = 0.0 => meta().min(0.0).grid();
        /// Batches whose gradients are summed before each optimizer step.
        grad_accumulation: u32 = 1 => meta().label("Gradient accumulation").min(1.0).grid();
        /// Train low-rank adapters (LoRA) on a frozen backbone instead of all weights.
        lora: bool = true => meta().label("LoRA").basic();
        /// Full fine-tuning: backbone weights kept frozen, by name (a weight whose name contains one of these, e.g. `embed_tokens`, `layers.0.`).
        freeze_layers: Vec<String> = Vec::new() => meta().when("training.lora", false);
        /// DoRA: LoRA with a learned magnitude per output feature.
        use_dora: bool = false => meta().label("DoRA").when("training.lora", true);
        /// Rank of the LoRA matrices.
        lora_r: u32 = 4 => meta().label("LoRA r").basic().min(1.0).max(4096.0).grid().when("training.lora", true);
        /// LoRA scaling numerator: updates are scaled by `lora_alpha / lora_r` (by `lora_alpha / sqrt(lora_r)` with rsLoRA).
        lora_alpha: u32 = 16 => meta().label("LoRA alpha").basic().min(1.0).grid().when("training.lora", true);
        /// Dropout probability on the LoRA input.
        lora_dropout: f64 = 0.05 => meta().label("LoRA dropout").min(0.0).below(1.0).grid().when("training.lora", true);
        /// rsLoRA: scale updates by `lora_alpha / sqrt(lora_r)`, which keeps large ranks stable.
        use_rslora: bool = false => meta().label("rsLoRA").when("training.lora", true);
        /// Linear layers that get adapters; empty: every linear layer but the output head.
        lora_target_modules: Vec<LoraModule> = Vec::new() => meta().label("LoRA target modules").when("training.lora", true);
        /// Which checkpoints to keep.
        save_checkpoint: SaveCheckpoint = SaveCheckpoint::Last => meta();
        /// Evaluate every this many epochs (may be fractional, e.g. 0.25).
        evaluation_epochs: f64 = 1.0 => meta().above(0.0);
        /// Early stopping: end the run after this many evaluations in a row without the metric improving (0: off); the best evaluation's weights are kept as the run's result.
        early_stopping_patience: u32 = 0 => meta().min(0.0);
        /// Early stopping: how much the metric must improve on the best so far to count as an improvement.
        early_stopping_threshold: f64 = 0.0 => meta().min(0.0).unless("training.early_stopping_patience", 0.0);
        /// Evaluate once before the first step (a baseline).
        evaluate_before_training: bool = false => meta();
        /// Also train on the validation data (its metric is then optimistic).
        train_validation_data: bool = false => meta().unless("training.save_checkpoint", "best");
        /// Skip each epoch's last batch when it has fewer than `batch_size` samples (H2O LLM Studio's default is `true`).
        drop_last_batch: bool = false => meta();
        /// Pack several samples into each sequence of `max_length` tokens (attention stays within each sample).
        sample_packing: bool = false => meta();
    }
}
