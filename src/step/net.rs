//! Reaching a host, for every step that opens a connection (`http`, `websocket`, `tcp`,
//! `tls`): the attempt's deadline ([`Budget`]), resolving the host and connecting over TCP.
//!
//! A host that is an IP literal (`[v6]` too) skips DNS; anything else goes through the system
//! resolver, and the addresses are tried in resolver order. Each phase is timed into
//! [`Timings`] (`dns`, `connect`; summed over redirect hops) and bounded by the deadline, so an
//! expired deadline surfaces as a `Timeout` naming the phase, with the phases completed
//! before it already recorded.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use super::{Attempt, Failure, FailureClass, Timings, error_chain, failure};

/// The attempt's time budget: when it started (for `total` and messages) and when it must be
/// over.
pub(crate) struct Budget {
    start: Instant,
    deadline: Instant,
}

impl Budget {
    pub fn new(deadline: Instant) -> Budget {
        Budget {
            start: Instant::now(),
            deadline,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Runs `fut` unless the deadline passes first; then fails with a `Timeout` naming `phase`.
    pub async fn limit<F: Future>(
        &self,
        phase: impl Into<Cow<'static, str>>,
        fut: F,
    ) -> Result<F::Output, Failure> {
        let phase = phase.into();
        tokio::time::timeout_at(self.deadline, fut)
            .await
            .map_err(|_| {
                failure(
                    FailureClass::Timeout,
                    format!(
                        "timed out after {:.2}s waiting for {phase}",
                        self.elapsed().as_secs_f64()
                    ),
                )
            })
    }
}

/// Resolves `host` (an IP literal, `[v6]`, or a name for the system resolver) and connects to
/// the first address that accepts. Records `[CONNECTED]` (false until a connection is up; a
/// previous redirect hop's `true` stays), `[IP]`, and the `dns` and `connect` phases.
pub(crate) async fn connect(
    host: &str,
    port: u16,
    budget: &Budget,
    attempt: &mut Attempt,
) -> Result<(TcpStream, SocketAddr), Failure> {
    attempt.facts.connected.get_or_insert(false);
    let addrs = resolve(host, port, budget, &mut attempt.timings).await?;
    let (stream, peer) = connect_any(&addrs, budget, &mut attempt.timings).await?;
    attempt.facts.connected = Some(true);
    attempt.facts.ip = Some(peer.ip());
    Ok((stream, peer))
}

/// The host without the brackets of an IPv6 literal, and its address when it is an IP literal.
pub(crate) fn ip_literal(host: &str) -> (&str, Option<IpAddr>) {
    let host = host.trim();
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (bare, bare.parse().ok())
}

/// Resolves a name with the system resolver; IP literals skip the DNS phase entirely.
async fn resolve(
    host: &str,
    port: u16,
    budget: &Budget,
    timings: &mut Timings,
) -> Result<Vec<SocketAddr>, Failure> {
    let (name, ip) = ip_literal(host);
    if let Some(ip) = ip {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    if name.is_empty() {
        return Err(failure(FailureClass::Template, "the host is empty"));
    }
    let cannot = |reason: String| {
        failure(
            FailureClass::Dns,
            format!("cannot resolve `{name}`: {reason}"),
        )
    };
    let started = Instant::now();
    let addrs: Vec<SocketAddr> = budget
        .limit(
            format!("DNS resolution of `{name}`"),
            tokio::net::lookup_host((name, port)),
        )
        .await?
        .map_err(|e| cannot(error_chain(&e)))?
        .collect();
    if addrs.is_empty() {
        return Err(cannot("no addresses".into()));
    }
    Timings::add(&mut timings.dns, started.elapsed());
    Ok(addrs)
}

/// Tries each address in order until one accepts; the connect phase covers all tries.
async fn connect_any(
    addrs: &[SocketAddr],
    budget: &Budget,
    timings: &mut Timings,
) -> Result<(TcpStream, SocketAddr), Failure> {
    let started = Instant::now();
    let mut errors = Vec::new();
    for &addr in addrs {
        let connecting = TcpStream::connect(addr);
        match budget
            .limit(format!("TCP connection to {addr}"), connecting)
            .await?
        {
            Ok(stream) => {
                // Requests and `send` bytes are written whole; Nagle would only delay them.
                let _ = stream.set_nodelay(true);
                Timings::add(&mut timings.connect, started.elapsed());
                return Ok((stream, addr));
            }
            Err(e) => errors.push(format!("{addr}: {e}")),
        }
    }
    Err(failure(
        FailureClass::Connect,
        format!("cannot connect to {}", errors.join("; ")),
    ))
}
