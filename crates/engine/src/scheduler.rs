//! The scheduler thread: admission, chunked prefill, one batched decoding step per base model, and the model and
//! adapter caches.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::SystemTime;

use ferrotune_model::cache::KvCache;
use ferrotune_model::generation::DecodeState;
use ferrotune_model::{AdapterWeights, Backbone, DecodeRow, Device, Tensor};
use tokio::sync::mpsc::UnboundedSender;

use crate::{EngineOptions, Failure, Job, ModelSpec, Prompt, Update};

/// Counters the engine's handle reads.
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) largest_batch: AtomicUsize,
    pub(crate) adapter_loads: AtomicUsize,
    pub(crate) cancelled: AtomicUsize,
}

/// A loaded base model, shared by every sequence (and adapter) on it.
struct Base {
    backbone: Backbone,
}

/// An adapter folder as loaded: its path and the time its weights were written (a retrained adapter reloads).
type AdapterKey = (PathBuf, Option<SystemTime>);

struct CachedAdapter {
    weights: Arc<AdapterWeights>,
    last_used: u64,
}

/// One sequence being answered.
struct Sequence {
    base: Arc<Base>,
    adapter: Option<Arc<AdapterWeights>>,
    cache: KvCache,
    prompt: Vec<u32>,
    prefilled: usize,
    state: DecodeState,
    updates: UnboundedSender<Update>,
}

impl Sequence {
    fn emit(&self, update: Update) {
        let _ = self.updates.send(update);
    }

    fn cancelled(&self) -> bool {
        self.updates.is_closed()
    }
}

pub(crate) struct Scheduler {
    jobs: mpsc::Receiver<Job>,
    options: Arc<EngineOptions>,
    waiting_count: Arc<AtomicUsize>,
    stats: Arc<Stats>,
    waiting: VecDeque<Job>,
    prefilling: VecDeque<Sequence>,
    decoding: Vec<Sequence>,
    bases: HashMap<String, Arc<Base>>,
    adapters: HashMap<AdapterKey, CachedAdapter>,
    clock: u64,
}

impl Scheduler {
    pub(crate) fn new(
        jobs: mpsc::Receiver<Job>,
        options: Arc<EngineOptions>,
        waiting_count: Arc<AtomicUsize>,
        stats: Arc<Stats>,
    ) -> Scheduler {
        Scheduler {
            jobs,
            options,
            waiting_count,
            stats,
            waiting: VecDeque::new(),
            prefilling: VecDeque::new(),
            decoding: Vec::new(),
            bases: HashMap::new(),
            adapters: HashMap::new(),
            clock: 0,
        }
    }

    /// Serves until every engine handle is dropped and nothing is left to answer.
    pub(crate) fn run(mut self) {
        ferrotune_model::threads::install(move || loop {
            if !self.receive() {
                return;
            }
            self.admit();
            self.drop_cancelled();
            self.prefill_one_chunk();
            self.decode_step();
        })
    }

    fn active(&self) -> usize {
        self.prefilling.len() + self.decoding.len()
    }

    /// Takes new jobs (waiting for one when idle); false when the handles are gone and all is answered.
    fn receive(&mut self) -> bool {
        if self.active() == 0 && self.waiting.is_empty() {
            match self.jobs.recv() {
                Ok(job) => self.waiting.push_back(job),
                Err(_) => return false,
            }
        }
        while let Ok(job) = self.jobs.try_recv() {
            self.waiting.push_back(job);
        }
        true
    }

    /// Moves waiting jobs into the batch while it has room.
    fn admit(&mut self) {
        while self.active() < self.options.max_batch.max(1) {
            let Some(job) = self.waiting.pop_front() else {
                break;
            };
            self.waiting_count.fetch_sub(1, Ordering::SeqCst);
            if job.updates.is_closed() {
                continue;
            }
            match self.start(&job) {
                Ok(seq) => {
                    seq.emit(Update::Started {
                        prompt_tokens: seq.prompt.len(),
                    });
                    self.prefilling.push_back(seq);
                }
                Err(failure) => {
                    let _ = job.updates.send(Update::Failed(failure));
                }
            }
        }
    }

