//! Files reloaded while the server runs (certificates, tokens): on SIGHUP,
//! and when they change on disk, checked every interval (a Kubernetes Secret
//! volume swaps its files in place). A reload that fails keeps what was
//! loaded before: a broken file never locks everyone out.

use std::sync::Arc;
use std::time::Duration;

/// Something loaded from files that can be loaded again.
pub trait Reloadable: Send + Sync + 'static {
    /// What it is, for logs: "TLS certificates".
    fn what(&self) -> &'static str;
    /// Whether its files differ from what was loaded.
    fn changed_on_disk(&self) -> bool;
    /// Loads the files again; on error what was loaded stays.
    fn reload(&self) -> Result<(), String>;
}

/// Reloads `reloadable` on SIGHUP and when its files change, until
/// `stopped` resolves.
pub async fn reload_when_asked(reloadable: Arc<dyn Reloadable>, interval: Duration, stopped: impl Future<Output = ()>) {
    let what = reloadable.what();
    let reloading = async {
        let mut hangups = hangups(what);
        let mut ticks = tokio::time::interval(interval);
        loop {
            let reason = tokio::select! {
                _ = ticks.tick() => {
                    if !reloadable.changed_on_disk() {
                        continue;
                    }
                    "the files changed"
                }
                () = next_hangup(&mut hangups) => "SIGHUP",
            };
            match reloadable.reload() {
                Ok(()) => tracing::info!(reason, what, "reloaded"),
                Err(error) => tracing::error!(reason, what, %error, "not reloaded; what was loaded before stays"),
            }
        }
    };
    tokio::select! {
        () = reloading => {}
        () = stopped => {}
    }
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = Option<()>;

fn hangups(what: &'static str) -> Hangups {
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(signal) => Some(signal),
            Err(error) => {
                tracing::warn!(%error, what, "cannot watch SIGHUP; reloads only when the files change");
                None
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = what;
        None
    }
}

async fn next_hangup(hangups: &mut Hangups) {
    #[cfg(unix)]
    if let Some(signal) = hangups
        && signal.recv().await.is_some()
    {
        return;
    }
    let _ = hangups;
    std::future::pending().await
}
