//! Compressed responses (issue #19): `Accept-Encoding` is sent by default, gzip, deflate and br
//! bodies are decoded for `[BODY]`, and the cap holds on the decoded size, against an axum
//! server that compresses whatever the client asked for.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_compression::tokio::bufread::BrotliEncoder;
use axum::body::Body;
use flate2::Compression;
use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};

use super::*;

const JSON: &str = r#"{"status":"ok","items":[1,2,3],"note":"compressed by the server"}"#;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn raw_deflate(data: &[u8]) -> Vec<u8> {
    let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

async fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    BrotliEncoder::new(data)
        .read_to_end(&mut out)
        .await
        .unwrap();
    out
}

/// A gzip stream of `segments` MiB of zeros, made lazily from two precomputed pieces: the
/// header with the first MiB, then one MiB's deflate blocks (byte-aligned by a sync flush, and
/// valid again after any run of zeros), repeated. It never ends properly: no client should
/// get that far. `sent` counts the bytes handed to the server.
fn zero_bomb(segments: u64, sent: Arc<AtomicU64>) -> Body {
    let mib = vec![0u8; 1 << 20];
    let mut e = GzEncoder::new(Vec::new(), Compression::best());
    e.write_all(&mib).unwrap();
    e.flush().unwrap();
    let first = std::mem::take(e.get_mut());
    e.write_all(&mib).unwrap();
    e.flush().unwrap();
    let repeated = Bytes::from(std::mem::take(e.get_mut()));
    let first = Bytes::from(first);
    let stream = futures_util::stream::unfold(0u64, move |n| {
        let chunk = if n == 0 {
            first.clone()
        } else {
            repeated.clone()
        };
        let sent = Arc::clone(&sent);
        async move {
            (n < segments).then(|| {
                sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                (Ok::<_, Infallible>(chunk), n + 1)
            })
        }
    });
    Body::from_stream(stream)
}

fn encoded(coding: &'static str, bytes: Vec<u8>) -> axum::response::Response {
    (
        [
            (header::CONTENT_ENCODING, coding),
            (header::CONTENT_TYPE, "application/json"),
        ],
        bytes,
    )
        .into_response()
}

/// A step calling `path` on a fresh [`serve_compressing`].
async fn compressing_step(method: Method, path: &str) -> HttpStep {
    let (addr, _) = serve_compressing().await;
    step(method, &format!("http://{addr}{path}"))
}

