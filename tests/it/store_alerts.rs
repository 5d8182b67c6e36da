//! Storage of incidents, their timelines and the notification outbox: the store suite's `Db`
//! and `suite!`, so every test runs on SQLite and on PostgreSQL.

use chrono::{DateTime, Utc};

use waymark::alert::{
    Cause, Incident, IncidentState, Links, Notification, NotificationKind, Severity,
};
use waymark::alert::{EventKind, IncidentChange, IncidentEvent, ResolvedBy};
use waymark::baseline::SeriesKey;
use waymark::baseline::{DetectorKind, Episode};
use waymark::store::alerts::{
    AfterAttempt, DeliveryAttempt, DeliveryOutcome, IncidentFilter, NotificationRecord,
    NotificationStatus,
};
use waymark::store::{EpisodeFilter, Store, StoreError};

use crate::store::{Db, at, empty_postgres_database, suite};

suite!(
    new_incident_reads_back_identically,
    updates_append_events_and_queue_in_order,
    muted_notifications_are_kept_but_never_pending,
    attempts_retry_deliver_and_fail,
    late_attempt_does_not_undo_a_delivery,
    failed_save_stores_nothing,
    incidents_filter_by_state_journey_since_and_limit,
    incident_tables_are_added_to_an_existing_database,
);

/// A failure incident of `journey`, not stored yet (`id == 0`), opened at `opened_at`.
fn incident(journey: &str, opened_at: DateTime<Utc>) -> Incident {
    Incident {
        id: 0,
        journey: journey.into(),
        severity: Severity::Failure,
        state: IncidentState::Open,
        dedup_key: format!("waymark-{}", uuid::Uuid::new_v4().simple()),
        started_at: opened_at - chrono::Duration::nanoseconds(150_000_000_123),
        opened_at,
        acknowledged_at: None,
        acknowledged_by: None,
        resolved_at: None,
        resolved_by: None,
        reopened: 0,
        flapping: false,
        cause: Cause {
            run_id: Some(uuid::Uuid::new_v4()),
            trace_id: Some("0af7651916cd43dd8448eb211c80319c".into()),
            location: Some("eu-west".into()),
            failing_locations: vec!["eu-west".into(), "us-east".into()],
            step: Some("pay".into()),
            dependency: Some("payments".into()),
            failure_class: Some("http_status".into()),
            condition: Some("[STATUS] == 200".into()),
            actual: Some("503".into()),
            error: Some("status 503, token ***".into()),
            anomaly: None,
        },
        channels: vec!["pagerduty".into(), "slack".into()],
        owner: Some("team-payments".into()),
        runbook: Some("https://runbooks.example.com/shop-checkout".into()),
        tags: vec!["tier-1".into(), "checkout".into()],
    }
}

/// What the engine queues for `incident` on `channel` (its snapshot as the engine holds it).
fn notification(
    incident: &Incident,
    channel: &str,
    kind: NotificationKind,
    created_at: DateTime<Utc>,
) -> Notification {
    Notification {
        id: uuid::Uuid::new_v4(),
        channel: channel.into(),
        kind,
        created_at,
        incident: incident.clone(),
        links: Links {
            incident: Some("https://waymark.example.com/incidents/pending".into()),
            run: None,
            trace: Some("https://traces.example.com/0af7651916cd43dd8448eb211c80319c".into()),
            runbook: incident.runbook.clone(),
        },
    }
}

fn event(at: DateTime<Utc>, kind: EventKind, detail: &str) -> IncidentEvent {
    IncidentEvent {
        at,
        kind,
        detail: detail.into(),
    }
}

/// A change that only saves the incident.
fn change(incident: &Incident) -> IncidentChange {
    IncidentChange {
        incident: incident.clone(),
        events: vec![],
        notifications: vec![],
        muted: vec![],
    }
}

/// `n` as stored for incident `id`.
fn stored(n: &Notification, id: i64) -> Notification {
    let mut n = n.clone();
    n.incident.id = id;
    n
}

/// A freshly queued notification of incident `id`.
fn pending(n: &Notification, id: i64) -> NotificationRecord {
    NotificationRecord {
        notification: stored(n, id),
        status: NotificationStatus::Pending,
        attempts: 0,
        next_attempt_at: Some(n.created_at),
        last_error: None,
        delivered_at: None,
    }
}

