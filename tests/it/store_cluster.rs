//! Storage for several nodes: heartbeats, the leader lease, run claims, the run feed and
//! relayed commands, on SQLite and on PostgreSQL (the store suite's `Db` and `suite!`).

use chrono::{DateTime, Utc};
use waymark::run::testkit::run;
use waymark::store::cluster::{NodeInfo, SettleCutoffs, Tick};
use waymark::store::commands::{CommandAnswer, CommandProgress};
use waymark::store::{Expiring, RunRecord};

use crate::store::{Db, at, record, same, simple_run, suite};

suite!(
    leases_claims_and_heartbeats_for_several_nodes,
    the_run_feed_lists_stored_runs_in_order_with_a_cursor,
    commands_are_taken_once_answered_and_withdrawn_only_untaken,
);

async fn leases_claims_and_heartbeats_for_several_nodes(db: Db) {
    let store = db.store;
    let t = |s: i64| at(10, 0, 0, 0) + chrono::Duration::seconds(s);
    let ttl = chrono::Duration::seconds(15);

    // One leader at a time; renewals keep it; expiry or release frees it.
    assert!(
        store
            .cluster()
            .acquire_lease("leader", "a", t(0), t(0) + ttl)
            .await
            .unwrap()
    );
    assert!(
        !store
            .cluster()
            .acquire_lease("leader", "b", t(1), t(1) + ttl)
            .await
            .unwrap()
    );
    assert!(
        store
            .cluster()
            .acquire_lease("leader", "a", t(5), t(5) + ttl)
            .await
            .unwrap(),
        "renewal"
    );
    assert!(
        !store
            .cluster()
            .acquire_lease("leader", "b", t(19), t(19) + ttl)
            .await
            .unwrap(),
        "renewed until 20"
    );
    assert_eq!(
        store
            .cluster()
            .lease("leader", t(19))
            .await
            .unwrap()
            .unwrap()
            .holder,
        "a"
    );
    assert!(
        store
            .cluster()
            .acquire_lease("leader", "b", t(20), t(20) + ttl)
            .await
            .unwrap(),
        "expired"
    );
    assert_eq!(
        store
            .cluster()
            .lease("leader", t(21))
            .await
            .unwrap()
            .unwrap()
            .holder,
        "b"
    );
    assert_eq!(
        store.cluster().lease("leader", t(36)).await.unwrap(),
        None,
        "expired, nobody renewed"
    );
    assert!(
        !store
            .cluster()
            .acquire_lease("leader", "a", t(21), t(21) + ttl)
            .await
            .unwrap()
    );
    store.cluster().release_lease("leader", "a").await.unwrap();
    assert_eq!(
        store
            .cluster()
            .lease("leader", t(21))
            .await
            .unwrap()
            .unwrap()
            .holder,
        "b",
        "not a's to release"
    );
    store.cluster().release_lease("leader", "b").await.unwrap();
    assert!(
        store
            .cluster()
            .acquire_lease("leader", "a", t(22), t(22) + ttl)
            .await
            .unwrap(),
        "released"
    );
    // Leases are independent of one another.
    assert!(
        store
            .cluster()
            .acquire_lease("other", "b", t(22), t(22) + ttl)
            .await
            .unwrap()
    );

    // Many nodes racing for one lease: exactly one wins.
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .cluster()
                    .acquire_lease("race", &format!("n{i}"), t(0), t(0) + ttl)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut winners = 0;
    for r in racers {
        winners += usize::from(r.await.unwrap());
    }
    assert_eq!(winners, 1);

    // A tick runs once per location, whoever claims it first.
    let tick = |location| Tick {
        journey: "shop",
        location,
        planned_at: t(60),
    };
    assert!(
        store
            .cluster()
            .claim_run(tick("eu"), "a", t(60))
            .await
            .unwrap()
    );
    assert!(
        !store
            .cluster()
            .claim_run(tick("eu"), "b", t(60))
            .await
            .unwrap()
    );
    assert!(
        store
            .cluster()
            .claim_run(tick("us"), "c", t(60))
            .await
            .unwrap(),
        "another location"
    );
    let next = Tick {
        planned_at: t(61),
        ..tick("eu")
    };
    assert!(
        store.cluster().claim_run(next, "b", t(61)).await.unwrap(),
        "the next tick"
    );

    // Settling: the eu tick of 10:01:00 was stored, the us one and the next eu one were not.
    let mut ran = record(
        run("shop")
            .location("eu")
            .at(t(60))
            .finished_at(t(60))
            .duration_ms(5.0)
            .build(),
    );
    ran.planned_at = t(60);
    store
        .runs()
        .record_runs(&[ran], chrono::Utc::now())
        .await
        .unwrap();
    let missed = store.cluster().settle_claims(settle(t(61))).await.unwrap();
    let missed: Vec<(&str, &str, DateTime<Utc>)> = missed
        .iter()
        .map(|m| (m.location.as_str(), m.node_id.as_str(), m.planned_at))
        .collect();
    assert_eq!(missed, [("us", "c", t(60))], "claims after `before` wait");
    let later = store.cluster().settle_claims(settle(t(100))).await.unwrap();
    assert_eq!(later.len(), 1, "only the 10:01:01 tick is left: {later:?}");
    assert_eq!(
        (later[0].node_id.as_str(), later[0].planned_at),
        ("b", t(61))
    );
    assert!(
        store
            .cluster()
            .settle_claims(settle(t(100)))
            .await
            .unwrap()
            .is_empty(),
        "settled once"
    );
    assert_eq!(store.prune(Expiring::Claims, t(61)).await.unwrap(), 2);
    assert!(
        !store.cluster().claim_run(next, "a", t(62)).await.unwrap(),
        "kept after pruning"
    );

    // Heartbeats: one row per node, refreshed; newest first; old ones pruned.
    let node = |id: &str, location: &str, beat: i64| NodeInfo {
        node_id: id.into(),
        location: location.into(),
        version: "0.1.0".into(),
        hostname: "host".into(),
        journeys_sha256: "ab".repeat(32),
        started_at: t(0),
        heartbeat_at: t(beat),
    };
    store
        .cluster()
        .heartbeat(&node("a", "eu", 1))
        .await
        .unwrap();
    store
        .cluster()
        .heartbeat(&node("b", "us", 2))
        .await
        .unwrap();
    store
        .cluster()
        .heartbeat(&node("a", "eu", 6))
        .await
        .unwrap();
    let nodes = store.cluster().nodes().await.unwrap();
    assert_eq!(nodes, [node("a", "eu", 6), node("b", "us", 2)]);
    assert_eq!(store.prune(Expiring::Nodes, t(3)).await.unwrap(), 1);
    assert_eq!(store.cluster().nodes().await.unwrap(), [node("a", "eu", 6)]);

    // A silent node's claims settle early; a live node's wait for the general cutoff.
    let at_70 = |location| Tick {
        planned_at: t(70),
        ..tick(location)
    };
    assert!(
        store
            .cluster()
            .claim_run(at_70("eu"), "a", t(70))
            .await
            .unwrap()
    );
    assert!(
        store
            .cluster()
            .claim_run(at_70("us"), "b", t(70))
            .await
            .unwrap()
    );
    let early = SettleCutoffs {
        claimed_before: t(65),
        silent_claimed_before: t(80),
        silent_since: t(5),
    };
    let missed = store.cluster().settle_claims(early).await.unwrap();
    let who: Vec<&str> = missed.iter().map(|m| m.node_id.as_str()).collect();
    assert_eq!(who, ["b"], "b no longer beats (pruned); a beat at 6");
}

