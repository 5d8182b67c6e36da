//! Deadlines: a silent or stalling server fails at the timeout and leaves no task behind.

use super::*;

/// `GET /` of `addr` with a 300 ms timeout.
async fn get_root_within_300ms(addr: SocketAddr) -> Attempt {
    run_with(
        &step(Method::GET, &format!("http://{addr}/")),
        Duration::from_millis(300),
        &[],
    )
    .await
}

#[tokio::test]
async fn silent_server_times_out_at_the_deadline() {
    let addr = stalling_server(b"").await;
    let started = Instant::now();
    let a = get_root_within_300ms(addr).await;
    let elapsed = started.elapsed();
    let msg = assert_failed_with(&a, FailureClass::Timeout, "waiting for response headers");
    assert!(msg.starts_with("timed out after 0.3"), "{msg}");
    assert!(elapsed < Duration::from_millis(400), "{elapsed:?}");
    assert!(
        a.timings.connect.is_some() && a.timings.ttfb.is_none(),
        "{:?}",
        a.timings
    );
    assert!(a.timings.total.is_some());
    assert_eq!(a.facts.connected, Some(true));
}

#[tokio::test]
async fn stalled_body_times_out_with_ttfb_recorded() {
    let addr = stalling_server(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789").await;
    let started = Instant::now();
    let a = get_root_within_300ms(addr).await;
    assert!(started.elapsed() < Duration::from_millis(400));
    assert_failed_with(&a, FailureClass::Timeout, "waiting for response body");
    assert!(
        a.timings.ttfb.is_some() && a.timings.download.is_none(),
        "{:?}",
        a.timings
    );
    assert_eq!(a.facts.status, Some(200));
    assert_eq!(a.response.unwrap().body_bytes, 10);
}

#[tokio::test]
async fn no_task_outlives_an_attempt_to_a_server_that_stops_reading() {
    // The server reads the request head, then neither reads the body nor answers: hyper's
    // own graceful close would wait forever to flush the rest of the body.
    let addr = stalling_server(b"").await;
    let before = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let mut s = step(Method::POST, &format!("http://{addr}/"));
    s.body = Some(HttpBody::Raw(Template::literal(
        "z".repeat(32 * 1024 * 1024),
    )));
    let a = run_with(&s, Duration::from_millis(300), &[]).await;
    assert_failed_with(&a, FailureClass::Timeout, "response headers");
    assert_tasks_back_to(before).await;
}
