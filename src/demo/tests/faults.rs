//! Each fault, seen from outside: by timing, status codes, the feed and the spans.

use super::*;

#[tokio::test]
async fn search_latency_is_added_to_every_search_and_goes_away() {
    let d = demo().await;
    d.target.faults().set(FaultSet {
        search_latency_ms: 200,
        ..FaultSet::default()
    });
    let slow = d.call(Method::GET, "/api/items?q=map", None).await;
    assert_eq!(slow.status, 200);
    assert_eq!(slow.body["items"][0]["name"], "trail map");
    assert!(
        slow.elapsed >= Duration::from_millis(200),
        "{:?}",
        slow.elapsed
    );

    d.target.faults().set(FaultSet::default());
    let fast = d.call(Method::GET, "/api/items?q=map", None).await;
    assert!(
        fast.elapsed < Duration::from_millis(200),
        "{:?}",
        fast.elapsed
    );

    // The trace shows where the time went: in the catalogue query.
    let (spans, _) = d.spans().await;
    let mut searches: Vec<Duration> = spans
        .iter()
        .filter(|s| s.name == "SELECT items")
        .map(|s| s.end_time.duration_since(s.start_time).unwrap())
        .collect();
    searches.sort();
    assert_eq!(searches.len(), 2);
    assert!(searches[0] < Duration::from_millis(200), "{searches:?}");
    assert!(searches[1] >= Duration::from_millis(200), "{searches:?}");
}

#[tokio::test]
async fn failing_payments_fail_the_order_with_502_and_create_nothing() {
    let d = demo().await;
    d.target.faults().set(FaultSet {
        payment_error_rate: 1.0,
        ..FaultSet::default()
    });
    for _ in 0..3 {
        let refused = d.order(3).await;
        assert_eq!(refused.status, 502, "{}", refused.body);
        let error = refused.body["error"].as_str().unwrap();
        assert!(error.starts_with("payment failed: "), "{error}");
        assert!(error.contains("503"), "{error}");
    }
    assert_eq!(d.orders_in_db().await, 0);
    let payments = d.target.payments_url();
    let charge = json!({ "amount_cents": 900, "reference": "direct" });
    // A charge straight at the provider, past the shop.
    let charge_directly = || {
        d.send(
            &payments,
            Method::POST,
            "/charge",
            Some(charge.clone()),
            None,
        )
    };
    let direct = charge_directly().await;
    assert_eq!(direct.status, 503);
    assert_eq!(
        direct.body,
        json!({ "error": "payment provider unavailable" })
    );

    let (shop_spans, payment_spans) = d.spans().await;
    let failed = shop_spans
        .iter()
        .find(|s| s.name == "POST /api/orders")
        .unwrap();
    assert_eq!(
        attr(failed, "http.response.status_code"),
        Some(&Attr::I64(502))
    );
    assert!(matches!(failed.status, Status::Error { .. }));
    let refusal = payment_spans
        .iter()
        .find(|s| s.name == "POST /charge")
        .unwrap();
    assert!(matches!(refusal.status, Status::Error { .. }));

    d.target.faults().set(FaultSet::default());
    for _ in 0..5 {
        assert_eq!(d.order(3).await.status, 201);
        let direct = charge_directly().await;
        assert_eq!(direct.status, 201);
        assert_eq!(direct.body["status"], "captured");
    }
    assert_eq!(d.orders_in_db().await, 5);
    let health = d.send(&payments, Method::GET, "/health", None, None).await;
    assert_eq!(
        health.body,
        json!({ "status": "ok", "provider": "demo-pay" })
    );
    assert_eq!(
        d.call(Method::GET, "/payments/health", None).await.status,
        404
    );
}

#[tokio::test]
async fn a_stalled_feed_says_nothing_and_a_healthy_one_announces_orders() {
    let d = demo().await;
    d.target.faults().set(FaultSet {
        feed_stalled: true,
        ..FaultSet::default()
    });
    let mut stalled = d.feed().await;
    assert_eq!(d.order(1).await.status, 201);
    let heard = next_message(&mut stalled, Duration::from_secs(1)).await;
    assert_eq!(heard, None);

    d.target.faults().set(FaultSet::default());
    let mut live = d.feed().await;
    let hello = next_message(&mut live, Duration::from_secs(2)).await;
    assert_eq!(hello, Some(json!({ "type": "hello", "user": 7 })));
    let placed = d.order(4).await;
    let id = placed.body["order_id"].clone();
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = next_message(&mut live, left).await;
        let message = message.expect("the new order is announced within a second");
        if message["order_id"] == id {
            assert_eq!(message["status"], "confirmed");
            break;
        }
    }
}

