//! Two `waymark serve` nodes of one location on the real PostgreSQL of the test script: every
//! tick of an `every: 1s` journey runs exactly once between them, the node list shows both
//! and one leader, a failing journey makes one incident and one page (not one per node), the
//! follower acknowledges it through the leader, and when the leader is SIGKILLed the other
//! takes the lease within the stated failover time and carries on with the same incident.

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

    // Only the leader's engine holds incidents: a follower relays the command through the
    // database and answers with the leader's answer.
    let (dead, survivor) = if leader_is_a { (a, b) } else { (b, a) };
    let ack = format!("/api/v1/incidents/{id}/ack");
    let (status, body) = post(&survivor, &ack, Some(TOKEN), r#"{"by": "ada"}"#).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["incident"]["state"], "acknowledged", "{body}");
    assert_eq!(body["incident"]["acknowledged_by"], "ada", "{body}");
    let acked = eventually(
        "the leader's webhook",
        &survivor,
        Duration::from_secs(10),
        || async {
            hook.received("/hook")
                .iter()
                .any(|r| r.json()["kind"] == "acknowledged")
                .then_some(())
        },
    );
    acked.await;

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
    // The new leader resumed the incident: still one, still acknowledged, paged once.
    let v = survivor.json("/api/v1/incidents?journey=broken").await;
    let after: Vec<(i64, &str)> = v["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["id"].as_i64().unwrap(), i["state"].as_str().unwrap()))
        .collect();
    assert_eq!(after, [(id, "acknowledged")], "{v}");
    assert_eq!(triggered(&hook), [id]);
    // Its engine knows: a second acknowledgement is refused, a resolve is taken.
    let (status, body) = post(&survivor, &ack, Some(TOKEN), "").await;
    assert_eq!(status, 409, "{body}");
    let resolve = format!("/api/v1/incidents/{id}/resolve");
    let (status, body) = post(&survivor, &resolve, Some(TOKEN), r#"{"by": "ada"}"#).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["incident"]["state"], "resolved", "{body}");
    store.close().await;
    drop(survivor);
}

/// The issue's scenario: two nodes in location A and one in B on the test PostgreSQL, a
/// journey every second from both locations against a local target, and PagerDuty's Events
/// API played by a local receiver. The target fails twice, with a node of A SIGKILLed between
/// and the leader SIGKILLed during the second failure. Every (journey, location, tick) runs at
/// most once, and each incident makes exactly one PagerDuty trigger and one resolve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_two_locations_page_each_incident_once_through_two_deaths() {
    use crate::alerting::peers::{Health, Target};
    let url = empty_postgres_database().await;
    let target = Target::start().await;
    let pd = Receiver::start().await;
    let dir = setup(&[(
        "pay.yaml",
        format!(
            "name: pay\nschedule: {{ every: 1s }}\nsteps:\n  - name: pay\n    timeout: 500ms\n    \
             http: {{ url: \"{}\" }}\n",
            target.url
        ),
    )]);
    std::fs::write(
        dir.path().join("waymark.toml"),
        format!(
            "[alerting]\nreopen_within = \"1s\"\n[alerting.channels.pager]\ntype = \"pagerduty\"\n\
             routing_key = \"R0UT1NGKEY0000000000000000000077\"\nurl = \"{}/v2/enqueue\"\n",
            pd.base
        ),
    )
    .unwrap();
    let node = |run: u32, location: &str| {
        Serve::start_with(
            dir.path(),
            run,
            &[
                ("WAYMARK_DATABASE_URL", url.as_str()),
                ("WAYMARK_LOCATION", location),
            ],
        )
    };
    let mut nodes = vec![node(0, "A"), node(1, "A"), node(2, "B")];
    eventually(
        "three live nodes",
        &nodes[0],
        Duration::from_secs(15),
        || async {
            let v = nodes_json(&nodes[0]).await;
            let live = v["nodes"]
                .as_array()?
                .iter()
                .filter(|n| n["alive"] == true)
                .count();
            (live == 3 && v["leader"].is_string()).then_some(())
        },
    )
    .await;
    let leader = leader_index(&nodes).await.expect("a leader");

    // An incident, paged and resolved, while all three run.
    target.set(Health::Failing);
    eventually(
        "the first incident",
        &nodes[0],
        Duration::from_secs(20),
        || async { (pay_incidents(&nodes[0]).await.len() == 1).then_some(()) },
    )
    .await;
    target.set(Health::Healthy);
    eventually(
        "the first incident resolved",
        &nodes[0],
        Duration::from_secs(20),
        || async {
            pay_incidents(&nodes[0])
                .await
                .iter()
                .all(|i| i["state"] == "resolved")
                .then_some(())
        },
    )
    .await;

    // A node of A that does not lead dies; the other node of A runs A's ticks alone.
    let victim = if leader == 0 { 1 } else { 0 };
    let victim = nodes.remove(victim);
    assert_eq!(victim.stop(libc::SIGKILL).await, None);
    tokio::time::sleep(Duration::from_secs(3)).await;

    // A second incident; its leader dies while it is open.
    target.set(Health::Failing);
    let watcher = &nodes[0];
    eventually(
        "the second incident",
        watcher,
        Duration::from_secs(20),
        || async { (pay_incidents(watcher).await.len() == 2).then_some(()) },
    )
    .await;
    let lead_pos = leader_index(&nodes)
        .await
        .expect("a leader among the survivors");
    let dead_leader = nodes.remove(lead_pos);
    assert_eq!(dead_leader.stop(libc::SIGKILL).await, None);
    let last = &nodes[0];
    let limit = waymark::service::cluster::FAILOVER + Duration::from_secs(5);
    eventually("the last node leads", last, limit, || async {
        leads(last).await.then_some(())
    })
    .await;
    target.set(Health::Healthy);
    eventually(
        "the second incident resolved",
        last,
        Duration::from_secs(20),
        || async {
            let all = pay_incidents(last).await;
            (all.len() == 2 && all.iter().all(|i| i["state"] == "resolved")).then_some(())
        },
    )
    .await;

    // PagerDuty saw each incident triggered once and resolved once.
    let all = pay_incidents(last).await;
    let events: Vec<(String, String)> = eventually(
        "four PagerDuty events",
        last,
        Duration::from_secs(15),
        || async {
            let got: Vec<(String, String)> = pd
                .received("/v2/enqueue")
                .iter()
                .filter(|r| r.answered == 202)
                .map(|r| r.json())
                .map(|e| {
                    (
                        e["dedup_key"].as_str().unwrap().to_string(),
                        e["event_action"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            (got.iter().filter(|(_, a)| a == "resolve").count() >= 2).then_some(got)
        },
    )
    .await;
    for incident in &all {
        let key = incident["dedup_key"].as_str().unwrap();
        for action in ["trigger", "resolve"] {
            let n = events
                .iter()
                .filter(|(k, a)| k == key && a == action)
                .count();
            assert_eq!(n, 1, "{action} of {key}: {events:?}");
        }
    }

    // Every (journey, location, tick) ran at most once.
    let store = waymark::store::Store::connect(&url).await.unwrap();
    let runs = store.recent_runs("pay", 500).await.unwrap();
    let mut ticks: Vec<(String, DateTime<Utc>)> = runs
        .iter()
        .map(|r| (r.location.clone(), r.planned_at))
        .collect();
    let count = ticks.len();
    ticks.sort();
    ticks.dedup();
    assert_eq!(ticks.len(), count, "a tick ran twice in a location");
    assert!(ticks.iter().any(|(l, _)| l == "A") && ticks.iter().any(|(l, _)| l == "B"));
    store.close().await;
}

async fn pay_incidents(serve: &Serve) -> Vec<Value> {
    let v = serve.json("/api/v1/incidents?journey=pay").await;
    v["incidents"].as_array().unwrap().clone()
}

/// Whether `serve` holds the leader lease, by its own account.
async fn leads(serve: &Serve) -> bool {
    let v = nodes_json(serve).await;
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["this"] == true && n["leader"] == true)
}

async fn leader_index(nodes: &[Serve]) -> Option<usize> {
    for (i, n) in nodes.iter().enumerate() {
        if leads(n).await {
            return Some(i);
        }
    }
    None
}

async fn nodes_json(serve: &Serve) -> Value {
    serve.json("/api/v1/nodes").await
}
