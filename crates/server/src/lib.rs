//! # ferrotune-server
//!
//! The no-code studio behind `ferrotune serve`: server-rendered pages (minijinja templates built into the
//! binary), our own small script and SVG charts, a JSON API under `/api/` behind every page action
//! (`docs/api.md`), live updates over Server-Sent Events, and chat with a trained model.
//!
//! *Owns*: HTTP (routes, authentication, cross-site request forgery protection, uploads staged under
//! `uploads/`), the studio settings file (`studio.json`), and the chat model cache. *Must not touch*: the registry
//! or the `datasets/` and `experiments/` folders except through `ferrotune-store`; tensors except through
//! `ferrotune-model`'s loading and generation. It never prints: errors with details go to `server.log` in the home.
//!
//! The public surface is what `ferrotune serve` and the tests use: [`AppState`], [`app`], [`serve`] and the
//! demo registration. Start reading at `routes::router` (every route, the fallbacks and the middleware),
//! [`AppState`] and `error::ApiError` (how each library error is answered).

mod charts;
mod demo;
mod error;
mod extract;
mod routes;
mod security;
mod state;
mod system;
mod views;

use std::net::{IpAddr, SocketAddr};

pub use demo::{register_in_background, DEMO_BACKBONE};
pub use ferrotune_engine::EngineOptions;
pub use routes::openai::ServedModels;
pub use state::{AppState, StudioSettings};

/// How `ferrotune serve` was started (the access token is the [`AppState`]'s).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub host: IpAddr,
    /// 0 picks a free port (the bound address is passed to `on_ready`).
    pub port: u16,
    /// Register the demo backbone and datasets when the home is empty (fetched in the background).
    pub register_demo: bool,
    /// Serve only the OpenAI-compatible API (`/v1`), not the studio.
    pub api_only: bool,
}

/// Errors of starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("binding `{host}` (not loopback) needs an access token\nhelp: pass --token SECRET or set FERROTUNE_TOKEN; the login page asks for it")]
    TokenRequired { host: IpAddr },
    #[error("cannot listen on `{addr}`: {source}\nhelp: pick another --port, or stop the program that uses it")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the server stopped: {0}")]
    Serve(#[source] std::io::Error),
    #[error(transparent)]
    Store(#[from] ferrotune_store::Error),
}

/// Every route of the studio, with authentication and forgery protection in front.
pub fn app(state: AppState) -> axum::Router {
    routes::router(state)
}

/// Binds, calls `on_ready` with the address, and serves until Ctrl-C.
pub async fn serve(
    state: AppState,
    options: &ServeOptions,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    if !options.host.is_loopback() && !state.has_token() {
        return Err(ServeError::TokenRequired { host: options.host });
    }
    if options.register_demo {
        demo::register_in_background(state.clone());
    }
    let addr = SocketAddr::new(options.host, options.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let bound = listener.local_addr().map_err(ServeError::Serve)?;
    on_ready(bound);
    let router = if options.api_only {
        routes::api_only_router(state)
    } else {
        app(state)
    };
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(ServeError::Serve)
}
