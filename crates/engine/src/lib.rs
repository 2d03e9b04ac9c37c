//! ferrotune-engine: the inference engine every generated answer comes from — the studio's chat, the
//! OpenAI-compatible API (`/v1`) and so the LLM judge pointed at Ferrotune itself.
//!
//! One scheduler thread owns the loaded models: one base per backbone (and weight format), shared by every
//! adapter on it; adapters are loaded on first use and kept in an LRU of [`EngineOptions::max_adapters`]. Each
//! scheduler step decodes every active sequence in one batched step ([`ferrotune_model::Llama::decode_step`]:
//! one product per projection over the rows, each row with its own adapter update and KV cache), admits waiting
//! requests at step boundaries, prefills one prompt chunk of [`EngineOptions::prefill_chunk`] tokens (so a long
//! prompt does not stall the others), and drops finished sequences — and those whose caller went away — at once.
//! Past [`EngineOptions::max_queue`] waiting requests, [`Engine::submit`] refuses with [`EngineError::QueueFull`].
//!
//! Owns: scheduling, the model and adapter caches. Must not touch: the registry, run folders or HTTP (callers
//! resolve names to [`ModelSpec`] paths and render the answers).

mod scheduler;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

pub use ferrotune_model::{FinishReason, Generation, GenerationConfig, Message, WeightFormat};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// What answers a request: a backbone (an HF folder or `.gguf` file) in a weight format, with an adapter or not.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    pub backbone: PathBuf,
    pub format: WeightFormat,
    /// A PEFT adapter folder.
    pub adapter: Option<PathBuf>,
}

/// What the model continues.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// A conversation, rendered by the backbone's chat template with the assistant's turn opened.
    Messages(Vec<Message>),
    /// Raw text (the tokenizer's special tokens, e.g. a BOS, added as its post-processor says).
    Text(String),
}

/// One generation request. The backbone's stop token ids are added to `generation.stop_token_ids`.
#[derive(Debug, Clone)]
pub struct Request {
    pub model: ModelSpec,
    pub prompt: Prompt,
    pub generation: GenerationConfig,
}

/// What a request reports, in order: `Started`, `Text` pieces, then `Done` or `Failed`.
#[derive(Debug, Clone)]
pub enum Update {
    /// The prompt is read and the request admitted.
    Started { prompt_tokens: usize },
    /// New text that is final (never part of a stop string).
    Text(String),
    /// The whole generation.
    Done {
        generation: Generation,
        prompt_tokens: usize,
    },
    /// The request could not be answered.
    Failed(Failure),
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub message: String,
    /// The request itself is at fault (the prompt is too long, the settings are out of range); otherwise the
    /// model or the engine is (a backbone or adapter that does not load, a failed computation).
    pub bad_request: bool,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Limits of the engine.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Sequences decoded together in one step.
    pub max_batch: usize,
    /// Requests waiting to be admitted before [`Engine::submit`] refuses.
    pub max_queue: usize,
    /// Adapters kept loaded (least recently used dropped first; one in use is never dropped).
    pub max_adapters: usize,
    /// Prompt tokens prefilled per scheduler step.
    pub prefill_chunk: usize,
    /// Where `.gguf` backbones are imported (the home's `backbones/`).
    pub gguf_cache: PathBuf,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            max_batch: 8,
            max_queue: 64,
            max_adapters: 8,
            prefill_chunk: 256,
            gguf_cache: std::env::temp_dir().join("ferrotune-gguf-imports"),
        }
    }
}

/// Why a request was not taken.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "the engine is busy: {waiting} requests are waiting (the most is {max}); try again shortly"
    )]
    QueueFull { waiting: usize, max: usize },
    #[error("the engine has stopped")]
    Stopped,
}

/// A job on its way to the scheduler.
pub(crate) struct Job {
    pub(crate) request: Request,
    pub(crate) updates: UnboundedSender<Update>,
}

/// A handle to the scheduler thread (cheap to clone; the thread ends when the last handle is dropped).
#[derive(Clone)]
pub struct Engine {
    jobs: mpsc::Sender<Job>,
    waiting: Arc<AtomicUsize>,
    options: Arc<EngineOptions>,
    stats: Arc<scheduler::Stats>,
}

impl Engine {
    /// Starts the scheduler thread.
    pub fn start(options: EngineOptions) -> Engine {
        let (jobs, receiver) = mpsc::channel();
        let waiting = Arc::new(AtomicUsize::new(0));
        let stats = Arc::new(scheduler::Stats::default());
        let options = Arc::new(options);
        let scheduler =
            scheduler::Scheduler::new(receiver, options.clone(), waiting.clone(), stats.clone());
        // A thread that cannot be spawned leaves the channel without a receiver: every submit then says Stopped.
        let _ = std::thread::Builder::new()
            .name("ferrotune-engine".into())
            .spawn(move || scheduler.run());
        Engine {
            jobs,
            waiting,
            options,
            stats,
        }
    }

    /// Queues `request`; its updates arrive on the returned receiver. Dropping the receiver cancels it.
    pub fn submit(&self, request: Request) -> Result<UnboundedReceiver<Update>, EngineError> {
        let waiting = self.waiting.fetch_add(1, Ordering::SeqCst);
        if waiting >= self.options.max_queue {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(EngineError::QueueFull {
                waiting,
                max: self.options.max_queue,
            });
        }
        let (updates, receiver) = unbounded_channel();
        self.jobs.send(Job { request, updates }).map_err(|_| {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            EngineError::Stopped
        })?;
        Ok(receiver)
    }

    /// The engine's limits.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// The most sequences decoded together in one step so far.
    pub fn largest_batch(&self) -> usize {
        self.stats.largest_batch.load(Ordering::Relaxed)
    }

    /// Sequences dropped because their caller went away.
    pub fn cancelled(&self) -> usize {
        self.stats.cancelled.load(Ordering::Relaxed)
    }

    /// Adapters loaded from disk so far (a count that grows when the LRU had to load or reload one).
    pub fn adapter_loads(&self) -> usize {
        self.stats.adapter_loads.load(Ordering::Relaxed)
    }
}

/// Waits for a request's end (blocking): the whole generation and the prompt's token count.
pub fn wait(mut updates: UnboundedReceiver<Update>) -> Result<(Generation, usize), String> {
    while let Some(update) = updates.blocking_recv() {
        match update {
            Update::Done {
                generation,
                prompt_tokens,
            } => return Ok((generation, prompt_tokens)),
            Update::Failed(failure) => return Err(failure.message),
            Update::Started { .. } | Update::Text(_) => {}
        }
    }
    Err("the engine stopped before answering".into())
}
