use anyhow::Context;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use logwell::auth::{Authentication, generate_token, token_hash};
use logwell::cli::{self, CliError};
use logwell::config::{Cli, Command, RetentionCommand, TokenCommand};
use logwell::live::Hub;
use logwell::retention::Retention;
use logwell::server::Listeners;
use logwell::store::redacted;
use logwell::{server, store, telemetry};
use tokio::net::TcpListener;

/// mimalloc rather than the system allocator: rows read on the database's
/// threads are freed on the runtime's, and glibc's allocator spent a quarter
/// of an export consolidating its free lists (measured with perf).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long, once `main` is done, tasks still running may take to stop.
const RUNTIME_SHUTDOWN_BOUND: Duration = Duration::from_secs(1);

/// The exit status after a second SIGINT or SIGTERM (128 + SIGINT, as shells report an interrupt).
const EXIT_INTERRUPTED: i32 = 130;

fn main() -> anyhow::Result<ExitCode> {
    // This thread opens the store: its SQLite connections' threads inherit
    // the short slices; the runtime's threads take the default back. A
    // kernel without custom slices leaves the default everywhere.
    let _ = logwell::scheduling::favour_latency();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(logwell::scheduling::share_fairly)
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(run());
    // Whatever a stuck client still holds must not keep the process alive.
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_BOUND);
    result
}

/// A client command's outcome: its own exit status on success; on failure
/// one line on standard error and the exit status of its kind
/// (`cli::error::exit`).
fn client_outcome(result: Result<u8, CliError>) -> ExitCode {
    match result {
        Ok(status) => ExitCode::from(status),
        Err(error) if error.is_closed_pipe() => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("logwell: {error}");
            ExitCode::from(error.exit_status())
        }
    }
}

/// `logwell retention`: what would go, or delete it now.
async fn retention(command: RetentionCommand) -> anyhow::Result<()> {
    let settings = command.database.retention.settings()?;
    if settings.policy.keeps_everything() {
        println!("no retention is configured (--retention-system, --retention-job, --retention-task): nothing goes");
        return Ok(());
    }
    let database = &command.database;
    let store = store::connect(&database.database_url, &database.connect_options(), Hub::new()).await?;
    let retention = Retention::new(store.clone(), settings, Default::default());
    let now = command.as_of.unwrap_or_else(chrono::Utc::now);
    let as_of = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let report = async {
        if command.dry_run {
            let estimates = retention.estimate(now).await?;
            println!("would expire, as of {as_of}:");
            for (log_type, estimate) in estimates {
                let span = match (estimate.oldest, estimate.newest) {
                    (Some(oldest), Some(newest)) => {
                        format!("received {} to {}", oldest.to_rfc3339(), newest.to_rfc3339())
                    }
                    _ => String::new(),
                };
                let size = human_bytes(estimate.bytes);
                println!("  {:<6} {:>12} logs  ~{size:>10}  {span}", log_type.as_str(), estimate.logs);
            }
        } else {
            let expired = retention.pass(now).await?;
            println!("expired, as of {as_of}:");
            for (log_type, logs) in expired {
                println!("  {:<6} {logs:>12} logs", log_type.as_str());
            }
        }
        anyhow::Ok(())
    };
    let result = report.await;
    store.close().await;
    result
}

/// `bytes` in the largest binary unit that keeps a number above 1.
fn human_bytes(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", units[unit])
}

