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
    body_json: OnceLock<Option<Parsed>>,
    message_json: OnceLock<Option<Parsed>>,
}

/// A text parsed as JSON: the value, or why it is not JSON.
type Parsed = Result<serde_json::Value, NotJson>;

/// Why a body or message is not JSON, in plain words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotJson {
    /// Nothing but whitespace.
    #[error("empty")]
    Empty,
    /// `line 1, column 7: expected value`.
    #[error("line {line}, column {column}: {what}")]
    Invalid {
        line: usize,
        column: usize,
        what: String,
    },
}

fn parse_json(bytes: &[u8]) -> Parsed {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(NotJson::Empty);
    }
    serde_json::from_slice(bytes).map_err(|e| {
        // serde_json says "expected value at line 1 column 7"; the position goes first here.
        let text = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        NotJson::Invalid {
            line: e.line(),
            column: e.column(),
            what: text.strip_suffix(&suffix).unwrap_or(&text).to_string(),
        }
    })
}

/// `text` parsed as JSON into `cell` the first time it is asked for; `None` without a text.
fn parsed_once<'a>(cell: &'a OnceLock<Option<Parsed>>, text: Option<&[u8]>) -> Option<&'a Parsed> {
    cell.get_or_init(|| text.map(parse_json)).as_ref()
}

impl Facts {
    /// The body parsed as JSON, once; `None` if there is no body or it is not JSON.
    pub fn body_json(&self) -> Option<&serde_json::Value> {
        self.parsed_body()?.as_ref().ok()
    }

    /// Why the body is not JSON (`line 1, column 7: expected value`, or `empty`); `None` when
    /// it is JSON or there is no body at all.
    pub fn body_json_error(&self) -> Option<&NotJson> {
        self.parsed_body()?.as_ref().err()
    }

    fn parsed_body(&self) -> Option<&Parsed> {
        parsed_once(&self.body_json, self.body.as_deref())
    }

    /// The current WebSocket message parsed as JSON, once.
    pub fn message_json(&self) -> Option<&serde_json::Value> {
        self.parsed_message()?.as_ref().ok()
    }

    /// Why the current WebSocket message is not JSON, like [`Facts::body_json_error`].
    pub fn message_json_error(&self) -> Option<&NotJson> {
        self.parsed_message()?.as_ref().err()
    }

    fn parsed_message(&self) -> Option<&Parsed> {
        parsed_once(
            &self.message_json,
            self.message.as_deref().map(str::as_bytes),
        )
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
