//! The conversation: scripted sends and expectations, in order.

use super::*;

#[tokio::test]
async fn hello_send_json_expect_echo_and_close() {
    let (addr, _) = ws_peer().await;
    let s = step(
        &format!("ws://{addr}/echo"),
        vec![
            expect(&["[MESSAGE].type == hello", "[MESSAGES_RECEIVED] == 1"]),
            send_json(json!({ "type": "add", "n": "{{ n }}", "note": "n={{ n }}" })),
            expect(&[
                "[MESSAGE].echo == true",
                "[MESSAGE].n == 41",
                "[MESSAGE].note == n=41",
            ]),
            close(Some(1000)),
        ],
    );
    let a = passed(&s).await;
    let names: Vec<_> = a.actions.iter().map(|o| o.action.as_str()).collect();
    assert_eq!(names, ["expect", "send", "expect", "close"]);
    assert!(a.actions.iter().all(|o| o.passed && o.duration.is_some()));
    assert_detail(&a, 2, |d| d.contains("\"echo\":true"));
    assert_eq!(a.actions[3].detail, "closed: 1000 (normal closure)");
    // The JSON leaf that is exactly `{{ n }}` keeps the number type.
    let echoed: Value = serde_json::from_str(a.facts.message.as_deref().unwrap()).unwrap();
    assert_eq!(echoed["n"], json!(41));
    assert_eq!(a.facts.messages_received, Some(2));
    assert_eq!(a.facts.status, Some(101));
    assert_eq!(a.facts.connected, Some(true));
    assert_eq!(a.facts.ip, Some(addr.ip()));
    assert_eq!(a.facts.header("upgrade"), Some("websocket"));
    // IP literal: no DNS; plain ws: no TLS.
    let tm = a.timings;
    assert!(tm.dns.is_none() && tm.tls.is_none(), "{tm:?}");
    assert!(tm.connect.is_some() && tm.handshake.is_some(), "{tm:?}");
    assert!(tm.total.unwrap() >= tm.connect.unwrap() + tm.handshake.unwrap());
    assert_eq!(a.facts.response_time, tm.total);
    let request = a.request.as_ref().unwrap();
    assert_eq!(request.method, "GET");
    assert_eq!(request.url, format!("ws://{addr}/echo"));
    let response = a.response.as_ref().unwrap();
    assert_eq!(
        (response.status, response.protocol.as_str()),
        (101, "HTTP/1.1")
    );
}

#[tokio::test]
async fn extracted_values_feed_later_actions_and_the_runner() {
    let (s, _) = peer_step(
        "/echo",
        vec![
            expect_extract(
                &["[MESSAGE].type == hello"],
                &[("server", "[MESSAGE].server")],
            ),
            send_json(json!({ "type": "who", "server": "{{ server }}" })),
            expect_extract(
                &["[MESSAGE].server == {{ server }}", "[MESSAGE].echo == true"],
                &[("echoed", "[MESSAGE].echo")],
            ),
            send_text("plain {{ server }} {{ echoed }}"),
            expect(&["[MESSAGE] == plain test true"]),
        ],
    )
    .await;
    let a = passed(&s).await;
    assert_eq!(
        a.extracted,
        [
            ("server".to_string(), json!("test")),
            ("echoed".to_string(), json!(true))
        ]
    );
    assert_eq!(a.actions[3].detail, "plain test true");
    assert_eq!(a.facts.message.as_deref(), Some("plain test true"));
}

#[tokio::test]
async fn a_missing_extraction_fails_the_expect() {
    let (s, _) = peer_step(
        "/echo",
        vec![expect_extract(
            &["[MESSAGE].type == hello"],
            &[("id", "[MESSAGE].id")],
        )],
    )
    .await;
    let a = run(&s).await;
    assert_failed_with(&a, FailureClass::Extraction, "`id`");
    assert!(a.extracted.is_empty());
}

#[tokio::test]
async fn non_matching_messages_are_skipped_until_one_matches() {
    let (s, _) = peer_step(
        "/echo",
        vec![
            send_json(json!({ "type": "noise", "i": 1 })),
            send_json(json!({ "type": "noise", "i": 2 })),
            send_json(json!({ "type": "target" })),
            expect(&["[MESSAGE].type == target"]),
        ],
    )
    .await;
    let a = passed(&s).await;
    // The hello and both noises were skipped.
    let detail = &a.actions[3].detail;
    assert!(
        detail.starts_with("after skipping 3 non-matching"),
        "{detail}"
    );
    assert_eq!(a.facts.messages_received, Some(4));
}

