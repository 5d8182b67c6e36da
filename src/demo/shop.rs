//! The demo shop's HTTP API: login, catalogue, cart, orders (paid through the payments
//! service, [`super::payments`]) and a live order feed over WebSocket ([`super::feed`]).
//!
//! Everything the shop knows is in its SQLite database ([`super::db`]), every query through
//! [`Db::sql`] so that it shows in the request's trace. Tokens are random per login; every
//! route but login and health needs `Authorization: Bearer <token>` (the [`Authorized`]
//! extractor). An order is `confirmed` when placed and `shipped` [`SHIP_AFTER`] later.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt as _, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::db::Db;
use super::faults::Faults;
use super::order_stream::{self, OrderStream};
use super::payments::PaymentsClient;
use super::trace::RequestSpan;

pub const DEMO_USER: &str = "ada";
pub const DEMO_PASSWORD: &str = "correct-horse-battery-staple";
/// The demo user's id, as `/api/login` and the feed's hello announce it.
const USER_ID: i64 = 7;

/// How long after it is placed an order ships.
const SHIP_AFTER: Duration = Duration::from_millis(500);

/// What one recommendations query costs, see [`super::db::Statement::cost`]: enough for the
/// N+1 fault's extra queries to add up to something a trace and a timing show.
pub(super) const RECOMMENDATION_COST: Duration = Duration::from_millis(6);

/// The shop's state, shared by every request.
pub(super) struct Shop {
    pub db: Db,
    pub orders: OrderStream,
    pub faults: Faults,
    pub payments: PaymentsClient,
    /// For the spans of work done after the request (shipping).
    pub tracer: SdkTracer,
    /// Cancelled when the shop stops: ends background work and feed connections.
    pub stop: CancellationToken,
}

type AppState = Arc<Shop>;

/// The shop's routes with the fault admin merged in (the caller adds the tracing layer).
pub(super) fn router(shop: AppState) -> Router {
    let faults = shop.faults.clone();
    Router::new()
        .route("/health", get(|| async { Json(json!({ "status": "UP" })) }))
        .route("/api/login", post(login))
        .route("/api/items", get(items))
        .route("/api/cart", post(add_to_cart))
        .route("/api/orders", post(place_order))
        .route("/api/orders/{id}", get(get_order).delete(cancel_order))
        .route("/api/orders/feed", get(order_feed))
        .with_state(shop)
        .merge(super::faults::router(faults))
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// A request that could not be served for the shop's own reasons: logged, and an opaque 500
/// for the client.
struct Failure(Response);

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Failure {
        tracing::error!(error = %e, "demo shop database error");
        Failure(error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"))
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        self.0
    }
}

type Answer = Result<Response, Failure>;

/// Proof that the request carried a token issued by `/api/login`, with what every authorized
/// handler needs: the shop and the request's trace context (to pass to [`Db::sql`]).
struct Authorized {
    shop: AppState,
    cx: Context,
}

impl FromRequestParts<AppState> for Authorized {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, shop: &AppState) -> Result<Self, Response> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string);
        let Some(token) = token else {
            return Err(error(StatusCode::UNAUTHORIZED, "missing or bad token"));
        };
        let Ok(RequestSpan(cx)) = RequestSpan::from_request_parts(parts, shop).await;
        let user: Option<(i64,)> = shop
            .db
            .sql(&cx, "SELECT user_id FROM tokens WHERE token = ?")
            .bind(token)
            .fetch_optional(shop.db.pool())
            .await
            .map_err(|e| Failure::from(e).0)?;
        match user {
            Some(_) => Ok(Authorized {
                shop: Arc::clone(shop),
                cx,
            }),
            None => Err(error(StatusCode::UNAUTHORIZED, "missing or bad token")),
        }
    }
}

#[derive(Deserialize)]
struct Login {
    user: String,
    password: String,
}

async fn login(
    State(shop): State<AppState>,
    RequestSpan(cx): RequestSpan,
    Json(body): Json<Login>,
) -> Answer {
    if body.user != DEMO_USER || body.password != DEMO_PASSWORD {
        return Ok(error(StatusCode::UNAUTHORIZED, "bad credentials"));
    }
    let token = uuid::Uuid::new_v4().simple().to_string();
    shop.db
        .sql(&cx, "INSERT INTO tokens (token, user_id) VALUES (?, ?)")
        .bind(token.clone())
        .bind(USER_ID)
        .execute(shop.db.pool())
        .await?;
    let user = json!({ "id": USER_ID, "name": "Ada" });
    Ok(Json(json!({ "auth": { "token": token, "user": user } })).into_response())
}

