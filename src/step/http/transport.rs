//! The connect path of one hop, each phase timed and bounded by the attempt's deadline:
//! DNS → TCP → TLS (https) → hyper handshake, then sending the request and reading the body.
//! The WebSocket step shares the first phases ([`open`]) and does its own upgrade.
//!
//! Every wait goes through [`Clock::limit`], so an expired deadline always surfaces as a
//! `Timeout` naming the phase, with the phases completed before it already recorded.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use url::{Host, Url};

use super::tls::{self, TlsInfo, TlsOptions};
use super::{HttpError, error_chain};
use crate::step::{Attempt, Timings};

/// The attempt's time budget: when it started (for messages) and when it must be over.
pub(crate) struct Clock {
    start: Instant,
    deadline: Instant,
}

impl Clock {
    pub fn new(deadline: Instant) -> Clock {
        Clock {
            start: Instant::now(),
            deadline,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Runs `fut` unless the deadline passes first; then fails with a `Timeout` naming `phase`.
    pub async fn limit<F: Future>(
        &self,
        phase: &'static str,
        fut: F,
    ) -> Result<F::Output, HttpError> {
        tokio::time::timeout_at(self.deadline, fut)
            .await
            .map_err(|_| HttpError::Timeout {
                phase,
                elapsed: self.elapsed(),
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Protocol {
    Http1,
    Http2,
}

/// hyper's connection future runs in its own task; this handle aborts it when the hop is
/// over, so an attempt never leaves a task (or a socket) behind, whatever the server does.
struct Driver(JoinHandle<()>);

impl Driver {
    fn spawn<F>(connection: F) -> Driver
    where
        F: Future<Output = Result<(), hyper::Error>> + Send + 'static,
    {
        Driver(tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
        }))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

enum Sender {
    Http1(http1::SendRequest<Full<Bytes>>),
    Http2(http2::SendRequest<Full<Bytes>>),
}

/// An established connection for one request.
pub(super) struct Connection {
    sender: Sender,
    _driver: Driver,
}

impl Connection {
    pub fn protocol(&self) -> Protocol {
        match self.sender {
            Sender::Http1(_) => Protocol::Http1,
            Sender::Http2(_) => Protocol::Http2,
        }
    }

    /// Sends the request and waits for the response head (the TTFB phase).
    pub async fn send(
        &mut self,
        request: Request<Full<Bytes>>,
        clock: &Clock,
    ) -> Result<Response<Incoming>, HttpError> {
        let response = async {
            match &mut self.sender {
                Sender::Http1(s) => {
                    s.ready().await?;
                    s.send_request(request).await
                }
                Sender::Http2(s) => {
                    s.ready().await?;
                    s.send_request(request).await
                }
            }
        };
        clock
            .limit("response headers", response)
            .await?
            .map_err(|e| HttpError::Protocol(format!("no valid response: {}", error_chain(&e))))
    }
}

/// Opens a connection to the URL's host, recording `[CONNECTED]`, `[IP]`, the certificate
/// expiry and the DNS, connect and TLS phases into `attempt`.
pub(super) async fn connect(
    url: &Url,
    insecure_skip_verify: bool,
    max_body_bytes: u64,
    clock: &Clock,
    attempt: &mut Attempt,
) -> Result<Connection, HttpError> {
    let tls = (url.scheme() == "https").then_some(TlsOptions {
        insecure_skip_verify,
        http1_only: false,
    });
    match open(url, tls, clock, attempt).await? {
        Transport::Plain(tcp) => handshake(tcp, Protocol::Http1, max_body_bytes, clock).await,
        Transport::Tls(stream, info) => {
            let protocol = if info.h2 {
                Protocol::Http2
            } else {
                Protocol::Http1
            };
            handshake(*stream, protocol, max_body_bytes, clock).await
        }
    }
}

/// A byte stream to the URL's host, before any HTTP: plain TCP, or TLS over it.
pub(crate) enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>, TlsInfo),
}

/// DNS → TCP → TLS (when `tls` is given), recording `[CONNECTED]`, `[IP]`, the certificate
/// expiry and the DNS, connect and TLS phases into `attempt`.
pub(crate) async fn open(
    url: &Url,
    tls: Option<TlsOptions>,
    clock: &Clock,
    attempt: &mut Attempt,
) -> Result<Transport, HttpError> {
    let host = url
        .host()
        .ok_or_else(|| HttpError::Template(format!("URL `{url}` has no host")))?;
    let port = url.port_or_known_default().unwrap_or(80);
    attempt.facts.connected.get_or_insert(false);
    let addrs = resolve(&host, port, clock, &mut attempt.timings).await?;
    let (tcp, peer) = connect_tcp(&addrs, clock, &mut attempt.timings).await?;
    attempt.facts.connected = Some(true);
    attempt.facts.ip = Some(peer.ip());
    let Some(options) = tls else {
        return Ok(Transport::Plain(tcp));
    };
    let (stream, info) =
        tls::handshake(tcp, &host, peer, options, clock, &mut attempt.timings).await?;
    attempt.facts.certificate_expiration_ms = info.expires_in_ms;
    Ok(Transport::Tls(Box::new(stream), info))
}

/// Resolves a name with the system resolver; IP literals skip the DNS phase entirely.
async fn resolve(
    host: &Host<&str>,
    port: u16,
    clock: &Clock,
    timings: &mut Timings,
) -> Result<Vec<SocketAddr>, HttpError> {
    let domain = match *host {
        Host::Domain(domain) => domain,
        Host::Ipv4(ip) => return Ok(vec![SocketAddr::new(IpAddr::V4(ip), port)]),
        Host::Ipv6(ip) => return Ok(vec![SocketAddr::new(IpAddr::V6(ip), port)]),
    };
    let dns_error = |reason: String| HttpError::Dns {
        host: domain.to_string(),
        reason,
    };
    let started = Instant::now();
    let addrs: Vec<SocketAddr> = clock
        .limit("DNS resolution", tokio::net::lookup_host((domain, port)))
        .await?
        .map_err(|e| dns_error(error_chain(&e)))?
        .collect();
    if addrs.is_empty() {
        return Err(dns_error("no addresses".into()));
    }
    Timings::add(&mut timings.dns, started.elapsed());
    Ok(addrs)
}

/// Tries each address in resolver order until one accepts; the connect phase covers all tries.
async fn connect_tcp(
    addrs: &[SocketAddr],
    clock: &Clock,
    timings: &mut Timings,
) -> Result<(TcpStream, SocketAddr), HttpError> {
    let started = Instant::now();
    let mut errors = Vec::new();
    for &addr in addrs {
        match clock
            .limit("TCP connection", TcpStream::connect(addr))
            .await?
        {
            Ok(stream) => {
                // Requests are written whole; Nagle would only delay them.
                let _ = stream.set_nodelay(true);
                Timings::add(&mut timings.connect, started.elapsed());
                return Ok((stream, addr));
            }
            Err(e) => errors.push(format!("{addr}: {e}")),
        }
    }
    Err(HttpError::Connect(format!(
        "cannot connect to {}",
        errors.join("; ")
    )))
}

/// Starts hyper on the stream and spawns its connection driver.
async fn handshake<S>(
    io: S,
    protocol: Protocol,
    max_body_bytes: u64,
    clock: &Clock,
) -> Result<Connection, HttpError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let failed = |e: hyper::Error| {
        HttpError::Protocol(format!("HTTP handshake failed: {}", error_chain(&e)))
    };
    match protocol {
        Protocol::Http1 => {
            let (sender, conn) = clock
                .limit("HTTP/1.1 handshake", http1::handshake(io))
                .await?
                .map_err(failed)?;
            Ok(Connection {
                sender: Sender::Http1(sender),
                _driver: Driver::spawn(conn),
            })
        }
        Protocol::Http2 => {
            let window = h2_window(max_body_bytes);
            let builder = http2::Builder::new(TokioExecutor::new())
                .initial_stream_window_size(window)
                .initial_connection_window_size(window)
                .clone();
            let (sender, conn) = clock
                .limit("HTTP/2 handshake", builder.handshake(io))
                .await?
                .map_err(failed)?;
            Ok(Connection {
                sender: Sender::Http2(sender),
                _driver: Driver::spawn(conn),
            })
        }
    }
}

/// The HTTP/2 flow-control window: how much the server may send before we read. Sized to the
/// body cap (within what h2 allows) so the h2 layer cannot buffer far beyond the cap either.
fn h2_window(max_body_bytes: u64) -> u32 {
    const MIN: u64 = 65_535;
    const MAX: u64 = 2 * 1024 * 1024;
    max_body_bytes.saturating_add(1).clamp(MIN, MAX) as u32
}

/// Streams the body into `buf`, failing as soon as it would exceed `limit`: at most `limit`
/// bytes plus one frame are ever held, however long the server keeps sending.
pub(super) async fn read_body(
    mut body: Incoming,
    limit: u64,
    buf: &mut Vec<u8>,
    clock: &Clock,
) -> Result<(), HttpError> {
    while let Some(frame) = clock.limit("response body", body.frame()).await? {
        let frame = frame.map_err(|e| {
            HttpError::Protocol(format!(
                "response body broken off after {} bytes: {}",
                buf.len(),
                error_chain(&e)
            ))
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        let total = buf.len() as u64 + data.len() as u64;
        if total > limit {
            return Err(HttpError::BodyTooLarge {
                limit,
                detail: format!("{total} bytes received"),
            });
        }
        buf.extend_from_slice(&data);
    }
    Ok(())
}