async fn run() -> anyhow::Result<ExitCode> {
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    telemetry::init(cli.logging.log_format, &cli.logging.log_filter)?;
    match cli.command {
        Command::Logs(args) if args.follow => {
            let tail = args.into_tail();
            return Ok(client_outcome(match tail {
                Ok(tail) => cli::tail::run(tail).await,
                Err(error) => Err(error),
            }));
        }
        Command::Logs(args) => return Ok(client_outcome(cli::logs::run(args).await.map(|()| 0))),
        Command::Bench(args) => {
            // Without --server (or LOGWELL_SERVER), bench starts a server of its own.
            let server = matches.subcommand_matches("bench").and_then(|bench| bench.value_source("server"));
            let server_given = server.is_some_and(|source| source != clap::parser::ValueSource::DefaultValue);
            return Ok(client_outcome(cli::bench::run(args, server_given).await.map(|()| 0)));
        }
        Command::Export(args) => return Ok(client_outcome(cli::export::run(args).await.map(|()| 0))),
        Command::Push(args) => return Ok(client_outcome(cli::push::run(args).await.map(|()| 0))),
        Command::Run(args) => return Ok(client_outcome(cli::run::run(args).await)),
        Command::Stats(args) => return Ok(client_outcome(cli::stats::run(args).await.map(|()| 0))),
        Command::Tail(args) => return Ok(client_outcome(cli::tail::run(args).await)),
        Command::Runs(args) => return Ok(client_outcome(cli::runs::run(args).await)),
        Command::Completions { shell } => {
            // Into memory first: clap_complete panics on a failed write
            // (`logwell completions bash | head`).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut <Cli as clap::CommandFactory>::command(), "logwell", &mut script);
            let written = std::io::Write::write_all(&mut std::io::stdout(), &script);
            return Ok(client_outcome(written.map(|()| 0).map_err(CliError::from)));
        }
        Command::Migrate(database) => {
            let store = store::connect(&database.database_url, &database.connect_options(), Hub::new()).await?;
            store.close().await;
            tracing::info!(database = %redacted(&database.database_url), "migrations applied");
        }
        Command::Retention(command) => retention(command).await?,
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
            // Before "logwell serving" is logged: whoever starts the server
            // and reads that line may signal it at once.
            let signals = Signals::watch()?;
            let settings = args.server_settings()?;
            if args.check_config {
                store::check_url(&args.database.database_url)?;
                println!("{}", configuration_summary(&args, &settings));
                return Ok(ExitCode::SUCCESS);
            }
            let hub = Hub::new();
            let store =
                store::connect(&args.database.database_url, &args.database.connect_options(), hub.clone()).await?;
            let grpc = bind(args.listen).await?;
            let metrics = match args.metrics_listen {
                Some(address) => Some(bind(address).await?),
                None => None,
            };
            let health = match args.health_listen {
                Some(address) => Some(bind(address).await?),
                None => None,
            };
            let otlp_http = match args.otlp_http_listen {
                Some(address) => Some(bind(address).await?),
                None => None,
            };
            tracing::info!(
                address = %grpc.local_addr()?,
                metrics = ?metrics.as_ref().map(TcpListener::local_addr).transpose()?,
                health = ?health.as_ref().map(TcpListener::local_addr).transpose()?,
                otlp_http = ?otlp_http.as_ref().map(TcpListener::local_addr).transpose()?,
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
            let listeners = Listeners { grpc, metrics, health, otlp_http };
            server::serve(listeners, store, hub, settings, shutdown_signal(signals)).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What `serve --check-config` found: one line of what would be served.
fn configuration_summary(args: &logwell::config::ServeArgs, settings: &logwell::server::ServerSettings) -> String {
    let authentication = match &settings.access.authentication {
        Authentication::Tokens(_) => "bearer tokens",
        Authentication::Off if args.tls_client_ca_file.is_some() => "client certificates",
        Authentication::Off => "off",
    };
    let optional = |address: Option<SocketAddr>| address.map_or("off".to_string(), |address| address.to_string());
    format!(
        "configuration ok: gRPC on {} ({}); OTLP/HTTP {}; health listener {}; metrics {}; \
         authentication {authentication}; \
         job-run tokens {}; browser pages: the viewer{}; database {}",
        args.listen,
        match (&settings.tls, &args.tls_client_ca_file) {
            (None, _) => "plaintext",
            (Some(_), None) => "TLS",
            (Some(_), Some(_)) => "mutual TLS",
        },
        optional(args.otlp_http_listen),
        optional(args.health_listen),
        optional(args.metrics_listen),
        if settings.access.job_run_tokens.is_some() { "on" } else { "off" },
        args.cors_allowed_origins.iter().map(|origin| format!(", {origin}")).collect::<String>(),
        redacted(&args.database.database_url)
    )
}

async fn bind(address: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address).await.with_context(|| format!("cannot listen on {address}"))
}

/// Resolves at the first SIGINT or SIGTERM; the second ends the process at
/// once. What was acknowledged is committed already, so nothing of it is lost.
async fn shutdown_signal(mut signals: Signals) {
    signals.next().await;
    tokio::spawn(async move {
        signals.next().await;
        tracing::warn!("second signal: exiting now, without waiting for requests in flight");
        std::process::exit(EXIT_INTERRUPTED);
    });
}

/// SIGINT and SIGTERM, watched from start-up so that none is missed.
struct Signals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn watch() -> anyhow::Result<Signals> {
        Ok(Signals {
            #[cfg(unix)]
            terminate: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("cannot watch SIGTERM")?,
        })
    }

    async fn next(&mut self) {
        let interrupt = tokio::signal::ctrl_c();
        #[cfg(unix)]
        tokio::select! {
            _ = interrupt => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = interrupt.await;
    }
}
