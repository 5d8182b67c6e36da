//! One trace from the caller through the shop, its queries and the payments service.

use super::*;

#[tokio::test]
async fn one_trace_from_the_caller_through_the_shop_its_queries_and_payments() {
    let d = demo().await;
    let cart = d.cart(2, 1).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller = SpanId::from_hex("00f067aa0ba902b7").unwrap();
    let traceparent = format!("00-{trace_id}-{caller}-01");
    let base = d.target.base_url();
    let body = json!({ "cart_id": cart });
    let placed = d
        .send(
            &base,
            Method::POST,
            "/api/orders",
            Some(body),
            Some(&traceparent),
        )
        .await;
    assert_eq!(placed.status, 201, "{}", placed.body);
    // A malformed traceparent starts a trace of its own.
    let bad = "00-XYZ-00f067aa0ba902b7-01";
    d.send(&base, Method::GET, "/health", None, Some(bad)).await;
    let (shop_spans, payment_spans) = d.spans().await;

    let shop = in_trace(&shop_spans, trace_id);
    let server = *shop
        .iter()
        .find(|s| s.span_kind == SpanKind::Server)
        .unwrap();
    assert_eq!(server.name, "POST /api/orders");
    assert_eq!(server.parent_span_id, caller);
    assert!(server.parent_span_is_remote);
    for (key, value) in [
        ("http.request.method", Attr::from("POST")),
        ("http.route", Attr::from("/api/orders")),
        ("url.path", Attr::from("/api/orders")),
        ("http.response.status_code", Attr::I64(201)),
    ] {
        assert_eq!(attr(server, key), Some(&value), "{key}");
    }
    assert_eq!(server.status, Status::Unset);
    let server_id = server.span_context.span_id();

    let mut queries: Vec<&str> = shop
        .iter()
        .filter(|s| is_db(s) && s.parent_span_id == server_id)
        .map(|s| s.name.as_ref())
        .collect();
    queries.sort();
    assert_eq!(queries, ["INSERT orders", "SELECT carts", "SELECT tokens"]);
    let insert = shop.iter().find(|s| s.name == "INSERT orders").unwrap();
    assert_eq!(
        attr(insert, "db.operation.name"),
        Some(&Attr::from("INSERT"))
    );
    assert_eq!(
        attr(insert, "db.query.text"),
        Some(&Attr::from(
            "INSERT INTO orders (cart_id, status, charge_id) VALUES (?, ?, ?) RETURNING id"
        ))
    );
    assert_eq!(insert.span_kind, SpanKind::Client);

    let client = *shop.iter().find(|s| s.name == "POST /charge").unwrap();
    assert_eq!(client.span_kind, SpanKind::Client);
    assert_eq!(client.parent_span_id, server_id);
    assert_eq!(
        attr(client, "http.response.status_code"),
        Some(&Attr::I64(201))
    );

    let payments = in_trace(&payment_spans, trace_id);
    assert_eq!(payments.len(), 1, "{payments:#?}");
    assert_eq!(payments[0].name, "POST /charge");
    assert_eq!(payments[0].span_kind, SpanKind::Server);
    assert_eq!(payments[0].parent_span_id, client.span_context.span_id());

    let health = shop_spans.iter().find(|s| s.name == "GET /health").unwrap();
    assert_eq!(health.parent_span_id, SpanId::INVALID);
    assert_ne!(health.span_context.trace_id().to_string(), trace_id);

    // Statements carry placeholders, never what the shopper sent.
    let texts: Vec<String> = shop_spans
        .iter()
        .filter_map(|s| attr(s, "db.query.text").map(|v| v.to_string()))
        .collect();
    assert!(
        texts.iter().any(|t| t.starts_with("INSERT INTO tokens")),
        "{texts:?}"
    );
    for text in &texts {
        for secret in [DEMO_PASSWORD, d.token.as_str(), "12900", "cart-"] {
            assert!(!text.contains(secret), "{text} contains {secret}");
        }
    }
}
