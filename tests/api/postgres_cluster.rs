//! A real PostgreSQL server for the tests: `LOGWELL_TEST_DATABASE_URL` if it
//! is set, otherwise a throwaway cluster that this test process starts once
//! and that stops and deletes itself when the process ends. Tests that stop
//! and restart their server get a private cluster of their own.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;

/// Runs as the cluster's owner. It starts the server, says "ready", then
/// obeys "stop" and "start" lines on its standard input until it closes,
/// which happens when the test process exits however it exits; then it stops
/// the server and deletes the cluster.
const CLUSTER_SCRIPT: &str = r#"
set -eu
dir=$(mktemp -d /tmp/logwell-test-pg.XXXXXX)
cleanup() { "$PGBIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
"$PGBIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 \
  || { cat "$dir/initdb.log" >&2; exit 1; }
start() {
  "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o "-p $PORT -k $dir -c listen_addresses=127.0.0.1 \
    -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" start >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }
}
start
echo ready
while read -r command; do
  case "$command" in
    stop) "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null; echo stopped ;;
    start) start; echo started ;;
  esac
done
"#;

struct Cluster {
    admin_url: String,
    // Held open for the life of the process; its closing stops the cluster.
    stdin: Option<ChildStdin>,
    stdout: Option<BufReader<ChildStdout>>,
    _child: Option<Child>,
}

/// A cluster of one test's own, which it may stop and start.
pub struct PrivateCluster(Cluster);

impl PrivateCluster {
    pub fn start() -> PrivateCluster {
        PrivateCluster(start_throwaway_cluster().unwrap_or_else(|error| panic!("no private cluster: {error}")))
    }

    pub fn admin_url(&self) -> &str {
        &self.0.admin_url
    }

    /// Stops the server (fast shutdown: connections are cut).
    pub async fn stop_server(&mut self) {
        self.command("stop", "stopped").await;
    }

    /// Starts the server again, on the same port and data.
    pub async fn start_server(&mut self) {
        self.command("start", "started").await;
    }

    async fn command(&mut self, command: &str, answer: &str) {
        let (Some(mut stdin), Some(mut stdout)) = (self.0.stdin.take(), self.0.stdout.take()) else {
            panic!("the cluster script is gone")
        };
        let (command, answer) = (command.to_string(), answer.to_string());
        let (stdin, stdout) = tokio::task::spawn_blocking(move || {
            writeln!(stdin, "{command}").expect("send to the cluster script");
            let mut line = String::new();
            stdout.read_line(&mut line).expect("read the cluster script");
            assert_eq!(line.trim(), answer, "the cluster script did not {command}");
            (stdin, stdout)
        })
        .await
        .expect("cluster command");
        (self.0.stdin, self.0.stdout) = (Some(stdin), Some(stdout));
    }
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

/// A URL of a role that may create databases, on the test server.
pub fn admin_url() -> String {
    let cluster = CLUSTER.get_or_init(|| match std::env::var("LOGWELL_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Ok(Cluster { admin_url: url, stdin: None, stdout: None, _child: None }),
        _ => start_throwaway_cluster(),
    });
    match cluster {
        Ok(cluster) => cluster.admin_url.clone(),
        Err(error) => panic!("no PostgreSQL server for the tests: {error}"),
    }
}

/// `url` with its database replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(base, query)| (base, Some(query)));
    let authority_start = base.find("://").map_or(0, |index| index + 3);
    let path_start = base[authority_start..].find('/').map_or(base.len(), |index| authority_start + index);
    let mut result = format!("{}/{database}", &base[..path_start]);
    if let Some(query) = query {
        result.push('?');
        result.push_str(query);
    }
    result
}

/// A port found free may be taken by another test's server before
/// PostgreSQL binds it ("Address already in use"): each attempt takes
/// another.
const CLUSTER_ATTEMPTS: usize = 3;

fn start_throwaway_cluster() -> Result<Cluster, String> {
    let mut failure = String::new();
    for _ in 0..CLUSTER_ATTEMPTS {
        match start_cluster_on(free_port()?) {
            Ok(cluster) => return Ok(cluster),
            Err(error) => failure = error,
        }
    }
    Err(failure)
}

fn start_cluster_on(port: u16) -> Result<Cluster, String> {
    let bin = postgres_bin_dir()?;
    let mut command = if running_as_root() {
        // PostgreSQL refuses to run as root.
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--", "sh", "-c", CLUSTER_SCRIPT]);
        command
    } else {
        let mut command = Command::new("sh");
        command.args(["-c", CLUSTER_SCRIPT]);
        command
    };
    let mut child = command
        .env("PGBIN", &bin)
        .env("PORT", port.to_string())
        .current_dir("/tmp")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|error| format!("cannot start the cluster script: {error}"))?;
    let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let mut line = String::new();
    stdout.read_line(&mut line).map_err(|error| error.to_string())?;
    if line.trim() != "ready" {
        let status = child.wait().map_err(|error| error.to_string())?;
        return Err(format!("the throwaway cluster did not start ({status}); see stderr above"));
    }
    Ok(Cluster {
        admin_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        stdin: child.stdin.take(),
        stdout: Some(stdout),
        _child: Some(child),
    })
}

fn postgres_bin_dir() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var("LOGWELL_TEST_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|error| format!("PostgreSQL is not installed in /usr/lib/postgresql ({error}); set LOGWELL_TEST_DATABASE_URL or LOGWELL_TEST_PG_BIN"))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    candidates.sort_by_key(|bin| {
        bin.parent().and_then(|version| version.file_name()?.to_str()?.parse::<u32>().ok()).unwrap_or(0)
    });
    candidates.pop().ok_or_else(|| "no initdb under /usr/lib/postgresql/*/bin".to_string())
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|error| error.to_string())?;
    Ok(listener.local_addr().map_err(|error| error.to_string())?.port())
}

fn running_as_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

#[test]
fn database_names_replace_the_path_only() {
    assert_eq!(with_database("postgres://u:p@h:5/postgres", "t1"), "postgres://u:p@h:5/t1");
    assert_eq!(with_database("postgres://h/db?sslmode=disable", "t2"), "postgres://h/t2?sslmode=disable");
    assert_eq!(with_database("postgres://h:5", "t3"), "postgres://h:5/t3");
}
