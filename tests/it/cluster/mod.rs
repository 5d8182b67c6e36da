//! Several `waymark serve` processes on the real PostgreSQL of the test script.
//!
//! - [`three_nodes`]: the scenario, two nodes in location A and one in B through two
//!   deaths (a follower, then the leader);
//! - [`partition`]: a leader cut off from the database by a network partition (a proxy that
//!   stops forwarding) steps down before its lease expires, and catches up once the network
//!   heals.

mod partition;
mod proxy;
mod three_nodes;

use serde_json::Value;

use crate::alerting::peers::Receiver;
use crate::support::serve::Serve;

/// One node and what the test knows of it.
pub(super) struct Node {
    serve: Serve,
    id: String,
    location: &'static str,
}

pub(super) fn pd_events(pd: &Receiver) -> Vec<Value> {
    pd.received("/v2/enqueue")
        .iter()
        .filter(|r| r.answered == 202)
        .map(|r| r.json())
        .collect()
}

pub(super) async fn pay_incidents(serve: &Serve) -> Vec<Value> {
    let v = serve.json("/api/v1/incidents?journey=pay").await;
    v["incidents"].as_array().unwrap().clone()
}

/// This node's entry in its own node list.
pub(super) async fn this_node(serve: &Serve) -> Value {
    let v = serve.json("/api/v1/nodes").await;
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["this"] == true)
        .cloned()
        .unwrap_or(Value::Null)
}

pub(super) async fn leader_position(nodes: &[Node]) -> Option<usize> {
    for (i, n) in nodes.iter().enumerate() {
        if this_node(&n.serve).await["leader"] == true {
            return Some(i);
        }
    }
    None
}
