//! Transport and protocol failures, each with its class.

use super::*;

#[tokio::test]
async fn refused_connection_is_a_connect_failure() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let a = run(&step(Method::GET, &format!("http://{addr}/"))).await;
    let msg = assert_failed(&a, FailureClass::Connect);
    assert!(
        msg.contains(&addr.to_string()) && msg.contains("refused"),
        "{msg}"
    );
    assert_eq!(a.facts.connected, Some(false));
    assert_eq!(a.timings.connect, None);
    assert!(a.timings.total.is_some());
}

#[tokio::test]
async fn unresolvable_name_is_a_dns_failure() {
    // A 64-character label is not a valid DNS name: the system resolver rejects it without
    // sending a query, so this test sends no traffic off the machine (a name like
    // `nonexistent.invalid` would be sent to the configured nameserver).
    let host = format!("{}.test", "a".repeat(64));
    let a = run(&step(Method::GET, &format!("http://{host}/"))).await;
    let msg = assert_failed(&a, FailureClass::Dns);
    assert!(msg.contains(&host), "{msg}");
    assert_eq!(a.facts.connected, Some(false));
    assert_eq!(a.timings.dns, None);
}

#[tokio::test]
async fn garbage_response_is_a_protocol_failure() {
    let addr = closing_server(b"SSH-2.0-OpenSSH_9.6\r\n\x00\x01\x02garbage\r\n\r\n").await;
    let a = run(&step(Method::GET, &format!("http://{addr}/"))).await;
    assert_failed(&a, FailureClass::Protocol);
    assert_eq!(a.facts.status, None);
}

#[tokio::test]
async fn connection_closed_early_is_a_protocol_failure() {
    let closed_before = raw_server(|_| async {}).await;
    let a = run(&step(Method::GET, &format!("http://{closed_before}/"))).await;
    assert_failed(&a, FailureClass::Protocol);

    let closed_mid_body =
        closing_server(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789").await;
    let a = run(&step(Method::GET, &format!("http://{closed_mid_body}/"))).await;
    assert_failed_with(&a, FailureClass::Protocol, "after 10 bytes");
}
