//! What the alerting tests talk to: a target whose health the test switches, a receiver that
//! stands in for PagerDuty, Slack and webhook endpoints (recording every request and answering
//! as scripted), and a real SMTP server (`tests/peers/smtp_sink.py`, aiosmtpd).

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(u8)]
pub enum Health {
    Healthy = 0,
    Failing = 1,
    Slow = 2,
}

/// `GET /pay`: 200 at once, 503, or 200 after 400 ms.
pub struct Target {
    pub url: String,
    mode: Arc<AtomicU8>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Target {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Target {
    pub async fn start() -> Target {
        let mode = Arc::new(AtomicU8::new(Health::Healthy as u8));
        let app = Router::new()
            .route(
                "/pay",
                axum::routing::get(|State(mode): State<Arc<AtomicU8>>| async move {
                    match mode.load(Ordering::SeqCst) {
                        1 => (StatusCode::SERVICE_UNAVAILABLE, "payments down"),
                        2 => {
                            tokio::time::sleep(Duration::from_millis(400)).await;
                            (StatusCode::OK, "paid, slowly")
                        }
                        _ => (StatusCode::OK, "paid"),
                    }
                }),
            )
            .with_state(mode.clone());
        let (url, task) = serve(app).await;
        Target {
            url: format!("{url}/pay"),
            mode,
            task,
        }
    }

    pub fn set(&self, health: Health) {
        self.mode.store(health as u8, Ordering::SeqCst);
    }
}

async fn serve(app: Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (base, task)
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    pub at: DateTime<Utc>,
    /// The status it was answered with.
    pub answered: u16,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Default)]
struct Log {
    received: Vec<Received>,
    /// Scripted answers per path (status, Retry-After), used up in order; then 2xx.
    script: BTreeMap<String, VecDeque<(u16, Option<u64>)>>,
    /// Answer every request to these paths with this status, until changed.
    down: BTreeMap<String, u16>,
}

/// Records POSTs to any path; answers like the real services do when they accept: PagerDuty
/// (`/v2/enqueue`) 202 with its JSON, Slack (`/slack/…`) 200 `ok`, others 200.
pub struct Receiver {
    pub base: String,
    log: Arc<Mutex<Log>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    State(log): State<Arc<Mutex<Log>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let path = uri.path().to_string();
    let mut log = log.lock().unwrap();
    let scripted = log.script.get_mut(&path).and_then(VecDeque::pop_front);
    let (status, retry_after) = scripted
        .or_else(|| log.down.get(&path).map(|s| (*s, None)))
        .unwrap_or((if path == "/v2/enqueue" { 202 } else { 200 }, None));
    log.received.push(Received {
        path: path.clone(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: body.to_vec(),
        at: Utc::now(),
        answered: status,
    });
    let status = StatusCode::from_u16(status).unwrap();
    let body = match (path.as_str(), status.is_success()) {
        ("/v2/enqueue", true) => {
            let key = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["dedup_key"].as_str().map(str::to_string))
                .unwrap_or_default();
            format!(r#"{{"status":"success","message":"Event processed","dedup_key":"{key}"}}"#)
        }
        (p, true) if p.starts_with("/slack/") => "ok".to_string(),
        (_, true) => String::new(),
        (_, false) => r#"{"status":"unavailable"}"#.to_string(),
    };
    let mut response = (status, body).into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", secs.to_string().parse().unwrap());
    }
    response
}

impl Receiver {
    pub async fn start() -> Receiver {
        let log = Arc::new(Mutex::new(Log::default()));
        let app = Router::new()
            .fallback(axum::routing::post(receive))
            .with_state(log.clone());
        let (base, task) = serve(app).await;
        Receiver { base, log, task }
    }

    pub fn received(&self, path_prefix: &str) -> Vec<Received> {
        let log = self.log.lock().unwrap();
        log.received
            .iter()
            .filter(|r| r.path.starts_with(path_prefix))
            .cloned()
            .collect()
    }

    /// The next answers to `path`, in order (status, Retry-After seconds).
    pub fn script(&self, path: &str, answers: &[(u16, Option<u64>)]) {
        let mut log = self.log.lock().unwrap();
        log.script
            .entry(path.to_string())
            .or_default()
            .extend(answers.iter().copied());
    }

    /// Answers every request to `path` with `status` (None: accept again).
    pub fn set_down(&self, path: &str, status: Option<u16>) {
        let mut log = self.log.lock().unwrap();
        match status {
            Some(s) => log.down.insert(path.to_string(), s),
            None => log.down.remove(path),
        };
    }
}

/// A real SMTP server (aiosmtpd); each message it receives is parsed by Python's `email`
/// package into `dir/<n>.json`.
pub struct SmtpSink {
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SmtpSink {
    pub fn start(dir: &Path) -> SmtpSink {
        use std::io::BufRead;
        std::fs::create_dir_all(dir).unwrap();
        let mut child = Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/smtp_sink.py"))
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs tests/peers/smtp_sink.py (aiosmtpd from scripts/test.sh)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("smtp_sink said `{line}`"));
        SmtpSink {
            port,
            dir: dir.to_path_buf(),
            child,
        }
    }

    /// The messages received so far, in order.
    pub fn messages(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort_by_key(|p| {
            p.file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(u64::MAX)
        });
        files
            .iter()
            .filter_map(|p| serde_json::from_slice(&std::fs::read(p).ok()?).ok())
            .collect()
    }
}
