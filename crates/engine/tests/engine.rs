//! The engine on a tiny fixture backbone with two PEFT adapters: concurrent requests are decoded together and
//! give, token for token, the greedy answers each gets alone; the queue limit, cancellation and the adapter LRU.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use ferrotune_engine::{
    wait, Engine, EngineError, EngineOptions, GenerationConfig, ModelSpec, Prompt, Request, Update,
};
use ferrotune_model::adapter::{attach_random_lora, save_peft};
use ferrotune_model::lora::LoraSpec;
use ferrotune_model::Backbone;
use ferrotune_test_support::model_fixture;

const CASE: &str = "llama3_rope";

/// A PEFT adapter on every linear layer of the fixture with non-zero weights (seeded), saved in `dir/name`.
fn write_adapter(dir: &Path, name: &str, seed: u64) -> PathBuf {
    let mut backbone =
        Backbone::load_folder(&model_fixture(CASE), DType::F32, &Device::Cpu).unwrap();
    let spec = LoraSpec::every_module(4, 8.0);
    attach_random_lora(&mut backbone.model, &spec, seed, 0.05).unwrap();
    let out = dir.join(name);
    save_peft(&backbone.model, &spec, "fixture", &out).unwrap();
    out
}

fn request(adapter: Option<&Path>, prompt: &str, max_new_tokens: usize) -> Request {
    Request {
        model: ModelSpec {
            backbone: model_fixture(CASE),
            format: DType::F32.into(),
            adapter: adapter.map(Path::to_path_buf),
        },
        prompt: Prompt::Text(prompt.into()),
        generation: GenerationConfig {
            max_new_tokens,
            ..Default::default()
        },
    }
}

fn options() -> EngineOptions {
    EngineOptions {
        prefill_chunk: 4,
        ..Default::default()
    }
}

#[test]
fn concurrent_requests_are_batched_and_answer_like_each_one_alone() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_adapter(dir.path(), "a", 1);
    let b = write_adapter(dir.path(), "b", 2);
    let cases: Vec<(Option<&Path>, &str)> = vec![
        (None, "one two three"),
        (Some(&a), "the quick brown fox jumps over"),
        (Some(&b), "hello"),
        (
            Some(&a),
            "a much longer prompt than the others, so that its prefill takes several chunks",
        ),
    ];
    let engine = Engine::start(options());
    let alone: Vec<Vec<u32>> = cases
        .iter()
        .map(|(adapter, prompt)| {
            let updates = engine.submit(request(*adapter, prompt, 12)).unwrap();
            wait(updates).unwrap().0.token_ids
        })
        .collect();
    assert_eq!(engine.largest_batch(), 1);
    let receivers: Vec<_> = cases
        .iter()
        .map(|(adapter, prompt)| engine.submit(request(*adapter, prompt, 12)).unwrap())
        .collect();
    let together: Vec<Vec<u32>> = receivers
        .into_iter()
        .map(|r| wait(r).unwrap().0.token_ids)
        .collect();
    assert!(engine.largest_batch() >= 2, "{}", engine.largest_batch());
    assert_eq!(together, alone);
    assert!(alone.iter().all(|t| !t.is_empty()));
    // Two adapters, each loaded once.
    assert_eq!(engine.adapter_loads(), 2);
}

#[test]
fn a_full_queue_refuses_and_a_caller_that_goes_away_is_dropped() {
    let engine = Engine::start(EngineOptions {
        max_batch: 1,
        max_queue: 2,
        ..options()
    });
    // The first occupies the batch; two wait; the fourth is refused.
    let mut long = engine.submit(request(None, "one", 200)).unwrap();
    assert!(matches!(long.blocking_recv(), Some(Update::Started { .. })));
    let second = engine.submit(request(None, "two", 4)).unwrap();
    let third = engine.submit(request(None, "three", 4)).unwrap();
    match engine.submit(request(None, "four", 4)) {
        Err(EngineError::QueueFull { max: 2, .. }) => {}
        other => panic!("expected QueueFull, got {:?}", other.map(|_| ())),
    }
    // Cancel the long one after its first text: the waiting ones are then answered.
    loop {
        match long.blocking_recv() {
            Some(Update::Text(_)) => break,
            Some(Update::Done { .. }) | None => panic!("the long request ended early"),
            Some(_) => {}
        }
    }
    drop(long);
    wait(second).unwrap();
    wait(third).unwrap();
    assert_eq!(engine.cancelled(), 1);
}

#[test]
fn the_adapter_lru_keeps_at_most_max_adapters_and_reloads_an_evicted_one() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_adapter(dir.path(), "a", 1);
    let b = write_adapter(dir.path(), "b", 2);
    let engine = Engine::start(EngineOptions {
        max_adapters: 1,
        ..options()
    });
    let answer =
        |adapter: &Path| wait(engine.submit(request(Some(adapter), "hi", 2)).unwrap()).unwrap();
    let first = answer(&a).0.token_ids;
    answer(&b);
    assert_eq!(answer(&a).0.token_ids, first);
    assert_eq!(engine.adapter_loads(), 3);
    // A bad adapter folder is a clear failure of that request only.
    let err = wait(
        engine
            .submit(request(Some(&dir.path().join("missing")), "hi", 2))
            .unwrap(),
    )
    .unwrap_err();
    assert!(
        err.contains("cannot load adapter") && err.contains("missing"),
        "{err}"
    );
}
