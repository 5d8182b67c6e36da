//! The demo shop's order feed, end to end.

use super::*;

fn http_step(method: Method, url: String, token: Option<&str>, body: Option<Value>) -> HttpStep {
    HttpStep {
        method,
        url: t(&url),
        headers: token
            .map(|tk| vec![("Authorization".to_string(), t(&format!("Bearer {tk}")))])
            .unwrap_or_default(),
        query: Vec::new(),
        body: body.map(|b| HttpBody::Json(json_template(b))),
        follow_redirects: false,
        max_redirects: 0,
        max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        insecure_skip_verify: false,
        compressed: true,
    }
}

/// One HTTP request through the project's own executor; returns the JSON body.
async fn call(method: Method, url: String, token: Option<&str>, body: Option<Value>) -> Value {
    let s = http_step(method, url, token, body);
    let (a, _) = run_with(&s, Duration::from_secs(5), &[], &[]).await;
    assert_ok(&a);
    serde_json::from_slice(a.facts.body.as_deref().unwrap_or(b"null")).unwrap_or(Value::Null)
}

/// Puts `qty` of `item_id` in a new cart and orders it; the order as the shop answers it.
async fn place_order(base: &str, token: &str, item_id: u64, qty: u64) -> Value {
    let item = json!({ "item_id": item_id, "qty": qty });
    let url = |path: &str| format!("{base}{path}");
    let cart = call(Method::POST, url("/api/cart"), Some(token), Some(item)).await;
    let cart = json!({ "cart_id": cart["cart_id"] });
    call(Method::POST, url("/api/orders"), Some(token), Some(cart)).await
}

/// The demo shop started on a free port, its base URL and the token of the logged-in shopper.
async fn logged_in_shop() -> (crate::demo::DemoTarget, String, String) {
    let shop = crate::demo::DemoTarget::start(0, &Default::default())
        .await
        .unwrap();
    let base = shop.base_url();
    let login = json!({ "user": crate::demo::DEMO_USER, "password": crate::demo::DEMO_PASSWORD });
    let body = call(Method::POST, format!("{base}/api/login"), None, Some(login)).await;
    let token = body["auth"]["token"].as_str().unwrap().to_string();
    (shop, base, token)
}

#[tokio::test]
async fn demo_feed_announces_a_placed_order() {
    let (_shop, base, token) = logged_in_shop().await;
    let addr = base.replace("http://", "");

    let mut feed = step(
        &format!("ws://{addr}/api/orders/feed"),
        vec![
            expect_within(
                &["[MESSAGE].type == hello", "[MESSAGE].user == 7"],
                Duration::from_secs(1),
            ),
            expect_extract(
                &["[MESSAGE].type == order", "[MESSAGE].status == confirmed"],
                &[("order_id", "[MESSAGE].order_id")],
            ),
            expect(&[
                "[MESSAGE].order_id == {{ order_id }}",
                "[MESSAGE].status == shipped",
            ]),
            send_json(json!({ "type": "ping", "n": "{{ n }}" })),
            expect(&[
                "[MESSAGE].type == pong",
                "[MESSAGE].n == 41",
                "[MESSAGE].echo == true",
            ]),
            close(Some(1000)),
        ],
    );
    feed.headers = vec![("Authorization".into(), t("Bearer {{ token }}"))];
    let vars = [("token", json!(token))];
    // Subscribe, and place an order once the subscription is surely up.
    let subscribed = run_with(&feed, Duration::from_secs(5), &vars, &[]);
    let order = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        place_order(&base, &token, 3, 2).await
    };
    let ((a, _), placed) = tokio::join!(subscribed, order);
    assert_ok(&a);
    assert_eq!(
        a.extracted,
        [("order_id".to_string(), placed["order_id"].clone())]
    );
    assert_eq!(a.facts.messages_received, Some(4));

    // A later subscriber first gets the snapshot: the order, now shipped.
    let later = step(
        &format!("ws://{addr}/api/orders/feed"),
        vec![expect_within(
            &["[MESSAGE].type == order", "[MESSAGE].status == shipped"],
            Duration::from_secs(1),
        )],
    );
    let mut later = later;
    later.headers = feed.headers.clone();
    let (a, _) = run_with(&later, Duration::from_secs(2), &vars, &[]).await;
    assert_ok(&a);

    // Without a token the upgrade is refused.
    feed.headers.clear();
    let (a, _) = run_with(&feed, Duration::from_secs(2), &vars, &[]).await;
    assert_failed_with(&a, FailureClass::Handshake, "401");
}

#[tokio::test]
async fn demo_feed_test_client_sees_cancellation() {
    // A plain tokio-tungstenite client, independent of the executor, checks the feed's wire
    // format (and that a bad token is refused with 401).
    let (_shop, base, token) = logged_in_shop().await;
    let addr = base.replace("http://", "");
    let order = place_order(&base, &token, 1, 1).await;
    let id = order["order_id"].as_u64().unwrap();

    let connect = |token: &str| {
        let request = http::Request::builder()
            .uri(format!("ws://{addr}/api/orders/feed"))
            .header("host", addr.as_str())
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header(
                "sec-websocket-key",
                tokio_tungstenite::tungstenite::handshake::client::generate_key(),
            )
            .header("authorization", format!("Bearer {token}"))
            .body(())
            .unwrap();
        let addr = addr.clone();
        async move {
            let tcp = TcpStream::connect(addr.as_str()).await.unwrap();
            tokio_tungstenite::client_async(request, tcp).await
        }
    };
    assert!(connect("wrong").await.is_err());
    let (mut ws, _) = connect(&token).await.unwrap();
    let mut next = async || -> Value {
        let message = tokio::time::timeout(Duration::from_secs(2), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        serde_json::from_str(message.to_text().unwrap()).unwrap()
    };
    assert_eq!(next().await, json!({ "type": "hello", "user": 7 }));
    let snapshot = next().await;
    assert_eq!(
        (snapshot["type"].as_str(), snapshot["order_id"].as_u64()),
        (Some("order"), Some(id))
    );
    call(
        Method::DELETE,
        format!("{base}/api/orders/{id}"),
        Some(&token),
        None,
    )
    .await;
    // The order may ship before it is cancelled.
    let mut update = next().await;
    if update["status"] == "shipped" {
        update = next().await;
    }
    assert_eq!(
        update,
        json!({ "type": "order", "order_id": id, "status": "cancelled" })
    );
}
