//! The service side of anomaly detection: one [`SeriesDetector`] per journey × step ×
//! location, fed with every finished run, warmed up from hourly rollups at start, episodes
//! stored as they start and end.
//!
//! Everything here runs on one task (the service's analysis task), so the map needs no lock;
//! the store is only touched when an episode starts or ends, and at start.

use std::collections::HashMap;

use chrono::{DateTime, Duration as ChronoDuration, Timelike, Utc};

use crate::baseline::{DetectorKind, DetectorParams, SeriesDetector, Transition};
use crate::baseline::{EpisodeEvent, SeriesKey};
use crate::journey::{Journey, Sensitivity};
use crate::run::{RunResult, StepStatus};
use crate::store::{Result, Store};

/// History read back at start: enough for the window (84 h half-life) and three weeks of
/// hour-of-week seasonality.
const WARM_UP_DAYS: i64 = 21;

struct Tracked {
    detector: SeriesDetector,
    params: DetectorParams,
    sensitivity: Sensitivity,
    /// Store ids of the open episodes, by detector.
    open: HashMap<DetectorKind, i64>,
}

pub struct Engine {
    store: Store,
    series: HashMap<SeriesKey, Tracked>,
}

/// The effective settings of each step of a journey, `None` when detection is off.
fn step_params(
    journey: &Journey,
) -> impl Iterator<Item = (&str, Option<(DetectorParams, Sensitivity)>)> {
    journey.steps.iter().map(|step| {
        let settings = step.anomaly.or(journey.anomaly);
        let sensitivity = settings.sensitivity.unwrap_or_default();
        (
            step.name.as_str(),
            DetectorParams::resolve(settings).map(|p| (p, sensitivity)),
        )
    })
}

impl Engine {
    pub fn new(store: Store) -> Engine {
        Engine {
            store,
            series: HashMap::new(),
        }
    }

    /// Series currently tracked.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Rebuilds baselines from the last weeks of hourly rollups (up to the start of the
    /// current hour: runs of this hour arrive live) and resumes the episodes left open.
    /// Returns the number of series warmed up.
    pub async fn warm_up(&mut self, journeys: &[&Journey], now: DateTime<Utc>) -> Result<usize> {
        let hour_start = now
            .with_minute(0)
            .and_then(|t| t.with_second(0))
            .and_then(|t| t.with_nanosecond(0))
            .unwrap_or(now);
        let from = hour_start - ChronoDuration::days(WARM_UP_DAYS);
        for journey in journeys {
            let params: HashMap<&str, _> = step_params(journey)
                .filter_map(|(name, p)| p.map(|p| (name, p)))
                .collect();
            // Rollups come ordered by hour, so each series learns its history in order.
            for rollup in self
                .store
                .runs()
                .rollups(&journey.name, from, hour_start)
                .await?
            {
                let Some(step) = rollup.step.as_deref() else {
                    continue;
                };
                let Some(&(p, sensitivity)) = params.get(step) else {
                    continue;
                };
                let key = SeriesKey {
                    journey: journey.name.clone(),
                    step: step.to_string(),
                    location: rollup.location.clone(),
                };
                let tracked = self.tracked(key, p, sensitivity);
                let hour = rollup.hour.timestamp().div_euclid(3600);
                tracked.detector.latency.absorb_hour(hour, &rollup.sketch);
                tracked
                    .detector
                    .failure
                    .absorb_hour(hour, rollup.count, rollup.failures);
            }
        }
        let open = self.store.episodes().open().await?;
        for stored in open {
            if let Some(t) = self.series.get_mut(&stored.series) {
                match stored.detector {
                    DetectorKind::Latency | DetectorKind::LatencyDrop => {
                        t.detector.latency.resume(stored.episode())
                    }
                    DetectorKind::FailureRate => t.detector.failure.resume(stored.episode()),
                }
                t.open.insert(stored.detector, stored.id);
            }
        }
        Ok(self.series.len())
    }

