use anyhow::Context;
use clap::Parser;
use logwell::config::{Cli, Command, redacted};
use logwell::{server, store, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init(cli.logging.log_format, &cli.logging.log_filter)?;
    match cli.command {
        Command::Migrate(database) => {
            let store = store::connect(&database.database_url, &database.connect_options()).await?;
            store.close().await;
            tracing::info!(database = %redacted(&database.database_url), "migrations applied");
        }
        Command::Serve(args) => {
            let store = store::connect(&args.database.database_url, &args.database.connect_options()).await?;
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .with_context(|| format!("cannot listen on {}", args.listen))?;
            tracing::info!(
                address = %listener.local_addr()?,
                database = %redacted(&args.database.database_url),
                "logwell serving"
            );
            server::serve(listener, store, args.server_settings(), shutdown_signal()).await?;
        }
    }
    Ok(())
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
