//! The `waymark serve` harness: the real binary started on a temp dir (journeys, SQLite
//! database, optional `waymark.toml`), its API token and log, and the helpers the tests that
//! drive it share (polling, journey files, a closed port, a dashboard user).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const TOKEN: &str = "test-token-0123456789abcdef";

/// A running `waymark serve`, killed (SIGKILL) if the test ends without stopping it.
pub struct Serve {
    child: Option<Child>,
    pub base: String,
    log: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn db_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("w.db").display())
}

impl Serve {
    /// Starts the binary on `dir` (journeys in `dir/journeys`, database `dir/w.db`) and reads
    /// the address it printed.
    pub fn start(dir: &Path, run: u32) -> Serve {
        Serve::start_with(dir, run, &[])
    }

    /// Also with `dir/waymark.toml` as `--config` if it exists, and extra environment.
    pub fn start_with(dir: &Path, run: u32, env: &[(&str, &str)]) -> Serve {
        let log = dir.join(format!("serve-{run}.log"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_waymark"));
        command.arg("serve");
        let config = dir.join("waymark.toml");
        if config.exists() {
            command.arg("--config").arg(config);
        }
        // `env` last: it overrides these defaults.
        let mut child = command
            .env("WAYMARK_DATABASE_URL", db_url(dir))
            .env("WAYMARK_LISTEN", "127.0.0.1:0")
            .env("WAYMARK_JOURNEYS", dir.join("journeys"))
            .env("WAYMARK_API_TOKEN", TOKEN)
            .env("WAYMARK_LOG", "info")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let mut serve = Serve {
            child: Some(child),
            base: String::new(),
            log,
        };
        serve.base = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line `{first}`; log:\n{}", serve.log()))
            .to_string();
        serve
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Sends `signal` and waits for the exit code (None: killed by a signal).
    pub async fn stop(mut self, signal: i32) -> Option<i32> {
        let mut child = self.child.take().unwrap();
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("waymark did not exit; log:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let res = client()
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    pub async fn json(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// The runs the API reports, newest first (none for a journey it does not know yet).
    pub async fn run_ids(&self, journey: &str) -> Vec<String> {
        let path = format!("/api/v1/journeys/{journey}/runs?limit=500");
        let (status, body) = self.get(&path).await;
        if status == 404 {
            return Vec::new();
        }
        assert_eq!(status, 200, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        v["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["run_id"].as_str().unwrap().to_string())
            .collect()
    }

    pub async fn journeys(&self) -> Value {
        self.json("/api/v1/journeys").await
    }
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Polls `check` every 100 ms until it returns `Some`, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, serve: &Serve, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}; log:\n{}", serve.log());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn journey(name: &str, url: &str) -> String {
    format!(
        "name: {name}\nowner: team-test\ntags: [it]\nschedule: {{ every: 1s }}\nsteps:\n  - name: fetch\n    http: {{ url: \"{url}\" }}\n"
    )
}

/// A loopback port nothing listens on (it was free a moment ago): connections are refused.
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits for an active incident and returns its id.
pub async fn active_incident(serve: &Serve) -> i64 {
    eventually(
        "an open incident",
        serve,
        Duration::from_secs(30),
        || async {
            let v = serve.json("/api/v1/incidents?state=active").await;
            v["incidents"].get(0)?["id"].as_i64()
        },
    )
    .await
}

/// Writes `dir/waymark.toml` with one dashboard user, `name`, whose password is `password`.
pub fn dashboard_user(dir: &Path, name: &str, password: &str) {
    std::fs::write(
        dir.join("waymark.toml"),
        format!(
            "[dashboard]\n[[dashboard.users]]\nname = \"{name}\"\npassword_hash = \"{}\"\n",
            waymark::auth::PasswordHash::of(password)
        ),
    )
    .unwrap();
}

pub fn setup(files: &[(&str, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let journeys = dir.path().join("journeys");
    std::fs::create_dir(&journeys).unwrap();
    for (file, body) in files {
        std::fs::write(journeys.join(file), body).unwrap();
    }
    dir
}
