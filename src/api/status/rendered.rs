//! Public answers as bytes: the status page, `/status.json` and the Atom feed are rendered and
//! gzipped once per snapshot, and a request only picks the bytes (plain or gzip, by
//! `Accept-Encoding`). A status page is read most during an outage, by many at once: reading
//! must cost a copy, not a render and a compression per reader.

use std::io::Write;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

/// One answer, ready to send.
pub struct Encoded {
    content_type: &'static str,
    cache_control: &'static str,
    plain: Bytes,
    gzip: Bytes,
    /// A strong validator of the content, so a reader polling the page gets 304s.
    etag: HeaderValue,
    /// Headers the page carries besides (the Content-Security-Policy and its companions).
    extra: HeaderMap,
}

impl Encoded {
    pub fn new(
        content_type: &'static str,
        cache_control: &'static str,
        plain: impl Into<Bytes>,
        extra: HeaderMap,
    ) -> Encoded {
        let plain: Bytes = plain.into();
        let mut gz = flate2::write::GzEncoder::new(
            Vec::with_capacity(plain.len() / 8),
            flate2::Compression::default(),
        );
        // Writing to a Vec cannot fail.
        let gzip = gz
            .write_all(&plain)
            .and_then(|()| gz.finish())
            .unwrap_or_default();
        let digest = <sha2::Sha256 as sha2::Digest>::digest(&plain);
        let tag = format!("\"{}\"", hex::encode(&digest[..12]));
        Encoded {
            content_type,
            cache_control,
            etag: HeaderValue::from_str(&tag).unwrap_or(HeaderValue::from_static("\"\"")),
            plain,
            gzip: Bytes::from(gzip),
            extra,
        }
    }

    /// The answer to a request with these headers.
    pub fn respond(&self, request: &HeaderMap) -> Response {
        let mut headers = self.extra.clone();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(self.cache_control),
        );
        headers.insert(header::ETAG, self.etag.clone());
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        let unchanged = request
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|t| t.trim() == "*" || t.trim().as_bytes() == self.etag.as_bytes())
            });
        if unchanged {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        let body = if accepts_gzip(request) && !self.gzip.is_empty() {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            self.gzip.clone()
        } else {
            self.plain.clone()
        };
        (headers, Body::from(body)).into_response()
    }
}

/// Whether `Accept-Encoding` allows gzip (a `q=0` refuses it).
fn accepts_gzip(request: &HeaderMap) -> bool {
    request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), HeaderValue::from_str(v).unwrap()))
            .collect()
    }

    #[tokio::test]
    async fn answers_gzip_to_who_accepts_it_plain_otherwise_and_304_when_unchanged() {
        let page = Encoded::new(
            "text/html",
            "no-cache",
            "<p>ok</p>".repeat(1000),
            HeaderMap::new(),
        );
        let gz = page.respond(&request(&[(header::ACCEPT_ENCODING, "br, gzip;q=0.8")]));
        assert_eq!(gz.headers()[header::CONTENT_ENCODING], "gzip");
        let bytes = axum::body::to_bytes(gz.into_body(), usize::MAX)
            .await
            .unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text)
            .unwrap();
        assert_eq!(text, "<p>ok</p>".repeat(1000));
        assert!(bytes.len() < 200, "{} bytes", bytes.len());

        for refuses in ["identity", "gzip;q=0", ""] {
            let res = page.respond(&request(&[(header::ACCEPT_ENCODING, refuses)]));
            assert!(
                res.headers().get(header::CONTENT_ENCODING).is_none(),
                "{refuses}"
            );
        }
        let etag = page.respond(&HeaderMap::new()).headers()[header::ETAG].clone();
        let again = page.respond(&request(&[(header::IF_NONE_MATCH, etag.to_str().unwrap())]));
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let other = Encoded::new("text/html", "no-cache", "changed", HeaderMap::new());
        assert_ne!(
            other.respond(&HeaderMap::new()).headers()[header::ETAG],
            etag,
            "the tag follows the content"
        );
    }
}