    /// The sequence of `job`: its base and adapter loaded, its prompt encoded and checked.
    fn start(&mut self, job: &Job) -> Result<Sequence, Failure> {
        let request = &job.request;
        let bad = |message: String| Failure {
            message,
            bad_request: true,
        };
        let model = |message: String| Failure {
            message,
            bad_request: false,
        };
        if request.generation.num_beams > 1 {
            return Err(bad(
                "beam search is not served: use one beam (`num_beams` 1)".into(),
            ));
        }
        let base = self.base(&request.model).map_err(model)?;
        let adapter = match &request.model.adapter {
            Some(dir) => Some(self.adapter(&base, dir).map_err(model)?),
            None => None,
        };
        let tokenizer = &base.backbone.tokenizer;
        let prompt = match &request.prompt {
            Prompt::Messages(messages) => tokenizer.encode_chat(messages),
            Prompt::Text(text) => tokenizer.encode(text, true),
        }
        .map_err(|e| bad(format!("cannot encode the prompt: {e}")))?;
        let mut cfg = request.generation.clone();
        cfg.stop_token_ids.extend(base.backbone.stop_token_ids());
        cfg.stop_token_ids.sort_unstable();
        cfg.stop_token_ids.dedup();
        let context = base.backbone.model.config().max_position_embeddings;
        let state = DecodeState::new(&prompt, &cfg, context).map_err(|e| bad(e.to_string()))?;
        Ok(Sequence {
            cache: base.backbone.model.new_cache(),
            base,
            adapter,
            prompt,
            prefilled: 0,
            state,
            updates: job.updates.clone(),
        })
    }

    /// The loaded base for `spec` (loaded once per backbone and format).
    fn base(&mut self, spec: &ModelSpec) -> Result<Arc<Base>, String> {
        let key = format!("{}|{:?}", spec.backbone.display(), spec.format);
        if let Some(base) = self.bases.get(&key) {
            return Ok(base.clone());
        }
        let mut backbone = Backbone::load(
            &spec.backbone,
            spec.format,
            &Device::Cpu,
            &self.options.gguf_cache,
        )
        .map_err(|e| format!("cannot load backbone {}: {e}", spec.backbone.display()))?;
        backbone.model = backbone.model.for_inference();
        let base = Arc::new(Base { backbone });
        self.bases.insert(key, base.clone());
        Ok(base)
    }

    /// The adapter in `dir` for `base`, from the LRU or loaded (dropping the least recently used one not in use
    /// past `max_adapters`).
    fn adapter(
        &mut self,
        base: &Arc<Base>,
        dir: &std::path::Path,
    ) -> Result<Arc<AdapterWeights>, String> {
        self.clock += 1;
        let stamp = std::fs::metadata(dir.join("adapter_model.safetensors"))
            .and_then(|m| m.modified())
            .ok();
        let key = (dir.to_path_buf(), stamp);
        if let Some(cached) = self.adapters.get_mut(&key) {
            cached.last_used = self.clock;
            return Ok(cached.weights.clone());
        }
        let weights = AdapterWeights::load(&base.backbone.model, dir)
            .map_err(|e| format!("cannot load adapter {}: {e}", dir.display()))?;
        self.stats.adapter_loads.fetch_add(1, Ordering::Relaxed);
        let weights = Arc::new(weights);
        self.adapters.insert(
            key,
            CachedAdapter {
                weights: weights.clone(),
                last_used: self.clock,
            },
        );
        while self.adapters.len() > self.options.max_adapters.max(1) {
            let idle = self
                .adapters
                .iter()
                .filter(|(_, c)| Arc::strong_count(&c.weights) == 1)
                .min_by_key(|(_, c)| c.last_used)
                .map(|(k, _)| k.clone());
            match idle {
                Some(k) => {
                    self.adapters.remove(&k);
                }
                None => break,
            }
        }
        Ok(weights)
    }

    /// Drops the sequences whose caller went away.
    fn drop_cancelled(&mut self) {
        let before = self.active();
        self.prefilling.retain(|s| !s.cancelled());
        self.decoding.retain(|s| !s.cancelled());
        let dropped = before - self.active();
        self.stats.cancelled.fetch_add(dropped, Ordering::Relaxed);
    }

