//! The service side of anomaly detection: one [`SeriesDetector`] per journey × step ×
//! location, fed with every finished run, warmed up from hourly rollups at start, episodes
//! stored as they start and end.
//!
//! Everything here runs on one task (the service's analysis task), so the map needs no lock;
//! the store is only touched when an episode starts or ends, and at start.

use std::collections::HashMap;

use chrono::{DateTime, Duration as ChronoDuration, Timelike, Utc};

use super::{DetectorKind, DetectorParams, SeriesDetector, Transition};
use crate::journey::{Journey, Sensitivity};
use crate::runner::{RunResult, StepStatus};
use crate::store::{EpisodeFilter, Result, SeriesKey, Store};

/// History read back at start: enough for the window (84 h half-life) and three weeks of
/// hour-of-week seasonality.
const WARM_UP_DAYS: i64 = 21;

/// An episode that started or ended, as stored (`id`) — what alerting will consume.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeEvent {
    pub id: i64,
    pub series: SeriesKey,
    pub transition: Transition,
}

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

fn sensitivity_name(s: Sensitivity) -> &'static str {
    match s {
        Sensitivity::Off => "off",
        Sensitivity::Low => "low",
        Sensitivity::Medium => "medium",
        Sensitivity::High => "high",
    }
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
            for rollup in self.store.rollups(&journey.name, from, hour_start).await? {
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
        let open = self
            .store
            .episodes(&EpisodeFilter {
                open_only: true,
                limit: u32::MAX,
                ..EpisodeFilter::default()
            })
            .await?;
        for stored in open {
            if let Some(t) = self.series.get_mut(&stored.series) {
                match stored.detector {
                    DetectorKind::Latency => t.detector.latency.resume(stored.episode()),
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
                            .open_episode(&key, sensitivity_name(tracked.sensitivity), e)
                            .await?;
                        tracked.open.insert(detector, id);
                        id
                    }
                    Transition::Ended(e) => match tracked.open.remove(&detector) {
                        Some(id) => {
                            self.store.close_episode(id, e).await?;
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
