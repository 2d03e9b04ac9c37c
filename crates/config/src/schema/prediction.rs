//! `prediction`: the validation metric and how answers are generated for it.

use crate::macros::settings_struct;
use crate::meta::meta;
use crate::value::choice_enum;

choice_enum! {
    /// The validation metric.
    pub enum Metric {
        /// exp(mean token loss) of the validation answers; lower is better.
        Perplexity = "Perplexity",
        /// BLEU of generated answers against the validation answers; higher is better.
        Bleu = "BLEU",
        /// An LLM judge (any OpenAI-compatible endpoint) scores the generated answers; higher is better.
        Gpt = "GPT",
        /// Classification: area under the ROC curve (macro one-vs-rest for several classes); higher is better.
        Auc = "AUC",
        /// Classification: share of samples whose most likely class is their label; higher is better.
        Accuracy = "Accuracy",
        /// Classification: mean negative log-likelihood of the labels; lower is better.
        LogLoss = "LogLoss",
        /// Regression: mean squared error; lower is better.
        Mse = "MSE",
        /// Regression: mean absolute error; lower is better.
        Mae = "MAE",
    }
}

choice_enum! {
    /// How the LLM judge scores an answer (`prediction.metric: GPT`).
    pub enum GptTemplate {
        /// Against the reference answer, from 0 (wrong) to 1 (fully correct and helpful).
        General = "general",
        /// MT-Bench's single-answer grading, from 1 to 10 (math, reasoning and coding rows against the reference).
        MtBench = "mt-bench",
    }
}

settings_struct! {
    /// Prediction: the validation metric and how validation answers are generated.
    pub struct Prediction in "prediction." {
        /// Validation metric.
        metric: Metric = Metric::Perplexity => meta().basic();
        /// The judge model's name at the endpoint (`prediction.metric: GPT`), e.g. one of `ferrotune serve`'s models.
        metric_gpt_model: String = "gpt-3.5-turbo-0301".into() => meta().label("GPT judge model").when("prediction.metric", "GPT");
        /// How the judge scores: `general` (0–1, against the reference answer) or `mt-bench` (1–10; rows whose `category` column is math, reasoning or coding against their reference).
        metric_gpt_template: GptTemplate = GptTemplate::General => meta().label("GPT judge template").when("prediction.metric", "GPT");
        /// The judge's OpenAI-compatible endpoint, e.g. `http://127.0.0.1:10101/v1` (empty: `OPENAI_API_BASE`, else OpenAI's); the key comes from `OPENAI_API_KEY`.
        metric_gpt_api_base: String = String::new() => meta().label("GPT judge endpoint").when("prediction.metric", "GPT");
        /// Fewest new tokens before an answer may end.
        min_length_inference: u32 = 2 => meta().label("Min new tokens").min(0.0);
        /// Most new tokens per answer.
        max_length_inference: u32 = 256 => meta().label("Max new tokens").min(1.0);
        /// Batch size when generating (0: the training `batch_size`).
        batch_size_inference: u32 = 0 => meta().label("Batch size when generating").min(0.0);
        /// Sample the next token instead of taking the most likely one.
        do_sample: bool = false => meta();
        /// Beam search with this many beams (1: none); not with `do_sample`.
        num_beams: u32 = 1 => meta().label("Beams").min(1.0);
        /// Sampling temperature (higher: more random).
        temperature: f64 = 0.0 => meta().min(0.0).when("prediction.do_sample", true);
        /// Most seconds to generate one answer (0: no limit); the answer ends there as if it hit `max_length_inference`.
        max_time: f64 = 0.0 => meta().label("Max seconds per answer").min(0.0);
        /// Earlier exchanges (a message and its answer) the studio's chat keeps in the conversation it sends the model.
        num_history: u32 = 4 => meta().label("Chat history").min(0.0);
        /// Penalty (> 1) for tokens already in the prompt or answer; 1: none.
        repetition_penalty: f64 = 1.0 => meta().above(0.0);
        /// Extra texts that end an answer, separated by `,`.
        stop_tokens: String = String::new() => meta();
        /// Sample only among the k most likely tokens (0: all).
        top_k: u32 = 0 => meta().min(0.0).when("prediction.do_sample", true);
        /// Sample only among the most likely tokens whose probabilities add up to p (1: all).
        top_p: f64 = 1.0 => meta().above(0.0).max(1.0).when("prediction.do_sample", true);
    }
}

impl Metric {
    /// Whether a larger value is better (BLEU, the judge's score) rather than a smaller one (perplexity).
    pub fn higher_is_better(self) -> bool {
        match self {
            Metric::Perplexity | Metric::LogLoss | Metric::Mse | Metric::Mae => false,
            Metric::Bleu | Metric::Gpt | Metric::Auc | Metric::Accuracy => true,
        }
    }

    /// Whether value `a` is better than `b`; NaN is worse than anything.
    pub fn better(self, a: f64, b: f64) -> bool {
        match (a.is_nan(), b.is_nan()) {
            (true, _) => false,
            (false, true) => true,
            _ if self.higher_is_better() => a > b,
            _ => a < b,
        }
    }
}
