//! The `websocket:` block of a step and its action script.

use std::collections::BTreeSet;
use std::time::Duration;

use super::super::model::{
    DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_SKIPPED_MESSAGES, WebsocketStep, WsAction, WsPayload,
};
use super::super::yaml::{Node, Value};
use super::checker::{Checker, every};
use super::http::{byte_size, check_url, json, pairs};
use super::{conditions, extract};

const WS_KEYS: &[&str] = &[
    "url",
    "headers",
    "subprotocols",
    "actions",
    "max_message_bytes",
    "max_skipped_messages",
    "insecure_skip_verify",
];
const ACTIONS: &[&str] = &["send", "expect", "expect_none", "ping", "close"];
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// Variables extracted by an `expect` are defined for the actions and steps after it.
pub(super) fn websocket_step(
    c: &mut Checker,
    n: &Node,
    defined: &mut BTreeSet<String>,
) -> Option<WebsocketStep> {
    let f = c.fields(n, "`websocket`", WS_KEYS)?;
    let url = match f.get("url") {
        Some(u) => c
            .template(u, "`websocket.url`", defined)
            .and_then(|t| check_url(c, u, t, "websocket", &["ws", "wss"])),
        None => {
            c.err(n.pos, "`websocket` needs a `url`");
            None
        }
    };
    let headers = f.get("headers").map_or(Some(Vec::new()), |h| {
        pairs(c, h, "`websocket.headers`", defined)
    });
    let subprotocols = match f.get("subprotocols") {
        Some(list) => c.list(list, "`websocket.subprotocols`").map(|items| {
            items
                .iter()
                .filter_map(|i| {
                    let text = c.non_empty_text(i, "a subprotocol")?;
                    c.literal_only(i.pos, &text, "a subprotocol")
                        .then_some(text)
                })
                .collect()
        }),
        None => Some(Vec::new()),
    };
    let actions = match f.get("actions") {
        Some(a) => actions(c, a, defined),
        None => Some(Vec::new()),
    };
    let max_message_bytes = match f.get("max_message_bytes") {
        Some(v) => byte_size(c, v, "`websocket.max_message_bytes`"),
        None => Some(DEFAULT_MAX_MESSAGE_BYTES),
    };
    let max_skipped_messages = match f.get("max_skipped_messages") {
        Some(v) => c
            .uint(v, "`websocket.max_skipped_messages`", 1_000_000)
            .map(|v| v as u32),
        None => Some(DEFAULT_MAX_SKIPPED_MESSAGES),
    };
    let insecure_skip_verify = match f.get("insecure_skip_verify") {
        Some(v) => c.bool(v, "`websocket.insecure_skip_verify`"),
        None => Some(false),
    };
    Some(WebsocketStep {
        url: url?,
        headers: headers?,
        subprotocols: subprotocols?,
        actions: actions?,
        max_message_bytes: max_message_bytes?,
        max_skipped_messages: max_skipped_messages?,
        insecure_skip_verify: insecure_skip_verify?,
    })
}

fn actions(c: &mut Checker, n: &Node, defined: &mut BTreeSet<String>) -> Option<Vec<WsAction>> {
    let items = c.list(n, "`websocket.actions`")?;
    every(items, |item| action(c, item, defined))
}

/// One action: a mapping with exactly one key, the action's name.
fn action(c: &mut Checker, n: &Node, defined: &mut BTreeSet<String>) -> Option<WsAction> {
    let f = c.fields(n, "an action", ACTIONS)?;
    let Value::Map(entries) = &n.value else {
        return None;
    };
    if entries.len() != 1 {
        let msg = format!("an action has exactly one of: {}", ACTIONS.join(", "));
        c.err(n.pos, msg);
        return None;
    }
    let (name, body) = ACTIONS.iter().find_map(|a| f.get(a).map(|b| (*a, b)))?;
    match name {
        "send" => send(c, body, defined).map(WsAction::Send),
        "expect" => {
            let f = c.fields(body, "`expect`", &["conditions", "timeout", "extract"])?;
            let conds = match f.get("conditions") {
                Some(list) => conditions(c, list, defined, "`conditions`"),
                None => {
                    c.err(
                        body.pos,
                        "`expect` needs `conditions` describing the message",
                    );
                    None
                }
            };
            let timeout = optional_duration(c, f.get("timeout"), "`expect.timeout`")?;
            let extract = f
                .get("extract")
                .map_or(Some(Vec::new()), |e| extract(c, e, defined));
            Some(WsAction::Expect {
                conditions: conds?,
                timeout,
                extract: extract?,
            })
        }
        "expect_none" => {
            let f = c.fields(body, "`expect_none`", &["for", "conditions"])?;
            let duration = match f.get("for") {
                Some(d) => c.duration(d, "`expect_none.for`", Duration::ZERO, MAX_WAIT),
                None => {
                    c.err(body.pos, "`expect_none` needs `for: <duration>`");
                    None
                }
            };
            let conds = f.get("conditions").map_or(Some(Vec::new()), |l| {
                conditions(c, l, defined, "`conditions`")
            });
            Some(WsAction::ExpectNone {
                duration: duration?,
                conditions: conds?,
            })
        }
        "ping" => {
            let f = c.fields(body, "`ping`", &["timeout"])?;
            let timeout = optional_duration(c, f.get("timeout"), "`ping.timeout`")?;
            Some(WsAction::Ping { timeout })
        }
        _ => {
            let f = c.fields(body, "`close`", &["code"])?;
            let code = match f.get("code") {
                Some(v) => Some(c.uint(v, "`close.code`", 4999)? as u16),
                None => None,
            };
            Some(WsAction::Close { code })
        }
    }
}

/// `Some(None)` when absent, `None` when invalid (already reported).
fn optional_duration(c: &mut Checker, n: Option<&Node>, what: &str) -> Option<Option<Duration>> {
    match n {
        Some(n) => c
            .duration(n, what, Duration::from_millis(1), MAX_WAIT)
            .map(Some),
        None => Some(None),
    }
}

/// `send: { text: "..." }` or `send: { json: {...} }`.
fn send(c: &mut Checker, n: &Node, defined: &BTreeSet<String>) -> Option<WsPayload> {
    let f = c.fields(n, "`send`", &["text", "json"])?;
    match (f.get("text"), f.get("json")) {
        (Some(t), None) => c.template(t, "`send.text`", defined).map(WsPayload::Text),
        (None, Some(j)) => json(c, j, defined).map(WsPayload::Json),
        _ => {
            c.err(n.pos, "`send` takes exactly one of `text` or `json`");
            None
        }
    }
}
