//! logwell's own logs, through `tracing`: human-readable or JSON, on stderr.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init(format: LogFormat, filter: &str) -> anyhow::Result<()> {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(filter)?)
        .with_writer(std::io::stderr)
        .with_ansi(colour_wanted())
        // Its fallback report of a failed write panics when stderr is gone
        // (a closed pipe), which would take down whichever task logged.
        .log_internal_errors(false);
    match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    }
    .map_err(|error| anyhow::anyhow!("cannot install the log subscriber: {error}"))
}

/// Colour codes only for a person at a terminal, and not even then when
/// `NO_COLOR` is set to anything (https://no-color.org).
fn colour_wanted() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}
