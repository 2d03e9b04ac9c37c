//! `ferrotune serve`: the web studio and the OpenAI-compatible API (`/v1`), or with `--model` only that API over
//! a backbone and adapters given as paths (the deployment case).

use std::net::IpAddr;

use anyhow::Context;
use clap::Args;
use ferrotune_home::Home;
use ferrotune_server::{AppState, ServeOptions};

use crate::printer::Printer;

/// Start the web studio. It binds loopback unless told otherwise; any other address needs an access token.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (`0.0.0.0` for every interface: needs --token).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port (0 picks a free one; the address is printed).
    #[arg(long, default_value_t = 10101)]
    pub port: u16,
    /// Access token asked for by the login page and accepted as `Authorization: Bearer TOKEN`.
    #[arg(long, env = "FERROTUNE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Do not fetch and register the demo backbone and datasets on first start with an empty home.
    #[arg(long)]
    pub no_demo: bool,
    /// Serve this backbone (an HF folder or `.gguf` file) on `/v1` instead of the home's models; its model id
    /// is its folder or file name.
    #[arg(long, value_name = "PATH")]
    pub model: Option<std::path::PathBuf>,
    /// With --model: also serve this PEFT adapter folder as model id NAME (repeat for more).
    #[arg(long = "adapter", value_name = "NAME=DIR", requires = "model")]
    pub adapters: Vec<String>,
    /// Weights of --model in memory: f32, bf16, f16, int8 or int4.
    #[arg(long, default_value = "f32", requires = "model")]
    pub dtype: String,
    /// Serve only `/v1` (implied by --model).
    #[arg(long)]
    pub api_only: bool,
    /// Adapters kept loaded at once (least recently used unloaded first).
    #[arg(long, default_value_t = 8)]
    pub max_adapters: usize,
    /// Sequences decoded together in one step.
    #[arg(long, default_value_t = 8)]
    pub max_batch: usize,
    /// Requests waiting beyond the batch before `/v1` answers 429.
    #[arg(long, default_value_t = 64)]
    pub max_queue: usize,
}

/// The models `--model` and `--adapter` name.
fn served_models(args: &ServeArgs) -> anyhow::Result<Option<ferrotune_server::ServedModels>> {
    let Some(base) = &args.model else {
        return Ok(None);
    };
    if !base.exists() {
        anyhow::bail!(
            "--model {}: no such file or folder\nhelp: give a Hugging Face model folder or a .gguf file",
            base.display()
        );
    }
    let format = ferrotune_model::parse_weight_format(&args.dtype)
        .with_context(|| format!("--dtype {}", args.dtype))?;
    let base_name = base
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| base.display().to_string());
    let mut adapters = Vec::new();
    for given in &args.adapters {
        let Some((name, dir)) = given
            .split_once('=')
            .filter(|(n, d)| !n.is_empty() && !d.is_empty())
        else {
            anyhow::bail!("--adapter {given}: expected NAME=DIR\nhelp: e.g. --adapter support-bot=output/support-bot/adapter");
        };
        let dir = std::path::PathBuf::from(dir);
        if !dir.join("adapter_config.json").is_file() {
            anyhow::bail!(
                "--adapter {given}: {} holds no adapter_config.json\nhelp: give a PEFT adapter folder (a run's `adapter/`)",
                dir.display()
            );
        }
        if name == base_name || adapters.iter().any(|(n, _)| n == name) {
            anyhow::bail!("--adapter {given}: the model id `{name}` is already taken");
        }
        adapters.push((name.to_string(), dir));
    }
    Ok(Some(ferrotune_server::ServedModels {
        base_name,
        base: base.clone(),
        format,
        adapters,
    }))
}

pub fn run(args: ServeArgs, printer: &Printer) -> anyhow::Result<()> {
    let exe =
        std::env::current_exe().context("cannot find the ferrotune binary to run experiments")?;
    let served = served_models(&args)?;
    let token = args.token.clone().filter(|t| !t.trim().is_empty());
    let home = Home::from_env();
    let engine = ferrotune_server::EngineOptions {
        max_batch: args.max_batch.max(1),
        max_queue: args.max_queue,
        max_adapters: args.max_adapters.max(1),
        gguf_cache: home.backbones(),
        ..Default::default()
    };
    let api_only = args.api_only || served.is_some();
    let state = AppState::with_engine(home, Some(exe), token, engine, served);
    let options = ServeOptions {
        host: args.host,
        port: args.port,
        register_demo: !args.no_demo && !api_only,
        api_only,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(ferrotune_server::serve(state, &options, |addr| {
        let what = if api_only {
            "OpenAI-compatible API"
        } else {
            "studio (and its OpenAI-compatible API under /v1)"
        };
        let _ = printer.line(&format!("ferrotune {what} listening on http://{addr}"));
    }))?;
    Ok(())
}
