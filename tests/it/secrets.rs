//! Issue #19: a secret never leaks, in any form, through any output channel.
//!
//! A property test draws random secrets (ASCII punctuation, spaces, non-ASCII; 4–64
//! characters). For each case, a loopback target echoes every secret back in every way it can:
//! in a redirect `Location` (path and query, percent-encoded with lower-case hex), in a JSON
//! body (serde_json's escaping, Python's ASCII-only `\uXXXX`, HTML-escaped, percent-encoded,
//! past the 200-character cut of actual values), in `Set-Cookie` and another header, the
//! `Authorization` it got, and in WebSocket replies; journeys use each secret in a URL literal
//! (path and query), a `query:` value, a `Basic` credential, a header, a DNS name that times
//! out and a WebSocket message. Then `waymark run` (text and JSON) and `waymark serve` (SQLite,
//! a webhook and a log channel, a dashboard user, OTLP export to an in-test receiver) run them,
//! and every channel is scanned for every form of every secret: CLI output, the SQLite files,
//! the service log, the exported spans (raw protobuf), the webhook bodies, the API's answers,
//! the dashboard pages (logged in) and the status page.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use proptest::prelude::*;

use crate::support::serve::{Serve, client, eventually, setup};

/// What the peers of one case recorded.
#[derive(Clone, Default)]
struct Seen {
    /// `q` values the target received (proof that each secret reached it).
    queries: Arc<Mutex<Vec<String>>>,
    /// Bodies of webhook deliveries.
    hooks: Arc<Mutex<Vec<Vec<u8>>>>,
    /// Raw OTLP/HTTP export requests (protobuf keeps strings as UTF-8).
    spans: Arc<Mutex<Vec<Vec<u8>>>>,
}

fn json_ascii(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                for u in c.encode_utf16(&mut [0u16; 2]) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
    }
    out
}

fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
        .replace('/', "&#x2f;")
}

fn percent(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn lower_hex(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i + 1]);
        out.push_str(&rest[i + 1..i + 3].to_ascii_lowercase());
        rest = &rest[i + 3..];
    }
    out + rest
}

/// The letters and digits of a secret (at least 4): a DNS label that resolves to a query, so
/// the name comes back lower-cased in the timeout message.
fn dns_label(secret: &str) -> String {
    let mut label: String = secret.chars().filter(|c| c.is_alphanumeric()).collect();
    while label.chars().count() < 4 {
        label.push('Q');
    }
    label.chars().take(40).collect()
}

fn basic(secret: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("ada:{secret}"))
}

/// Every form of `secret` that must appear nowhere.
fn forms(secret: &str) -> Vec<(&'static str, String)> {
    let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let mut u = url::Url::parse("http://h/").unwrap();
    u.path_segments_mut().unwrap().clear().push(secret);
    let segment = u.path()[1..].to_string();
    let mut u = url::Url::parse("http://h/").unwrap();
    u.set_query(Some(secret));
    let query = u.query().unwrap().to_string();
    let json = serde_json::to_string(secret).unwrap();
    let mut out = vec![
        ("raw", secret.to_string()),
        ("form-encoded", form.clone()),
        ("form-encoded, lower-case hex", lower_hex(&form)),
        ("percent-encoded", percent(secret)),
        (
            "percent-encoded, lower-case hex",
            lower_hex(&percent(secret)),
        ),
        ("URL path segment", segment),
        ("URL query", query),
        ("JSON-escaped", json[1..json.len() - 1].to_string()),
        ("JSON-escaped, ASCII only", json_ascii(secret)),
        ("HTML-escaped", html(secret)),
        ("lower-case", secret.to_ascii_lowercase()),
        ("upper-case", secret.to_ascii_uppercase()),
        ("Unicode lower-case", secret.to_lowercase()),
        ("base64 in a Basic credential", basic(secret)),
    ];
    // What a cut before redaction would leave of the echo in `[BODY]`: its first 12
    // characters (a shorter secret fits whole before the cut).
    let escaped: Vec<char> = json[1..json.len() - 1].chars().collect();
    if escaped.len() > 12 {
        out.push(("cut before redaction", escaped[..12].iter().collect()));
    }
    out
}