fn attempt(
    at: DateTime<Utc>,
    status_code: Option<u16>,
    outcome: DeliveryOutcome,
    error: Option<&str>,
) -> DeliveryAttempt {
    DeliveryAttempt {
        at,
        duration_ms: 123.456_789,
        status_code,
        outcome,
        error: error.map(str::to_string),
    }
}

fn ids(records: &[NotificationRecord]) -> Vec<uuid::Uuid> {
    records.iter().map(|r| r.notification.id).collect()
}

async fn new_incident_reads_back_identically(mut db: Db) {
    let mut i = incident("shop-checkout", at(10, 3, 0, 123_456_789));
    let events = vec![
        event(
            at(10, 3, 0, 123_456_789),
            EventKind::Triggered,
            "step \"pay\" failed at 2 of 3 locations",
        ),
        event(
            at(10, 3, 0, 123_456_790),
            EventKind::Reminder,
            "pagerduty, slack",
        ),
    ];
    let page = notification(&i, "pagerduty", NotificationKind::Triggered, i.opened_at);
    let chat = notification(&i, "slack", NotificationKind::Triggered, i.opened_at);
    let id = db
        .store
        .incidents()
        .save_incident(&IncidentChange {
            incident: i.clone(),
            events: events.clone(),
            notifications: vec![page.clone(), chat.clone()],
            muted: vec![],
        })
        .await
        .unwrap();
    assert!(id > 0);
    i.id = id;

    // Read from the database, not from anything a connection kept.
    db.reopen().await;
    let s = &db.store;
    assert_eq!(s.incidents().incident(id).await.unwrap(), Some(i.clone()));
    assert_eq!(s.incidents().incident(id + 1).await.unwrap(), None);
    assert_eq!(s.incidents().incident_events(id).await.unwrap(), events);
    let queued = vec![pending(&page, id), pending(&chat, id)];
    assert_eq!(
        s.incidents().incident_notifications(id).await.unwrap(),
        queued
    );
    assert_eq!(
        s.incidents().pending_notifications(10).await.unwrap(),
        queued
    );
    assert_eq!(
        s.incidents()
            .incidents(&IncidentFilter::default())
            .await
            .unwrap(),
        vec![i]
    );
    assert!(
        s.incidents()
            .incident_events(id + 1)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.incidents()
            .delivery_attempts(page.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.incidents().notification_counts().await.unwrap(),
        vec![
            ("pagerduty".to_string(), NotificationStatus::Pending, 1),
            ("slack".to_string(), NotificationStatus::Pending, 1),
        ]
    );
}

async fn updates_append_events_and_queue_in_order(db: Db) {
    let s = &db.store;
    let mut shop = incident("shop-checkout", at(9, 0, 0, 1));
    shop.severity = Severity::Degraded;
    shop.channels = vec!["slack".into()];
    let opened = event(
        shop.opened_at,
        EventKind::Triggered,
        "checkout is slower than its baseline",
    );
    let triggered = notification(&shop, "slack", NotificationKind::Triggered, shop.opened_at);
    shop.id = s
        .incidents()
        .save_incident(&IncidentChange {
            notifications: vec![triggered.clone()],
            events: vec![opened.clone()],
            ..change(&shop)
        })
        .await
        .unwrap();
    // Another incident queues in between.
    let search = incident("search", at(9, 5, 0, 0));
    let other = notification(
        &search,
        "pagerduty",
        NotificationKind::Triggered,
        at(9, 5, 0, 0),
    );
    let search_id = s
        .incidents()
        .save_incident(&IncidentChange {
            notifications: vec![other.clone()],
            ..change(&search)
        })
        .await
        .unwrap();
    assert_ne!(search_id, shop.id);

    // The shop incident escalates: same id, new severity and channels, two more messages.
    shop.severity = Severity::Failure;
    shop.channels = vec!["slack".into(), "pagerduty".into()];
    shop.cause.error = Some("connection refused".into());
    let escalated = event(
        at(9, 10, 0, 5),
        EventKind::Escalated,
        "runs fail at 2 locations",
    );
    let to_chat = notification(&shop, "slack", NotificationKind::Escalated, at(9, 10, 0, 5));
    let to_page = notification(
        &shop,
        "pagerduty",
        NotificationKind::Escalated,
        at(9, 10, 0, 6),
    );
    let id = s
        .incidents()
        .save_incident(&IncidentChange {
            events: vec![escalated.clone()],
            notifications: vec![to_chat.clone(), to_page.clone()],
            ..change(&shop)
        })
        .await
        .unwrap();
    assert_eq!(id, shop.id);
    assert_eq!(
        s.incidents().incident(id).await.unwrap(),
        Some(shop.clone())
    );
    assert_eq!(
        s.incidents().incident_events(id).await.unwrap(),
        vec![opened, escalated]
    );
    assert_eq!(
        s.incidents().incident_notifications(id).await.unwrap(),
        vec![
            pending(&triggered, id),
            pending(&to_chat, id),
            pending(&to_page, id)
        ]
    );
    // The queue is in the order notifications were queued, across incidents.
    let queue = s.incidents().pending_notifications(10).await.unwrap();
    assert_eq!(
        ids(&queue),
        vec![triggered.id, other.id, to_chat.id, to_page.id]
    );
    assert_eq!(queue[1], pending(&other, search_id));
    assert_eq!(
        ids(&s.incidents().pending_notifications(2).await.unwrap()),
        vec![triggered.id, other.id]
    );
    // A limit of 0 is taken as 1.
    assert_eq!(
        ids(&s.incidents().pending_notifications(0).await.unwrap()),
        vec![triggered.id]
    );

    // An id the store never gave out is not silently inserted.
    let mut ghost = incident("ghost", at(9, 30, 0, 0));
    ghost.id = id + search_id + 100;
    let lost = notification(
        &ghost,
        "slack",
        NotificationKind::Triggered,
        at(9, 30, 0, 0),
    );
    let err = s
        .incidents()
        .save_incident(&IncidentChange {
            events: vec![event(at(9, 30, 0, 0), EventKind::Triggered, "ghost")],
            notifications: vec![lost.clone()],
            ..change(&ghost)
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert_eq!(s.incidents().incident(ghost.id).await.unwrap(), None);
    assert_eq!(
        s.incidents()
            .incidents(&IncidentFilter::default())
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        s.incidents().pending_notifications(10).await.unwrap().len(),
        4
    );
}

async fn muted_notifications_are_kept_but_never_pending(db: Db) {
    let s = &db.store;
    let i = incident("shop-checkout", at(2, 0, 0, 0));
    let chat = notification(&i, "slack", NotificationKind::Triggered, at(2, 0, 0, 1));
    let page = notification(&i, "pagerduty", NotificationKind::Triggered, at(2, 0, 0, 2));
    let id = s
        .incidents()
        .save_incident(&IncidentChange {
            events: vec![event(
                at(2, 0, 0, 0),
                EventKind::Muted,
                "pagerduty: maintenance window",
            )],
            notifications: vec![chat.clone()],
            muted: vec![page.clone()],
            ..change(&i)
        })
        .await
        .unwrap();
    let muted = NotificationRecord {
        status: NotificationStatus::Muted,
        next_attempt_at: None,
        ..pending(&page, id)
    };
    assert_eq!(
        s.incidents().incident_notifications(id).await.unwrap(),
        vec![pending(&chat, id), muted.clone()]
    );
    assert_eq!(
        ids(&s.incidents().pending_notifications(10).await.unwrap()),
        vec![chat.id]
    );
    assert_eq!(
        s.incidents().notification_counts().await.unwrap(),
        vec![
            ("pagerduty".to_string(), NotificationStatus::Muted, 1),
            ("slack".to_string(), NotificationStatus::Pending, 1),
        ]
    );
    // An attempt recorded against a muted notification is kept but does not revive it.
    let late = attempt(at(2, 1, 0, 0), Some(202), DeliveryOutcome::Delivered, None);
    s.incidents()
        .record_attempt(page.id, &late, AfterAttempt::Delivered)
        .await
        .unwrap();
    assert_eq!(
        s.incidents().delivery_attempts(page.id).await.unwrap(),
        vec![late]
    );
    assert_eq!(
        s.incidents().incident_notifications(id).await.unwrap()[1],
        muted
    );
}

async fn attempts_retry_deliver_and_fail(db: Db) {
    let s = &db.store;
    let i = incident("shop-checkout", at(3, 0, 0, 0));
    let t0 = at(3, 0, 0, 0);
    let page = notification(&i, "pagerduty", NotificationKind::Triggered, t0);
    let chat = notification(&i, "slack", NotificationKind::Triggered, t0);
    let mail = notification(&i, "email", NotificationKind::Triggered, t0);
    let id = s
        .incidents()
        .save_incident(&IncidentChange {
            notifications: vec![page.clone(), chat.clone(), mail.clone()],
            ..change(&i)
        })
        .await
        .unwrap();

    // PagerDuty: 503 (retry in 30 s), then accepted.
    let busy = attempt(
        at(3, 0, 1, 7),
        Some(503),
        DeliveryOutcome::Retry,
        Some("status 503: busy"),
    );
    let retry_at = at(3, 0, 31, 999_999_999);
    s.incidents()
        .record_attempt(page.id, &busy, AfterAttempt::RetryAt(retry_at))
        .await
        .unwrap();
    let record = &s.incidents().incident_notifications(id).await.unwrap()[0];
    assert_eq!(
        *record,
        NotificationRecord {
            attempts: 1,
            next_attempt_at: Some(retry_at),
            last_error: Some("status 503: busy".into()),
            ..pending(&page, id)
        }
    );
    let accepted = attempt(at(3, 0, 32, 1), Some(202), DeliveryOutcome::Delivered, None);
    s.incidents()
        .record_attempt(page.id, &accepted, AfterAttempt::Delivered)
        .await
        .unwrap();
    // Slack: a permanent error, given up at once.
    let gone = attempt(
        at(3, 0, 1, 8),
        Some(404),
        DeliveryOutcome::Failed,
        Some("status 404: no_service"),
    );
    s.incidents()
        .record_attempt(chat.id, &gone, AfterAttempt::Failed)
        .await
        .unwrap();
    // Email: the server did not answer; try again later.
    let silent = attempt(
        at(3, 0, 1, 9),
        None,
        DeliveryOutcome::Retry,
        Some("connection timed out"),
    );
    let mail_next = at(3, 1, 0, 0);
    s.incidents()
        .record_attempt(mail.id, &silent, AfterAttempt::RetryAt(mail_next))
        .await
        .unwrap();

    assert_eq!(
        s.incidents().incident_notifications(id).await.unwrap(),
        vec![
            NotificationRecord {
                status: NotificationStatus::Delivered,
                attempts: 2,
                next_attempt_at: None,
                last_error: None,
                delivered_at: Some(accepted.at),
                ..pending(&page, id)
            },
            NotificationRecord {
                status: NotificationStatus::Failed,
                attempts: 1,
                next_attempt_at: None,
                last_error: gone.error.clone(),
                ..pending(&chat, id)
            },
            NotificationRecord {
                attempts: 1,
                next_attempt_at: Some(mail_next),
                last_error: silent.error.clone(),
                ..pending(&mail, id)
            },
        ]
    );
    assert_eq!(
        s.incidents().delivery_attempts(page.id).await.unwrap(),
        vec![busy, accepted]
    );
    assert_eq!(
        s.incidents().delivery_attempts(chat.id).await.unwrap(),
        vec![gone]
    );
    assert_eq!(
        s.incidents().delivery_attempts(mail.id).await.unwrap(),
        vec![silent]
    );
    assert_eq!(
        ids(&s.incidents().pending_notifications(10).await.unwrap()),
        vec![mail.id]
    );
    assert_eq!(
        s.incidents().notification_counts().await.unwrap(),
        vec![
            ("email".to_string(), NotificationStatus::Pending, 1),
            ("pagerduty".to_string(), NotificationStatus::Delivered, 1),
            ("slack".to_string(), NotificationStatus::Failed, 1),
        ]
    );
    // An attempt needs a notification to belong to.
    let stray = attempt(at(3, 2, 0, 0), Some(200), DeliveryOutcome::Delivered, None);
    assert!(
        s.incidents()
            .record_attempt(uuid::Uuid::new_v4(), &stray, AfterAttempt::Delivered)
            .await
            .is_err()
    );
}

/// After a crash between sending and recording, or a duplicate worker, an attempt can arrive
/// for a notification that is already settled: it is kept, the state is not touched.
async fn late_attempt_does_not_undo_a_delivery(db: Db) {
    let s = &db.store;
    let i = incident("shop-checkout", at(4, 0, 0, 0));
    let page = notification(&i, "pagerduty", NotificationKind::Triggered, at(4, 0, 0, 0));
    let id = s
        .incidents()
        .save_incident(&IncidentChange {
            notifications: vec![page.clone()],
            ..change(&i)
        })
        .await
        .unwrap();
    let ok = attempt(at(4, 0, 1, 0), Some(202), DeliveryOutcome::Delivered, None);
    s.incidents()
        .record_attempt(page.id, &ok, AfterAttempt::Delivered)
        .await
        .unwrap();
    let delivered = s.incidents().incident_notifications(id).await.unwrap();
    assert_eq!(delivered[0].status, NotificationStatus::Delivered);

    let late_retry = attempt(
        at(4, 0, 2, 0),
        Some(503),
        DeliveryOutcome::Retry,
        Some("status 503"),
    );
    s.incidents()
        .record_attempt(page.id, &late_retry, AfterAttempt::RetryAt(at(4, 1, 0, 0)))
        .await
        .unwrap();
    let late_failure = attempt(
        at(4, 0, 3, 0),
        Some(400),
        DeliveryOutcome::Failed,
        Some("status 400"),
    );
    s.incidents()
        .record_attempt(page.id, &late_failure, AfterAttempt::Failed)
        .await
        .unwrap();
    assert_eq!(
        s.incidents().incident_notifications(id).await.unwrap(),
        delivered
    );
    assert_eq!(
        s.incidents().delivery_attempts(page.id).await.unwrap(),
        vec![ok, late_retry, late_failure]
    );
    assert!(
        s.incidents()
            .pending_notifications(10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn failed_save_stores_nothing(db: Db) {
    let s = &db.store;
    let mut i = incident("shop-checkout", at(5, 0, 0, 0));
    let opened = event(at(5, 0, 0, 0), EventKind::Triggered, "step \"pay\" failed");
    let first = notification(&i, "pagerduty", NotificationKind::Triggered, at(5, 0, 0, 0));
    i.id = s
        .incidents()
        .save_incident(&IncidentChange {
            events: vec![opened.clone()],
            notifications: vec![first.clone()],
            ..change(&i)
        })
        .await
        .unwrap();

    // Acknowledged, with an event and two notifications, the second of which reuses an id:
    // the unique violation comes after the incident, the event and one notification.
    let mut acked = i.clone();
    acked.state = IncidentState::Acknowledged;
    acked.acknowledged_at = Some(at(5, 10, 0, 0));
    acked.acknowledged_by = Some("alice".into());
    let ack = notification(
        &acked,
        "slack",
        NotificationKind::Acknowledged,
        at(5, 10, 0, 0),
    );
    let duplicate = Notification {
        id: first.id,
        ..notification(
            &acked,
            "pagerduty",
            NotificationKind::Acknowledged,
            at(5, 10, 0, 0),
        )
    };
    let err = s
        .incidents()
        .save_incident(&IncidentChange {
            events: vec![event(at(5, 10, 0, 0), EventKind::Acknowledged, "by alice")],
            notifications: vec![ack.clone(), duplicate.clone()],
            ..change(&acked)
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Database(_)), "{err:?}");
    // Same for a new incident: it is not inserted either.
    let other = incident("search", at(5, 20, 0, 0));
    let dup_of_other = Notification {
        id: first.id,
        ..notification(
            &other,
            "slack",
            NotificationKind::Triggered,
            at(5, 20, 0, 0),
        )
    };
    assert!(
        s.incidents()
            .save_incident(&IncidentChange {
                events: vec![event(at(5, 20, 0, 0), EventKind::Triggered, "search fails")],
                muted: vec![dup_of_other],
                ..change(&other)
            })
            .await
            .is_err()
    );

    assert_eq!(s.incidents().incident(i.id).await.unwrap(), Some(i.clone()));
    assert_eq!(
        s.incidents().incident_events(i.id).await.unwrap(),
        vec![opened.clone()]
    );
    assert_eq!(
        s.incidents().incident_notifications(i.id).await.unwrap(),
        vec![pending(&first, i.id)]
    );
    assert_eq!(
        s.incidents()
            .incidents(&IncidentFilter::default())
            .await
            .unwrap(),
        vec![i.clone()]
    );
    assert_eq!(
        s.incidents().notification_counts().await.unwrap(),
        vec![("pagerduty".to_string(), NotificationStatus::Pending, 1)]
    );

    // The store is still usable, and the corrected change goes through.
    let ack_page = notification(
        &acked,
        "pagerduty",
        NotificationKind::Acknowledged,
        at(5, 10, 0, 0),
    );
    s.incidents()
        .save_incident(&IncidentChange {
            events: vec![event(at(5, 10, 0, 0), EventKind::Acknowledged, "by alice")],
            notifications: vec![ack.clone(), ack_page.clone()],
            ..change(&acked)
        })
        .await
        .unwrap();
    assert_eq!(s.incidents().incident(i.id).await.unwrap(), Some(acked));
    assert_eq!(s.incidents().incident_events(i.id).await.unwrap().len(), 2);
    assert_eq!(
        ids(&s.incidents().incident_notifications(i.id).await.unwrap()),
        vec![first.id, ack.id, ack_page.id]
    );
}

async fn incidents_filter_by_state_journey_since_and_limit(db: Db) {
    let s = &db.store;
    let save = |i: Incident| {
        let store = s.clone();
        async move { store.incidents().save_incident(&change(&i)).await.unwrap() }
    };
    // a: shop, 08:00, resolved at 09:00.
    let mut a = incident("shop", at(8, 0, 0, 0));
    a.state = IncidentState::Resolved;
    a.resolved_at = Some(at(9, 0, 0, 0));
    a.resolved_by = Some(ResolvedBy::Auto);
    let a = save(a).await;
    // b: shop, 10:00, open.
    let b = save(incident("shop", at(10, 0, 0, 0))).await;
    // c: search, 11:00, acknowledged.
    let mut c = incident("search", at(11, 0, 0, 0));
    c.state = IncidentState::Acknowledged;
    c.acknowledged_at = Some(at(11, 5, 0, 0));
    c.acknowledged_by = Some("bob".into());
    let c = save(c).await;
    // d: search, 10:00 like b but stored after it, resolved at 12:00.
    let mut d = incident("search", at(10, 0, 0, 0));
    d.state = IncidentState::Resolved;
    d.resolved_at = Some(at(12, 0, 0, 0));
    let d = save(d).await;

    let list = |filter: IncidentFilter| {
        let store = s.clone();
        async move {
            let got = store.incidents().incidents(&filter).await.unwrap();
            got.iter().map(|i| i.id).collect::<Vec<i64>>()
        }
    };
    let states = |states: &[IncidentState]| IncidentFilter {
        states: states.to_vec(),
        ..IncidentFilter::default()
    };
    let since = |t: DateTime<Utc>| IncidentFilter {
        since: Some(t),
        ..IncidentFilter::default()
    };
    let journey = |name: &str| IncidentFilter {
        journey: Some(name.into()),
        ..IncidentFilter::default()
    };
    // Newest opened first; equal openings: the later stored first.
    assert_eq!(list(IncidentFilter::default()).await, vec![c, d, b, a]);
    assert_eq!(list(states(&[IncidentState::Open])).await, vec![b]);
    assert_eq!(
        list(states(&[IncidentState::Open, IncidentState::Acknowledged])).await,
        vec![c, b]
    );
    assert_eq!(
        list(states(&[IncidentState::Resolved, IncidentState::Resolved])).await,
        vec![d, a]
    );
    assert_eq!(
        list(states(&[
            IncidentState::Resolved,
            IncidentState::Open,
            IncidentState::Acknowledged,
            IncidentState::Open,
        ]))
        .await,
        vec![c, d, b, a]
    );
    assert_eq!(list(journey("shop")).await, vec![b, a]);
    assert!(list(journey("nobody")).await.is_empty());
    // `since`: resolved at or after it, or not resolved.
    assert_eq!(list(since(at(9, 0, 0, 0))).await, vec![c, d, b, a]);
    assert_eq!(list(since(at(9, 0, 0, 1))).await, vec![c, d, b]);
    assert_eq!(list(since(at(12, 30, 0, 0))).await, vec![c, b]);
    // `limit` keeps the newest; 0 means none.
    let limit = |n: u32| IncidentFilter {
        limit: n,
        ..IncidentFilter::default()
    };
    assert_eq!(list(limit(1)).await, vec![c]);
    assert_eq!(list(limit(3)).await, vec![c, d, b]);
    assert_eq!(list(limit(0)).await, vec![c, d, b, a]);
    // Together.
    assert_eq!(
        list(IncidentFilter {
            journey: Some("search".into()),
            states: vec![IncidentState::Resolved],
            since: Some(at(10, 0, 0, 0)),
            limit: 5,
        })
        .await,
        vec![d]
    );
    assert_eq!(
        list(IncidentFilter {
            journey: Some("search".into()),
            limit: 1,
            ..IncidentFilter::default()
        })
        .await,
        vec![c]
    );
}

/// A database created by the previous version (migrations 1 and 2) gets the incident tables
/// and keeps what it held.
async fn incident_tables_are_added_to_an_existing_database(db: Db) {
    use sqlx::SqlSafeStr;
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    fn previous(initial: &'static str, episodes: &'static str) -> Migrator {
        let migration = |version: i64, description: &'static str, sql: &'static str| {
            Migration::new(
                version,
                description.into(),
                MigrationType::Simple,
                sqlx::AssertSqlSafe(sql).into_sql_str(),
                false,
            )
        };
        Migrator::with_migrations(vec![
            migration(1, "initial", initial),
            migration(2, "anomaly episodes", episodes),
        ])
    }
    let dir = tempfile::tempdir().unwrap();
    let (old, url) = match &db.store {
        Store::Sqlite(_) => {
            let url = format!("sqlite://{}", dir.path().join("old.db").display());
            let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(&url)
                .unwrap()
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
            previous(
                include_str!("../../migrations/sqlite/0001_initial.sql"),
                include_str!("../../migrations/sqlite/0002_anomaly_episodes.sql"),
            )
            .run(&pool)
            .await
            .unwrap();
            (Store::Sqlite(pool), url)
        }
        Store::Postgres(_) => {
            let url = empty_postgres_database().await;
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            previous(
                include_str!("../../migrations/postgres/0001_initial.sql"),
                include_str!("../../migrations/postgres/0002_anomaly_episodes.sql"),
            )
            .run(&pool)
            .await
            .unwrap();
            (Store::Postgres(pool), url)
        }
    };
    db.store.close().await;
    let series = SeriesKey {
        journey: "shop-checkout".into(),
        step: "pay".into(),
        location: "eu-west".into(),
    };
    let episode = Episode {
        detector: DetectorKind::Latency,
        start_ms: at(6, 0, 0, 0).timestamp_millis(),
        detected_ms: at(6, 2, 0, 0).timestamp_millis(),
        end_ms: None,
        peak_score: 5.0,
        peak_value: 900.0,
        baseline: 120.0,
        anomalous_runs: 3,
    };
    let episode_id = old
        .episodes()
        .open_episode(&series, "medium", &episode)
        .await
        .unwrap();
    assert!(
        old.incidents()
            .incidents(&IncidentFilter::default())
            .await
            .is_err()
    );
    old.close().await;

    let store = Store::connect(&url).await.unwrap();
    let versions: Vec<i64> = match &store {
        Store::Sqlite(p) => {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
                .fetch_all(p)
                .await
                .unwrap()
        }
        Store::Postgres(p) => {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
                .fetch_all(p)
                .await
                .unwrap()
        }
    };
    assert_eq!(versions, vec![1, 2, 3, 4, 5, 6, 7, 8]);
    let episodes = store
        .episodes()
        .episodes(&EpisodeFilter::default())
        .await
        .unwrap();
    assert_eq!(
        episodes.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![episode_id]
    );
    assert!(
        store
            .incidents()
            .incidents(&IncidentFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    let mut i = incident("shop-checkout", at(6, 3, 0, 0));
    let page = notification(&i, "pagerduty", NotificationKind::Triggered, at(6, 3, 0, 0));
    i.id = store
        .incidents()
        .save_incident(&IncidentChange {
            notifications: vec![page.clone()],
            ..change(&i)
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .incidents()
            .incidents(&IncidentFilter::default())
            .await
            .unwrap(),
        vec![i.clone()]
    );
    assert_eq!(
        store.incidents().pending_notifications(10).await.unwrap(),
        vec![pending(&page, i.id)]
    );
    store.close().await;
}
