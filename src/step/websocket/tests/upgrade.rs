//! The upgrade: subprotocols, headers and propagation, URL schemes, `wss://`.

use super::*;

#[tokio::test]
async fn subprotocols_are_negotiated() {
    let (addr, seen) = ws_peer().await;
    let mut s = step(&format!("ws://{addr}/echo"), vec![hello()]);
    s.subprotocols = vec!["v0.old".into(), "v1.echo".into()];
    let a = passed(&s).await;
    assert_eq!(a.facts.header("sec-websocket-protocol"), Some("v1.echo"));
    assert_eq!(seen.last()["sec-websocket-protocol"], "v0.old, v1.echo");

    s.subprotocols = vec!["v9.other".into()];
    let a = run(&s).await;
    let msg = assert_failed(&a, FailureClass::Handshake);
    assert!(
        msg.contains("none of the offered") && msg.contains("v9.other"),
        "{msg}"
    );

    s.url = t(&format!("ws://{addr}/wrongproto"));
    s.subprotocols = vec!["v1.echo".into()];
    assert_failed_with(&run(&s).await, FailureClass::Handshake, "not offered");
}

#[tokio::test]
async fn step_and_propagation_headers_arrive_on_the_upgrade() {
    let (addr, seen) = ws_peer().await;
    let mut s = step(&format!("ws://{addr}/echo"), vec![hello()]);
    s.headers = vec![
        ("X-Team".into(), t("core-{{ n }}")),
        ("Authorization".into(), t("Bearer {{ secret.TOKEN }}")),
    ];
    let propagation = [TRACEPARENT, ("X-Team", "from-the-runner")];
    let (a, _) = run_with(&s, Duration::from_secs(5), &[], &propagation).await;
    assert_ok(&a);
    let headers = seen.last();
    let all = |name: &str| -> Vec<&str> {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    };
    assert_eq!(all("x-team"), ["core-41"], "the step's header wins");
    assert_eq!(all("traceparent"), [propagation[0].1]);
    assert_eq!(all("authorization"), ["Bearer s3cret-token"]);
    assert!(all("user-agent")[0].starts_with("waymark/"));
    assert_eq!(all("host"), [addr.to_string()]);
    // The summary shows what was sent, credentials masked.
    let summary = &a.request.as_ref().unwrap().headers;
    let get = |name: &str| {
        summary
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("authorization"), Some("***"));
    assert_eq!(get("upgrade"), Some("websocket"));
    assert_eq!(get("traceparent"), Some(propagation[0].1));
}

#[tokio::test]
async fn urls_must_be_ws_or_wss() {
    for url in [
        "http://127.0.0.1:1/x",
        "ws://",
        "ws://u:p@127.0.0.1:1/",
        "{{ nope }}",
    ] {
        let a = run(&step(url, Vec::new())).await;
        assert_failed(&a, FailureClass::Template);
        assert!(a.facts.connected.is_none(), "{url}: nothing was sent");
    }
}

/// A rustls server with a fresh self-signed certificate for 127.0.0.1 that offers h2 and
/// http/1.1, then speaks WebSocket like [`ws_peer`].
async fn wss_peer() -> SocketAddr {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let acceptor =
        crate::step::test_support::tls_acceptor(cert.der().clone(), &key, &[b"h2", b"http/1.1"]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
                    serve_ws(tls, Seen::default()).await;
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn wss_uses_the_shared_tls_path_with_http1_alpn() {
    let addr = wss_peer().await;
    let mut s = step(
        &format!("wss://{addr}/echo"),
        vec![hello(), close(Some(1000))],
    );
    let a = run(&s).await;
    let msg = assert_failed(&a, FailureClass::Tls);
    assert!(a.actions.is_empty(), "{msg}");

    s.insecure_skip_verify = true;
    let a = passed(&s).await;
    assert!(a.timings.tls.is_some() && a.timings.handshake.is_some());
    assert!(a.facts.certificate_expiration_ms.unwrap() > 0);
    assert_eq!(a.facts.certificate_sans.as_deref(), Some("127.0.0.1"));
    assert!(a.facts.certificate_subject.is_some() && a.facts.certificate_issuer.is_some());
}
