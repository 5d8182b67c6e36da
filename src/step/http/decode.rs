//! Response bodies sent with a `Content-Encoding` (gzip, deflate, br): decoded as they stream
//! in, so `[BODY]` is what the server meant rather than compressed bytes.
//!
//! - The cap (`max_body_bytes`) applies to the decoded size: a small compressed body that
//!   inflates beyond it (a "zip bomb") fails with `body_too_large` as soon as the decoded size
//!   crosses it, having read only what produced that much. Memory stays bounded by the cap plus
//!   one read buffer and the decoder's window.
//! - Sizes and times stay those of the wire: the bytes received are counted as they arrive, and
//!   the download phase ends with the last byte received, not with the decoder.
//! - Only a single coding is decoded (`gzip`/`x-gzip`, `deflate`, `br`, with `identity` ignored).
//!   Anything else (`zstd`, a chain like `gzip, br`) is left as it arrived, since guessing would
//!   be worse: the step's conditions then see the raw bytes.
//! - `deflate` is zlib-wrapped per RFC 9110, but some servers send raw deflate: like browsers,
//!   the first two bytes tell which.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_compression::tokio::bufread::{BrotliDecoder, DeflateDecoder, GzipDecoder, ZlibDecoder};
use futures_util::TryStreamExt;
use http::{HeaderMap, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt};
use tokio::time::Instant;
use tokio_util::io::StreamReader;

use super::HttpError;
use crate::step::error_chain;
use crate::step::net::Budget;

/// What `Accept-Encoding` says by default: what [`Coding`] decodes, as browsers and
/// `curl --compressed` send it.
pub(crate) const ACCEPT_ENCODING: &str = "gzip, deflate, br";

/// Read buffer for the decoder's output: what may be held beyond the cap, at most.
const CHUNK: usize = 16 * 1024;

/// A `Content-Encoding` this client decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    Gzip,
    Deflate,
    Brotli,
}

impl Coding {
    /// The coding to undo, if the response has exactly one this client knows.
    pub fn of(headers: &HeaderMap) -> Option<Coding> {
        let mut codings = headers
            .get_all(header::CONTENT_ENCODING)
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("?").split(','))
            .map(str::trim)
            .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity"));
        let coding = codings.next()?;
        if codings.next().is_some() {
            return None;
        }
        match coding.to_ascii_lowercase().as_str() {
            "gzip" | "x-gzip" => Some(Coding::Gzip),
            "deflate" => Some(Coding::Deflate),
            "br" => Some(Coding::Brotli),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Brotli => "br",
        }
    }
}

/// What the wire carried for a decoded body.
#[derive(Debug, Default)]
pub(super) struct Wire {
    /// Bytes received (still encoded).
    pub bytes: u64,
    /// When the last of them arrived, after the start of the read.
    pub last_byte: Option<Duration>,
}

/// Counts the encoded bytes as they arrive, from inside the stream the decoder reads.
#[derive(Debug, Default)]
struct Meter {
    bytes: AtomicU64,
    last_byte_nanos: AtomicU64,
}

/// Streams the body through the decoder into `buf`, failing as soon as the decoded size would
/// exceed `limit`. The wire figures are returned whatever the outcome.
pub(super) async fn read_decoded(
    body: Incoming,
    coding: Coding,
    limit: u64,
    buf: &mut Vec<u8>,
    budget: &Budget,
) -> (Wire, Result<(), HttpError>) {
    let started = Instant::now();
    let meter = Arc::new(Meter::default());
    let counter = Arc::clone(&meter);
    let stream = body
        .into_data_stream()
        .map_ok(move |chunk| {
            counter
                .bytes
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            counter.last_byte_nanos.store(nanos, Ordering::Relaxed);
            chunk
        })
        .map_err(io::Error::other);
    let result = decode(
        StreamReader::new(stream),
        coding,
        limit,
        buf,
        budget,
        &meter,
    )
    .await;
    let bytes = meter.bytes.load(Ordering::Relaxed);
    let wire = Wire {
        bytes,
        last_byte: (bytes > 0)
            .then(|| Duration::from_nanos(meter.last_byte_nanos.load(Ordering::Relaxed))),
    };
    (wire, result)
}

