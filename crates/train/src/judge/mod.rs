//! `prediction.metric: GPT`: an LLM judges each generated validation answer through any OpenAI-compatible
//! chat-completions endpoint (OpenAI's, vLLM's, llama.cpp's, or `ferrotune serve`'s own `/v1`), as H2O LLM Studio
//! does: its settings (`metric_gpt_model`, `metric_gpt_template`) and variables (`OPENAI_API_BASE`,
//! `OPENAI_API_KEY`, `LLM_RETRY_ATTEMPTS`, `LLM_TIMEOUT`, `GPT_EVAL_MAX`), requests in parallel, the score read from
//! the reply's `SCORE:` line. A reply without a valid score, or a request that fails after its retries, is a
//! failed row — counted and reported, never a silent 0; if no row could be judged the evaluation fails with the
//! reason.

mod client;
mod templates;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use ferrotune_config::{Experiment, GptTemplate};

use crate::error::{Error, Result};

pub use client::JudgeClient;
pub use templates::{parse_score, prompt};

/// OpenAI's endpoint, when neither the config nor `OPENAI_API_BASE` names another.
pub const OPENAI_API_BASE: &str = "https://api.openai.com/v1";
/// Requests to the judge at once.
pub const PARALLEL_REQUESTS: usize = 4;

/// Everything the judge needs, resolved from the config and the environment in one place.
#[derive(Debug, Clone)]
pub struct JudgeSettings {
    /// The endpoint's base (`…/v1`).
    pub api_base: String,
    pub api_key: Option<String>,
    pub model: String,
    pub template: GptTemplate,
    /// Tries per answer (`LLM_RETRY_ATTEMPTS`, 3).
    pub attempts: u32,
    /// Per request (`LLM_TIMEOUT`, 60 s).
    pub timeout: Duration,
    /// Above this many validation rows the metric falls back to BLEU (`GPT_EVAL_MAX`, H2O's cost guard, 100).
    pub max_rows: usize,
}

impl JudgeSettings {
    /// The settings of `cfg`'s judge: `prediction.metric_gpt_api_base` else `OPENAI_API_BASE` else OpenAI's.
    pub fn from_experiment(cfg: &Experiment) -> JudgeSettings {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let number = |name: &str, default: u64| {
            env(name)
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(default)
        };
        let p = &cfg.prediction;
        let api_base = Some(p.metric_gpt_api_base.trim().to_string())
            .filter(|b| !b.is_empty())
            .or_else(|| env("OPENAI_API_BASE"))
            .unwrap_or_else(|| OPENAI_API_BASE.to_string());
        JudgeSettings {
            api_base: api_base.trim().trim_end_matches('/').to_string(),
            api_key: env("OPENAI_API_KEY"),
            model: p.metric_gpt_model.trim().to_string(),
            template: p.metric_gpt_template,
            attempts: number("LLM_RETRY_ATTEMPTS", 3).max(1) as u32,
            timeout: Duration::from_secs(number("LLM_TIMEOUT", 60).max(1)),
            max_rows: number("GPT_EVAL_MAX", 100) as usize,
        }
    }
}

/// One answer to judge.
#[derive(Debug, Clone)]
pub struct Answer<'a> {
    pub prompt: &'a str,
    pub reference: &'a str,
    pub prediction: &'a str,
    /// The row's `category` (MT-Bench's): `math`, `reasoning` and `coding` rows are judged against the reference
    /// with the `mt-bench` template.
    pub category: Option<&'a str>,
}

/// The column whose `math` / `reasoning` / `coding` rows MT-Bench judges against their reference answer.
pub const CATEGORY_COLUMN: &str = "category";

/// The judge's verdict on one answer: its score and explanation, or why it has none.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Scored { score: f64, explanation: String },
    Failed(String),
}

/// The verdicts of a whole validation set.
#[derive(Debug, Clone)]
pub struct Judged {
    pub verdicts: Vec<Verdict>,
    /// Mean score over the judged answers.
    pub mean: f64,
    pub failed: usize,
}

