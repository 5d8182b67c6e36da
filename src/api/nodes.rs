//! `GET /api/v1/nodes`: the nodes sharing this database, from their heartbeats: where each
//! runs, its version, whether it is alive and which one leads, and whether the live nodes
//! disagree on the version or on the journey files they run (skew).

use axum::Json;
use axum::extract::State;
use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ApiResult, AppState};
use crate::service::cluster::GONE_AFTER;
use crate::store::cluster::NodeInfo;

pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Serialize, ToSchema)]
pub struct NodeList {
    pub nodes: Vec<Node>,
    /// The node holding the leader lease, if any does.
    pub leader: Option<String>,
    /// Live nodes run different versions or different journey files.
    pub skew: bool,
}

#[derive(Serialize, ToSchema)]
pub struct Node {
    #[serde(flatten)]
    pub info: NodeInfo,
    /// Its last heartbeat is recent (30 s).
    pub alive: bool,
    pub leader: bool,
    /// The node answering this request.
    pub this: bool,
}

/// The nodes, newest heartbeat first.
#[utoipa::path(get, path = "/api/v1/nodes", tag = "nodes",
    responses((status = 200, body = NodeList)))]
async fn list(State(state): State<AppState>) -> ApiResult<NodeList> {
    Ok(Json(node_list(&state).await?))
}

/// What `/api/v1/nodes` and the dashboard's node page show.
pub(crate) async fn node_list(state: &AppState) -> Result<NodeList, ApiError> {
    let now = Utc::now();
    let leader = state
        .store
        .cluster()
        .lease("leader", now)
        .await?
        .map(|l| l.holder);
    let this = state.cluster.node_id();
    let gone = now - chrono::Duration::from_std(GONE_AFTER).unwrap_or_default();
    let nodes: Vec<Node> = state
        .store
        .cluster()
        .nodes()
        .await?
        .into_iter()
        .map(|info| Node {
            alive: info.heartbeat_at >= gone,
            leader: leader.as_deref() == Some(info.node_id.as_str()),
            this: this == info.node_id,
            info,
        })
        .collect();
    let live: Vec<&Node> = nodes.iter().filter(|n| n.alive).collect();
    let skew = live.windows(2).any(|w| {
        w[0].info.version != w[1].info.version
            || w[0].info.journeys_sha256 != w[1].info.journeys_sha256
    });
    Ok(NodeList {
        nodes,
        leader,
        skew,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{call, get, get_json, map_array, state};
    use crate::store::cluster::NodeInfo;
    use serde_json::Value;

    #[tokio::test]
    async fn nodes_with_the_leader_the_dead_and_skew() {
        let (state, _, _dir) = state(None).await;
        let now = chrono::Utc::now();
        let node = |id: &str, ago_s: i64, journeys: &str| NodeInfo {
            node_id: id.into(),
            location: "eu".into(),
            version: "0.1.0".into(),
            hostname: "h".into(),
            journeys_sha256: journeys.into(),
            started_at: now - chrono::Duration::hours(1),
            heartbeat_at: now - chrono::Duration::seconds(ago_s),
        };
        let store = state.store.clone();
        store.cluster().heartbeat(&node("a", 1, "x")).await.unwrap();
        store.cluster().heartbeat(&node("b", 2, "x")).await.unwrap();
        store
            .cluster()
            .heartbeat(&node("dead", 600, "old"))
            .await
            .unwrap();
        store
            .cluster()
            .acquire_lease("leader", "b", now, now + chrono::Duration::seconds(15))
            .await
            .unwrap();
        let app = super::super::router(state);
        let v = get_json(&app, "/api/v1/nodes").await;
        let summary: Vec<(&str, bool, bool)> = map_array(&v["nodes"], |n| {
            (
                n["node_id"].as_str().unwrap(),
                n["alive"].as_bool().unwrap(),
                n["leader"].as_bool().unwrap(),
            )
        });
        assert_eq!(
            summary,
            [
                ("a", true, false),
                ("b", true, true),
                ("dead", false, false)
            ]
        );
        assert_eq!(v["leader"], "b");
        assert_eq!(
            v["skew"], false,
            "the dead node's old journeys do not count"
        );

        store.cluster().heartbeat(&node("a", 0, "y")).await.unwrap();
        let (_, body) = call(&app, get("/api/v1/nodes")).await;
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["skew"], true, "a runs other journey files than b");
    }
}
