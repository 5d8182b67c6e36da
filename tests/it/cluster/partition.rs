//! Two nodes of one location, each reaching PostgreSQL through its own [`Proxy`]. The leader's
//! proxy is cut (a partition: silence, not errors) for 25 s: the leader steps down before its
//! lease can expire, the other node takes the lease within the stated failover time and carries
//! the open incident on, the cut-off node keeps running ticks (it cannot claim them, so some run
//! twice) and its API answers 503 within its deadline instead of hanging; once the network
//! heals it stores the runs it kept and beats again as a follower; no tick is lost and no page
//! is sent twice. Then the database restarts (connections closed
//! and refused for 8 s): both nodes keep the runs they make meanwhile and store them after.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::proxy::Proxy;
use super::{Node, pd_events, this_node};
use crate::alerting::peers::Receiver;
use crate::store::empty_postgres_database;
use crate::support::serve::{Serve, closed_port, eventually, setup};

const CUT_FOR: Duration = Duration::from_secs(25);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_database_steps_down_and_catches_up() {
    let url = empty_postgres_database().await;
    let pd = Receiver::start().await;
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
    std::fs::write(
        dir.path().join("waymark.toml"),
        format!(
            "[alerting.channels.pager]\ntype = \"pagerduty\"\n\
             routing_key = \"R0UT1NGKEY0000000000000000000077\"\nurl = \"{}/v2/enqueue\"\n",
            pd.base
        ),
    )
    .unwrap();
    let upstream = reqwest::Url::parse(&url).unwrap();
    let upstream_addr = upstream.socket_addrs(|| None).unwrap()[0];
    let mut proxies = Vec::new();
    let mut nodes = Vec::new();
    for run in 0..2 {
        let proxy = Proxy::start(upstream_addr).await;
        let mut through = upstream.clone();
        through.set_port(Some(proxy.addr.port())).unwrap();
        let serve = Serve::start_with(
            dir.path(),
            run,
            &[
                ("WAYMARK_DATABASE_URL", through.as_str()),
                ("WAYMARK_LOCATION", "A"),
            ],
        );
        // The first node leads before the second starts.
        let led = eventually("a leader", &serve, Duration::from_secs(15), || async {
            let me = this_node(&serve).await;
            (run == 1 || me["leader"] == true).then_some(me)
        });
        let id = led.await["node_id"].as_str().unwrap().to_string();
        nodes.push(Node {
            serve,
            id,
            location: "A",
        });
        proxies.push(proxy);
    }
    let (leader, other) = (&nodes[0], &nodes[1]);
    assert_eq!(this_node(&other.serve).await["leader"], false);
    let from = Utc::now() + chrono::Duration::seconds(2);
    let triggered = eventually("the page", &other.serve, Duration::from_secs(20), || {
        let events = pd_events(&pd);
        async move { events.into_iter().find(|e| e["event_action"] == "trigger") }
    })
    .await;
    let key = triggered["dedup_key"].clone();
    // Recorded as delivered, too: a leader cut off between sending a notification and
    // recording it would have the next leader send it again (at least once, not exactly once;
    // docs/deployment.md says so).
    eventually(
        "the page recorded",
        &other.serve,
        Duration::from_secs(10),
        || async {
            let v = other.serve.json("/api/v1/incidents?journey=broken").await;
            let id = v["incidents"][0]["id"].as_i64()?;
            let detail = other.serve.json(&format!("/api/v1/incidents/{id}")).await;
            let all = detail["notifications"].as_array()?;
            all.iter().all(|n| n["status"] == "delivered").then_some(())
        },
    )
    .await;

    // The partition: the leader steps down on its own before the other node can take over.
    proxies[0].cut();
    let cut_at = Instant::now();
    let cut_utc = Utc::now();
    let (mut stepped_down, mut took_over) = (None, None);
    while stepped_down.is_none() || took_over.is_none() {
        assert!(
            cut_at.elapsed() < Duration::from_secs(30),
            "{stepped_down:?} {took_over:?}"
        );
        if stepped_down.is_none() && leads_by_metrics(&leader.serve).await == Some(false) {
            stepped_down = Some(cut_at.elapsed());
        }
        if took_over.is_none() && this_node(&other.serve).await["leader"] == true {
            took_over = Some(cut_at.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (stepped_down, took_over) = (stepped_down.unwrap(), took_over.unwrap());
    assert!(
        stepped_down < took_over,
        "never two leaders: stepped down after {stepped_down:?}, taken over after {took_over:?}"
    );
    assert!(
        took_over <= waymark::service::cluster::FAILOVER,
        "{took_over:?}"
    );
    // The new leader carries the incident on.
    let incidents = other.serve.json("/api/v1/incidents?journey=broken").await;
    let incidents = incidents["incidents"].as_array().unwrap().clone();
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert_eq!(incidents[0]["state"], "open");

    // The cut-off node's API still answers, within its deadline, when the database does not.
    let asked = Instant::now();
    let (status, _) = get_status(&leader.serve, "/api/v1/incidents").await;
    assert_eq!(status, 503);
    let deadline = waymark::api::REQUEST_DEADLINE;
    assert!(
        asked.elapsed() < deadline + Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    let (status, _) = get_status(&leader.serve, "/readyz").await;
    assert_eq!(status, 503);

    tokio::time::sleep(CUT_FOR.saturating_sub(cut_at.elapsed())).await;
    proxies[0].heal();
    let healed_utc = Utc::now();
    let back = eventually(
        "the cut-off node beating again",
        &other.serve,
        Duration::from_secs(20),
        || async {
            let v = other.serve.json("/api/v1/nodes").await;
            let me = v["nodes"]
                .as_array()?
                .iter()
                .find(|n| n["node_id"] == leader.id.as_str())?;
            let beat = DateTime::parse_from_rfc3339(me["heartbeat_at"].as_str()?).ok()?;
            (me["alive"] == true && beat > healed_utc).then_some(v)
        },
    )
    .await;
    assert_eq!(
        back["leader"],
        other.id.as_str(),
        "the lease stays put: {back}"
    );

    // The runs the cut-off node kept are stored; every tick ran, twice at most during the cut.
    let db = sqlx::PgPool::connect(&url).await.unwrap();
    let stored_after_heal = eventually(
        "the kept runs stored",
        &other.serve,
        Duration::from_secs(20),
        || async {
            let twice = ticks_run(&db, cut_utc, healed_utc).await;
            twice.values().any(|n| *n > 1).then_some(())
        },
    );
    stored_after_heal.await;

    // The database restarts: every connection of both nodes closed, new ones refused, for
    // 8 s. Claims fail, so both nodes run every tick; their writers keep the runs and store
    // them once the database is back.
    for p in &proxies {
        p.refuse();
    }
    let down = Utc::now();
    tokio::time::sleep(Duration::from_secs(8)).await;
    for p in &proxies {
        p.heal();
    }
    let up = Utc::now();
    let restart = (down + chrono::Duration::seconds(1), up);
    eventually(
        "the runs of the restart stored",
        &other.serve,
        Duration::from_secs(30),
        || async {
            let ran = ticks_run(&db, restart.0, restart.1).await;
            (ran.len() as i64 >= (restart.1 - restart.0).num_seconds()).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let to = Utc::now() - chrono::Duration::seconds(2);
    let ran = ticks_run(&db, from, to).await;
    let ticks: Vec<&DateTime<Utc>> = ran.keys().collect();
    assert!(
        ticks.len() as i64 >= (to - from).num_seconds() - 1,
        "{ticks:?}"
    );
    for pair in ticks.windows(2) {
        assert_eq!(
            *pair[1] - *pair[0],
            chrono::Duration::seconds(1),
            "a tick lost"
        );
    }
    let grace = chrono::Duration::seconds(3);
    for (at, n) in &ran {
        let within = |(a, b): (DateTime<Utc>, DateTime<Utc>)| *at >= a - grace && *at <= b + grace;
        let outage = within((cut_utc, healed_utc)) || within((down, up));
        assert!(*n == 1 || (outage && *n == 2), "{at} ran {n} times");
    }

    // One page for the one incident, whoever led.
    let triggers = pd_events(&pd)
        .iter()
        .filter(|e| e["dedup_key"] == key && e["event_action"] == "trigger")
        .count();
    let when: Vec<_> = pd
        .received("/v2/enqueue")
        .iter()
        .map(|r| (r.at, r.answered))
        .collect();
    assert_eq!(triggers, 1, "cut at {cut_utc}: {when:?}");
    db.close().await;
}

async fn get_status(serve: &Serve, path: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", serve.base))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// `waymark_cluster_leader` as the node reports it (None if it did not answer in time).
async fn leads_by_metrics(serve: &Serve) -> Option<bool> {
    let client = reqwest::Client::new();
    let scrape = client
        .get(format!("{}/metrics", serve.base))
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let line = scrape
        .lines()
        .find(|l| l.starts_with("waymark_cluster_leader "))?;
    Some(line.ends_with(" 1"))
}

/// How many runs of `tick` each planned instant in `[from, to]` has.
async fn ticks_run(
    db: &sqlx::PgPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> std::collections::BTreeMap<DateTime<Utc>, i64> {
    let ns = |t: DateTime<Utc>| t.timestamp_nanos_opt().unwrap();
    sqlx::query(
        "SELECT planned_at_ns, count(*) AS n FROM runs WHERE journey = 'tick' \
         AND planned_at_ns BETWEEN $1 AND $2 GROUP BY planned_at_ns",
    )
    .bind(ns(from))
    .bind(ns(to))
    .fetch_all(db)
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            DateTime::from_timestamp_nanos(r.get("planned_at_ns")),
            r.get("n"),
        )
    })
    .collect()
}