    /// Feeds the next chunk of the oldest prompt; a prompt read to its end yields its first token.
    fn prefill_one_chunk(&mut self) {
        let Some(mut seq) = self.prefilling.pop_front() else {
            return;
        };
        let chunk = self.options.prefill_chunk.max(1);
        let end = (seq.prefilled + chunk).min(seq.prompt.len());
        let result = (|| -> ferrotune_model::Result<Option<Vec<f32>>> {
            let input = Tensor::new(&seq.prompt[seq.prefilled..end], &Device::Cpu)?.unsqueeze(0)?;
            let model = seq.base.backbone.model.with_adapter(seq.adapter.as_deref());
            let logits = model.forward_last(&input, Some(&mut seq.cache))?;
            Ok((end == seq.prompt.len())
                .then(|| logits.squeeze(0)?.to_vec1::<f32>())
                .transpose()?)
        })();
        match result {
            Err(e) => seq.emit(Update::Failed(internal(format!("prefill failed: {e}")))),
            Ok(None) => {
                seq.prefilled = end;
                self.prefilling.push_front(seq);
            }
            Ok(Some(mut logits)) => {
                seq.prefilled = end;
                seq.state.mark_prefilled();
                if advance(&mut seq, &mut logits) {
                    self.decoding.push(seq);
                }
            }
        }
    }

    /// One batched decoding step per base model over every decoding sequence.
    fn decode_step(&mut self) {
        if self.decoding.is_empty() {
            return;
        }
        let mut sequences = std::mem::take(&mut self.decoding);
        // Rows of one base together, and within them rows of one adapter next to each other.
        let ptr = |s: &Sequence| {
            (
                Arc::as_ptr(&s.base) as usize,
                s.adapter.as_ref().map_or(0, |a| Arc::as_ptr(a) as usize),
            )
        };
        sequences.sort_by_key(ptr);
        let mut kept = Vec::with_capacity(sequences.len());
        // Each pass takes the rows of the first base left.
        while !sequences.is_empty() {
            let base = ptr(&sequences[0]).0;
            let end = sequences.iter().take_while(|s| ptr(s).0 == base).count();
            let group = &mut sequences[..end];
            self.stats
                .largest_batch
                .fetch_max(group.len(), Ordering::Relaxed);
            match decode_group(group) {
                Ok(logits) => {
                    for (mut seq, mut row) in sequences.drain(..end).zip(logits) {
                        if advance(&mut seq, &mut row) {
                            kept.push(seq);
                        }
                    }
                }
                Err(e) => {
                    for seq in sequences.drain(..end) {
                        seq.emit(Update::Failed(internal(format!("decoding failed: {e}"))));
                    }
                }
            }
        }
        self.decoding = kept;
    }
}

/// The logits of one step for every sequence of `group` (all on one base).
fn decode_group(group: &mut [Sequence]) -> ferrotune_model::Result<Vec<Vec<f32>>> {
    let base = group[0].base.clone();
    let mut rows: Vec<DecodeRow> = group
        .iter_mut()
        .map(|s| DecodeRow {
            token: s.state.last_token().unwrap_or(0),
            cache: &mut s.cache,
            adapter: s.adapter.as_deref(),
        })
        .collect();
    let logits = base.backbone.model.decode_step(&mut rows)?;
    Ok(logits.to_vec2::<f32>()?)
}

/// Chooses the sequence's next token from `logits` and emits its text; true while it goes on, false once it
/// ended (its `Done` sent).
fn advance(seq: &mut Sequence, logits: &mut [f32]) -> bool {
    let tokenizer = &seq.base.backbone.tokenizer;
    let updates = seq.updates.clone();
    let mut on_text = |piece: &str| {
        let _ = updates.send(Update::Text(piece.to_string()));
    };
    let ended = seq.state.out_of_time()
        || match seq.state.step(logits, tokenizer, &mut on_text) {
            Ok(finish) => finish.is_some(),
            Err(e) => {
                seq.emit(Update::Failed(internal(format!(
                    "cannot decode the answer: {e}"
                ))));
                return false;
            }
        };
    if !ended {
        return true;
    }
    let state = seq.state.clone();
    match state.finish(tokenizer, &mut on_text) {
        Ok(generation) => seq.emit(Update::Done {
            generation,
            prompt_tokens: seq.prompt.len(),
        }),
        Err(e) => seq.emit(Update::Failed(internal(format!(
            "cannot decode the answer: {e}"
        )))),
    }
    false
}

fn internal(message: String) -> Failure {
    Failure {
        message,
        bad_request: false,
    }
}
