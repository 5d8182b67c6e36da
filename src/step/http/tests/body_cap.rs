//! The body cap: large and endless bodies are cut, not buffered.

use super::*;

#[tokio::test]
async fn announced_length_over_the_cap_fails_at_once() {
    let addr = stalling_server(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n").await;
    let mut s = step(Method::GET, &format!("http://{addr}/"));
    s.max_body_bytes = 1024;
    let started = Instant::now();
    let a = run(&s).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_failed_with(
        &a,
        FailureClass::BodyTooLarge,
        "Content-Length is 1000000000000",
    );
    assert_eq!(a.facts.body, None);
}

#[tokio::test]
async fn head_is_not_held_to_the_announced_length() {
    let mut s = app_step(Method::HEAD, "/big").await;
    s.max_body_bytes = 10;
    let a = passed(&s).await;
    assert_eq!(a.facts.header("content-length"), Some("1000"));
    s.method = Method::GET;
    assert_failed(&run(&s).await, FailureClass::BodyTooLarge);
}

#[tokio::test]
async fn endless_chunked_stream_is_cut_at_the_cap() {
    let addr = raw_server(|mut s| async move {
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await;
        let chunk = format!("4000\r\n{}\r\n", "y".repeat(0x4000));
        // Bounded: 64 MiB at most, or until the client hangs up.
        for _ in 0..4096 {
            if s.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
        }
    })
    .await;
    let mut s = step(Method::GET, &format!("http://{addr}/"));
    s.max_body_bytes = 64 * 1024;
    let started = Instant::now();
    let a = run(&s).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_failed_with(
        &a,
        FailureClass::BodyTooLarge,
        "max_body_bytes (65536 bytes)",
    );
    assert!(a.response.unwrap().body_bytes <= 64 * 1024);
    assert_eq!(a.facts.body, None);
}
