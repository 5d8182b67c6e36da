//! `waymark demo --chaos`: faults injected into the demo target on a schedule, one kind of
//! trouble at a time with calm phases between them, so that within a few minutes the
//! dashboard shows what Waymark detects: a latency anomaly (and the degraded incident it
//! opens), a failing dependency, a silent WebSocket and a slow query pattern, each followed by
//! its recovery. The plan repeats until the demo stops.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{FaultSet, Faults};

/// One phase of the plan: the faults in force and what a viewer should see.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    pub name: &'static str,
    pub faults: FaultSet,
    pub expect: &'static str,
}

/// Calm, then each fault followed by calm.
pub fn plan() -> Vec<Phase> {
    let calm = |expect| Phase {
        name: "calm",
        faults: FaultSet::default(),
        expect,
    };
    vec![
        calm("every journey passes; baselines as learned"),
        Phase {
            name: "slow search",
            faults: FaultSet {
                search_latency_ms: 300,
                ..FaultSet::default()
            },
            expect: "catalogue search is 300 ms slower: a latency anomaly on shop-checkout's \
                     `search catalogue`, then a degraded incident",
        },
        calm("the anomaly episode ends and the degraded incident resolves"),
        Phase {
            name: "payments failing",
            faults: FaultSet {
                payment_error_rate: 0.8,
                ..FaultSet::default()
            },
            expect: "the payment provider refuses 80 % of charges: `place order` fails, a \
                     failure incident pages the channels",
        },
        calm("orders go through again and the failure incident resolves"),
        Phase {
            name: "feed stalled",
            faults: FaultSet {
                feed_stalled: true,
                ..FaultSet::default()
            },
            expect: "the order feed stops sending: shop-order-feed's `watch it ship` times out",
        },
        calm("the feed speaks again"),
        Phase {
            name: "N+1 queries",
            faults: FaultSet {
                n_plus_one: true,
                ..FaultSet::default()
            },
            expect: "reading an order makes one query per catalogue item: `read order back` \
                     slows down (a latency anomaly)",
        },
    ]
}

/// Applies the plan's phases in turn, each for `phase`, until `stop`; leaves no fault behind.
pub async fn run(faults: Faults, phase: Duration, stop: CancellationToken) {
    let plan = plan();
    for (round, p) in plan.iter().cycle().enumerate() {
        faults.set(p.faults.clone());
        tracing::info!(
            phase = p.name,
            round = round / plan.len() + 1,
            lasts = %humantime::format_duration(phase),
            faults = %serde_json::to_string(&p.faults).unwrap_or_default(),
            "chaos: {}",
            p.expect
        );
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(phase) => {}
        }
    }
    faults.set(FaultSet::default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_kind_once_each_followed_by_calm() {
        let plan = plan();
        assert_eq!(plan[0].faults, FaultSet::default());
        let faulty: Vec<&Phase> = plan
            .iter()
            .filter(|p| p.faults != FaultSet::default())
            .collect();
        assert_eq!(faulty.len(), 4);
        assert!(faulty.iter().all(|p| p.faults.validate().is_ok()));
        assert!(faulty.iter().any(|p| p.faults.search_latency_ms > 0));
        assert!(faulty.iter().any(|p| p.faults.payment_error_rate > 0.0));
        assert!(faulty.iter().any(|p| p.faults.feed_stalled));
        assert!(faulty.iter().any(|p| p.faults.n_plus_one));
        // Never two faulty phases in a row, the plan's end included (it repeats).
        for i in 0..plan.len() {
            let next = &plan[(i + 1) % plan.len()];
            assert!(plan[i].faults == FaultSet::default() || next.faults == FaultSet::default());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn phases_follow_the_clock_and_stopping_clears_the_faults() {
        let faults = Faults::default();
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(faults.clone(), Duration::from_secs(10), stop.clone()));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(faults.get(), plan()[0].faults);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(faults.get().search_latency_ms, 300);
        stop.cancel();
        task.await.unwrap();
        assert_eq!(faults.get(), FaultSet::default());
    }
}