impl Judged {
    /// The log line of an evaluation that had failed rows (`None` when every row was judged).
    pub fn failure_note(&self) -> Option<String> {
        let first = self.verdicts.iter().find_map(|v| match v {
            Verdict::Failed(why) => Some(why.as_str()),
            Verdict::Scored { .. } => None,
        })?;
        Some(format!(
            "warning: the GPT judge could not score {} of {} answers (first: {first}); the metric is the mean of the other {}",
            self.failed,
            self.verdicts.len(),
            self.verdicts.len() - self.failed
        ))
    }
}

/// Scores answers with the judge of `settings`.
pub struct Judge {
    settings: JudgeSettings,
    client: JudgeClient,
    categories: Option<Vec<String>>,
}

impl Judge {
    pub fn new(settings: JudgeSettings) -> Judge {
        Judge {
            client: JudgeClient::new(&settings),
            settings,
            categories: None,
        }
    }

    /// The validation samples' categories ([`CATEGORY_COLUMN`]), in sample order.
    pub fn with_categories(mut self, categories: Option<Vec<String>>) -> Judge {
        self.categories = categories;
        self
    }

    /// The category of validation sample `i`, when the data has the column.
    pub fn category(&self, i: usize) -> Option<&str> {
        self.categories.as_ref()?.get(i).map(String::as_str)
    }

    pub fn settings(&self) -> &JudgeSettings {
        &self.settings
    }

    /// Judges every answer, [`PARALLEL_REQUESTS`] at a time. Fails when none could be judged.
    pub fn judge_all(&self, answers: &[Answer]) -> Result<Judged> {
        let verdicts: Vec<Mutex<Option<Verdict>>> =
            answers.iter().map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..PARALLEL_REQUESTS.min(answers.len()) {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(answer) = answers.get(i) else { break };
                    let verdict = self.judge_one(answer);
                    if let Ok(mut slot) = verdicts[i].lock() {
                        *slot = Some(verdict);
                    }
                });
            }
        });
        let verdicts: Vec<Verdict> = verdicts
            .into_iter()
            .map(|m| {
                m.into_inner()
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| Verdict::Failed("no verdict".into()))
            })
            .collect();
        let scores: Vec<f64> = verdicts
            .iter()
            .filter_map(|v| match v {
                Verdict::Scored { score, .. } => Some(*score),
                Verdict::Failed(_) => None,
            })
            .collect();
        let failed = verdicts.len() - scores.len();
        if scores.is_empty() {
            let why = verdicts
                .iter()
                .find_map(|v| match v {
                    Verdict::Failed(why) => Some(why.clone()),
                    Verdict::Scored { .. } => None,
                })
                .unwrap_or_else(|| "there were no answers".into());
            return Err(Error::Setting(format!(
                "the GPT judge (`{}` at {}) scored none of the {} validation answers: {why}\nhelp: check \
                 `prediction.metric_gpt_api_base` / OPENAI_API_BASE, OPENAI_API_KEY and `prediction.metric_gpt_model`, \
                 or use `prediction.metric: BLEU`",
                self.settings.model,
                self.settings.api_base,
                verdicts.len()
            )));
        }
        Ok(Judged {
            mean: scores.iter().sum::<f64>() / scores.len() as f64,
            verdicts,
            failed,
        })
    }

    /// One answer: up to `attempts` tries (a request that fails, or a reply without a valid score).
    fn judge_one(&self, answer: &Answer) -> Verdict {
        let messages = prompt(self.settings.template, answer);
        let mut last = String::new();
        for _ in 0..self.settings.attempts {
            match self.client.complete(&messages) {
                Ok(reply) => match parse_score(&reply, self.settings.template) {
                    Ok(score) => {
                        return Verdict::Scored {
                            score,
                            explanation: templates::explanation(&reply),
                        }
                    }
                    Err(why) => last = why,
                },
                Err(failure) => {
                    last = failure.message;
                    if !failure.retry {
                        break;
                    }
                }
            }
        }
        Verdict::Failed(last)
    }
}
