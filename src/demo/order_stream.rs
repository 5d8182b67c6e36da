//! The shop's live order feed: `GET /api/orders/feed` upgrades to a WebSocket that sends
//!
//! 1. `{"type":"hello","user":7}`,
//! 2. a snapshot: one `{"type":"order","order_id":N,"status":S}` per existing order,
//! 3. then every change as it happens, in the same shape (`confirmed` when an order is
//!    placed, `shipped` a moment later, `cancelled` when it is cancelled),
//!
//! and answers a client's `{"type":"ping","n":N}` with `{"type":"pong","n":N,"echo":true}`.
//! Changes travel on a broadcast channel held in the shop's state ([`OrderStream`]).
//!
//! While the `feed_stalled` fault is on, the feed goes silent the way a stuck consumer does:
//! nothing is published, a connection opened meanwhile never sends anything (not even the
//! hello), and an open one sends nothing until the fault is cleared (what happened meanwhile
//! is lost). WebSocket pings are still answered: the WebSocket layer does that on its own.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;

use super::faults::Faults;

/// Updates that no subscriber has read yet, per subscriber; a slower one skips ahead.
const BACKLOG: usize = 64;

/// The sending side of the feed; every subscriber gets its own receiver.
pub(super) struct OrderStream {
    updates: broadcast::Sender<String>,
    faults: Faults,
    /// Ends every connection when the shop stops.
    stop: CancellationToken,
}

impl OrderStream {
    pub fn new(faults: Faults, stop: CancellationToken) -> OrderStream {
        OrderStream {
            updates: broadcast::channel(BACKLOG).0,
            faults,
            stop,
        }
    }

    /// Announces an order's new status to every subscriber (none listening is fine).
    pub fn publish(&self, order_id: i64, status: &str) {
        if !self.faults.get().feed_stalled {
            let _ = self.updates.send(order_event(order_id, status));
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.updates.subscribe()
    }

    /// Completes the upgrade: the subscriber gets the hello, `snapshot`, then `updates`.
    pub fn upgrade(
        &self,
        ws: WebSocketUpgrade,
        snapshot: Vec<String>,
        updates: broadcast::Receiver<String>,
    ) -> Response {
        let (faults, stop) = (self.faults.clone(), self.stop.clone());
        ws.on_upgrade(move |socket| async move {
            tokio::select! {
                () = serve(socket, snapshot, updates, faults) => {}
                () = stop.cancelled() => {}
            }
        })
    }
}

/// The feed's message for one order's status.
pub(super) fn order_event(order_id: i64, status: &str) -> String {
    json!({ "type": "order", "order_id": order_id, "status": status }).to_string()
}

async fn serve(
    mut socket: WebSocket,
    snapshot: Vec<String>,
    mut updates: broadcast::Receiver<String>,
    faults: Faults,
) {
    if faults.get().feed_stalled {
        // Stuck from the start: read (so that pings are answered and a close ends it), say
        // nothing.
        while let Some(Ok(_)) = socket.recv().await {}
        return;
    }
    let hello = json!({ "type": "hello", "user": 7 }).to_string();
    for text in std::iter::once(hello).chain(snapshot) {
        if socket.send(Message::Text(text.into())).await.is_err() {
            return;
        }
    }
    loop {
        let reply = tokio::select! {
            update = updates.recv() => match update {
                Ok(text) => text,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => match pong(text.as_str()) {
                    Some(pong) => pong,
                    None => continue,
                },
                Some(Ok(Message::Close(_))) => break,
                // Pings are answered by the WebSocket layer itself.
                Some(Ok(_)) => continue,
                None | Some(Err(_)) => return,
            },
        };
        if faults.get().feed_stalled {
            continue;
        }
        if socket.send(Message::Text(reply.into())).await.is_err() {
            return;
        }
    }
    // The client closed: reading on sends the close reply and ends once it is out.
    while let Some(Ok(_)) = socket.recv().await {}
}

/// `{"type":"pong","n":N,"echo":true}` for a `{"type":"ping","n":N}`; other text is ignored.
fn pong(text: &str) -> Option<String> {
    let message: Value = serde_json::from_str(text).ok()?;
    if message.get("type")? != "ping" {
        return None;
    }
    let n = message.get("n").cloned().unwrap_or(Value::Null);
    Some(json!({ "type": "pong", "n": n, "echo": true }).to_string())
}
