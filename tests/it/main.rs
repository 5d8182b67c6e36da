//! Integration tests: one binary, one module per capability. Every test talks to real servers
//! on 127.0.0.1 (an in-test axum server, the demo shop, httpbin started by scripts/test.sh).

mod cli;
mod conditions;
mod httpbin;
mod journeys;

mod support;