/// Cutoffs that settle every claim made before `before`, whoever made it.
fn settle(before: DateTime<Utc>) -> SettleCutoffs {
    SettleCutoffs {
        claimed_before: before,
        silent_claimed_before: before,
        silent_since: before,
    }
}

async fn the_run_feed_lists_stored_runs_in_order_with_a_cursor(db: Db) {
    let store = db.store;
    assert_eq!(store.feed().feed_head().await.unwrap(), 0);
    assert_eq!(store.feed().cursor("analysis").await.unwrap(), None);
    let runs: Vec<RunRecord> = (0..3)
        .map(|m| record(simple_run("shop", at(9, m, 0, 0), 10, true)))
        .collect();
    store
        .runs()
        .record_runs(&runs[..2], chrono::Utc::now())
        .await
        .unwrap();
    store
        .runs()
        .record_runs(&runs[1..], chrono::Utc::now())
        .await
        .unwrap();
    let feed = store.feed().feed_after(0, 10).await.unwrap();
    let ids: Vec<uuid::Uuid> = feed.iter().map(|e| e.run_id).collect();
    let expected: Vec<uuid::Uuid> = runs.iter().map(|r| r.result.run_id).collect();
    assert_eq!(
        ids, expected,
        "in store order, a run stored twice listed once"
    );
    assert!(feed.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(store.feed().feed_head().await.unwrap(), feed[2].seq);
    let after_first = store.feed().feed_after(feed[0].seq, 1).await.unwrap();
    assert_eq!(after_first.len(), 1);
    assert_eq!(after_first[0].run_id, expected[1]);
    // With their runs, steps included, loaded a page at a time.
    let fed = store.feed().feed_runs_after(feed[0].seq, 10).await.unwrap();
    assert_eq!(fed.len(), 2);
    for ((entry, run), want) in fed.iter().zip(&runs[1..]) {
        assert_eq!(entry.run_id, want.result.run_id);
        same(want, run.as_ref().unwrap());
    }
    // A run pruned since its entry was written is listed without it.
    store
        .runs()
        .prune(at(9, 1, 0, 0), at(0, 0, 0, 0), 10)
        .await
        .unwrap();
    let fed = store.feed().feed_runs_after(0, 10).await.unwrap();
    let present: Vec<bool> = fed.iter().map(|(_, r)| r.is_some()).collect();
    assert_eq!(present, [false, true, true]);

    store
        .feed()
        .set_cursor("analysis", feed[1].seq)
        .await
        .unwrap();
    store
        .feed()
        .set_cursor("analysis", feed[2].seq)
        .await
        .unwrap();
    assert_eq!(
        store.feed().cursor("analysis").await.unwrap(),
        Some(feed[2].seq)
    );

    let later = feed[2].recorded_at + chrono::Duration::seconds(1);
    assert_eq!(store.prune(Expiring::Feed, later).await.unwrap(), 3);
    assert!(store.feed().feed_after(0, 10).await.unwrap().is_empty());
    assert_eq!(
        store.feed().cursor("analysis").await.unwrap(),
        Some(feed[2].seq),
        "kept"
    );
}

async fn commands_are_taken_once_answered_and_withdrawn_only_untaken(db: Db) {
    let store = db.store;
    let asked = |by: &'static str| {
        let store = store.clone();
        async move {
            store
                .commands()
                .ask_command("acknowledge", 7, by, "follower", at(9, 0, 0, 0))
                .await
                .unwrap()
        }
    };
    let (first, second, third) = (asked("ada").await, asked("bob").await, asked("cy").await);
    assert!(first < second && second < third);
    assert_eq!(
        store.commands().command_progress(first).await.unwrap(),
        CommandProgress::Waiting
    );

    // Two leaders at once (one not yet aware it lost the lease) take each command once. (On
    // PostgreSQL the one that waited for the other's rows may come away empty-handed; what it
    // left is taken at the next poll.)
    let (a, b) = tokio::join!(
        store.commands().take_commands("a", 2),
        store.commands().take_commands("b", 2)
    );
    let again = store.commands().take_commands("b", 2).await.unwrap();
    let mut taken: Vec<(i64, String)> = a
        .unwrap()
        .into_iter()
        .chain(b.unwrap())
        .chain(again)
        .map(|c| (c.id, c.by))
        .collect();
    taken.sort();
    assert_eq!(
        taken,
        [
            (first, "ada".into()),
            (second, "bob".into()),
            (third, "cy".into())
        ]
    );
    assert!(
        store
            .commands()
            .take_commands("a", 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.commands().command_progress(first).await.unwrap(),
        CommandProgress::Taken
    );
    assert!(
        !store.commands().withdraw_command(first).await.unwrap(),
        "taken: stays"
    );

    let answer = CommandAnswer {
        outcome: "conflict".into(),
        detail: Some("resolved".into()),
    };
    store
        .commands()
        .answer_command(first, &answer, at(9, 0, 1, 0))
        .await
        .unwrap();
    assert_eq!(
        store.commands().command_progress(first).await.unwrap(),
        CommandProgress::Answered(answer)
    );

    // Withdrawn before any leader took it: gone, and never taken afterwards.
    let late = asked("dee").await;
    assert!(store.commands().withdraw_command(late).await.unwrap());
    assert_eq!(
        store.commands().command_progress(late).await.unwrap(),
        CommandProgress::Gone
    );
    assert!(
        store
            .commands()
            .take_commands("a", 10)
            .await
            .unwrap()
            .is_empty()
    );

    assert_eq!(
        store
            .prune(Expiring::Commands, at(9, 0, 0, 1))
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        store.commands().command_progress(second).await.unwrap(),
        CommandProgress::Gone
    );
}
