//! What one step attempt observed, in the shape conditions and extraction read it.
//!
//! Step executors fill [`Facts`]; the condition language only ever reads them. Keeping this plain
//! data is what lets `journey` stay free of IO.

use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Facts {
    /// `[STATUS]`: HTTP status code of the final response.
    pub status: Option<u16>,
    /// `[RESPONSE_TIME]`: total time of the attempt.
    pub response_time: Option<Duration>,
    /// `[BODY]`: the response body, or the DNS answers / TCP bytes read for other kinds.
    pub body: Option<Vec<u8>>,
    /// `[HEADERS].<name>`: response headers in arrival order; names lower-case.
    pub headers: Vec<(String, String)>,
    /// `[IP]`: the peer address that answered.
    pub ip: Option<IpAddr>,
    /// `[CONNECTED]`: whether a connection was established at all.
    pub connected: Option<bool>,
    /// `[CERTIFICATE_EXPIRATION]`: time until the peer's leaf certificate expires, in
    /// milliseconds (negative once expired).
    pub certificate_expiration_ms: Option<i64>,
    /// `[CERTIFICATE_SUBJECT]`, `[CERTIFICATE_ISSUER]`: distinguished names of the leaf.
    pub certificate_subject: Option<String>,
    pub certificate_issuer: Option<String>,
    /// `[CERTIFICATE_SANS]`: the leaf's DNS and IP subject alternative names, comma-separated.
    pub certificate_sans: Option<String>,
    /// `[DNS_RCODE]`: the DNS response code name (`NOERROR`, `NXDOMAIN`, ...).
    pub dns_rcode: Option<String>,
    /// `[MESSAGE]`: the WebSocket message being matched.
    pub message: Option<String>,
    /// `[MESSAGES_RECEIVED]`: WebSocket messages received so far.
    pub messages_received: Option<u64>,
    body_json: OnceLock<Option<serde_json::Value>>,
    message_json: OnceLock<Option<serde_json::Value>>,
}

impl Facts {
    /// The body parsed as JSON, once; `None` if there is no body or it is not JSON.
    pub fn body_json(&self) -> Option<&serde_json::Value> {
        self.body_json
            .get_or_init(|| {
                self.body
                    .as_deref()
                    .and_then(|b| serde_json::from_slice(b).ok())
            })
            .as_ref()
    }

    /// The current WebSocket message parsed as JSON, once.
    pub fn message_json(&self) -> Option<&serde_json::Value> {
        self.message_json
            .get_or_init(|| {
                self.message
                    .as_deref()
                    .and_then(|m| serde_json::from_str(m).ok())
            })
            .as_ref()
    }

    /// The body as text (lossy for non-UTF-8 bytes).
    pub fn body_text(&self) -> Option<std::borrow::Cow<'_, str>> {
        self.body.as_deref().map(String::from_utf8_lossy)
    }

    /// First header with this name, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    /// What a target sends is parsed by serde_json, whose recursion limit (128) keeps a deep
    /// body from overflowing the stack: such a body is simply not JSON to conditions.
    #[test]
    fn target_json_nested_beyond_serde_jsons_limit_is_not_json_and_does_not_crash() {
        let facts = |text: String| Facts {
            body: Some(text.clone().into_bytes()),
            message: Some(text),
            ..Facts::default()
        };
        let ok = facts(nested(127));
        assert!(ok.body_json().is_some() && ok.message_json().is_some());
        for depth in [129, 100_000] {
            let deep = facts(nested(depth));
            assert!(deep.body_json().is_none(), "depth {depth}");
            assert!(deep.message_json().is_none(), "depth {depth}");
        }
    }
}
