//! The single-purpose probes: `tcp:`, `dns:`, `tls:` and `wait:` blocks.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use super::super::model::{
    BytesTemplate, DEFAULT_TCP_MAX_BYTES, DnsRecordType, DnsStep, TcpStep, TlsStep, WaitStep,
};
use super::super::yaml::Node;
use super::checker::{Checker, did_you_mean};
use super::http::byte_size;

/// Longest `wait` allowed: a journey that sleeps longer is probably a mistake.
const MAX_WAIT: Duration = Duration::from_secs(300);

pub(super) fn tcp_step(c: &mut Checker, n: &Node, defined: &BTreeSet<String>) -> Option<TcpStep> {
    let f = c.fields(n, "`tcp`", &["host", "port", "send", "expect", "max_bytes"])?;
    let host = required(c, n, f.get("host"), "`tcp`", "host")
        .and_then(|h| c.template(h, "`tcp.host`", defined));
    let port =
        required(c, n, f.get("port"), "`tcp`", "port").and_then(|p| port(c, p, "`tcp.port`"));
    let send = f.get("send").map(|s| bytes(c, s, "`tcp.send`", defined));
    let expect = f
        .get("expect")
        .map(|e| bytes(c, e, "`tcp.expect`", defined));
    let max_bytes = match f.get("max_bytes") {
        Some(v) => byte_size(c, v, "`tcp.max_bytes`"),
        None => Some(DEFAULT_TCP_MAX_BYTES),
    };
    Some(TcpStep {
        host: host?,
        port: port?,
        send: send.unwrap_or(Some(None))?,
        expect: expect.unwrap_or(Some(None))?,
        max_bytes: max_bytes?,
    })
}

/// `send: "text"`, or `send: { hex: "48 65 6c 6c 6f" }`.
fn bytes(
    c: &mut Checker,
    n: &Node,
    what: &str,
    defined: &BTreeSet<String>,
) -> Option<Option<BytesTemplate>> {
    if n.scalar_text().is_some() {
        let template = c.template(n, what, defined)?;
        return Some(Some(BytesTemplate {
            template,
            hex: false,
        }));
    }
    let f = c.fields(n, what, &["text", "hex"])?;
    match (f.get("text"), f.get("hex")) {
        (Some(t), None) => {
            let template = c.template(t, what, defined)?;
            Some(Some(BytesTemplate {
                template,
                hex: false,
            }))
        }
        (None, Some(h)) => {
            let template = c.template(h, what, defined)?;
            let text = template.to_string();
            let digits: String = text.chars().filter(|ch| !ch.is_whitespace()).collect();
            if template.is_literal()
                && (!digits.len().is_multiple_of(2)
                    || !digits.chars().all(|ch| ch.is_ascii_hexdigit()))
            {
                c.err(
                    h.pos,
                    format!("{what}: `{text}` is not hex bytes (e.g. `48 65 6c 6c 6f`)"),
                );
                return None;
            }
            Some(Some(BytesTemplate {
                template,
                hex: true,
            }))
        }
        _ => {
            c.err(
                n.pos,
                format!("{what} takes a string, or exactly one of `text` or `hex`"),
            );
            None
        }
    }
}

pub(super) fn dns_step(c: &mut Checker, n: &Node, defined: &BTreeSet<String>) -> Option<DnsStep> {
    let f = c.fields(n, "`dns`", &["name", "type", "server", "tcp"])?;
    let name = required(c, n, f.get("name"), "`dns`", "name")
        .and_then(|v| c.template(v, "`dns.name`", defined));
    let record_type = match f.get("type") {
        Some(t) => record_type(c, t),
        None => Some(DnsRecordType::A),
    };
    let server = match f.get("server") {
        Some(s) => server(c, s).map(Some),
        None => Some(None),
    };
    let tcp = match f.get("tcp") {
        Some(v) => c.bool(v, "`dns.tcp`"),
        None => Some(false),
    };
    Some(DnsStep {
        name: name?,
        record_type: record_type?,
        server: server?,
        tcp: tcp?,
    })
}

fn record_type(c: &mut Checker, n: &Node) -> Option<DnsRecordType> {
    let text = c.text(n, "`dns.type`")?;
    let upper = text.trim().to_ascii_uppercase();
    if let Some((_, t)) = DnsRecordType::ALL.iter().find(|(name, _)| *name == upper) {
        return Some(*t);
    }
    let names = DnsRecordType::ALL.map(|(name, _)| name);
    let hint = match did_you_mean(&upper, names) {
        Some(s) => format!("; did you mean `{s}`?"),
        None => format!("; expected one of {}", names.join(", ")),
    };
    c.err(n.pos, format!("unsupported DNS record type `{text}`{hint}"));
    None
}

/// `127.0.0.1`, `127.0.0.1:5353`, `[::1]:53`.
fn server(c: &mut Checker, n: &Node) -> Option<SocketAddr> {
    let text = c.text(n, "`dns.server`")?;
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr);
    }
    if let Ok(ip) = text.parse::<std::net::IpAddr>() {
        return Some(SocketAddr::new(ip, 53));
    }
    c.err(
        n.pos,
        format!("`dns.server` must be an IP address with an optional port, found `{text}`"),
    );
    None
}

pub(super) fn tls_step(c: &mut Checker, n: &Node, defined: &BTreeSet<String>) -> Option<TlsStep> {
    let f = c.fields(
        n,
        "`tls`",
        &["host", "port", "server_name", "insecure_skip_verify"],
    )?;
    let host = required(c, n, f.get("host"), "`tls`", "host")
        .and_then(|h| c.template(h, "`tls.host`", defined));
    let port = match f.get("port") {
        Some(p) => port(c, p, "`tls.port`"),
        None => Some(443),
    };
    let server_name = match f.get("server_name") {
        Some(s) => c
            .non_empty_text(s, "`tls.server_name`")
            .and_then(|_| c.template(s, "`tls.server_name`", defined))
            .map(Some),
        None => Some(None),
    };
    let insecure_skip_verify = match f.get("insecure_skip_verify") {
        Some(v) => c.bool(v, "`tls.insecure_skip_verify`"),
        None => Some(false),
    };
    Some(TlsStep {
        host: host?,
        port: port?,
        server_name: server_name?,
        insecure_skip_verify: insecure_skip_verify?,
    })
}

/// `wait: 2s`, or `wait: { for: 2s }`.
pub(super) fn wait_step(c: &mut Checker, n: &Node) -> Option<WaitStep> {
    let d = if n.scalar_text().is_some() {
        n
    } else {
        let f = c.fields(n, "`wait`", &["for"])?;
        required(c, n, f.get("for"), "`wait`", "for")?
    };
    let duration = c.duration(d, "`wait`", Duration::ZERO, MAX_WAIT)?;
    Some(WaitStep { duration })
}

fn required<'n>(
    c: &mut Checker,
    parent: &Node,
    value: Option<&'n Node>,
    what: &str,
    key: &str,
) -> Option<&'n Node> {
    if value.is_none() {
        c.err(parent.pos, format!("{what} needs `{key}`"));
    }
    value
}

fn port(c: &mut Checker, n: &Node, what: &str) -> Option<u16> {
    match c.uint(n, what, 65535)? {
        0 => {
            c.err(n.pos, format!("{what} must be between 1 and 65535"));
            None
        }
        p => Some(p as u16),
    }
}
