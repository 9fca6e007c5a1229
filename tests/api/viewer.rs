//! The viewer in a real browser (headless Chromium over WebDriver): a run
//! followed live and in order, filtered, followed through a server restart
//! with every line once, searched, paused and resumed, completed,
//! downloaded as what ListLogs returns, a line's details opened from the
//! keyboard; messages of HTML and script shown as text, never run; a token
//! asked for and used; a job-run token kept to its run; a run id that is no
//! UUID refused in the page; auto-scroll that the reader's scrolling up
//! stops; stream and task filters; the system logs; a page of another
//! origin refused.

use std::sync::Arc;

use fantoccini::Locator;
use fantoccini::key::Key;
use logwell::api::AccessPolicy;
use logwell::auth::{Authentication, JobRunTokens, TokenSet, token_hash};
use logwell::proto::v1 as pb;
use logwell::proto::v1::job_log_service_client::JobLogServiceClient;
use logwell::proto::v1::job_run_service_client::JobRunServiceClient;
use logwell::proto::v1::log_query_service_client::LogQueryServiceClient;
use logwell::server::ServerSettings;
use serde_json::Value;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::browser::Browser;
use crate::helpers::{
    Backend, TestDatabase, TestServer, free_port, send_signal, serve_on, test_settings, with_authorization,
};

/// The messages of the rows drawn, top to bottom.
const ROWS: &str = "return [...document.querySelectorAll('.viewport .row')]
    .sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top))
    .map((row) => row.querySelector('.message')?.textContent ?? '');";
const NOTICE: &str = "const n = document.getElementById('notice'); return n.hidden ? '' : n.textContent;";
const STATUS: &str = "return document.querySelector('.status')?.textContent ?? '';";
const LEVEL: &str = ".controls label:nth-child(1) select";
const AUTO_SCROLL: &str = "return document.querySelector('.controls input[type=checkbox]')?.checked ?? null;";
const DETAILS: &str = "const d = document.querySelector('.details'); return d && !d.hidden ? d.textContent : '';";
const SHOWN: &str = "return document.querySelector('.shown')?.textContent ?? '';";
const SEARCH: &str = ".controls input[type=search]";
const PAUSE: &str = ".controls > button";
const SCRIPT_MESSAGE: &str = "<script>window.__ran = 'script'</script>";
const IMAGE_MESSAGE: &str = "<img src=x onerror=\"window.__ran = 'img'\">";

