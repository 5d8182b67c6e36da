//! The demo target on real sockets: the shop, its payments service, the faults and the spans
//! both export, captured in memory.

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry::{Key, Value as Attr};
use opentelemetry_sdk::trace::SpanData;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::*;
use crate::telemetry::test_support::Collect;

mod anomaly;
mod faults;
mod trace;

/// A running target, its captured spans and a logged-in shopper.
struct Demo {
    target: DemoTarget,
    shop: (Telemetry, Collect),
    payments: (Telemetry, Collect),
    http: reqwest::Client,
    token: String,
}

/// What the shop answered.
struct Answer {
    status: u16,
    body: Value,
    location: Option<String>,
    elapsed: Duration,
}

fn capture(service: &str) -> (Telemetry, Collect) {
    let collect = Collect::default();
    let config = TelemetryConfig {
        service_name: Some(service.to_string()),
        ..TelemetryConfig::default()
    };
    (Telemetry::with_exporter(collect.clone(), &config), collect)
}

async fn demo() -> Demo {
    let (shop, payments) = (capture(SHOP_SERVICE), capture(PAYMENTS_SERVICE));
    let target = DemoTarget::start_with(0, shop.0.clone(), payments.0.clone())
        .await
        .unwrap();
    let mut demo = Demo {
        target,
        shop,
        payments,
        http: reqwest::Client::new(),
        token: String::new(),
    };
    let login = json!({ "user": DEMO_USER, "password": DEMO_PASSWORD });
    let answer = demo.call(Method::POST, "/api/login", Some(login)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    demo.token = answer.body["auth"]["token"].as_str().unwrap().to_string();
    demo
}

impl Demo {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.send(&self.target.base_url(), method, path, body, None)
            .await
    }

    async fn send(
        &self,
        base: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        traceparent: Option<&str>,
    ) -> Answer {
        let mut request = self
            .http
            .request(method, format!("{base}{path}"))
            .timeout(Duration::from_secs(10));
        if !self.token.is_empty() {
            request = request.bearer_auth(&self.token);
        }
        if let Some(tp) = traceparent {
            request = request.header("traceparent", tp);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let started = Instant::now();
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = response.bytes().await.unwrap();
        Answer {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            location,
            elapsed: started.elapsed(),
        }
    }

    /// A new cart holding `qty` of `item_id`.
    async fn cart(&self, item_id: i64, qty: i64) -> i64 {
        let line = json!({ "item_id": item_id, "qty": qty });
        let answer = self.call(Method::POST, "/api/cart", Some(line)).await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        answer.body["cart_id"].as_i64().unwrap()
    }

    /// Orders one of `item_id`, through a new cart.
    async fn order(&self, item_id: i64) -> Answer {
        self.place(self.cart(item_id, 1).await).await
    }

    /// Orders what cart `cart_id` holds.
    async fn place(&self, cart_id: i64) -> Answer {
        let cart = json!({ "cart_id": cart_id });
        self.call(Method::POST, "/api/orders", Some(cart)).await
    }

    /// Every span either service has finished so far.
    async fn spans(&self) -> (Vec<SpanData>, Vec<SpanData>) {
        self.shop.0.flush().await;
        self.payments.0.flush().await;
        let shop = self.shop.1.0.lock().unwrap().clone();
        let payments = self.payments.1.0.lock().unwrap().clone();
        (shop, payments)
    }

    async fn feed(&self) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        let url = format!("ws://{}/api/orders/feed", self.target.shop_addr);
        let mut request = url.into_client_request().unwrap();
        let bearer = format!("Bearer {}", self.token).parse().unwrap();
        request.headers_mut().insert("authorization", bearer);
        let tcp = TcpStream::connect(self.target.shop_addr).await.unwrap();
        let (ws, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(tcp))
            .await
            .unwrap();
        ws
    }

    async fn orders_in_db(&self) -> i64 {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM orders")
            .fetch_one(self.target.state.db.pool())
            .await
            .unwrap();
        n
    }
}

/// The next text message as JSON, or `None` when nothing came `within`.
async fn next_message(
    ws: &mut WebSocketStream<MaybeTlsStream<TcpStream>>,
    within: Duration,
) -> Option<Value> {
    let message = tokio::time::timeout(within, ws.next()).await.ok()?;
    let message = message.unwrap().unwrap();
    Some(serde_json::from_str(message.to_text().unwrap()).unwrap())
}

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Attr> {
    span.attributes
        .iter()
        .find(|kv| kv.key == Key::new(key.to_string()))
        .map(|kv| &kv.value)
}

fn is_db(span: &SpanData) -> bool {
    attr(span, "db.system.name") == Some(&Attr::from("sqlite"))
}

fn in_trace<'a>(spans: &'a [SpanData], trace_id: &str) -> Vec<&'a SpanData> {
    spans
        .iter()
        .filter(|s| s.span_context.trace_id().to_string() == trace_id)
        .collect()
}

