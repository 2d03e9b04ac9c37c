//! `ferrotune serve`: the web studio.

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
}

pub fn run(args: ServeArgs, printer: &Printer) -> anyhow::Result<()> {
    let exe =
        std::env::current_exe().context("cannot find the ferrotune binary to run experiments")?;
    let token = args.token.filter(|t| !t.trim().is_empty());
    let state = AppState::new(Home::from_env(), Some(exe), token);
    let options = ServeOptions {
        host: args.host,
        port: args.port,
        register_demo: !args.no_demo,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(ferrotune_server::serve(state, &options, |addr| {
        let _ = printer.line(&format!("ferrotune studio listening on http://{addr}"));
    }))?;
    Ok(())
}