/// `(channel, form, excerpt)` of every form of every secret found in `text`.
fn leaks(channel: &str, text: &str, secrets: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for secret in secrets {
        for (form, value) in forms(secret) {
            if let Some(at) = text.find(&value) {
                let from = text.floor_char_boundary(at.saturating_sub(60));
                let to = text.ceil_char_boundary((at + value.len() + 60).min(text.len()));
                out.push(format!(
                    "{channel}: {form} `{value}` of {secret:?} in …{}…",
                    text[from..to].escape_debug()
                ));
            }
        }
    }
    out
}

/// The target: `/bounce/…` redirects to `/echo/…` with the secret (from `q`) in the path and
/// query; `/echo/…` answers it back in every encoding; `/ws` echoes messages as JSON.
async fn target(seen: Seen) -> (String, tokio::task::JoinHandle<()>) {
    async fn bounce(Query(q): Query<HashMap<String, String>>) -> Response {
        let s = q.get("q").cloned().unwrap_or_default();
        let form: String = url::form_urlencoded::byte_serialize(s.as_bytes()).collect();
        let location = format!("/echo/{}?q={}", lower_hex(&percent(&s)), lower_hex(&form));
        (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
    }
    async fn echo(
        State(seen): State<Seen>,
        headers: HeaderMap,
        Query(q): Query<HashMap<String, String>>,
    ) -> Response {
        let s = q.get("q").cloned().unwrap_or_default();
        seen.queries.lock().unwrap().push(s.clone());
        let auth = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let body = format!(
            r#"{{"pad":"{}","echo":{},"ascii":"{}","html":"{}","pct":"{}","auth":"{auth}"}}"#,
            // The echo starts 12 characters before the 200-character cut of actual values.
            "p".repeat(170),
            serde_json::to_string(&s).unwrap(),
            json_ascii(&s),
            html(&s),
            lower_hex(&percent(&s)),
        );
        let form: String = url::form_urlencoded::byte_serialize(s.as_bytes()).collect();
        (
            [
                (header::CONTENT_TYPE, "application/json".to_string()),
                (header::SET_COOKIE, format!("sid={}; Path=/", percent(&s))),
                (header::HeaderName::from_static("x-echo"), form),
            ],
            body,
        )
            .into_response()
    }
    async fn ws(upgrade: WebSocketUpgrade) -> Response {
        upgrade.on_upgrade(|mut socket| async move {
            while let Some(Ok(msg)) = socket.recv().await {
                if let Message::Text(t) = msg {
                    let reply = format!(r#"{{"m":"{}"}}"#, json_ascii(t.as_str()));
                    if socket.send(Message::Text(reply.into())).await.is_err() {
                        break;
                    }
                }
            }
        })
    }
    let app = Router::new()
        .route("/bounce/{*rest}", get(bounce))
        .route("/echo/{*rest}", get(echo))
        .route("/ws", get(ws))
        .with_state(seen);
    spawn(app).await
}

/// A webhook receiver and an OTLP/HTTP receiver on one port.
async fn receivers(seen: Seen) -> (String, tokio::task::JoinHandle<()>) {
    async fn hook(State(seen): State<Seen>, body: Bytes) -> StatusCode {
        seen.hooks.lock().unwrap().push(body.to_vec());
        StatusCode::OK
    }
    async fn traces(State(seen): State<Seen>, body: Bytes) -> Response {
        seen.spans.lock().unwrap().push(body.to_vec());
        // An empty ExportTraceServiceResponse.
        (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            Vec::new(),
        )
            .into_response()
    }
    let app = Router::new()
        .route("/hook", post(hook))
        .route("/v1/traces", post(traces))
        .with_state(seen);
    spawn(app).await
}

async fn spawn(app: Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    (
        base,
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() }),
    )
}

