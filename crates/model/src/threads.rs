//! The compute thread pool. Every parallel kernel (the GEMMs, the fused ops) splits its work with rayon; when the
//! caller is itself a worker of the pool, the split parts are stolen by the other workers at once, whereas a
//! call from an outside thread is injected into the pool and the caller sleeps until it is done — a hand-off
//! (and wake-up) per op that cost a LoRA training step about a fifth of its time on two cores. Entry points
//! (the CLI, later the server's job runner) run their work inside [`install`].

use std::sync::OnceLock;

static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();

/// Runs `f` on a worker of the compute pool (one thread per core, or `RAYON_NUM_THREADS`), waiting for it;
/// without a pool (it could not be started) `f` runs on the calling thread.
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let pool = POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(candle_core::utils::get_num_threads())
            .thread_name(|i| format!("ferrotune-compute-{i}"))
            .build()
            .ok()
    });
    match pool {
        Some(pool) => pool.install(f),
        None => f(),
    }
}
