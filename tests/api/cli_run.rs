//! `logwell run` and `logwell push`, run as a user runs them: the real
//! binary with real commands against a real server, across its restart.

use std::process::{Output, Stdio};
use std::time::Duration;

use logwell::api::AccessPolicy;
use logwell::auth::{Authentication, TokenSet, token_hash};
use logwell::proto::v1::job_run_service_client::JobRunServiceClient;
use logwell::proto::v1::{self as pb};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use uuid::Uuid;

use crate::helpers::{Backend, TestServer, free_port, logwell, send_signal, serve_on, test_settings};

async fn logwell_run(server: &TestServer, args: &[&str]) -> Output {
    logwell().arg("run").args(["--server", &server.address.to_string()]).args(args).output().await.expect("run")
}

/// The job run `logwell run` made, from the line it printed on stderr.
fn made_run(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr.lines().find_map(|line| line.strip_prefix("logwell: job run ")).expect("the run is named");
    line.trim().to_string()
}

async fn logs_of(server: &TestServer, run: &str) -> Vec<pb::Log> {
    server.list_all(pb::ListLogsRequest { job_run_id: run.to_string(), ..Default::default() }).await
}

async fn job_run(channel: tonic::transport::Channel, run: &str) -> pb::JobRun {
    let request = pb::GetJobRunRequest { job_run_id: run.to_string() };
    let found = JobRunServiceClient::new(channel).get_job_run(request).await.expect("get the run");
    found.into_inner().job_run.expect("a run")
}

fn stream_and_message(log: &pb::Log) -> (pb::LogStream, String) {
    (log.stream(), log.message.clone())
}