/// Routes that compress whatever the request asked for, and `/bomb`, whose sent bytes are
/// counted in the returned counter.
async fn serve_compressing() -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let br = brotli(JSON.as_bytes()).await;
    let bomb_sent = Arc::clone(&sent);
    let app = Router::new()
        .route(
            "/gzip",
            get(|| async { encoded("gzip", gzip(JSON.as_bytes())) }),
        )
        .route(
            "/deflate",
            get(|| async { encoded("deflate", zlib(JSON.as_bytes())) }),
        )
        .route(
            "/raw-deflate",
            get(|| async { encoded("deflate", raw_deflate(JSON.as_bytes())) }),
        )
        .route("/br", get(move || async move { encoded("br", br) }))
        .route(
            "/zstd",
            get(|| async { encoded("zstd", b"not really zstd".to_vec()) }),
        )
        .route(
            "/corrupt",
            get(|| async {
                let mut bytes = gzip(JSON.as_bytes());
                bytes.truncate(bytes.len() / 2);
                encoded("gzip", bytes)
            }),
        )
        .route("/echo", any(echo))
        .route(
            "/bomb",
            get(move || {
                let sent = Arc::clone(&bomb_sent);
                // 10 GiB of zeros, about 10 MB on the wire.
                async move {
                    (
                        [(header::CONTENT_ENCODING, "gzip")],
                        zero_bomb(10 * 1024, sent),
                    )
                }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, sent)
}

#[tokio::test]
async fn gzip_deflate_and_br_bodies_are_decoded_for_conditions() {
    let (addr, _) = serve_compressing().await;
    let h = Harness::new(&[]);
    for path in ["gzip", "deflate", "raw-deflate", "br"] {
        let a = passed(&step(Method::GET, &format!("http://{addr}/{path}"))).await;
        assert_eq!(a.facts.body.as_deref(), Some(JSON.as_bytes()), "{path}");
        let (passed, actual) = h.check("[BODY].status == ok", &a);
        assert!(passed, "{path}: {actual}");
        assert!(h.check("len([BODY].items) == 3", &a).0, "{path}");
        let summary = a.response.as_ref().unwrap();
        assert_eq!(summary.body_bytes, JSON.len() as u64, "{path}");
        let wire = summary.wire_bytes.expect("the wire size of a decoded body");
        assert!(wire > 0 && wire != summary.body_bytes, "{path}: {wire}");
        assert_eq!(
            a.facts.header("content-length"),
            Some(wire.to_string().as_str()),
            "{path}: the wire size is what the server sent"
        );
        assert!(a.timings.download.is_some(), "{path}");
    }
}

#[tokio::test]
async fn accept_encoding_is_sent_by_default_and_the_step_can_change_it() {
    let (addr, _) = serve_compressing().await;
    let url = format!("http://{addr}/echo");
    let a = passed(&step(Method::GET, &url)).await;
    assert_eq!(
        body_json(&a)["headers"]["accept-encoding"],
        "gzip, deflate, br"
    );
    let sent = &a.request.as_ref().unwrap().headers;
    assert!(
        sent.contains(&("accept-encoding".into(), "gzip, deflate, br".into())),
        "{sent:?}"
    );

    let mut own = step(Method::GET, &url);
    own.headers = vec![("Accept-Encoding".into(), t("identity"))];
    assert_eq!(
        body_json(&run(&own).await)["headers"]["accept-encoding"],
        "identity",
        "the step's own header wins"
    );

    let mut off = step(Method::GET, &url);
    off.compressed = false;
    assert_eq!(
        body_json(&run(&off).await)["headers"].get("accept-encoding"),
        None
    );
}

#[tokio::test]
async fn compressed_false_keeps_the_body_as_received() {
    let mut s = compressing_step(Method::GET, "/gzip").await;
    s.compressed = false;
    let a = passed(&s).await;
    assert_eq!(a.facts.body.as_deref(), Some(&gzip(JSON.as_bytes())[..]));
    assert_eq!(a.response.unwrap().wire_bytes, None);
}

#[tokio::test]
async fn unknown_codings_are_left_as_received() {
    let a = passed(&compressing_step(Method::GET, "/zstd").await).await;
    assert_eq!(a.facts.body.as_deref(), Some(&b"not really zstd"[..]));
}

#[tokio::test]
async fn corrupt_gzip_is_a_protocol_failure() {
    let a = run(&compressing_step(Method::GET, "/corrupt").await).await;
    assert_failed_with(&a, FailureClass::Protocol, "not valid gzip");
    assert_eq!(a.facts.body, None);
}

#[tokio::test]
async fn head_of_a_gzip_resource_has_nothing_to_decode() {
    let a = passed(&compressing_step(Method::HEAD, "/gzip").await).await;
    assert_eq!(a.facts.body.as_deref(), Some(&b""[..]));
}

/// Issue #19: the cap is on the decoded size, so a small gzip stream that inflates to 10 GiB
/// ends `body_too_large` at the cap, quickly, having read a sliver of the stream.
#[tokio::test]
async fn gzip_bomb_ends_body_too_large_at_the_decoded_cap() {
    let (addr, sent) = serve_compressing().await;
    let mut s = step(Method::GET, &format!("http://{addr}/bomb"));
    s.max_body_bytes = 8 * 1024 * 1024;
    let started = Instant::now();
    let a = run_with(&s, Duration::from_secs(30), &[]).await;
    let elapsed = started.elapsed();
    assert_failed_with(&a, FailureClass::BodyTooLarge, "decoded (gzip)");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    let summary = a.response.as_ref().unwrap();
    assert!(
        summary.body_bytes <= s.max_body_bytes,
        "{}",
        summary.body_bytes
    );
    let wire = summary.wire_bytes.unwrap();
    // 8 MiB of zeros is about 8 KB of gzip; the whole stream is about 10 MB.
    assert!(wire < 1024 * 1024, "read {wire} bytes of the stream");
    assert!(sent.load(Ordering::Relaxed) > 0);
    assert_eq!(a.facts.body, None);
}
