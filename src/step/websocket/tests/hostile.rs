//! Hostile peers: each fails with its class, within its timeout.

use super::*;

#[tokio::test]
async fn a_peer_that_never_answers_the_upgrade_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        while let Ok(n) = tcp.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    });
    let timeout = Duration::from_millis(400);
    let s = step(&format!("ws://{addr}/"), vec![expect(&["[MESSAGE] == x"])]);
    let (a, elapsed) = run_with(&s, timeout, &[], &[]).await;
    assert_failed_with(&a, FailureClass::Timeout, "handshake");
    assert_eq!(a.facts.connected, Some(true));
    assert!(a.timings.connect.is_some() && a.timings.handshake.is_none());
    assert_eq!(a.timings.total, a.facts.response_time);
    assert_within(elapsed, timeout);
    holder.abort();
}

/// A raw HTTP server that answers every request with `response`.
async fn http_answer(response: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut read = 0;
                while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                }
                let _ = tcp.write_all(response.as_bytes()).await;
                let _ = tcp.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_refused_upgrade_is_a_handshake_failure_with_the_status() {
    let addr = http_answer(
        "HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 13\r\n\r\nno feed today",
    )
    .await;
    let timeout = Duration::from_secs(2);
    let s = step(
        &format!("ws://{addr}/feed"),
        vec![expect(&["[MESSAGE] == x"])],
    );
    let (a, elapsed) = run_with(&s, timeout, &[], &[]).await;
    let msg = assert_failed(&a, FailureClass::Handshake);
    assert!(
        msg.contains("403") && msg.contains("no feed today"),
        "{msg}"
    );
    assert_eq!(a.facts.status, Some(403));
    assert_eq!(a.facts.header("content-type"), Some("text/plain"));
    assert_eq!(a.response.as_ref().unwrap().status, 403);
    assert!(a.timings.handshake.is_none() && a.timings.total.is_some());
    assert_within(elapsed, timeout);
}

#[tokio::test]
async fn a_bogus_101_is_a_handshake_failure() {
    let addr = http_answer(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-accept: wrong\r\n\r\n",
    )
    .await;
    let s = step(&format!("ws://{addr}/"), Vec::new());
    assert_failed_with(
        &run(&s).await,
        FailureClass::Handshake,
        "Sec-WebSocket-Accept",
    );
}

#[tokio::test]
async fn a_message_over_the_cap_is_too_large() {
    let timeout = Duration::from_secs(3);
    let (mut s, _) = peer_step("/big", vec![expect(&["[MESSAGE] == x"])]).await;
    s.max_message_bytes = 64 * 1024;
    let (a, elapsed) = run_with(&s, timeout, &[], &[]).await;
    assert_failed_with(&a, FailureClass::MessageTooLarge, "65536");
    assert_eq!(a.facts.messages_received, Some(0));
    assert_within(elapsed, timeout);
}

#[tokio::test]
async fn a_peer_closing_with_1011_is_closed_by_peer() {
    let timeout = Duration::from_secs(2);
    let (s, _) = peer_step(
        "/close1011",
        vec![hello(), expect(&["[MESSAGE].type == never"])],
    )
    .await;
    let (a, elapsed) = run_with(&s, timeout, &[], &[]).await;
    let msg = assert_failed(&a, FailureClass::ClosedByPeer);
    assert!(
        msg.contains("1011") && msg.contains("peer failure for tests"),
        "{msg}"
    );
    assert_eq!(a.actions.len(), 2);
    assert!(a.actions[0].passed && !a.actions[1].passed);
    assert_within(elapsed, timeout);
}

#[tokio::test]
async fn a_flood_of_non_matching_messages_stops_at_max_skipped() {
    let timeout = Duration::from_secs(5);
    let (mut s, _) = peer_step("/flood", vec![expect(&["[MESSAGE].type == never"])]).await;
    s.max_skipped_messages = 50;
    let (a, elapsed) = run_with(&s, timeout, &[], &[]).await;
    let msg = assert_failed_with(
        &a,
        FailureClass::NoMatchingMessage,
        "51 non-matching messages skipped",
    );
    assert!(
        msg.contains("\"noise\"") && msg.contains("actual: noise"),
        "{msg}"
    );
    assert_eq!(a.facts.messages_received, Some(51));
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
}

/// Issue #19: a wss:// URL on a plain HTTP port says so, in the words every TLS step uses.
#[tokio::test]
async fn wss_to_a_plain_http_port_says_it_is_not_tls() {
    let port = crate::step::test_support::plain_http_server().await;
    let s = step(
        &format!("wss://127.0.0.1:{port}/"),
        vec![expect(&["[MESSAGE] == x"])],
    );
    assert_failed_with(
        &run(&s).await,
        FailureClass::Tls,
        "the server's answer is not TLS",
    );
}
