//! The connection of one hop, each phase timed and bounded by the attempt's deadline:
//! DNS → TCP ([`net`]) → TLS for https ([`tls_client`]) → hyper handshake, then sending the
//! request and reading the body. The WebSocket step shares the first phases ([`open`]) and
//! does its own upgrade.
//!
//! Every wait goes through [`Budget::limit`], so an expired deadline always surfaces as a
//! `Timeout` naming the phase, with the phases completed before it already recorded.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;
use url::Url;

use super::HttpError;
use crate::step::net::{self, Budget};
use crate::step::tls_client::{self, Alpn, TlsOptions};
use crate::step::{Attempt, Failure, FailureClass, error_chain, failure};

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
        budget: &Budget,
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
        budget
            .limit("response headers", response)
            .await?
            .map_err(|e| HttpError::Protocol(format!("no valid response: {}", error_chain(&e))))
    }
}

/// Opens a connection to the URL's host for one request, recording what [`open`] records.
pub(super) async fn connect(
    url: &Url,
    insecure_skip_verify: bool,
    max_body_bytes: u64,
    budget: &Budget,
    attempt: &mut Attempt,
) -> Result<Connection, HttpError> {
    let tls = (url.scheme() == "https").then_some(TlsOptions {
        insecure_skip_verify,
        alpn: Alpn::Http,
    });
    match open(url, tls, budget, attempt).await? {
        Transport::Plain(tcp) => handshake(tcp, Protocol::Http1, max_body_bytes, budget).await,
        Transport::Tls(stream) => {
            let protocol = if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                Protocol::Http2
            } else {
                Protocol::Http1
            };
            handshake(*stream, protocol, max_body_bytes, budget).await
        }
    }
}

/// A byte stream to the URL's host, before any HTTP: plain TCP, or TLS over it.
pub(crate) enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// DNS → TCP ([`net::connect`]) → TLS when `tls` is given, recording `[CONNECTED]`, `[IP]`,
/// the certificate facts and the DNS, connect and TLS phases into `attempt`.
pub(crate) async fn open(
    url: &Url,
    tls: Option<TlsOptions>,
    budget: &Budget,
    attempt: &mut Attempt,
) -> Result<Transport, Failure> {
    let host = url
        .host_str()
        .ok_or_else(|| failure(FailureClass::Template, format!("URL `{url}` has no host")))?;
    let port = url.port_or_known_default().unwrap_or(80);
    let (tcp, peer) = net::connect(host, port, budget, attempt).await?;
    let Some(options) = tls else {
        return Ok(Transport::Plain(tcp));
    };
    // A name the URL parser accepts but TLS does not is the peer's problem, like a bad
    // certificate (it may come from a redirect's Location).
    let sni = tls_client::server_name(host)
        .map_err(|reason| tls_client::handshake_failed(host, peer, &reason))?;
    let stream = tls_client::handshake(tcp, sni, peer, options.config(), budget, attempt).await?;
    Ok(Transport::Tls(Box::new(stream)))
}

/// Starts hyper on the stream and spawns its connection driver.
async fn handshake<S>(
    io: S,
    protocol: Protocol,
    max_body_bytes: u64,
    budget: &Budget,
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
            let (sender, conn) = budget
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
            let (sender, conn) = budget
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
    budget: &Budget,
) -> Result<(), HttpError> {
    while let Some(frame) = budget.limit("response body", body.frame()).await? {
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
