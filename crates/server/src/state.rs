//! The state every handler shares: the home, the access token, the forgery-protection secret, the studio
//! settings and the loaded chat model.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use ferrotune_store::{Home, Store};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// Studio-wide settings (`studio.json` in the home), edited on the Settings page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StudioSettings {
    /// Largest dataset upload, in MiB.
    pub max_upload_mb: u64,
    /// Most epochs a new experiment may ask for.
    pub max_epochs: u64,
    /// Overrides (`training.learning_rate` → `0.0001`) prefilled in the new-experiment form.
    pub experiment_defaults: std::collections::BTreeMap<String, String>,
}

impl Default for StudioSettings {
    fn default() -> Self {
        StudioSettings {
            max_upload_mb: 512,
            max_epochs: 100,
            experiment_defaults: Default::default(),
        }
    }
}

/// The scoring model (a classification or regression head's backbone) kept loaded between texts.
pub(crate) struct LoadedModel {
    /// Backbone folder, adapter folder (if any) and the adapter's modification time.
    pub(crate) key: (PathBuf, Option<PathBuf>, Option<std::time::SystemTime>),
    pub(crate) backbone: ferrotune_model::Backbone,
}

/// Shared by every handler (cheap to clone).
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// What [`AppState`] shares; nothing of it is public outside the crate.
pub struct Inner {
    pub(crate) home: Home,
    /// The `ferrotune` binary that runs queued experiments; `None` where the server cannot start them.
    pub(crate) exe: Option<PathBuf>,
    /// The access token, the one copy (see [`AppState::has_token`], [`AppState::is_token`]).
    token: Option<String>,
    /// Random per server start; forgery-protection tokens derive from it and the session cookie.
    secret: String,
    settings: RwLock<StudioSettings>,
    /// The model that scores texts with a trained head (`POST /api/experiments/{name}/score`).
    pub(crate) scoring: Mutex<Option<LoadedModel>>,
    /// Every generated answer: the studio's chat and `/v1`.
    pub(crate) engine: ferrotune_engine::Engine,
    /// Models `/v1` serves from paths instead of the home's (`ferrotune serve --model`).
    pub(crate) served: Option<crate::routes::openai::ServedModels>,
    /// What the demo registration is doing (shown on the home page), if anything.
    notice: RwLock<Option<String>>,
    /// The exports this server started, by experiment.
    pub(crate) exports: crate::routes::exports::ExportJobs,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// State for the home `home`; `exe` runs experiments; `token` protects the server (required off loopback).
    pub fn new(home: Home, exe: Option<PathBuf>, token: Option<String>) -> AppState {
        let engine = ferrotune_engine::EngineOptions {
            gguf_cache: home.backbones(),
            ..Default::default()
        };
        Self::with_engine(home, exe, token, engine, None)
    }

    /// [`AppState::new`] with the engine's limits, and (for `/v1`) models served from paths.
    pub fn with_engine(
        home: Home,
        exe: Option<PathBuf>,
        token: Option<String>,
        engine: ferrotune_engine::EngineOptions,
        served: Option<crate::routes::openai::ServedModels>,
    ) -> AppState {
        let settings = load_settings(&home).unwrap_or_default();
        AppState(Arc::new(Inner {
            home,
            exe,
            token,
            secret: crate::security::random_hex(32),
            settings: RwLock::new(settings),
            scoring: Mutex::new(None),
            engine: ferrotune_engine::Engine::start(engine),
            served,
            notice: RwLock::new(None),
            exports: Default::default(),
        }))
    }

    /// Whether the server asks for an access token.
    pub(crate) fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Whether `given` is the access token (false when the server has none).
    pub(crate) fn is_token(&self, given: &str) -> bool {
        self.token
            .as_deref()
            .is_some_and(|token| crate::security::same(token, given))
    }

    /// The forgery-protection token of session `session`, derived from it and the server's secret.
    pub(crate) fn csrf_token(&self, session: &str) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(format!("{}:{session}", self.secret).as_bytes());
        digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
    }

    /// Opens the store (a fresh registry connection).
    /// The store of the home; with the `ferrotune` binary known, it supervises the queue (a runner that died
    /// is replaced by the next look at the experiments, as in the CLI).
    pub(crate) fn store(&self) -> Result<Store, ApiError> {
        let store = Store::open(self.home.clone())?;
        Ok(match &self.exe {
            Some(exe) => store.with_runner(exe.clone()),
            None => store,
        })
    }

    /// Runs `f` with an open store on a blocking thread.
    pub(crate) async fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut store = state.store()?;
            f(&mut store)
        })
        .await
        .map_err(|e| ApiError::internal(format!("task failed: {e}")))?
    }

    /// The current studio settings.
    pub fn settings(&self) -> StudioSettings {
        self.settings.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// Saves new studio settings.
    pub(crate) fn save_settings(&self, settings: StudioSettings) -> Result<(), ApiError> {
        let path = settings_path(&self.home);
        let text = serde_json::to_string_pretty(&settings)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        ferrotune_home::atomic::write(&path, text.as_bytes())
            .map_err(|e| ApiError::internal(format!("cannot write `{}`: {e}", path.display())))?;
        if let Ok(mut s) = self.settings.write() {
            *s = settings;
        }
        Ok(())
    }

    /// Sets or clears the home page's notice.
    pub(crate) fn set_notice(&self, text: Option<String>) {
        if let Ok(mut n) = self.notice.write() {
            *n = text;
        }
    }

    /// The home page's notice.
    pub fn notice(&self) -> Option<String> {
        self.notice.read().ok().and_then(|n| n.clone())
    }

    /// Writes an internal error's details to `server.log` with what was asked (`POST /api/…`); the answer
    /// carries only its request id. User errors are not logged.
    pub(crate) fn log_error(&self, what: &str, error: &ApiError) {
        if let Some(details) = error.internal_details() {
            self.log(&format!("{what}: {details}"));
        }
    }

    /// Appends a line to `server.log` (internal errors with their request id).
    pub(crate) fn log(&self, line: &str) {
        use std::io::Write;
        let path = self.home.root().join("server.log");
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            // One entry per timestamp: a message's further lines (`help: …`) are indented under it.
            let line = line.replace('\n', "\n    ");
            let _ = writeln!(f, "{} {line}", ferrotune_store::format_utc(now()));
        }
    }
}

fn settings_path(home: &Home) -> PathBuf {
    home.root().join("studio.json")
}

fn load_settings(home: &Home) -> Option<StudioSettings> {
    let text = std::fs::read_to_string(settings_path(home)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Unix seconds now.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
