//! Handler tests without a socket: `app(state).oneshot(request)` against a temporary home (one binary).

mod backbones;
mod common;
mod datasets;
mod demo;
mod errors;
mod experiments;
mod lifecycle;
mod openai;
mod pages;
mod run_files;
mod security;
