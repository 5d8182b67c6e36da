//! Integration tests: one binary, one module per capability. Every test talks to real servers
//! on 127.0.0.1: in-test servers, the demo shop, and the peers scripts/test.sh starts (httpbin,
//! a Python WebSocket server, dnsmasq).

// Clock reads are refused only in the pure modules (clippy.toml).
#![allow(clippy::disallowed_methods)]

mod alerting;
mod anomaly;
mod architecture;
mod cli;
mod cluster;
mod conditions;
mod dashboard;
mod demo;
mod digest;
mod httpbin;
mod journeys;
mod login;
mod openapi;
mod secrets;
mod serve;
mod serve_limits;
mod steps;
mod store;
mod store_alerts;
mod store_cluster;
mod support;
mod telemetry;
