use anyhow::Context;
use clap::Parser;
use std::net::SocketAddr;

use logwell::auth::{Authentication, generate_token, token_hash};
use logwell::config::{Cli, Command, TokenCommand, redacted};
use logwell::live::Hub;
use logwell::server::Listeners;
use logwell::{server, store, telemetry};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init(cli.logging.log_format, &cli.logging.log_filter)?;
    match cli.command {
        Command::Migrate(database) => {
            let store = store::connect(&database.database_url, &database.connect_options(), Hub::new()).await?;
            store.close().await;
            tracing::info!(database = %redacted(&database.database_url), "migrations applied");
        }
        Command::Token(TokenCommand::New { name, scopes }) => {
            let token = generate_token()?;
            println!("token: {token}");
            println!("tokens-file line: {name} {scopes} {}", token_hash(&token));
        }
        Command::Token(TokenCommand::Hash) => {
            let mut token = String::new();
            std::io::stdin().read_line(&mut token).context("cannot read the token from standard input")?;
            println!("{}", token_hash(token.trim()));
        }
        Command::Serve(args) => {
            let settings = args.server_settings()?;
            let hub = Hub::new();
            let store =
                store::connect(&args.database.database_url, &args.database.connect_options(), hub.clone()).await?;
            let grpc = bind(args.listen).await?;
            let metrics = match args.metrics_listen {
                Some(address) => Some(bind(address).await?),
                None => None,
            };
            tracing::info!(
                address = %grpc.local_addr()?,
                metrics = ?metrics.as_ref().map(TcpListener::local_addr).transpose()?,
                database = %redacted(&args.database.database_url),
                tls = settings.tls.is_some(),
                "logwell serving"
            );
            match &settings.access.authentication {
                Authentication::Tokens(_) => tracing::info!("bearer tokens required"),
                Authentication::Off if args.insecure_no_auth => tracing::warn!(
                    address = %args.listen,
                    "AUTHENTICATION IS OFF (--insecure-no-auth): anyone who reaches this address reads and writes every log"
                ),
                Authentication::Off if args.tls_client_ca_file.is_some() => {
                    tracing::info!("no tokens configured: clients are authenticated by their certificates only")
                }
                Authentication::Off => tracing::info!("no tokens configured: authentication is off, on loopback only"),
            }
            let listeners = Listeners { grpc, metrics };
            server::serve(listeners, store, hub, settings, shutdown_signal()).await?;
        }
    }
    Ok(())
}

async fn bind(address: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address).await.with_context(|| format!("cannot listen on {address}"))
}

/// Resolves at the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGTERM; only SIGINT stops the server");
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
