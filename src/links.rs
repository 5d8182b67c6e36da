//! The paths of Waymark's own pages that other modules link to (`/app/journeys/{name}`,
//! `/app/dependencies#{label}`, ...), built in one place so every link encodes its names the same
//! way: the dashboard's templates (the `segment` filter), the digest's HTML and text, and
//! anything else that points at a page.
//!
//! A name is one path segment whatever it holds: `payments/v2 health` becomes
//! `payments%2Fv2%20health`, which the router matches as one segment and `Path` decodes back.

#![deny(clippy::disallowed_methods)]

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `name` as one URL path segment (or fragment), percent-encoded.
pub fn segment(name: &str) -> String {
    utf8_percent_encode(name, SEGMENT).to_string()
}

/// `/app/journeys/{name}`: the journey's dashboard page.
pub fn journey_page(name: &str) -> String {
    format!("/app/journeys/{}", segment(name))
}

/// `/app/dependencies#{label}`: a dependency's row on the dependencies page.
pub fn dependency_row(label: &str) -> String {
    format!("/app/dependencies#{}", segment(label))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue #19: `payments/v2 health` got links that 404ed (`/` and space left as they were).
    #[test]
    fn names_become_one_encoded_path_segment() {
        assert_eq!(
            journey_page("payments/v2 health"),
            "/app/journeys/payments%2Fv2%20health"
        );
        assert_eq!(segment("a?b#c"), "a%3Fb%23c");
        assert_eq!(segment("checkout-v2_eu.1~x"), "checkout-v2_eu.1~x");
        assert_eq!(segment("café & co"), "caf%C3%A9%20%26%20co");
        assert_eq!(
            dependency_row("stripe api"),
            "/app/dependencies#stripe%20api"
        );
        assert_eq!(segment("100%"), "100%25");
    }
}
