//! A real browser for the viewer's tests: headless Chromium driven over
//! WebDriver (chromedriver, through fantoccini). Debian's `chromium` and
//! `chromium-driver` are installed with apt-get when missing and the tests
//! run as root, as on a fresh machine; otherwise the test says what to
//! install. Shared by the tests and the viewer's benchmark.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tokio::sync::OnceCell;

/// How long the page may take to show what a test waits for.
const PATIENCE: Duration = Duration::from_secs(20);

/// A headless Chromium, its driver, and the folder its downloads land in.
pub struct Browser {
    pub client: Client,
    _driver: Child,
    pub downloads: tempfile::TempDir,
}

/// The browser and its driver, found (or installed) once per test binary.
async fn installed() -> &'static (PathBuf, PathBuf) {
    static FOUND: OnceCell<(PathBuf, PathBuf)> = OnceCell::const_new();
    FOUND
        .get_or_init(|| async {
            if let Some(found) = find() {
                return found;
            }
            let root = Command::new("id").arg("-u").output().await.is_ok_and(|id| id.stdout.starts_with(b"0\n"));
            assert!(
                root,
                "the viewer's tests need Chromium and its WebDriver: apt-get install chromium chromium-driver"
            );
            let installed = Command::new("apt-get")
                .args(["install", "-y", "-q", "chromium", "chromium-driver"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .output()
                .await
                .expect("run apt-get");
            assert!(
                installed.status.success(),
                "apt-get install chromium chromium-driver failed: {}",
                String::from_utf8_lossy(&installed.stderr)
            );
            find().expect("chromium and chromedriver after installing them")
        })
        .await
}

fn find() -> Option<(PathBuf, PathBuf)> {
    let on_path = |name: &str| {
        std::env::split_paths(&std::env::var_os("PATH")?).map(|folder| folder.join(name)).find(|path| path.is_file())
    };
    Some((on_path("chromium")?, on_path("chromedriver")?))
}

impl Browser {
    pub async fn start() -> Browser {
        Browser::start_with(&[]).await
    }

    /// A browser started with more command-line switches.
    pub async fn start_with(switches: &[&str]) -> Browser {
        let (chromium, chromedriver) = installed().await;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|free| free.local_addr())
            .expect("a free port for chromedriver")
            .port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let downloads = tempfile::tempdir().expect("a downloads folder");
        // No sandbox: tests may run as root, where Chromium's needs one of its own.
        let mut arguments = vec!["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"];
        arguments.push("--window-size=1280,1400");
        arguments.extend_from_slice(switches);
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": arguments,
                "prefs": {"download.default_directory": downloads.path(), "download.prompt_for_download": false},
            }
        });
        let Value::Object(capabilities) = capabilities else { unreachable!("an object") };
        let url = format!("http://127.0.0.1:{port}");
        let mut last = None;
        for _ in 0..100 {
            match ClientBuilder::new(HttpConnector::new()).capabilities(capabilities.clone()).connect(&url).await {
                Ok(client) => return Browser { client, _driver: driver, downloads },
                Err(error) => last = Some(error),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start a session: {last:?}");
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("open the page");
    }

    /// The value of `script` (a function body) in the page.
    pub async fn run(&self, script: &str) -> Value {
        self.client.execute(script, Vec::new()).await.expect("run a script in the page")
    }

    /// Waits until `script` returns a value `accept` takes; answers it.
    pub async fn until(&self, what: &str, script: &str, accept: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let value = self.run(script).await;
            if accept(&value) {
                return value;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("waited {PATIENCE:?} for {what}; the page last said {value}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn click(&self, css: &str) {
        self.client.find(Locator::Css(css)).await.unwrap_or_else(|_| panic!("no {css}")).click().await.expect("click");
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap_or_else(|_| panic!("no {css}"));
        field.clear().await.expect("clear");
        field.send_keys(text).await.expect("type");
    }

    pub async fn choose(&self, css: &str, value: &str) {
        let choice = self.client.find(Locator::Css(css)).await.unwrap_or_else(|_| panic!("no {css}"));
        choice.select_by_value(value).await.expect("choose");
    }

    /// Saves a screenshot of the page as `target/screenshots/NAME.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("screenshots");
        std::fs::create_dir_all(&folder).expect("screenshots folder");
        let path = folder.join(format!("{name}.png"));
        std::fs::write(&path, self.client.screenshot().await.expect("screenshot")).expect("save screenshot");
        path
    }

    /// Waits for a download named `name` to finish; answers its text.
    pub async fn downloaded(&self, name: &str) -> String {
        let path = self.downloads.path().join(name);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !path.is_file() {
            if tokio::time::Instant::now() > deadline {
                let found: Vec<_> = std::fs::read_dir(self.downloads.path())
                    .map(|entries| entries.flatten().map(|entry| entry.file_name()).collect())
                    .unwrap_or_default();
                panic!("no download {name} within {PATIENCE:?}; the folder holds {found:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        std::fs::read_to_string(&path).expect("read the download")
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}
