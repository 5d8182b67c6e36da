//! Two `waymark serve` nodes of one location on the real PostgreSQL of the test script: every
//! tick of an `every: 1s` journey runs exactly once between them, the node list shows both
//! and one leader, a failing journey makes one incident and one page (not one per node), and
//! when the leader is SIGKILLed the other takes the lease within the stated failover time and
//! carries on with the same incident.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::alerting::peers::Receiver;
use crate::alerting::post;
use crate::serve::{Serve, TOKEN, closed_port, eventually, setup};
use crate::store::empty_postgres_database;

async fn nodes(serve: &Serve) -> Value {
    serve.json("/api/v1/nodes").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_ticks_once_each_and_fail_over_the_lead() {
    let url = empty_postgres_database().await;
    let dir = setup(&[
        (
            "tick.yaml",
            "name: tick\nschedule: { every: 1s }\nsteps:\n  - name: pause\n    wait: 20ms\n"
                .to_string(),
        ),
        (
            "broken.yaml",
            format!(
                "name: broken\nschedule: {{ every: 1s }}\nsteps:\n  - name: pay\n    \
                 timeout: 300ms\n    http: {{ url: \"http://127.0.0.1:{}/pay\" }}\n",
                closed_port()
            ),
        ),
    ]);
    let hook = Receiver::start().await;
    std::fs::write(
        dir.path().join("waymark.toml"),
        format!(
            "[alerting.channels.hook]\ntype = \"webhook\"\nurl = \"{}/hook\"\n\
             secret = \"s3cret-hook\"\n",
            hook.base
        ),
    )
    .unwrap();
    let triggered = |hook: &Receiver| -> Vec<i64> {
        hook.received("/hook")
            .iter()
            .map(|r| r.json())
            .filter(|n| n["kind"] == "triggered")
            .map(|n| n["incident"]["id"].as_i64().unwrap())
            .collect()
    };
    let env = [
        ("WAYMARK_DATABASE_URL", url.as_str()),
        ("WAYMARK_LOCATION", "eu"),
    ];
    let a = Serve::start_with(dir.path(), 0, &env);
    let b = Serve::start_with(dir.path(), 1, &env);

    let both = eventually("two live nodes", &a, Duration::from_secs(15), || async {
        let v = nodes(&a).await;
        let live = v["nodes"]
            .as_array()?
            .iter()
            .filter(|n| n["alive"] == true)
            .count();
        (live == 2 && v["leader"].is_string()).then_some(v)
    })
    .await;
    assert_eq!(both["skew"], false, "{both}");
    let leader = both["leader"].as_str().unwrap().to_string();
    let leader_is_a = both["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["node_id"] == leader.as_str() && n["this"] == true);

    // Let both schedule for a while, then look at the stored runs: one per tick.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let store = waymark::store::Store::connect(&url).await.unwrap();
    let runs = store.recent_runs("tick", 500).await.unwrap();
    let mut planned: Vec<DateTime<Utc>> = runs.iter().map(|r| r.planned_at).collect();
    planned.sort();
    let count = planned.len();
    planned.dedup();
    assert_eq!(planned.len(), count, "a tick ran twice: {planned:?}");
    assert!(count >= 7, "{count} runs in ~8 s");
    // No tick skipped between the first and the last one stored.
    let span = (*planned.last().unwrap() - planned[0]).num_seconds() as usize;
    assert_eq!(span + 1, count, "{planned:?}");

    // Both nodes run `broken` (each takes some of its ticks): one incident, paged once.
    let v = a.json("/api/v1/incidents?journey=broken").await;
    let first = v["incidents"].as_array().unwrap();
    assert_eq!(first.len(), 1, "{v}");
    let id = first[0]["id"].as_i64().unwrap();
    assert_eq!(triggered(&hook), [id]);

    // Only the leader's engine holds incidents: a follower says so instead of guessing.
    let (dead, survivor) = if leader_is_a { (a, b) } else { (b, a) };
    let ack = format!("/api/v1/incidents/{id}/ack");
    let (status, body) = post(&survivor, &ack, Some(TOKEN), "").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("does not lead"),
        "{body}"
    );

    // The leader dies without a word: the other node leads within the failover time.
    let killed_at = std::time::Instant::now();
    assert_eq!(dead.stop(libc::SIGKILL).await, None);
    let limit = waymark::service::cluster::FAILOVER + Duration::from_secs(5);
    let after = eventually("a new leader", &survivor, limit, || async {
        let v = nodes(&survivor).await;
        let changed = v["leader"].as_str()? != leader;
        changed.then_some(v)
    })
    .await;
    let took = killed_at.elapsed();
    assert!(took <= limit, "failover took {took:?}");
    let me = after["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["this"] == true)
        .unwrap();
    assert_eq!(me["leader"], true, "{after}");
    // The survivor runs every tick now.
    let before = store.recent_runs("tick", 1).await.unwrap()[0].planned_at;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let latest = store.recent_runs("tick", 5).await.unwrap();
    assert!(
        latest[0].planned_at > before,
        "ticks go on after the failover"
    );
    // The new leader resumed the incident: still one, still open, paged once.
    let v = survivor.json("/api/v1/incidents?journey=broken").await;
    let after: Vec<(i64, &str)> = v["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["id"].as_i64().unwrap(), i["state"].as_str().unwrap()))
        .collect();
    assert_eq!(after, [(id, "open")], "{v}");
    assert_eq!(triggered(&hook), [id]);
    // The new leader acknowledges it.
    let (status, body) = post(&survivor, &ack, Some(TOKEN), r#"{"by": "ada"}"#).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["incident"]["state"], "acknowledged", "{body}");
    store.close().await;
    drop(survivor);
}