/// `(answer, DB spans of that request)` for reading `path` in a trace of its own.
async fn read_traced(d: &Demo, path: &str, n: u8) -> (Answer, usize) {
    let trace_id = format!("{:032x}", 0xa000 + u32::from(n));
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let base = d.target.base_url();
    let answer = d
        .send(&base, Method::GET, path, None, Some(&traceparent))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let (spans, _) = d.spans().await;
    let db = in_trace(&spans, &trace_id)
        .into_iter()
        .filter(|s| is_db(s))
        .count();
    (answer, db)
}

#[tokio::test]
async fn n_plus_one_adds_a_query_per_catalogue_item_and_shows_in_time() {
    let d = demo().await;
    let placed = d.order(1).await;
    let path = placed.location.unwrap();
    let (mut fast, mut slow) = (Vec::new(), Vec::new());
    let (mut fast_queries, mut slow_queries) = (0, 0);
    for n in 0..3 {
        d.target.faults().set(FaultSet::default());
        let (answer, queries) = read_traced(&d, &path, 2 * n).await;
        fast.push(answer.elapsed);
        fast_queries = queries;
        let fast_body = answer.body;
        d.target.faults().set(FaultSet {
            n_plus_one: true,
            ..FaultSet::default()
        });
        let (answer, queries) = read_traced(&d, &path, 2 * n + 1).await;
        slow.push(answer.elapsed);
        slow_queries = queries;
        assert_eq!(answer.body["recommendations"], fast_body["recommendations"]);
    }
    assert!(
        slow_queries >= fast_queries + 4,
        "{fast_queries} vs {slow_queries}"
    );
    let (fast, slow) = (fast.iter().min().unwrap(), slow.iter().min().unwrap());
    assert!(*slow >= shop::RECOMMENDATION_COST * 4, "{slow:?}");
    assert!(slow > fast, "{fast:?} vs {slow:?}");
}

#[tokio::test]
async fn faults_round_trip_through_the_admin_api_and_bad_sets_are_refused() {
    let d = demo().await;
    let current = d.call(Method::GET, "/admin/faults", None).await;
    assert_eq!(current.status, 200);
    assert_eq!(
        current.body,
        json!({ "search_latency_ms": 0, "payment_error_rate": 0.0, "feed_stalled": false, "n_plus_one": false })
    );
    let put_faults = |set: Value| d.call(Method::PUT, "/admin/faults", Some(set));
    let set = json!({ "payment_error_rate": 0.5, "n_plus_one": true });
    let put = put_faults(set).await;
    assert_eq!(put.status, 200);
    let expected = FaultSet {
        payment_error_rate: 0.5,
        n_plus_one: true,
        ..FaultSet::default()
    };
    assert_eq!(
        serde_json::from_value::<FaultSet>(put.body).unwrap(),
        expected
    );
    let got = d.call(Method::GET, "/admin/faults", None).await.body;
    assert_eq!(serde_json::from_value::<FaultSet>(got).unwrap(), expected);
    assert_eq!(d.target.faults().get(), expected);

    for bad in [
        json!({ "payment_error_rate": 2 }),
        json!({ "search_latency_ms": 60_001 }),
        json!({ "feed_stall": true }),
        json!({ "search_latency_ms": -1 }),
    ] {
        let refused = put_faults(bad.clone()).await;
        assert_eq!(refused.status, 400, "{bad}");
        assert!(refused.body["error"].is_string(), "{}", refused.body);
    }
    let unknown = put_faults(json!({ "feed_stall": true })).await;
    assert!(
        unknown.body["error"]
            .as_str()
            .unwrap()
            .contains("feed_stall"),
        "{}",
        unknown.body
    );
    let not_json = d
        .http
        .put(format!("{}/admin/faults", d.target.base_url()))
        .body("{ nope")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    // Refused sets changed nothing.
    assert_eq!(d.target.faults().get(), expected);
}