#[derive(Deserialize)]
struct Search {
    q: Option<String>,
}

async fn items(Authorized { shop, cx }: Authorized, Query(search): Query<Search>) -> Answer {
    let q = search.q.unwrap_or_default().to_lowercase();
    let latency = Duration::from_millis(shop.faults.get().search_latency_ms);
    let rows: Vec<(i64, String, i64)> = shop
        .db
        .sql(
            &cx,
            "SELECT id, name, price_cents FROM items WHERE instr(lower(name), ?) > 0 ORDER BY id",
        )
        .bind(q.clone())
        .cost(latency)
        .fetch_all(shop.db.pool())
        .await?;
    let items: Vec<Value> = rows
        .into_iter()
        .map(|(id, name, price)| json!({ "id": id, "name": name, "price_cents": price }))
        .collect();
    Ok(Json(json!({ "query": q, "items": items })).into_response())
}

#[derive(Deserialize)]
struct AddToCart {
    item_id: i64,
    qty: i64,
}

async fn add_to_cart(Authorized { shop, cx }: Authorized, Json(body): Json<AddToCart>) -> Answer {
    let unknown = || {
        error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown item or zero quantity",
        )
    };
    if body.qty <= 0 {
        return Ok(unknown());
    }
    let item: Option<(i64,)> = shop
        .db
        .sql(&cx, "SELECT id FROM items WHERE id = ?")
        .bind(body.item_id)
        .fetch_optional(shop.db.pool())
        .await?;
    if item.is_none() {
        return Ok(unknown());
    }
    let mut tx = shop.db.pool().begin().await?;
    let cart: Option<(i64,)> = shop
        .db
        .sql(&cx, "INSERT INTO carts (user_id) VALUES (?) RETURNING id")
        .bind(USER_ID)
        .fetch_optional(&mut *tx)
        .await?;
    let (cart_id,) = cart.ok_or(sqlx::Error::RowNotFound)?;
    shop.db
        .sql(
            &cx,
            "INSERT INTO cart_lines (cart_id, item_id, qty) VALUES (?, ?, ?)",
        )
        .bind(cart_id)
        .bind(body.item_id)
        .bind(body.qty)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(json!({ "cart_id": cart_id }))).into_response())
}

#[derive(Deserialize)]
struct PlaceOrder {
    cart_id: i64,
}

/// Charges the cart's total, then records the order: an order exists only once paid.
async fn place_order(Authorized { shop, cx }: Authorized, Json(body): Json<PlaceOrder>) -> Answer {
    let cart: Option<(i64, i64)> = shop
        .db
        .sql(
            &cx,
            "SELECT c.id, COALESCE(SUM(l.qty * i.price_cents), 0) FROM carts c \
             LEFT JOIN cart_lines l ON l.cart_id = c.id LEFT JOIN items i ON i.id = l.item_id \
             WHERE c.id = ? GROUP BY c.id",
        )
        .bind(body.cart_id)
        .fetch_optional(shop.db.pool())
        .await?;
    let Some((cart_id, amount_cents)) = cart else {
        return Ok(error(StatusCode::NOT_FOUND, "no such cart"));
    };
    let reference = format!("cart-{cart_id}");
    let charge_id = match shop.payments.charge(&cx, amount_cents, &reference).await {
        Ok(id) => id,
        Err(e) => {
            tracing::warn!(cart_id, error = %e, "demo shop: payment failed");
            let message = format!("payment failed: {e}");
            return Ok(error(StatusCode::BAD_GATEWAY, &message));
        }
    };
    let order: Option<(i64,)> = shop
        .db
        .sql(
            &cx,
            "INSERT INTO orders (cart_id, status, charge_id) VALUES (?, ?, ?) RETURNING id",
        )
        .bind(cart_id)
        .bind("confirmed")
        .bind(charge_id)
        .fetch_optional(shop.db.pool())
        .await?;
    let (id,) = order.ok_or(sqlx::Error::RowNotFound)?;
    shop.orders.publish(id, "confirmed");
    tokio::spawn(ship(Arc::clone(&shop), id, cx));
    let location = format!("/api/orders/{id}");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(json!({ "order_id": id, "status": "confirmed" })),
    )
        .into_response())
}