#[tokio::test]
async fn a_shopper_buys_reads_back_and_cancels_and_it_is_all_in_sqlite() {
    let d = demo().await;
    let base = d.target.base_url();
    let bad = json!({ "user": DEMO_USER, "password": "guess" }).to_string();
    let refused = d
        .http
        .post(format!("{base}/api/login"))
        .header("content-type", "application/json")
        .body(bad)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let anonymous = d
        .http
        .get(format!("{base}/api/items"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        d.call(Method::GET, "/health", None).await.body,
        json!({ "status": "UP" })
    );

    let rain = d.call(Method::GET, "/api/items?q=RaIn", None).await;
    assert_eq!(rain.status, 200);
    assert_eq!(
        rain.body,
        json!({ "query": "rain", "items": [{ "id": 2, "name": "rain jacket", "price_cents": 12900 }] })
    );
    let all = d.call(Method::GET, "/api/items", None).await.body;
    let names: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["walking boots", "rain jacket", "trail map", "water bottle"]
    );

    for bad in [
        json!({ "item_id": 99, "qty": 1 }),
        json!({ "item_id": 2, "qty": 0 }),
    ] {
        assert_eq!(
            d.call(Method::POST, "/api/cart", Some(bad)).await.status,
            422
        );
    }
    let cart_id = d.cart(2, 1).await;
    assert_eq!(d.place(cart_id + 100).await.status, 404);

    let placed = d.place(cart_id).await;
    assert_eq!(placed.status, 201, "{}", placed.body);
    assert_eq!(placed.body["status"], "confirmed");
    let id = placed.body["order_id"].as_i64().unwrap();
    let path = format!("/api/orders/{id}");
    assert_eq!(placed.location.as_deref(), Some(path.as_str()));

    let read = d.call(Method::GET, &path, None).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body["order_id"], id);
    assert_eq!(read.body["cart_id"], cart_id);
    assert_eq!(read.body["status"], "confirmed");
    assert_eq!(
        read.body["recommendations"],
        json!([{ "id": 1, "name": "walking boots" }])
    );

    // What the shop answered is what its database holds.
    let pool = d.target.state.db.pool();
    let (status, charge): (String, String) =
        sqlx::query_as("SELECT status, charge_id FROM orders WHERE id = ?")
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(status, "confirmed");
    assert!(charge.starts_with("ch_"), "{charge}");
    let lines: Vec<(i64, i64)> =
        sqlx::query_as("SELECT item_id, qty FROM cart_lines WHERE cart_id = ?")
            .bind(cart_id)
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(lines, [(2, 1)]);

    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let status = d.call(Method::GET, &path, None).await.body["status"].clone();
        if status == "shipped" {
            break;
        }
        assert_eq!(status, "confirmed");
        assert!(Instant::now() < deadline, "never shipped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    assert_eq!(d.call(Method::DELETE, &path, None).await.status, 204);
    assert_eq!(d.call(Method::GET, &path, None).await.status, 404);
    assert_eq!(d.call(Method::DELETE, &path, None).await.status, 404);
    assert_eq!(d.orders_in_db().await, 0);
    d.target.shutdown().await;
}

#[tokio::test]
async fn two_targets_share_neither_data_nor_faults() {
    let a = demo().await;
    let b = demo().await;
    assert_ne!(a.target.base_url(), b.target.base_url());
    let placed = a.order(2).await;
    assert_eq!(placed.status, 201);
    let path = placed.location.unwrap();
    assert_eq!(b.call(Method::GET, &path, None).await.status, 404);
    assert_eq!(b.orders_in_db().await, 0);
    let a_token_at_b = b
        .http
        .get(format!("{}/api/items", b.target.base_url()))
        .bearer_auth(&a.token)
        .send()
        .await
        .unwrap();
    assert_eq!(a_token_at_b.status(), 401);

    a.target.faults().set(FaultSet {
        payment_error_rate: 1.0,
        ..FaultSet::default()
    });
    assert_eq!(a.order(2).await.status, 502);
    assert_eq!(b.order(2).await.status, 201);
}

#[tokio::test]
async fn a_taken_port_is_an_error_and_shutdown_stops_both_services() {
    let d = demo().await;
    let port = d.target.shop_addr.port();
    let taken = DemoTarget::start(port, &TelemetryConfig::default()).await;
    assert!(
        matches!(taken, Err(DemoError::Bind { .. })),
        "{:?}",
        taken.err()
    );

    let (shop, payments) = (d.target.shop_addr, d.target.payments_addr);
    d.target.shutdown().await;
    assert!(TcpStream::connect(shop).await.is_err());
    assert!(TcpStream::connect(payments).await.is_err());
}

#[tokio::test]
async fn an_unreachable_payments_service_fails_the_order_with_502() {
    let mut d = demo().await;
    let payments = d.target.tasks.pop().unwrap();
    payments.abort();
    let _ = payments.await;
    let refused = d.order(1).await;
    assert_eq!(refused.status, 502, "{}", refused.body);
    let error = refused.body["error"].as_str().unwrap();
    assert!(
        error.starts_with("payment failed: payments unreachable"),
        "{error}"
    );
    assert_eq!(d.orders_in_db().await, 0);
}

#[test]
fn span_names_are_operation_and_table() {
    for (sql, expected) in [
        ("SELECT id FROM items WHERE id = ?", ("SELECT", "items")),
        (
            "INSERT INTO carts (user_id) VALUES (?)",
            ("INSERT", "carts"),
        ),
        ("UPDATE orders SET status = ?", ("UPDATE", "orders")),
        ("DELETE FROM orders WHERE id = ?", ("DELETE", "orders")),
        (
            "SELECT COUNT(x) FROM\n  cart_lines l",
            ("SELECT", "cart_lines"),
        ),
    ] {
        assert_eq!(db::target(sql), expected, "{sql}");
    }
}
