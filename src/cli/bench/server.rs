//! The throwaway server `logwell bench` measures when it is not given one:
//! this same binary serving on a free loopback port, over a temporary
//! SQLite file (or the database named), stopped at the end.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::cli::CliError;

pub struct LocalServer {
    child: Child,
    /// Where it serves, `127.0.0.1:PORT`.
    pub address: String,
    database: String,
    /// Holds the temporary SQLite file until the end.
    _folder: Option<tempfile::TempDir>,
}

impl LocalServer {
    pub async fn start(database_url: Option<&str>) -> Result<LocalServer, CliError> {
        let folder = match database_url {
            Some(_) => None,
            None => Some(tempfile::tempdir()?),
        };
        let database = match (&folder, database_url) {
            (_, Some(url)) => url.to_string(),
            (Some(folder), None) => format!("sqlite:{}", folder.path().join("bench.db").display()),
            (None, None) => unreachable!("a folder without a URL"),
        };
        let mut child = Command::new(std::env::current_exe()?)
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json", "--log-filter", "warn,logwell=info"])
            .args(["--database-url", &database])
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stderr = child.stderr.take().ok_or_else(|| std::io::Error::other("no stderr"))?;
        let mut lines = BufReader::new(stderr).lines();
        let address = loop {
            let Some(line) = lines.next_line().await? else {
                return Err(CliError::Usage(format!("the throwaway server on {database} did not start")));
            };
            let record: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if record["fields"]["message"] == "logwell serving" {
                break record["fields"]["address"].as_str().unwrap_or_default().to_string();
            }
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(LocalServer { child, address, database: crate::store::redacted(&database), _folder: folder })
    }

    pub fn describe(&self) -> String {
        format!("a throwaway server at {} on {}", self.address, self.database)
    }

    /// CPU seconds (user and system) it has used.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = self.proc_file("stat");
        let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
        let ticks = |index: usize| fields.get(index).and_then(|field| field.parse::<f64>().ok()).unwrap_or(0.0);
        (ticks(11) + ticks(12)) / 100.0
    }

    /// Its resident memory at its peak, in bytes.
    pub fn peak_memory(&self) -> u64 {
        let status = self.proc_file("status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    }

    fn proc_file(&self, name: &str) -> String {
        let pid = self.child.id().unwrap_or_default();
        std::fs::read_to_string(format!("/proc/{pid}/{name}")).unwrap_or_default()
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