#[tokio::test]
async fn binary_messages_are_messages_as_lossy_text() {
    let (s, _) = peer_step(
        "/binary",
        vec![expect(&[
            "[MESSAGE] == pat(bin*ary)",
            "[MESSAGES_RECEIVED] == 1",
        ])],
    )
    .await;
    assert_ok(&run(&s).await);
}

#[tokio::test]
async fn expect_none_passes_on_silence_and_keeps_other_messages() {
    let (addr, _) = ws_peer().await;
    let quiet = step(
        &format!("ws://{addr}/quiet"),
        vec![expect_none(&[], Duration::from_millis(200))],
    );
    let a = passed(&quiet).await;
    assert_eq!(a.actions[0].detail, "no message in 200ms");
    assert!(a.actions[0].duration.unwrap() >= Duration::from_millis(200));

    // The hello does not match, so it is kept for the expect after.
    let echo = step(
        &format!("ws://{addr}/echo"),
        vec![
            expect_none(&["[MESSAGE].type == error"], Duration::from_millis(200)),
            expect_within(&["[MESSAGE].type == hello"], Duration::from_millis(50)),
        ],
    );
    let a = passed(&echo).await;
    assert_detail(&a, 0, |d| d.contains("1 others kept"));
}

#[tokio::test]
async fn expect_none_fails_on_a_message() {
    let (s, _) = peer_step(
        "/echo",
        vec![expect_none(
            &["[MESSAGE].type == hello"],
            Duration::from_secs(2),
        )],
    )
    .await;
    let (a, elapsed) = run_with(&s, Duration::from_secs(5), &[], &[]).await;
    assert_failed_with(&a, FailureClass::UnexpectedMessage, "\"hello\"");
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    assert!(!a.actions[0].passed);
}

#[tokio::test]
async fn ping_gets_its_pong_and_messages_meanwhile_are_kept() {
    let (s, _) = peer_step(
        "/echo",
        vec![
            WsAction::Ping { timeout: None },
            WsAction::Ping {
                timeout: Some(Duration::from_secs(1)),
            },
            hello(),
        ],
    )
    .await;
    let a = passed(&s).await;
    assert_detail(&a, 0, |d| d.starts_with("pong after"));
}

#[tokio::test]
async fn a_missing_pong_times_out_at_the_ping_timeout() {
    let timeout = Duration::from_millis(300);
    let (s, _) = peer_step(
        "/deaf",
        vec![WsAction::Ping {
            timeout: Some(timeout),
        }],
    )
    .await;
    let (a, elapsed) = run_with(&s, Duration::from_secs(5), &[], &[]).await;
    assert_failed_with(&a, FailureClass::Timeout, "pong");
    // The ping's timeout, plus the closing courtesy to a peer that never answers it.
    assert_within(elapsed, timeout + super::super::script::CLOSE_GRACE);
}

#[tokio::test]
async fn close_with_an_unexpected_code_fails_naming_both() {
    let (s, _) = peer_step("/goaway", vec![send_text("bye"), close(Some(1000))]).await;
    let a = run(&s).await;
    let msg = assert_failed(&a, FailureClass::ClosedByPeer);
    assert!(msg.contains("1001") && msg.contains("1000"), "{msg}");
}

#[tokio::test]
async fn without_expect_timeout_the_deadline_is_a_timeout_with_one_it_is_no_match() {
    let (addr, _) = ws_peer().await;
    let url = format!("ws://{addr}/quiet");
    let own = Duration::from_millis(300);
    let s = step(&url, vec![expect_within(&["[MESSAGE].type == x"], own)]);
    let (a, elapsed) = run_with(&s, Duration::from_secs(5), &[], &[]).await;
    assert_failed_with(&a, FailureClass::NoMatchingMessage, "no message arrived");
    assert!(elapsed >= own);
    assert_within(elapsed, own + super::super::script::CLOSE_GRACE);

    let deadline = Duration::from_millis(400);
    let s = step(&url, vec![expect(&["[MESSAGE].type == x"])]);
    let (a, elapsed) = run_with(&s, deadline, &[], &[]).await;
    assert_failed(&a, FailureClass::Timeout);
    assert_within(elapsed, deadline);
}