async fn get_order(Authorized { shop, cx }: Authorized, Path(id): Path<i64>) -> Answer {
    let order: Option<(i64, String)> = shop
        .db
        .sql(&cx, "SELECT cart_id, status FROM orders WHERE id = ?")
        .bind(id)
        .fetch_optional(shop.db.pool())
        .await?;
    let Some((cart_id, status)) = order else {
        return Ok(error(StatusCode::NOT_FOUND, "no such order"));
    };
    let recommended = if shop.faults.get().n_plus_one {
        recommendations_one_by_one(&shop, &cx, cart_id).await?
    } else {
        recommendations(&shop, &cx, cart_id).await?
    };
    let recommended: Vec<Value> = recommended
        .into_iter()
        .map(|(id, name)| json!({ "id": id, "name": name }))
        .collect();
    Ok(Json(json!({
        "order_id": id,
        "cart_id": cart_id,
        "status": status,
        "recommendations": recommended,
    }))
    .into_response())
}

/// What goes well with the cart's items: one query.
async fn recommendations(
    shop: &Shop,
    cx: &Context,
    cart_id: i64,
) -> Result<Vec<(i64, String)>, sqlx::Error> {
    shop.db
        .sql(
            cx,
            "SELECT DISTINCT i.id, i.name FROM recommendations r \
             JOIN cart_lines l ON l.item_id = r.item_id JOIN items i ON i.id = r.recommended_id \
             WHERE l.cart_id = ? ORDER BY i.id",
        )
        .bind(cart_id)
        .cost(RECOMMENDATION_COST)
        .fetch_all(shop.db.pool())
        .await
}

/// The same answer the N+1 way: the catalogue, then one query per item.
async fn recommendations_one_by_one(
    shop: &Shop,
    cx: &Context,
    cart_id: i64,
) -> Result<Vec<(i64, String)>, sqlx::Error> {
    let items: Vec<(i64,)> = shop
        .db
        .sql(cx, "SELECT id FROM items ORDER BY id")
        .fetch_all(shop.db.pool())
        .await?;
    let mut found: Vec<(i64, String)> = Vec::new();
    for (item_id,) in items {
        let rows: Vec<(i64, String)> = shop
            .db
            .sql(
                cx,
                "SELECT i.id, i.name FROM recommendations r JOIN items i ON i.id = r.recommended_id \
                 WHERE r.item_id = ? AND r.item_id IN (SELECT item_id FROM cart_lines WHERE cart_id = ?)",
            )
            .bind(item_id)
            .bind(cart_id)
            .cost(RECOMMENDATION_COST)
            .fetch_all(shop.db.pool())
            .await?;
        found.extend(rows);
    }
    found.sort();
    found.dedup();
    Ok(found)
}

async fn cancel_order(Authorized { shop, cx }: Authorized, Path(id): Path<i64>) -> Answer {
    let deleted = shop
        .db
        .sql(&cx, "DELETE FROM orders WHERE id = ?")
        .bind(id)
        .execute(shop.db.pool())
        .await?;
    if deleted == 0 {
        return Ok(error(StatusCode::NOT_FOUND, "no such order"));
    }
    shop.orders.publish(id, "cancelled");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Ships the order [`SHIP_AFTER`] it was placed, unless it was cancelled meanwhile, in a span
/// of its own under the request that placed it.
async fn ship(shop: AppState, id: i64, placed: Context) {
    tokio::select! {
        () = tokio::time::sleep(SHIP_AFTER) => {}
        () = shop.stop.cancelled() => return,
    }
    let span = shop
        .tracer
        .span_builder("ship order")
        .with_kind(SpanKind::Internal)
        .with_attributes([KeyValue::new("shop.order.id", id)])
        .start_with_context(&shop.tracer, &placed);
    let cx = placed.with_span(span);
    let shipped = shop
        .db
        .sql(
            &cx,
            "UPDATE orders SET status = ? WHERE id = ? AND status = ?",
        )
        .bind("shipped")
        .bind(id)
        .bind("confirmed")
        .execute(shop.db.pool())
        .await;
    match shipped {
        Ok(1) => shop.orders.publish(id, "shipped"),
        Ok(_) => {}
        Err(e) => {
            tracing::error!(order_id = id, error = %e, "demo shop: cannot ship");
            cx.span().set_status(Status::error(e.to_string()));
        }
    }
    cx.span().end();
}

/// The live order feed: the current status of every order, then each change.
async fn order_feed(Authorized { shop, cx }: Authorized, ws: WebSocketUpgrade) -> Answer {
    // Subscribed before the snapshot is read: a change in between is seen twice, not missed.
    let updates = shop.orders.subscribe();
    let orders: Vec<(i64, String)> = shop
        .db
        .sql(&cx, "SELECT id, status FROM orders ORDER BY id")
        .fetch_all(shop.db.pool())
        .await?;
    let snapshot = orders
        .iter()
        .map(|(id, status)| order_stream::order_event(*id, status))
        .collect();
    Ok(shop.orders.upgrade(ws, snapshot, updates))
}