async fn decode<R>(
    mut reader: R,
    coding: Coding,
    limit: u64,
    buf: &mut Vec<u8>,
    budget: &Budget,
    meter: &Meter,
) -> Result<(), HttpError>
where
    R: tokio::io::AsyncBufRead + Unpin + Send + 'static,
{
    let received = || meter.bytes.load(Ordering::Relaxed);
    let failed = |e: io::Error| read_failed(e, coding, received());
    // An empty body (HEAD, 204, 304, or a server that labels nothing) has nothing to decode.
    let head = budget
        .limit("response body", reader.fill_buf())
        .await?
        .map_err(failed)?;
    if head.is_empty() {
        return Ok(());
    }
    let zlib = is_zlib(head);
    let mut decoder: Pin<Box<dyn AsyncRead + Send>> = match coding {
        Coding::Gzip => {
            let mut gzip = GzipDecoder::new(reader);
            gzip.multiple_members(true);
            Box::pin(gzip)
        }
        Coding::Deflate if zlib => Box::pin(ZlibDecoder::new(reader)),
        Coding::Deflate => Box::pin(DeflateDecoder::new(reader)),
        Coding::Brotli => Box::pin(BrotliDecoder::new(reader)),
    };
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let n = budget
            .limit("response body", decoder.read(&mut chunk))
            .await?
            .map_err(failed)?;
        if n == 0 {
            return Ok(());
        }
        let total = buf.len() as u64 + n as u64;
        if total > limit {
            return Err(HttpError::BodyTooLarge {
                limit,
                detail: format!(
                    "more than {limit} bytes decoded ({}) from {} bytes received",
                    coding.name(),
                    received()
                ),
            });
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A zlib header (RFC 1950): deflate method, and a check value making the first two bytes a
/// multiple of 31. Raw deflate rarely looks like that.
fn is_zlib(head: &[u8]) -> bool {
    match head {
        [cmf, flg, ..] => cmf & 0x0f == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0,
        _ => false,
    }
}

/// A read error: the connection's (the body broke off) or the decoder's (not valid `coding`).
fn read_failed(e: io::Error, coding: Coding, received: u64) -> HttpError {
    if let Some(transport) = e.get_ref().and_then(|i| i.downcast_ref::<hyper::Error>()) {
        return HttpError::Protocol(format!(
            "response body broken off after {received} bytes: {}",
            error_chain(transport)
        ));
    }
    HttpError::Protocol(format!(
        "the response body is not valid {} (Content-Encoding) after {received} bytes: {e}",
        coding.name()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::CONTENT_ENCODING, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_one_known_coding_is_decoded() {
        assert_eq!(Coding::of(&headers(&["gzip"])), Some(Coding::Gzip));
        assert_eq!(Coding::of(&headers(&["X-GZIP"])), Some(Coding::Gzip));
        assert_eq!(Coding::of(&headers(&["deflate"])), Some(Coding::Deflate));
        assert_eq!(Coding::of(&headers(&["br"])), Some(Coding::Brotli));
        assert_eq!(
            Coding::of(&headers(&["identity, br"])),
            Some(Coding::Brotli)
        );
        assert_eq!(Coding::of(&headers(&[])), None);
        assert_eq!(Coding::of(&headers(&["identity"])), None);
        assert_eq!(Coding::of(&headers(&["zstd"])), None);
        assert_eq!(Coding::of(&headers(&["gzip, br"])), None);
        assert_eq!(Coding::of(&headers(&["gzip", "br"])), None);
    }

    #[test]
    fn zlib_is_told_from_raw_deflate() {
        assert!(is_zlib(&[0x78, 0x9c]));
        assert!(is_zlib(&[0x78, 0x01]));
        assert!(!is_zlib(&[0xf3, 0x48]));
        assert!(!is_zlib(&[0x78]));
    }
}