    fn tracked(
        &mut self,
        key: SeriesKey,
        params: DetectorParams,
        sensitivity: Sensitivity,
    ) -> &mut Tracked {
        let t = self.series.entry(key).or_insert_with(|| Tracked {
            detector: SeriesDetector::new(params),
            params,
            sensitivity,
            open: HashMap::new(),
        });
        if t.params != params {
            t.detector.set_params(params);
            t.params = params;
        }
        t.sensitivity = sensitivity;
        t
    }

    /// Judges every step of a finished run and stores the episodes it starts or ends.
    pub async fn observe(
        &mut self,
        journey: &Journey,
        run: &RunResult,
    ) -> Result<Vec<EpisodeEvent>> {
        let params: HashMap<&str, _> = step_params(journey).collect();
        let run_start_ms = run.started_at.timestamp_millis();
        let mut events = Vec::new();
        for step in &run.steps {
            if step.status == StepStatus::Skipped {
                continue;
            }
            let Some(Some((p, sensitivity))) = params.get(step.name.as_str()).copied() else {
                continue;
            };
            let key = SeriesKey {
                journey: run.journey.clone(),
                step: step.name.clone(),
                location: run.location.clone(),
            };
            let at_ms = run_start_ms + step.offset_ms as i64;
            let latency_ms = step
                .timings
                .total
                .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
            let ok = step.status == StepStatus::Passed;
            let tracked = self.tracked(key.clone(), p, sensitivity);
            let transitions = tracked.detector.observe(at_ms, latency_ms, ok).transitions;
            for transition in transitions {
                let detector = transition.episode().detector;
                let tracked = self.series.get_mut(&key).expect("tracked above");
                let id = match &transition {
                    Transition::Started(e) => {
                        let id = self
                            .store
                            .episodes()
                            .open_episode(&key, tracked.sensitivity.as_str(), e)
                            .await?;
                        tracked.open.insert(detector, id);
                        id
                    }
                    Transition::Ended(e) => match tracked.open.remove(&detector) {
                        Some(id) => {
                            self.store.episodes().close_episode(id, e).await?;
                            id
                        }
                        None => continue,
                    },
                };
                events.push(EpisodeEvent {
                    id,
                    series: key.clone(),
                    transition,
                });
            }
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::run::testkit::{self, step};
    use crate::store::{EpisodeFilter, RunRecord};

    /// 2026-03-02 00:00 UTC.
    const T0_S: i64 = 1_772_409_600;
    const DAY_RUNS: i64 = 24 * 60;

    fn journey() -> Journey {
        testkit::journey(
            "name: shop\nsteps:\n  - name: home\n    http: { url: \"http://127.0.0.1:1/\" }\n  - name: quiet\n    http: { url: \"http://127.0.0.1:1/q\" }\n    anomaly: off\n",
        )
    }

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(T0_S + minute * 60, 0).unwrap()
    }

    /// A passing run at minute `minute` whose `home` step took `home_ms` (the `quiet` step,
    /// not tracked, always takes 10× as long).
    fn run(minute: i64, home_ms: f64) -> RunResult {
        let t = at(minute);
        testkit::run("shop")
            .location("local")
            .at(t)
            .finished_at(t + ChronoDuration::milliseconds(11 * home_ms as i64))
            .duration_ms(11.0 * home_ms)
            .step(step("home").ms(home_ms))
            .step(step("quiet").ms(10.0 * home_ms).offset_ms(home_ms))
            .build()
    }

    fn normal_ms(rng: &mut StdRng) -> f64 {
        // Uniform ±10 % around 100 ms.
        100.0 * rng.random_range(0.9..1.1)
    }

    /// The episode events of one run a minute over `minutes`, the `home` step taking `ms()`.
    async fn observe(
        engine: &mut Engine,
        j: &Journey,
        minutes: std::ops::Range<i64>,
        mut ms: impl FnMut() -> f64,
    ) -> Vec<EpisodeEvent> {
        let mut events = Vec::new();
        for minute in minutes {
            events.extend(engine.observe(j, &run(minute, ms())).await.unwrap());
        }
        events
    }

    async fn stored(store: &Store) -> Vec<crate::baseline::StoredEpisode> {
        store
            .episodes()
            .episodes(&EpisodeFilter {
                limit: 100,
                ..EpisodeFilter::default()
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_slowdown_is_stored_as_an_episode_that_closes() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let j = journey();
        let mut engine = Engine::new(store.clone());
        let mut rng = StdRng::seed_from_u64(21);
        // Two days of history, then the hours in which the detector learns how far runs
        // deviate (judging starts after that).
        let judged = 2 * DAY_RUNS + 480;
        for minute in 0..judged {
            let events = engine
                .observe(&j, &run(minute, normal_ms(&mut rng)))
                .await
                .unwrap();
            assert!(events.is_empty(), "minute {minute}: {events:?}");
        }
        assert_eq!(engine.len(), 1, "the `anomaly: off` step is not tracked");

        let slow = judged;
        let started = observe(&mut engine, &j, slow..slow + 10, || 400.0).await;
        assert_eq!(started.len(), 1, "{started:?}");
        let ev = &started[0];
        assert_eq!(
            ev.series,
            SeriesKey {
                journey: "shop".into(),
                step: "home".into(),
                location: "local".into(),
            }
        );
        let Transition::Started(e) = &ev.transition else {
            panic!("{ev:?}")
        };
        assert_eq!(e.detector, DetectorKind::Latency);
        assert_eq!(e.start_ms, at(slow).timestamp_millis());
        let open = stored(&store).await;
        assert_eq!(open.len(), 1, "{open:?}");
        assert_eq!(open[0].id, ev.id);
        assert_eq!(open[0].end, None);
        assert_eq!(open[0].start, at(slow));
        assert_eq!(open[0].sensitivity, "medium");

        let recovery = slow + 10;
        let ended = observe(&mut engine, &j, recovery..recovery + 20, || {
            normal_ms(&mut rng)
        })
        .await;
        assert_eq!(ended.len(), 1, "{ended:?}");
        assert_eq!(ended[0].id, ev.id);
        assert!(matches!(ended[0].transition, Transition::Ended(_)));
        let closed = stored(&store).await;
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].end, Some(at(recovery)));
        assert_eq!(closed[0].anomalous_runs, 10);
    }

    #[tokio::test]
    async fn warm_up_learns_from_rollups_and_resumes_open_episodes() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let j = journey();
        let mut rng = StdRng::seed_from_u64(22);
        let judged = 2 * DAY_RUNS + 480;
        let history: Vec<RunRecord> = (0..judged)
            .map(|minute| RunRecord {
                result: run(minute, normal_ms(&mut rng)),
                planned_at: at(minute),
                scheduling_lag: Duration::ZERO,
                journey_sha256: String::new(),
            })
            .collect();
        for chunk in history.chunks(500) {
            store.runs().record_now(chunk).await;
        }

        let slow = judged;
        let mut engine = Engine::new(store.clone());
        assert_eq!(engine.warm_up(&[&j], at(slow)).await.unwrap(), 1);
        // Warmed up from rollups only: the first slow runs are judged at once.
        let started = observe(&mut engine, &j, slow..slow + 5, || 400.0).await;
        assert_eq!(started.len(), 1, "{started:?}");
        assert!(matches!(started[0].transition, Transition::Started(_)));
        let id = started[0].id;
        drop(engine);

        // A restart half an hour later: the open episode is resumed and can end.
        let mut engine = Engine::new(store.clone());
        assert_eq!(engine.warm_up(&[&j], at(slow + 30)).await.unwrap(), 1);
        assert_eq!(engine.len(), 1, "the `anomaly: off` step is not tracked");
        let recovery = slow + 30;
        let ended = observe(&mut engine, &j, recovery..recovery + 10, || {
            normal_ms(&mut rng)
        })
        .await;
        assert_eq!(ended.len(), 1, "{ended:?}");
        assert_eq!(ended[0].id, id);
        let Transition::Ended(e) = &ended[0].transition else {
            panic!("{ended:?}")
        };
        assert_eq!(e.end_ms, Some(at(recovery).timestamp_millis()));
        let all = stored(&store).await;
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(all[0].end, Some(at(recovery)));
        assert_eq!(engine.len(), 1);
    }
}