fn journey(i: usize, base: &str, dns: &str) -> String {
    let ws = base.replacen("http://", "ws://", 1);
    format!(
        r#"name: leak-{i}
public: true
schedule: {{ every: 1s }}
steps:
  - name: echo
    timeout: 3s
    http:
      url: "{base}/bounce/x{{{{ secret.S{i} }}}}?lit={{{{ secret.S{i} }}}}"
      query: {{ q: "{{{{ secret.S{i} }}}}" }}
      headers:
        Authorization: "Basic {{{{ secret.B{i} }}}}"
        X-Echo: "{{{{ secret.S{i} }}}}"
    conditions:
      - "[BODY] == nope"
      - "[BODY].echo == nope"
      - "[HEADERS].set-cookie == nope"
      - "[HEADERS].x-echo == nope"
      - "[BODY].auth == nope"
  - name: resolve
    always_run: true
    timeout: 400ms
    dns: {{ name: "{{{{ secret.S{i} }}}}.example", server: "{dns}" }}
  - name: resolve-letters
    always_run: true
    timeout: 400ms
    dns: {{ name: "{{{{ secret.D{i} }}}}.example", server: "{dns}" }}
  - name: feed
    always_run: true
    timeout: 2s
    websocket:
      url: "{ws}/ws"
      actions:
        - send: {{ text: "{{{{ secret.S{i} }}}}" }}
        - expect: {{ conditions: ["[MESSAGE].m == nope"], timeout: 300ms }}
"#
    )
}

fn config(receivers: &str, hash: &str) -> String {
    format!(
        r#"
[alerting.channels.hook]
type = "webhook"
url = "{receivers}/hook"
secret = "hook-signing-key-0123456789"

[[alerting.routes]]
channels = ["hook", "log"]

[dashboard]
[[dashboard.users]]
name = "ada"
password_hash = "{hash}"
"#
    )
}

const PASSWORD: &str = "a long dashboard password";

/// Logs in to the dashboard and returns the session cookie.
async fn login(serve: &Serve) -> String {
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/app/login", serve.base))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("username", "ada")
                .append_pair("password", PASSWORD)
                .finish(),
        )
        .send()
        .await
        .unwrap();
    let cookie = res
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no session cookie; log:\n{}", serve.log()));
    cookie.split(';').next().unwrap().to_string()
}