#[tokio::test]
async fn output_is_stored_with_its_stream_and_the_exit_status_decides_the_outcome() {
    let server = TestServer::start(Backend::Sqlite).await;
    let output = logwell_run(
        &server,
        &["--name", "check", "--label", "branch=main", "--", "sh", "-c", "echo out; echo err >&2; exit 3"],
    )
    .await;
    assert_eq!(output.status.code(), Some(3), "the command's exit status");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "out\n", "output still reaches the terminal");
    assert!(String::from_utf8_lossy(&output.stderr).contains("err\n"));
    let id = made_run(&output);
    let logs = logs_of(&server, &id).await;
    let mut seen: Vec<(pb::LogStream, String)> = logs.iter().map(stream_and_message).collect();
    // Two pipes: between them, the order is the order read.
    seen[..2].sort();
    assert_eq!(
        seen,
        [
            (pb::LogStream::Stdout, "out".to_string()),
            (pb::LogStream::Stderr, "err".to_string()),
            (pb::LogStream::System, "sh exited with status 3".to_string()),
        ]
    );
    assert_eq!(logs[2].level(), pb::LogLevel::Error);
    assert!(logs.iter().all(|log| !log.id.is_empty() && log.r#type() == pb::LogType::Job));
    let ended = job_run(server.channel.clone(), &id).await;
    assert_eq!((ended.state(), ended.outcome()), (pb::JobRunState::Complete, pb::JobRunOutcome::Failed));
    assert_eq!((ended.name.as_str(), ended.labels.get("branch").map(String::as_str)), ("check", Some("main")));
    assert_eq!(ended.summary, "sh exited with status 3");

    let output = logwell_run(&server, &["--", "sh", "-c", "echo bye; kill -TERM $$"]).await;
    assert_eq!(output.status.code(), Some(128 + 15), "killed by SIGTERM, as a shell reports it");
    let ended = job_run(server.channel.clone(), &made_run(&output)).await;
    assert_eq!(ended.outcome(), pb::JobRunOutcome::Cancelled);
    assert_eq!(ended.summary, "sh was killed by SIGTERM");

    let output = logwell_run(&server, &["--", "true"]).await;
    assert_eq!(output.status.code(), Some(0));
    let ended = job_run(server.channel.clone(), &made_run(&output)).await;
    assert_eq!(ended.outcome(), pb::JobRunOutcome::Succeeded);

    let output = logwell_run(&server, &["--", "no-such-command-here"]).await;
    assert_eq!(output.status.code(), Some(127), "as a shell says it");
    let ended = job_run(server.channel.clone(), &made_run(&output)).await;
    assert_eq!(ended.outcome(), pb::JobRunOutcome::Failed);
}

#[tokio::test]
async fn a_task_run_or_no_complete_leaves_the_job_run_open() {
    let server = TestServer::start(Backend::Sqlite).await;
    let (id, task) = (Uuid::now_v7().to_string(), Uuid::now_v7().to_string());
    let output = logwell_run(&server, &["--run", &id, "--task-run", &task, "--", "sh", "-c", "echo step one"]).await;
    assert_eq!(output.status.code(), Some(0));
    let output = logwell_run(&server, &["--job-run", &id, "--no-complete", "--", "sh", "-c", "echo step two"]).await;
    assert_eq!(output.status.code(), Some(0));
    let logs = logs_of(&server, &id).await;
    let messages: Vec<&str> = logs.iter().map(|log| log.message.as_str()).collect();
    assert_eq!(messages, ["step one", "sh exited with status 0", "step two", "sh exited with status 0"]);
    assert_eq!((logs[0].r#type(), logs[0].task_run_id.as_str()), (pb::LogType::Task, task.as_str()));
    assert_eq!(logs[2].r#type(), pb::LogType::Job);
    assert_eq!(job_run(server.channel.clone(), &id).await.state(), pb::JobRunState::Open);

    let output = logwell_run(&server, &["--run", &id, "--", "true"]).await;
    assert_eq!(job_run(server.channel.clone(), &id).await.state(), pb::JobRunState::Complete);
    assert_eq!(output.status.code(), Some(0));
    let folder = tempfile::tempdir().expect("folder");
    let marker = folder.path().join("ran");
    let touch = format!("touch {}", marker.display());
    let output = logwell_run(&server, &["--run", &id, "--", "sh", "-c", &touch]).await;
    assert_eq!(output.status.code(), Some(2), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is complete and takes no more logs"));
    assert!(!marker.exists(), "a refused run does not run the command");
}

#[tokio::test]
async fn signals_reach_the_command() {
    let server = TestServer::start(Backend::Sqlite).await;
    for (signal, code) in [("TERM", 5), ("INT", 6), ("HUP", 7)] {
        let script =
            format!("trap 'echo got {signal}; exit {code}' {signal}; echo ready; while :; do sleep 0.05; done");
        let mut child = logwell()
            .args(["run", "--server", &server.address.to_string(), "--", "sh", "-c", &script])
            // No terminal: SIGINT reaches the command only through logwell.
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let within = Duration::from_secs(10);
        let first = tokio::time::timeout(within, stdout.next_line()).await.expect("in time").expect("read");
        assert_eq!(first.as_deref(), Some("ready"));
        send_signal(&child, signal).await;
        let status = tokio::time::timeout(within, child.wait()).await.expect("ends").expect("wait");
        assert_eq!(status.code(), Some(code), "SIG{signal} reached the command's trap");
        let mut stderr = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
            .await
            .expect("read");
        let id = stderr.lines().find_map(|line| line.strip_prefix("logwell: job run ")).expect("the run").to_string();
        let messages: Vec<String> = logs_of(&server, &id).await.into_iter().map(|log| log.message).collect();
        assert_eq!(messages, ["ready".to_string(), format!("got {signal}"), format!("sh exited with status {code}")]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_printed_while_the_server_restarts_are_stored_once_in_order() {
    let folder = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite:{}", folder.path().join("run.db").display());
    let port = free_port();
    let mut server = serve_on(&url, port).await;
    let script = "i=1; while [ $i -le 400 ]; do echo line $i; i=$((i+1)); sleep 0.005; done";
    let mut child = logwell()
        .args(["run", "--server", &format!("127.0.0.1:{port}"), "--", "sh", "-c", script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn logwell run");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let within = Duration::from_secs(30);
    let mut shown = Vec::new();
    while shown.len() < 50 {
        shown.push(
            tokio::time::timeout(within, stdout.next_line()).await.expect("in time").expect("read").expect("a line"),
        );
    }
    server.start_kill().expect("kill the server");
    server.wait().await.expect("wait");
    while shown.len() < 200 {
        shown.push(
            tokio::time::timeout(within, stdout.next_line()).await.expect("in time").expect("read").expect("a line"),
        );
    }
    let mut server = serve_on(&url, port).await;
    while let Some(line) = tokio::time::timeout(within, stdout.next_line()).await.expect("in time").expect("read") {
        shown.push(line);
    }
    let status = tokio::time::timeout(within, child.wait()).await.expect("ends").expect("wait");
    let mut notices = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().expect("stderr"), &mut notices)
        .await
        .expect("read");
    assert_eq!(status.code(), Some(0), "{notices}");
    assert!(notices.contains("cannot store logs"), "says the server is away: {notices}");
    let expected: Vec<String> = (1..=400).map(|line| format!("line {line}")).collect();
    assert_eq!(shown, expected, "the terminal saw every line while the server was away");

    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}")).expect("uri");
    let channel = channel.connect().await.expect("connect");
    let id = notices.lines().find_map(|line| line.strip_prefix("logwell: job run ")).expect("the run").to_string();
    let mut query = logwell::proto::v1::log_query_service_client::LogQueryServiceClient::new(channel.clone());
    let request = pb::ListLogsRequest { job_run_id: id.clone(), page_size: 1_000, ..Default::default() };
    let logs = query.list_logs(request).await.expect("list").into_inner().logs;
    let messages: Vec<&str> = logs.iter().map(|log| log.message.as_str()).collect();
    let seqs: Vec<i64> = logs.iter().map(|log| log.seq).collect();
    assert_eq!(&messages[..400], expected, "every line stored once, in order");
    assert_eq!(messages[400..], ["sh exited with status 0"]);
    assert_eq!(seqs, (1..=401).collect::<Vec<i64>>(), "no seq was spent on a duplicate");
    assert_eq!(job_run(channel, &id).await.outcome(), pb::JobRunOutcome::Succeeded);
    server.start_kill().expect("stop");
}

#[tokio::test]
async fn a_token_without_the_scope_stops_before_the_command_runs() {
    const READER: &str = "lw_reader_token_for_the_cli_test";
    const WRITER: &str = "lw_writer_token_for_the_cli_test";
    let mut tokens = TokenSet::default();
    let lines = format!("reader read {}\nwriter write,read {}", token_hash(READER), token_hash(WRITER));
    tokens.add("test", &lines).expect("tokens");
    let access = AccessPolicy { authentication: Authentication::Tokens(tokens), ..AccessPolicy::open() };
    let server = TestServer::start_with(
        crate::helpers::TestDatabase::create(Backend::Sqlite).await,
        logwell::server::ServerSettings { access, ..test_settings() },
    )
    .await;
    let folder = tempfile::tempdir().expect("folder");
    let marker = folder.path().join("ran");
    let touch = format!("touch {}", marker.display());
    let output = logwell()
        .args(["run", "--server", &server.address.to_string(), "--", "sh", "-c", &touch])
        .env("LOGWELL_TOKEN", READER)
        .output()
        .await
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("PermissionDenied") && stderr.contains("write"), "{stderr}");
    assert!(!marker.exists(), "the command did not run");

    let token_file = folder.path().join("token");
    std::fs::write(&token_file, format!("{WRITER}\n")).expect("token file");
    let output = logwell()
        .args(["run", "--server", &server.address.to_string(), "--no-complete", "--token-file"])
        .arg(&token_file)
        .args(["--", "echo", "written with a token from a file"])
        .output()
        .await
        .expect("run");
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
}

#[tokio::test]
async fn push_stores_each_line_of_standard_input() {
    let server = TestServer::start(Backend::Sqlite).await;
    let run = Uuid::now_v7().to_string();
    let mut child = logwell()
        .args(["push", "--server", &server.address.to_string(), "--run", &run, "--level", "warn"])
        .args(["--stream", "stderr", "--source", "builder", "-m", "attempt=2", "-m", "step=compile"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn logwell push");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"first\r\n\nsecond, with \"quotes\"\nno newline at the end").await.expect("write");
    drop(stdin);
    let output = child.wait_with_output().await.expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(stderr.trim(), "logwell: stored 3 logs");
    let logs = logs_of(&server, &run).await;
    let messages: Vec<&str> = logs.iter().map(|log| log.message.as_str()).collect();
    assert_eq!(messages, ["first", "second, with \"quotes\"", "no newline at the end"]);
    for log in &logs {
        assert_eq!(
            (log.level(), log.stream(), log.source.as_str()),
            (pb::LogLevel::Warn, pb::LogStream::Stderr, "builder")
        );
        let metadata = log.metadata.as_ref().expect("metadata");
        assert_eq!(metadata.fields["attempt"], prost_types::Value::from(2.0));
        assert_eq!(metadata.fields["step"], prost_types::Value::from("compile"));
    }

    let output = logwell()
        .args(["push", "--server", &server.address.to_string(), "--stream", "stdout"])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "system logs take only the system stream: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("system logs have the system stream only"), "{stderr}");
}