fn texts(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|rows| rows.iter().filter_map(|row| row.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

async fn write(channel: &Channel, run: Uuid, level: pb::LogLevel, message: &str) {
    let log = pb::LogEntry {
        job_run_id: run.to_string(),
        level: level.into(),
        message: message.into(),
        ..Default::default()
    };
    JobLogServiceClient::new(channel.clone())
        .write_job_log(pb::WriteJobLogRequest { log: Some(log) })
        .await
        .expect("write");
}

#[tokio::test]
async fn a_run_is_followed_live_exactly_through_a_restart_and_downloaded_as_stored() {
    let folder = tempfile::tempdir().expect("folder");
    let url = format!("sqlite:{}", folder.path().join("logwell.db").display());
    let port = free_port();
    let mut server = serve_on(&url, port).await;
    let address = format!("http://127.0.0.1:{port}");
    let channel = Channel::from_shared(address.clone()).expect("uri").connect_lazy();
    let run = Uuid::now_v7();
    let browser = Browser::start().await;
    browser.goto(&format!("{address}/ui/#/runs/{run}")).await;
    browser.until("the follow to start", STATUS, |status| status == "live").await;

    // Live and in order; colour codes rendered, markup shown as text.
    let first = [
        (pb::LogLevel::Info, "build started".to_string()),
        (pb::LogLevel::Warn, "\u{1b}[31mred\u{1b}[0m and plain".to_string()),
        (pb::LogLevel::Error, SCRIPT_MESSAGE.to_string()),
        (pb::LogLevel::Error, IMAGE_MESSAGE.to_string()),
        (pb::LogLevel::Fatal, "out of disk".to_string()),
    ];
    for (level, message) in &first {
        write(&channel, run, *level, message).await;
    }
    let expected = ["build started", "red and plain", SCRIPT_MESSAGE, IMAGE_MESSAGE, "out of disk"];
    browser.until("the five lines, in order", ROWS, |rows| texts(rows) == expected).await;
    assert_eq!(browser.run("return window.__ran ?? null;").await, Value::Null, "no message's markup ran");
    let red =
        browser.run("return getComputedStyle(document.querySelector('.viewport .row .message span')).color;").await;
    assert_eq!(red, "rgb(255, 123, 114)", "ANSI red drawn red");

    // Filtered by level, then not.
    browser.choose(LEVEL, &(pb::LogLevel::Error as i32).to_string()).await;
    browser.until("errors and worse only", ROWS, |rows| texts(rows) == expected[2..]).await;
    browser.choose(LEVEL, "0").await;
    browser.until("every line again", ROWS, |rows| texts(rows) == expected).await;

    // The server restarts mid-follow: the page says so, and then shows every
    // line once, in order.
    send_signal(&server, "TERM").await;
    server.wait().await.expect("the server stops");
    browser
        .until("the page to say it is reconnecting", STATUS, |status| {
            status.as_str().is_some_and(|text| text.starts_with("reconnecting"))
        })
        .await;
    server = serve_on(&url, port).await;
    let later: Vec<String> = (1..=25).map(|line| format!("after the restart {line}")).collect();
    for message in &later {
        write(&channel, run, pb::LogLevel::Info, message).await;
    }
    let all: Vec<String> = expected.iter().map(|message| message.to_string()).chain(later.iter().cloned()).collect();
    browser.until("every line once, in order, after the restart", ROWS, |rows| texts(rows) == all).await;
    let shown = browser.run(SHOWN).await;
    assert_eq!(shown, "30 of 30 lines shown");

    // Search (ASCII case folded, as the server's), then pause and resume.
    browser.type_into(SEARCH, "RESTART 2").await;
    let matching: Vec<String> = later.iter().filter(|message| message.contains("restart 2")).cloned().collect();
    browser.until("the lines that match", ROWS, |rows| texts(rows) == matching).await;
    browser.type_into(SEARCH, "").await;
    browser.run("const s = document.querySelector('.controls input[type=search]'); s.dispatchEvent(new Event('input')); return true;").await;
    browser.until("every line again", ROWS, |rows| texts(rows) == all).await;
    browser.click(PAUSE).await;
    write(&channel, run, pb::LogLevel::Info, "while paused").await;
    browser.until("the pause counting it", SHOWN, |shown| shown == "30 of 31 lines shown · paused, 1 new").await;
    assert_eq!(texts(&browser.run(ROWS).await), all, "nothing drawn while paused");
    browser.click(PAUSE).await;
    let all: Vec<String> = all.into_iter().chain(["while paused".to_string()]).collect();
    browser.until("the line, once resumed", ROWS, |rows| texts(rows) == all).await;

    // Completed: the outcome shows.
    let completion = pb::CompleteJobRunRequest {
        job_run_id: run.to_string(),
        outcome: pb::JobRunOutcome::Failed.into(),
        summary: "2 tests failed".into(),
    };
    JobRunServiceClient::new(channel.clone()).complete_job_run(completion).await.expect("complete");
    browser.until("the outcome", STATUS, |status| status == "completed: failed (2 tests failed)").await;
    browser.screenshot("viewer-run").await;

    // Downloads of the view are what ListLogs returns.
    let listing = pb::ListLogsRequest { job_run_id: run.to_string(), page_size: 100, ..Default::default() };
    let stored = LogQueryServiceClient::new(channel.clone()).list_logs(listing).await.expect("list").into_inner().logs;
    browser.click(".downloads button:nth-of-type(2)").await;
    let ndjson = browser.downloaded(&format!("run-{run}.ndjson")).await;
    let downloaded: Vec<Value> = ndjson.lines().map(|line| serde_json::from_str(line).expect("a JSON line")).collect();
    assert_eq!(downloaded.len(), stored.len());
    for (line, log) in downloaded.iter().zip(&stored) {
        assert_eq!(
            (line["id"].as_str(), line["seq"].as_i64(), line["message"].as_str()),
            (Some(log.id.as_str()), Some(log.seq), Some(log.message.as_str()))
        );
        assert_eq!(line["level"], ["trace", "debug", "info", "warn", "error", "fatal"][(log.level - 1) as usize]);
    }
    browser.click(".downloads button:nth-of-type(3)").await;
    let csv = browser.downloaded(&format!("run-{run}.csv")).await;
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let messages: Vec<String> = reader.records().map(|record| record.expect("a CSV record")[10].to_string()).collect();
    assert_eq!(messages, stored.iter().map(|log| log.message.clone()).collect::<Vec<_>>(), "CSV, quoted where needed");
    browser.click(".downloads button:nth-of-type(1)").await;
    let text = browser.downloaded(&format!("run-{run}.txt")).await;
    assert_eq!(text.lines().count(), stored.len());
    assert!(text.lines().nth(4).expect("the fifth line").contains("FATAL"), "{text}");

    // The keyboard picks a line and opens its details.
    let keys: String = [Key::Up, Key::Down, Key::Down, Key::Enter].into_iter().map(char::from).collect();
    browser.client.find(Locator::Css(".viewport")).await.expect("the lines").send_keys(&keys).await.expect("keys");
    let details = browser
        .until("the third line's details", DETAILS, |text| text.as_str().is_some_and(|text| !text.is_empty()))
        .await;
    let details: Value = serde_json::from_str(details.as_str().unwrap_or_default()).expect("the details, as JSON");
    assert_eq!((details["message"].as_str(), details["seq"].as_i64()), (Some(SCRIPT_MESSAGE), Some(3)));
    let escape: String = [Key::Escape].into_iter().map(char::from).collect();
    browser.client.find(Locator::Css(".viewport")).await.expect("the lines").send_keys(&escape).await.expect("keys");
    browser.until("the details hidden", DETAILS, |text| text == "").await;

    // The run list shows it, failed, with its counts.
    browser.goto(&format!("{address}/ui/")).await;
    let row = browser
        .until(
            "the run in the list",
            "return document.querySelector('table.runs tbody tr')?.textContent ?? '';",
            |row| row.as_str().is_some_and(|text| text.contains("failed")),
        )
        .await;
    assert!(row.as_str().unwrap_or_default().contains("fatal 1"), "{row}");
    browser.screenshot("viewer-runs").await;
    browser.close().await;
    drop(server);
}

#[tokio::test]
async fn the_page_asks_for_a_token_keeps_a_job_run_token_to_its_run_and_refuses_a_bad_run_id() {
    let mut tokens = TokenSet::default();
    tokens
        .add(
            "test",
            &format!(
                "reader read {}\nadmin admin {}\nwriter write {}",
                token_hash("lw_reader"),
                token_hash("lw_admin"),
                token_hash("lw_writer")
            ),
        )
        .expect("tokens");
    let access = AccessPolicy {
        authentication: Authentication::Tokens(tokens),
        job_run_tokens: Some(Arc::new(JobRunTokens::new(b"a test key of at least 32 bytes!").expect("key"))),
        ..AccessPolicy::open()
    };
    let server = TestServer::start_with(
        TestDatabase::create(Backend::Sqlite).await,
        ServerSettings { access, ..test_settings() },
    )
    .await;
    let (mine, other) = (Uuid::now_v7(), Uuid::now_v7());
    for (run, message) in [(mine, "my line"), (other, "another run's line")] {
        let log = pb::LogEntry { job_run_id: run.to_string(), message: message.into(), ..Default::default() };
        server
            .job()
            .write_job_log(with_authorization(pb::WriteJobLogRequest { log: Some(log) }, "Bearer lw_writer"))
            .await
            .expect("write");
    }
    let address = format!("http://{}", server.address);
    let browser = Browser::start().await;

    // No token: the page says what is missing, it is not blank.
    browser.goto(&format!("{address}/ui/")).await;
    let notice =
        browser.until("the refusal shown", NOTICE, |text| text.as_str().is_some_and(|text| !text.is_empty())).await;
    assert!(notice.as_str().unwrap_or_default().starts_with("Unauthenticated"), "{notice}");
    assert_eq!(browser.run("return document.querySelector('h1').textContent;").await, "Job runs");

    // A token entered in the page: kept in the tab, never in the URL.
    browser.click("#token-button").await;
    browser.type_into("form.token input", "lw_reader").await;
    browser.click("form.token button").await;
    browser
        .until("both runs listed", "return document.querySelectorAll('table.runs tbody tr').length;", |rows| rows == 2)
        .await;
    assert_eq!(browser.run("return sessionStorage.getItem('logwell.token');").await, "lw_reader");
    assert!(!browser.client.current_url().await.expect("url").as_str().contains("lw_reader"));

    // A job-run token sees its run, and only it.
    let mint = pb::MintJobRunTokenRequest { job_run_id: mine.to_string(), ..Default::default() };
    let minted = server
        .tokens()
        .mint_job_run_token(with_authorization(mint, "Bearer lw_admin"))
        .await
        .expect("mint")
        .into_inner()
        .token;
    browser.click("#token-button").await;
    browser.type_into("form.token input", &minted).await;
    browser.click("form.token button").await;
    browser.goto(&format!("{address}/ui/#/runs/{mine}")).await;
    browser.until("its run's line", ROWS, |rows| texts(rows) == ["my line"]).await;
    browser.goto(&format!("{address}/ui/#/runs/{other}")).await;
    let refused =
        browser.until("the other run refused", NOTICE, |text| text.as_str().is_some_and(|text| !text.is_empty())).await;
    assert!(refused.as_str().unwrap_or_default().starts_with("PermissionDenied"), "{refused}");
    assert_eq!(texts(&browser.run(ROWS).await), Vec::<String>::new(), "nothing of the other run");

    // A run id that is no UUID, typed into the page or in its address.
    browser.goto(&format!("{address}/ui/#/")).await;
    browser.type_into("form.open-run input", "build-1234").await;
    browser.click("form.open-run button").await;
    let notice = browser
        .until("the bad id refused", NOTICE, |text| text.as_str().is_some_and(|text| text.contains("is not a run id")))
        .await;
    assert!(notice.as_str().unwrap_or_default().starts_with("\"build-1234\" is not a run id"), "{notice}");
    browser.goto(&format!("{address}/ui/#/runs/build-1234")).await;
    let said = browser
        .until(
            "the page refusing the id",
            "return document.querySelector('main p.error')?.textContent ?? '';",
            |text| text.as_str().is_some_and(|text| !text.is_empty()),
        )
        .await;
    assert!(said.as_str().unwrap_or_default().contains("is not a run id"), "{said}");
    browser.close().await;
}

#[tokio::test]
async fn auto_scroll_stops_when_the_reader_scrolls_up_and_stream_and_task_filters_narrow_the_lines() {
    let server = TestServer::start(Backend::Sqlite).await;
    let (run, build, test) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let line = |task: Uuid, stream: pb::LogStream, message: String| pb::LogEntry {
        job_run_id: run.to_string(),
        task_run_id: task.to_string(),
        stream: stream.into(),
        message,
        ..Default::default()
    };
    let logs: Vec<pb::LogEntry> = (0..200)
        .map(|index| match index % 2 {
            0 => line(build, pb::LogStream::Stdout, format!("build {index}")),
            _ => line(test, pb::LogStream::Stderr, format!("test {index}")),
        })
        .collect();
    server.task().write_task_logs(pb::WriteTaskLogsRequest { logs }).await.expect("write");
    let browser = Browser::start().await;
    browser.goto(&format!("http://{}/ui/#/runs/{run}", server.address)).await;
    browser.until("the lines loaded", SHOWN, |shown| shown == "200 of 200 lines shown").await;
    const AT_BOTTOM: &str = "const v = document.querySelector('.viewport'); return v !== null && v.scrollHeight - v.scrollTop - v.clientHeight < 40;";
    browser.until("the view at the bottom", AT_BOTTOM, |bottom| bottom == true).await;

    // The reader scrolls up: new lines no longer pull the view down.
    browser.run("document.querySelector('.viewport').scrollTop = 0; return true;").await;
    browser.until("auto-scroll off", AUTO_SCROLL, |on| on == false).await;
    let more: Vec<pb::LogEntry> =
        (200..210).map(|index| line(build, pb::LogStream::Stdout, format!("build {index}"))).collect();
    server.task().write_task_logs(pb::WriteTaskLogsRequest { logs: more }).await.expect("write");
    browser.until("the new lines counted", SHOWN, |shown| shown == "210 of 210 lines shown").await;
    assert_eq!(
        browser.run("return document.querySelector('.viewport').scrollTop;").await,
        0,
        "the view stayed where the reader put it"
    );
    browser.click(".controls input[type=checkbox]").await;
    browser.until("back at the bottom", AT_BOTTOM, |bottom| bottom == true).await;

    // Stream and task filters.
    browser.choose(".controls label:nth-child(2) select", &(pb::LogStream::Stderr as i32).to_string()).await;
    browser.until("stderr only", SHOWN, |shown| shown == "100 of 210 lines shown").await;
    const STREAMS: &str =
        "return [...document.querySelectorAll('.viewport .row .stream')].map((cell) => cell.textContent);";
    browser
        .until("stderr rows drawn", STREAMS, |streams| {
            let streams = texts(streams);
            !streams.is_empty() && streams.iter().all(|stream| stream == "stderr")
        })
        .await;
    browser.choose(".controls label:nth-child(2) select", "0").await;
    browser.choose(".controls label:nth-child(3) select", &build.to_string()).await;
    browser.until("the build task's lines only", SHOWN, |shown| shown == "110 of 210 lines shown").await;
    browser
        .until("the build task's rows drawn", ROWS, |rows| {
            let rows = texts(rows);
            !rows.is_empty() && rows.iter().all(|message| message.starts_with("build "))
        })
        .await;

    // The system logs follow as a run's do.
    let system = pb::LogEntry { message: "service started".into(), source: "api".into(), ..Default::default() };
    server.system().write_system_log(pb::WriteSystemLogRequest { log: Some(system) }).await.expect("write");
    browser.goto(&format!("http://{}/ui/#/system", server.address)).await;
    browser.until("the system log", ROWS, |rows| texts(rows) == ["service started"]).await;

    // A page of another origin cannot call logwell: the browser's preflight
    // is refused, and the write never happens.
    browser.goto("data:text/html,<p>a stranger's page</p>").await;
    let attempt = format!(
        "const done = arguments[arguments.length - 1];
        fetch('http://{}/logwell.v1.SystemLogService/WriteSystemLog', {{
          method: 'POST',
          headers: {{ 'content-type': 'application/grpc-web+proto', 'x-grpc-web': '1' }},
          body: new Uint8Array([0, 0, 0, 0, 0]),
        }}).then((response) => done('answered ' + response.status), (error) => done('refused: ' + error.name));",
        server.address
    );
    let outcome = browser.client.execute_async(&attempt, Vec::new()).await.expect("the attempt");
    assert_eq!(outcome, "refused: TypeError", "the browser got nothing to read");
    let system = pb::ListLogsRequest {
        filter: Some(pb::LogFilter { types: vec![pb::LogType::System.into()], ..Default::default() }),
        ..Default::default()
    };
    let stored = server.query().list_logs(system).await.expect("list").into_inner().logs;
    assert_eq!(stored.len(), 1, "nothing written but the service's log");
    browser.close().await;
}
