//! The issue's scenario on the real PostgreSQL of the test script: three `waymark serve`
//! nodes, two in location A and one in B, two journeys every second (`pay` from both
//! locations with `alert.locations: 2`, `slow` from A only), PagerDuty's Events API played by a
//! local receiver, and the payment target of each location switched between healthy and
//! failing by the test.
//!
//! For 60 s all three run: every (journey, location, tick) runs exactly once, a failure in A
//! alone stays below the K-of-M rule, a failure in both pages once with both locations in the
//! event, and a follower acknowledges through the leader. Then a follower of A is SIGKILLed
//! (A's other node runs every tick of A from then on) and the leader is SIGKILLed during a
//! second incident (a new leader within the stated failover time carries it on). Across all of
//! it each incident makes exactly one PagerDuty trigger and one resolve, and every tick of a
//! location that still had a node either ran once or is recorded missed by a dead node.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{leader_position, pay_incidents, pd_events, this_node};
use crate::alerting::peers::{Health, Target};
use crate::alerting::post;
use crate::store::empty_postgres_database;
use crate::support::serve::{Serve, TOKEN, eventually, setup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_two_locations_run_each_tick_once_and_page_each_incident_once() {
    let url = empty_postgres_database().await;
    let (target_a, target_b) = (Target::start().await, Target::start().await);
    let pd = crate::alerting::peers::Receiver::start().await;
    let dir = setup(&[
        (
            "pay.yaml",
            "name: pay\nschedule: { every: 1s }\ntimeout: 5s\nalert: { locations: 2 }\nsteps:\n  \
             - name: pay\n    timeout: 500ms\n    http: { url: \"{{ env.PAY_URL }}\" }\n"
                .to_string(),
        ),
        (
            "slow.yaml",
            "name: slow\nschedule: { every: 1s }\ntimeout: 5s\nlocations: [A]\nsteps:\n  \
             - name: pause\n    wait: 500ms\n"
                .to_string(),
        ),
    ]);
    // Only failures page; a degraded incident (fewer than K locations failing) stays quiet.
    std::fs::write(
        dir.path().join("waymark.toml"),
        format!(
            "[alerting]\nreopen_within = \"1s\"\n[alerting.channels.pager]\ntype = \"pagerduty\"\n\
             routing_key = \"R0UT1NGKEY0000000000000000000077\"\nurl = \"{}/v2/enqueue\"\n\
             [[alerting.routes]]\nseverity = [\"failure\"]\nchannels = [\"pager\"]\n",
            pd.base
        ),
    )
    .unwrap();
    let start = |run: u32, location: &'static str, target: &Target| {
        let serve = Serve::start_with(
            dir.path(),
            run,
            &[
                ("WAYMARK_DATABASE_URL", url.as_str()),
                ("WAYMARK_LOCATION", location),
                ("PAY_URL", target.url.as_str()),
            ],
        );
        (serve, location)
    };
    let started = [
        start(0, "A", &target_a),
        start(1, "A", &target_a),
        start(2, "B", &target_b),
    ];
    let listed = eventually(
        "three live nodes and a leader",
        &started[0].0,
        Duration::from_secs(20),
        || async {
            let v = started[0].0.json("/api/v1/nodes").await;
            let live = v["nodes"].as_array()?.iter().filter(|n| n["alive"] == true);
            (live.count() == 3 && v["leader"].is_string()).then_some(v)
        },
    )
    .await;
    assert_eq!(
        listed["skew"], false,
        "same version, same journeys: {listed}"
    );
    let mut nodes = Vec::new();
    for (serve, location) in started {
        let id = this_node(&serve).await["node_id"]
            .as_str()
            .unwrap()
            .to_string();
        nodes.push(super::Node {
            serve,
            id,
            location,
        });
    }
    let from = Utc::now() + chrono::Duration::seconds(2);
    let db = sqlx::PgPool::connect(&url).await.unwrap();

    // A fails alone: one location of the two the rule needs, so at most a degraded incident,
    // and no page.
    tokio::time::sleep(Duration::from_secs(3)).await;
    target_a.set(Health::Failing);
    let watcher = &nodes[2].serve;
    eventually(
        "pay failing in A",
        watcher,
        Duration::from_secs(15),
        || async {
            let failed = outcomes(&db, "pay", "A", 3).await;
            (failed.len() == 3 && failed.iter().all(|o| o == "failed")).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for i in pay_incidents(watcher).await {
        assert_eq!(i["severity"], "degraded", "{i}");
        assert_eq!(i["cause"]["failing_locations"], serde_json::json!(["A"]));
    }
    assert!(pd.received("/v2/enqueue").is_empty(), "paged below K of M");

    // Both fail: one failure incident, paged once, naming both locations.
    target_b.set(Health::Failing);
    let trigger = eventually(
        "a PagerDuty trigger",
        watcher,
        Duration::from_secs(20),
        || {
            let events = pd_events(&pd);
            async move { events.into_iter().find(|e| e["event_action"] == "trigger") }
        },
    )
    .await;
    assert_eq!(
        trigger["payload"]["custom_details"]["locations"],
        serde_json::json!(["A", "B"]),
        "{trigger}"
    );
    let first = pay_incidents(watcher).await;
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0]["severity"], "failure");
    assert_eq!(
        first[0]["cause"]["failing_locations"],
        serde_json::json!(["A", "B"])
    );
    let id = first[0]["id"].as_i64().unwrap();

    // A follower acknowledges: relayed through the database to the leader.
    let leader = leader_position(&nodes).await.expect("a leader");
    let follower = &nodes[(leader + 1) % nodes.len()].serve;
    let ack = format!("/api/v1/incidents/{id}/ack");
    let (status, body) = post(follower, &ack, Some(TOKEN), r#"{"by": "ada"}"#).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["incident"]["state"], "acknowledged", "{body}");
    let (status, body) = post(follower, &ack, Some(TOKEN), "").await;
    assert_eq!(status, 409, "the leader's answer, relayed: {body}");

    target_a.set(Health::Healthy);
    target_b.set(Health::Healthy);
    eventually(
        "the first incident resolved",
        watcher,
        Duration::from_secs(20),
        || async {
            let all = pay_incidents(watcher).await;
            all.iter().all(|i| i["state"] == "resolved").then_some(())
        },
    )
    .await;

    // Sixty seconds of all three nodes: every tick of every journey at every location once.
    let wait = (from + chrono::Duration::seconds(60) - Utc::now()).to_std();
    tokio::time::sleep(wait.unwrap_or_default()).await;
    let all_three = (from, Utc::now() - chrono::Duration::seconds(2));
    for (journey, location) in [("pay", "A"), ("pay", "B"), ("slow", "A")] {
        let ledger = Ledger::read(&db, journey, location).await;
        ledger.assert_each_tick_once(all_three, &[]);
    }
    assert!(
        Ledger::read(&db, "slow", "B").await.ran.is_empty(),
        "slow runs from A only"
    );

    // A follower of A dies in the middle of a `slow` run (it claimed the tick under 200 ms
    // ago; the run takes 500 ms); A's other node runs every tick of A from then on.
    let leader = leader_position(&nodes).await.expect("a leader");
    let victim = (0..nodes.len())
        .find(|&i| i != leader && nodes[i].location == "A")
        .expect("a node of A that does not lead");
    let victim = nodes.remove(victim);
    let mid_run = eventually(
        "the victim mid-run",
        &victim.serve,
        Duration::from_secs(30),
        || running_slow(&db, &victim.id),
    );
    mid_run.await;
    let mut dead: Vec<(String, &'static str, DateTime<Utc>)> = Vec::new();
    dead.push((victim.id, victim.location, Utc::now()));
    assert_eq!(victim.serve.stop(libc::SIGKILL).await, None);
    tokio::time::sleep(Duration::from_secs(3)).await;

    // A second incident; the leader dies while it is open.
    target_a.set(Health::Failing);
    target_b.set(Health::Failing);
    let watcher = &nodes[0].serve;
    eventually(
        "the second incident",
        watcher,
        Duration::from_secs(20),
        || async { (pay_incidents(watcher).await.len() == 2).then_some(()) },
    )
    .await;
    let leader = leader_position(&nodes)
        .await
        .expect("a leader among the survivors");
    let old = nodes.remove(leader);
    dead.push((old.id, old.location, Utc::now()));
    assert_eq!(old.serve.stop(libc::SIGKILL).await, None);
    let killed_at = std::time::Instant::now();
    let last = &nodes[0].serve;
    let limit = waymark::service::cluster::FAILOVER + Duration::from_secs(5);
    eventually("the last node leads", last, limit, || async {
        (this_node(last).await["leader"] == true).then_some(())
    })
    .await;
    let took = killed_at.elapsed();
    assert!(took <= limit, "failover took {took:?}");
    let second = pay_incidents(last).await;
    assert!(
        second.iter().any(|i| i["state"] == "open"),
        "the new leader carries the open incident on: {second:?}"
    );
    target_a.set(Health::Healthy);
    target_b.set(Health::Healthy);
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
    let events = eventually(
        "both resolves at PagerDuty",
        last,
        Duration::from_secs(15),
        || {
            let events = pd_events(&pd);
            async move {
                let resolves = events.iter().filter(|e| e["event_action"] == "resolve");
                (resolves.count() >= 2).then_some(events)
            }
        },
    )
    .await;
    for incident in &all {
        let key = &incident["dedup_key"];
        for action in ["trigger", "resolve"] {
            let n = events
                .iter()
                .filter(|e| &e["dedup_key"] == key && e["event_action"] == action)
                .count();
            assert_eq!(n, 1, "{action} of {key}: {events:?}");
        }
    }

    // Every tick of a location while it had a node: run once, or recorded missed by a node
    // that died holding it (settled by the leader once that node is gone).
    let dead_ids: Vec<&str> = dead.iter().map(|(id, _, _)| id.as_str()).collect();
    let settled = eventually(
        "the dead nodes' claims settled",
        last,
        Duration::from_secs(60),
        || async {
            let unsettled: i64 = sqlx::query(
                "SELECT count(*) AS n FROM run_claims WHERE outcome IS NULL AND node_id = ANY($1)",
            )
            .bind(&dead_ids)
            .fetch_one(&db)
            .await
            .unwrap()
            .get("n");
            (unsettled == 0).then_some(())
        },
    );
    settled.await;
    let end = Utc::now() - chrono::Duration::seconds(2);
    let mut missed = 0;
    for (journey, location) in [("pay", "A"), ("pay", "B"), ("slow", "A")] {
        let gone = dead
            .iter()
            .filter(|(_, l, _)| *l == location)
            .map(|(_, _, at)| *at);
        let alive = nodes.iter().any(|n| n.location == location);
        // A location left without nodes: up to a second before its last node died (a tick
        // planned in the last instants may not have been claimed yet).
        let until = if alive {
            end
        } else {
            gone.max().unwrap() - chrono::Duration::seconds(1)
        };
        missed += Ledger::read(&db, journey, location)
            .await
            .assert_each_tick_once((from, until), &dead_ids);
    }
    assert!(missed >= 1, "the victim's `slow` run is recorded missed");
    db.close().await;
}

/// What the database holds for a journey at a location: the planned instants of the stored
/// runs, and the claims recorded missed with the node that held each.
struct Ledger {
    what: String,
    ran: Vec<DateTime<Utc>>,
    missed: BTreeMap<DateTime<Utc>, String>,
}

impl Ledger {
    async fn read(db: &sqlx::PgPool, journey: &str, location: &str) -> Ledger {
        let at = |r: &sqlx::postgres::PgRow| DateTime::from_timestamp_nanos(r.get("planned_at_ns"));
        let runs = sqlx::query(
            "SELECT planned_at_ns FROM runs WHERE journey = $1 AND location = $2 ORDER BY 1",
        )
        .bind(journey)
        .bind(location)
        .fetch_all(db)
        .await
        .unwrap();
        let missed = sqlx::query(
            "SELECT planned_at_ns, node_id FROM run_claims WHERE journey = $1 AND location = $2 \
             AND outcome = 'missed'",
        )
        .bind(journey)
        .bind(location)
        .fetch_all(db)
        .await
        .unwrap();
        Ledger {
            what: format!("{journey} at {location}"),
            ran: runs.iter().map(at).collect(),
            missed: missed.iter().map(|r| (at(r), r.get("node_id"))).collect(),
        }
    }

    /// Within `(from, to)`: no tick ran twice, no tick both ran and missed, a missed tick was
    /// held by one of `dead`, and the ticks ran or missed follow each other a second apart.
    /// How many were missed.
    fn assert_each_tick_once(
        &self,
        (from, to): (DateTime<Utc>, DateTime<Utc>),
        dead: &[&str],
    ) -> usize {
        let what = &self.what;
        let inside = |t: &DateTime<Utc>| *t >= from && *t <= to;
        let ran: Vec<DateTime<Utc>> = self.ran.iter().copied().filter(inside).collect();
        let mut ticks = ran.clone();
        ticks.dedup();
        assert_eq!(ticks.len(), ran.len(), "{what}: a tick ran twice: {ran:?}");
        for (at, node) in self.missed.iter().filter(|(t, _)| inside(t)) {
            assert!(
                dead.contains(&node.as_str()),
                "{what}: {at} missed by live {node}"
            );
            assert!(!ran.contains(at), "{what}: {at} both ran and missed");
            ticks.push(*at);
        }
        ticks.sort();
        eprintln!(
            "{what}: {} ticks ran, {} missed in {from}..{to}",
            ran.len(),
            ticks.len() - ran.len()
        );
        assert!(
            ticks.len() as i64 >= (to - from).num_seconds() - 1,
            "{what}: {} ticks in {}..{to}",
            ticks.len(),
            from
        );
        for pair in ticks.windows(2) {
            assert_eq!(
                pair[1] - pair[0],
                chrono::Duration::seconds(1),
                "{what}: no tick between {} and {}",
                pair[0],
                pair[1]
            );
        }
        ticks.len() - ran.len()
    }
}

/// Whether `node` claimed the latest `slow` tick of A under 200 ms ago (so is running it).
async fn running_slow(db: &sqlx::PgPool, node: &str) -> Option<()> {
    let latest = sqlx::query(
        "SELECT node_id, claimed_at_ns FROM run_claims WHERE journey = 'slow' AND location = 'A' \
         ORDER BY planned_at_ns DESC LIMIT 1",
    )
    .fetch_optional(db)
    .await
    .unwrap()?;
    let claimed = DateTime::from_timestamp_nanos(latest.get("claimed_at_ns"));
    let fresh = Utc::now() - claimed < chrono::Duration::milliseconds(200);
    (latest.get::<String, _>("node_id") == node && fresh).then_some(())
}

/// The outcomes of the latest `n` runs of `journey` at `location`, newest first.
async fn outcomes(db: &sqlx::PgPool, journey: &str, location: &str, n: i64) -> Vec<String> {
    sqlx::query(
        "SELECT outcome FROM runs WHERE journey = $1 AND location = $2 \
         ORDER BY planned_at_ns DESC LIMIT $3",
    )
    .bind(journey)
    .bind(location)
    .bind(n)
    .fetch_all(db)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get("outcome"))
    .collect()
}