async fn page(serve: &Serve, path: &str, cookie: &str) -> String {
    let res = client()
        .get(format!("{}{path}", serve.base))
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body = res.text().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

async fn cli(args: &[&str], env: &[(String, String)]) -> String {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env = env.to_vec();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_waymark"))
            .args(&args)
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .envs(env)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// One case: every channel for these secrets. Returns the leaks found.
async fn scan_every_channel(secrets: &[String]) -> Vec<String> {
    let seen = Seen::default();
    let (base, _target) = target(seen.clone()).await;
    let (recv, _receivers) = receivers(seen.clone()).await;
    // A DNS server that never answers: the query times out with the name in the message.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dns = silent.local_addr().unwrap().to_string();
    let files: Vec<(String, String)> = (0..secrets.len())
        .map(|i| (format!("leak-{i}.yaml"), journey(i, &base, &dns)))
        .collect();
    let files: Vec<(&str, String)> = files.iter().map(|(n, c)| (n.as_str(), c.clone())).collect();
    let dir = setup(&files);
    let hash = waymark::auth::PasswordHash::of(PASSWORD);
    std::fs::write(
        dir.path().join("waymark.toml"),
        config(&recv, hash.as_str()),
    )
    .unwrap();
    let mut env: Vec<(String, String)> = Vec::new();
    for (i, s) in secrets.iter().enumerate() {
        env.push((format!("WAYMARK_SECRET_S{i}"), s.clone()));
        env.push((format!("WAYMARK_SECRET_B{i}"), basic(s)));
        env.push((format!("WAYMARK_SECRET_D{i}"), dns_label(s)));
    }
    env.push(("OTEL_EXPORTER_OTLP_ENDPOINT".into(), recv.clone()));
    env.push(("OTEL_EXPORTER_OTLP_PROTOCOL".into(), "http/protobuf".into()));
    let mut found = Vec::new();
    // What must never show: the secrets and the DNS labels made of them.
    let all: Vec<String> = secrets
        .iter()
        .flat_map(|s| [s.clone(), dns_label(s)])
        .collect();

    // `waymark run`, text and JSON.
    let journeys = dir.path().join("journeys");
    for format in ["text", "json"] {
        let file = journeys.join("leak-0.yaml");
        let out = cli(&["run", file.to_str().unwrap(), "--format", format], &env).await;
        assert!(out.contains("leak-0"), "{out}");
        found.extend(leaks(&format!("waymark run --format {format}"), &out, &all));
    }

    // `waymark serve`.
    let mut serve_env = env.clone();
    serve_env.push(("WAYMARK_LOG".into(), "info,waymark=debug".into()));
    let serve_env: Vec<(&str, &str)> = serve_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let serve = Serve::start_with(dir.path(), 0, &serve_env);
    let n = secrets.len();
    eventually(
        "a webhook delivery for every journey",
        &serve,
        Duration::from_secs(60),
        || async {
            let hooks = seen.hooks.lock().unwrap();
            let all = (0..n).all(|i| {
                hooks
                    .iter()
                    .any(|h| String::from_utf8_lossy(h).contains(&format!("leak-{i}")))
            });
            all.then_some(())
        },
    )
    .await;
    let mut texts: Vec<(String, String)> = Vec::new();
    for path in ["/api/v1/journeys", "/api/v1/incidents", "/status.json"] {
        texts.push((format!("API {path}"), serve.get(path).await.1));
    }
    let cookie = login(&serve).await;
    for path in ["/app", "/app/incidents", "/"] {
        texts.push((format!("page {path}"), page(&serve, path, &cookie).await));
    }
    for i in 0..n {
        let runs = serve.json(&format!("/api/v1/journeys/leak-{i}/runs")).await;
        texts.push((format!("API runs of leak-{i}"), runs.to_string()));
        let id = runs["runs"][0]["run_id"].as_str().unwrap().to_string();
        let path = format!("/api/v1/runs/{id}");
        texts.push((format!("API {path}"), serve.get(&path).await.1));
        for path in [format!("/app/journeys/leak-{i}"), format!("/app/runs/{id}")] {
            texts.push((format!("page {path}"), page(&serve, &path, &cookie).await));
        }
    }
    let incidents = serve.json("/api/v1/incidents").await;
    for incident in incidents["incidents"].as_array().into_iter().flatten() {
        let id = incident["id"].as_i64().unwrap();
        let path = format!("/api/v1/incidents/{id}");
        texts.push((format!("API {path}"), serve.get(&path).await.1));
        let path = format!("/app/incidents/{id}");
        texts.push((format!("page {path}"), page(&serve, &path, &cookie).await));
    }
    let log = serve.log();
    assert_eq!(serve.stop(libc::SIGTERM).await, Some(0));
    texts.push(("service log".into(), log));
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("w.db") {
            let bytes = std::fs::read(&path).unwrap();
            texts.push((
                format!("SQLite {name}"),
                String::from_utf8_lossy(&bytes).into(),
            ));
        }
    }
    for (i, body) in seen.hooks.lock().unwrap().iter().enumerate() {
        texts.push((
            format!("webhook #{i}"),
            String::from_utf8_lossy(body).into(),
        ));
    }
    let spans = seen.spans.lock().unwrap().clone();
    assert!(!spans.is_empty(), "no spans were exported");
    for (i, body) in spans.iter().enumerate() {
        texts.push((
            format!("OTLP export #{i}"),
            String::from_utf8_lossy(body).into(),
        ));
    }
    // Each secret really went out and came back: the property is not vacuous.
    let queries = seen.queries.lock().unwrap().clone();
    for s in secrets {
        assert!(
            queries.contains(s),
            "the target never got {s:?}: {queries:?}"
        );
    }
    for (channel, text) in &texts {
        found.extend(leaks(channel, text, &all));
    }
    let stored: BTreeMap<&str, usize> = texts
        .iter()
        .map(|(c, t)| (c.as_str(), t.matches("***").count()))
        .collect();
    assert!(
        stored
            .iter()
            .any(|(c, n)| c.starts_with("API /api/v1/runs/") && *n > 0),
        "no run shows a redaction: {stored:?}"
    );
    found
}

/// ASCII printable characters and a few non-ASCII ones, one beyond the BMP.
fn secret() -> impl Strategy<Value = String> {
    let chars = prop_oneof![
        8 => proptest::char::range(' ', '~'),
        1 => proptest::sample::select(vec!['é', 'ü', 'ß', 'Ω', 'ж', '日', '€', '😀']),
    ];
    proptest::collection::vec(chars, 4..=64).prop_map(|cs| cs.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 4,
        max_shrink_iters: 4,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Four cases of three secrets each: every channel of `waymark run` and `waymark serve`.
    #[test]
    fn secret_never_leaks_in_any_encoding_through_any_channel(
        secrets in proptest::collection::vec(secret(), 3)
    ) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let found = runtime.block_on(scan_every_channel(&secrets));
        prop_assert!(found.is_empty(), "{} leaks:\n{}", found.len(), found.join("\n"));
    }
}
