//! Escaping, `cid:` charts, links and the plain-text part, on a sample digest.

use super::*;
use chrono::{DateTime, Utc};

fn t(day: u32) -> DateTime<Utc> {
    use chrono::TimeZone;
    Utc.with_ymd_and_hms(2026, 11, day, 0, 0, 0).unwrap()
}

fn digest() -> Digest {
    crate::digest::model::tests::sample("shop-team", t(9), t(23))
}

fn links() -> LinkBase {
    LinkBase {
        dashboard_url: Some("https://waymark.example.com/".into()),
        trace_url: Some("https://jaeger.example.com/trace/{trace_id}".into()),
    }
}

#[test]
fn email_html_escapes_values_and_references_each_chart_by_cid() {
    let r = render(&digest(), &links(), Images::Cid);
    assert!(!r.html.contains("<script>alert"), "step names are escaped");
    assert!(r.html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(r.html.contains("HTTP &lt;n&gt; &amp; co"));
    assert_eq!(r.images.len(), 1);
    assert_eq!(r.images[0].0, "chart-0");
    assert!(r.images[0].1.starts_with(b"\x89PNG"), "a PNG");
    assert!(r.html.contains("src=\"cid:chart-0\""));
    assert!(
        r.html
            .contains("alt=\"Latency of checkout from 2026-11-09 to 2026-11-23\"")
    );
    // Trends in words, not colour only; links to the dashboard and the trace.
    assert!(r.html.contains("▲ slower by 60% (regression)"));
    assert!(r.html.contains("<strong>NEW</strong>"));
    assert!(r.html.contains(
        "href=\"https://waymark.example.com/app/runs/00000000-0000-0000-0000-000000000007\""
    ));
    assert!(
        r.html
            .contains("href=\"https://jaeger.example.com/trace/abc123\"")
    );
    assert!(
        r.html
            .contains("href=\"https://waymark.example.com/app/incidents/4\"")
    );
    // Each step's p95 run and its trace.
    for href in [
        "https://waymark.example.com/app/runs/00000000-0000-0000-0000-000000000009",
        "https://jaeger.example.com/trace/def456",
    ] {
        assert!(r.html.contains(&format!("href=\"{href}\"")), "{href}");
    }
    assert_eq!(
        r.subject,
        "Waymark digest for shop-team, 2026-11-09 to 2026-11-23: 99.40% available, 1 incident"
    );
}

#[test]
fn the_text_part_is_complete() {
    let r = render(&digest(), &links(), Images::Cid);
    for needle in [
        "Availability 99.40% over 1344 runs; 1 incident (MTTD 30m, MTTR 2h 15m); 1 regression, 0 improvements; 1 new failure mode; 0 flaky steps.",
        "== checkout ==",
        "Availability 99.40% (▼ down 0.30 pts; SLO 99.5%; error budget used 119%); 1344 runs, 8 failed.",
        "https://waymark.example.com/app/journeys/checkout",
        "<script>alert(1)</script>: p50 160 ms p95 190 ms p99 210 ms; ▲ slower by 60% (regression)",
        "slowest: <script>alert(1)</script> 160 ms (DNS 1.0 ms, TTFB 157 ms)",
        "failure [NEW]: pay http_status: HTTP <n> & co ×8",
        "#4 checkout failure: step \"pay\" failed; started 2026-11-20 00:00 UTC; detected in 30m, acknowledged never, resolved after 2h 15m; notifications: pager: triggered (delivered)",
        "archive (whole journey): never ran",
    ] {
        assert!(
            r.text.contains(needle),
            "missing `{needle}` in:\n{}",
            r.text
        );
    }
}

#[test]
fn a_preview_inlines_its_charts() {
    let r = render(&digest(), &LinkBase::default(), Images::DataUri);
    assert!(r.images.is_empty());
    assert!(r.html.contains("src=\"data:image/png;base64,iVBORw0KGgo"));
    assert!(
        !r.html.contains("href="),
        "no links without a dashboard URL"
    );
}

/// Issue #19: links to a journey page encode the name as one path segment.
#[test]
fn journey_links_encode_the_name() {
    let mut d = digest();
    d.journeys[0].name = "payments/v2 health".into();
    d.coverage[0].journey = "archive/old one".into();
    let r = render(&d, &links(), Images::Cid);
    let page = "https://waymark.example.com/app/journeys/payments%2Fv2%20health";
    assert!(r.text.contains(page), "{}", r.text);
    assert!(r.html.contains(&format!("href=\"{page}\"")), "{}", r.html);
    assert!(
        r.html
            .contains("href=\"https://waymark.example.com/app/journeys/archive%2Fold%20one\""),
        "{}",
        r.html
    );
}
