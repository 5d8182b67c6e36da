//! The demo shop's HTTP API: login, catalogue, cart, orders, a live order feed over
//! WebSocket ([`super::feed`]), and a "payments" dependency.
//!
//! State is in memory; tokens are random per login; every route but login and health needs
//! `Authorization: Bearer <token>` (the [`Authorized`] extractor). An order is `confirmed`
//! when placed and `shipped` [`SHIP_AFTER`] later.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::feed::{self, Feed};

pub const DEMO_USER: &str = "ada";
pub const DEMO_PASSWORD: &str = "correct-horse-battery-staple";

#[derive(Default)]
struct Shop {
    tokens: HashSet<String>,
    carts: BTreeMap<u64, Vec<(u64, u32)>>,
    orders: BTreeMap<u64, Order>,
    next_id: u64,
    feed: Feed,
}

struct Order {
    cart_id: u64,
    status: &'static str,
}

/// How long after it is placed an order ships.
const SHIP_AFTER: Duration = Duration::from_millis(500);

impl Shop {
    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

type AppState = Arc<Mutex<Shop>>;

const CATALOGUE: &[(u64, &str, u32)] = &[
    (1, "walking boots", 8900),
    (2, "rain jacket", 12900),
    (3, "trail map", 900),
    (4, "water bottle", 1500),
];

pub fn router() -> Router {
    let state = AppState::default();
    Router::new()
        .route("/health", get(|| async { Json(json!({ "status": "UP" })) }))
        .route("/api/login", post(login))
        .route("/api/items", get(items))
        .route("/api/cart", post(add_to_cart))
        .route("/api/orders", post(place_order))
        .route("/api/orders/{id}", get(get_order).delete(cancel_order))
        .route("/api/orders/feed", get(order_feed))
        .route(
            "/payments/health",
            get(|| async { Json(json!({ "status": "ok", "provider": "demo-pay" })) }),
        )
        .with_state(state)
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// Proof that the request carried a token issued by `/api/login`.
struct Authorized;

impl FromRequestParts<AppState> for Authorized {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match token {
            Some(t) if state.lock().expect("shop lock").tokens.contains(t) => Ok(Authorized),
            _ => Err(error(StatusCode::UNAUTHORIZED, "missing or bad token")),
        }
    }
}

#[derive(Deserialize)]
struct Login {
    user: String,
    password: String,
}

async fn login(State(state): State<AppState>, Json(body): Json<Login>) -> Response {
    if body.user != DEMO_USER || body.password != DEMO_PASSWORD {
        return error(StatusCode::UNAUTHORIZED, "bad credentials");
    }
    let token = uuid::Uuid::new_v4().simple().to_string();
    state
        .lock()
        .expect("shop lock")
        .tokens
        .insert(token.clone());
    Json(json!({ "auth": { "token": token, "user": { "id": 7, "name": "Ada" } } })).into_response()
}

#[derive(Deserialize)]
struct Search {
    q: Option<String>,
}

async fn items(_: Authorized, Query(search): Query<Search>) -> Json<Value> {
    let q = search.q.unwrap_or_default().to_lowercase();
    let items: Vec<Value> = CATALOGUE
        .iter()
        .filter(|(_, name, _)| name.contains(&q))
        .map(|(id, name, price)| json!({ "id": id, "name": name, "price_cents": price }))
        .collect();
    Json(json!({ "query": q, "items": items }))
}

#[derive(Deserialize)]
struct AddToCart {
    item_id: u64,
    qty: u32,
}

async fn add_to_cart(
    _: Authorized,
    State(state): State<AppState>,
    Json(body): Json<AddToCart>,
) -> Response {
    if !CATALOGUE.iter().any(|(id, _, _)| *id == body.item_id) || body.qty == 0 {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown item or zero quantity",
        );
    }
    let mut shop = state.lock().expect("shop lock");
    let id = shop.next_id();
    shop.carts.insert(id, vec![(body.item_id, body.qty)]);
    (StatusCode::CREATED, Json(json!({ "cart_id": id }))).into_response()
}

#[derive(Deserialize)]
struct PlaceOrder {
    cart_id: u64,
}

async fn place_order(
    _: Authorized,
    State(state): State<AppState>,
    Json(body): Json<PlaceOrder>,
) -> Response {
    let mut shop = state.lock().expect("shop lock");
    if !shop.carts.contains_key(&body.cart_id) {
        return error(StatusCode::NOT_FOUND, "no such cart");
    }
    let id = shop.next_id();
    let order = Order {
        cart_id: body.cart_id,
        status: "confirmed",
    };
    shop.orders.insert(id, order);
    shop.feed.publish(id, "confirmed");
    tokio::spawn(ship(Arc::clone(&state), id));
    let location = format!("/api/orders/{id}");
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(json!({ "order_id": id, "status": "confirmed" })),
    )
        .into_response()
}

async fn get_order(_: Authorized, State(state): State<AppState>, Path(id): Path<u64>) -> Response {
    match state.lock().expect("shop lock").orders.get(&id) {
        Some(order) => Json(json!({
            "order_id": id,
            "cart_id": order.cart_id,
            "status": order.status,
        }))
        .into_response(),
        None => error(StatusCode::NOT_FOUND, "no such order"),
    }
}

async fn cancel_order(
    _: Authorized,
    State(state): State<AppState>,
    Path(id): Path<u64>,
) -> Response {
    let mut shop = state.lock().expect("shop lock");
    match shop.orders.remove(&id) {
        Some(_) => {
            shop.feed.publish(id, "cancelled");
            StatusCode::NO_CONTENT.into_response()
        }
        None => error(StatusCode::NOT_FOUND, "no such order"),
    }
}

/// Ships the order [`SHIP_AFTER`] it was placed, unless it was cancelled meanwhile.
async fn ship(state: AppState, id: u64) {
    tokio::time::sleep(SHIP_AFTER).await;
    let mut guard = state.lock().expect("shop lock");
    let shop = &mut *guard;
    if let Some(order) = shop.orders.get_mut(&id) {
        order.status = "shipped";
        shop.feed.publish(id, "shipped");
    }
}

/// The live order feed: the current status of every order, then each change.
async fn order_feed(
    _: Authorized,
    State(state): State<AppState>,
    ws: WebSocketUpgrade,
) -> Response {
    let (snapshot, updates) = {
        let shop = state.lock().expect("shop lock");
        let snapshot = shop
            .orders
            .iter()
            .map(|(id, order)| feed::order_event(*id, order.status))
            .collect();
        (snapshot, shop.feed.subscribe())
    };
    feed::upgrade(ws, snapshot, updates)
}
