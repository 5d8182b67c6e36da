//! Simulated history for a fresh demo database: [`DAYS`] days of runs of every demo journey,
//! one every [`EVERY_MINUTES`] minutes, so that a newcomer's first minutes already show
//! uptime bars, latency charts and warm anomaly baselines (the latency detector judges
//! nothing before two days of history, and waiting two days is no demo).
//!
//! Seeded runs are told apart from real ones: no trace id, no request or response. Each
//! step's latency is drawn from a log-normal law around its [`Typical`] value, slower by day
//! than by night, and a few runs fail (a timeout), as real services do. The typical values
//! come from a few real runs against the demo target on this machine ([`calibrate`]), taken
//! on the slow side (×1.2, at least 10 ms), so that live runs sit inside the learned band,
//! machine noise included, until a fault is injected; 0.5 % of the runs are 1.3 to 1.8
//! times slower, so that a live hiccup is no surprise either (but a fault that triples a
//! step's latency is). The spread (σ 0.2 on the log scale)
//! is that of a steady service: with a wider one, the N+1 phase's tripled latency would be
//! within the learned noise and no demo anomaly would show.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};

use crate::journey::{Journey, StepKind};
use crate::run::{Outcome, RunResult, StepResult, StepStatus};
use crate::step::{Failure, FailureClass, Timings};
use crate::store::{RunRecord, Store, StoreError};

pub const DAYS: i64 = 3;
pub const EVERY_MINUTES: i64 = 10;
/// Share of seeded runs that fail.
const FAILURE_RATE: f64 = 0.003;
/// Spread of seeded latencies (σ of their logarithm), and the share of slow runs.
const SIGMA: f64 = 0.2;
const SLOW_RATE: f64 = 0.005;

/// Typical latency (ms) of each (journey, step).
pub type Typical = BTreeMap<(String, String), f64>;

/// True when no journey of `journeys` has a run yet: a demo restarted on its database keeps
/// its own history.
pub async fn needed(store: &Store, journeys: &[&Journey]) -> Result<bool, StoreError> {
    for j in journeys {
        if !store.runs().recent_runs(&j.name, 1).await?.is_empty() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Typical latencies from real runs: per step, the median of the passed attempts, ×1.2 and
/// at least 10 ms. Steps that never passed get nothing (their kind's default is used).
pub fn calibrate(runs: &[RunResult]) -> Typical {
    let mut seen: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for run in runs {
        for step in &run.steps {
            if let (StepStatus::Passed, Some(total)) = (step.status, step.timings.total) {
                seen.entry((run.journey.clone(), step.name.clone()))
                    .or_default()
                    .push(total.as_secs_f64() * 1e3);
            }
        }
    }
    seen.into_iter()
        .map(|(key, mut ms)| {
            ms.sort_by(f64::total_cmp);
            (key, (ms[ms.len() / 2] * 1.2).max(10.0))
        })
        .collect()
}

/// Writes the simulated history of `journeys` at `location`, up to `now`. Returns the number
/// of runs written.
pub async fn seed(
    store: &Store,
    journeys: &[&Journey],
    location: &str,
    now: DateTime<Utc>,
    typical: &Typical,
) -> Result<usize, StoreError> {
    let start = now - chrono::Duration::days(DAYS);
    let mut batch = Vec::new();
    let mut written = 0;
    for j in journeys {
        let mut rng = Rng::new(&j.name);
        let mut t = start;
        while t < now - chrono::Duration::minutes(EVERY_MINUTES) {
            batch.push(simulated_run(j, location, t, typical, &mut rng));
            t += chrono::Duration::minutes(EVERY_MINUTES);
            if batch.len() == 500 {
                store.runs().record_runs(&batch, chrono::Utc::now()).await?;
                written += batch.len();
                batch.clear();
            }
        }
    }
    store.runs().record_runs(&batch, chrono::Utc::now()).await?;
    Ok(written + batch.len())
}

/// Latency (ms) of a step of this kind when calibration has nothing for it.
fn default_ms(kind: &StepKind) -> f64 {
    match kind {
        StepKind::Http(_) => 12.0,
        StepKind::Websocket(_) => 40.0,
        StepKind::Wait(w) => w.duration.as_secs_f64() * 1e3,
        StepKind::Tcp(_) | StepKind::Dns(_) | StepKind::Tls(_) => 4.0,
    }
}

fn simulated_run(
    journey: &Journey,
    location: &str,
    at: DateTime<Utc>,
    typical: &Typical,
    rng: &mut Rng,
) -> RunRecord {
    // Busier, slower days: +20 % at 14:00 UTC, −20 % at 02:00.
    let hour = f64::from(at.hour()) + f64::from(at.minute()) / 60.0;
    let daily = 1.0 + 0.2 * ((hour - 8.0) / 24.0 * std::f64::consts::TAU).sin();
    let failing = (rng.uniform() < FAILURE_RATE).then(|| rng.below(journey.steps.len()));
    let mut offset = 0.0;
    let mut steps = Vec::with_capacity(journey.steps.len());
    let mut failed = false;
    for (i, step) in journey.steps.iter().enumerate() {
        let (status, ms, failure) = if failed && !step.always_run {
            (StepStatus::Skipped, None, None)
        } else if failing == Some(i) {
            failed = true;
            let timeout = step.timeout.as_secs_f64() * 1e3;
            let failure = Failure {
                class: FailureClass::Timeout,
                message: format!("no answer within {timeout:.0} ms"),
            };
            (StepStatus::Failed, Some(timeout), Some(failure))
        } else {
            let usual = typical
                .get(&(journey.name.clone(), step.name.clone()))
                .copied()
                .unwrap_or_else(|| default_ms(&step.kind));
            let slow = if rng.uniform() < SLOW_RATE {
                1.3 + 0.5 * rng.uniform()
            } else {
                1.0
            };
            let ms = usual * daily * slow * (SIGMA * rng.normal()).exp();
            (StepStatus::Passed, Some(ms), None)
        };
        steps.push(StepResult {
            dependency: step.dependency.clone(),
            attempts: u32::from(status != StepStatus::Skipped),
            offset_ms: offset,
            failure,
            timings: Timings {
                total: ms.map(|ms| Duration::from_secs_f64(ms / 1e3)),
                ..Timings::default()
            },
            skip_reason: (status == StepStatus::Skipped).then(|| "an earlier step failed".into()),
            ..StepResult::unobserved(step.name.clone(), step.kind.name().into(), status)
        });
        offset += ms.unwrap_or(0.0);
    }
    let finished = at + chrono::Duration::microseconds((offset * 1e3) as i64);
    RunRecord {
        result: RunResult {
            run_id: uuid::Uuid::new_v4(),
            journey: journey.name.clone(),
            location: location.to_string(),
            outcome: if failed {
                Outcome::Failed
            } else {
                Outcome::Passed
            },
            started_at: at,
            finished_at: finished,
            duration_ms: offset,
            trace_id: String::new(),
            steps,
        },
        planned_at: at,
        scheduling_lag: Duration::ZERO,
        journey_sha256: journey.source.content_sha256.clone(),
    }
}

/// A small deterministic generator (xorshift64*), seeded by the journey's name: the same
/// journey gets the same history on every machine.
struct Rng(u64);

impl Rng {
    fn new(seed: &str) -> Rng {
        let h = seed.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        Rng(h | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize % n.max(1)
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u = self.uniform().max(f64::MIN_POSITIVE);
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journey::parse::{ParseOptions, load_paths};
    use crate::run::testkit::{self, step};

    #[tokio::test]
    async fn seeds_three_days_once_and_the_baselines_warm_up_from_them() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let loaded = load_paths(
            &[std::path::PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/journeys"
            ))],
            &ParseOptions {
                extra_vars: ["base", "feed", "payments"].map(String::from).into(),
                ..ParseOptions::default()
            },
        );
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let journeys: Vec<&Journey> = loaded.journeys.iter().collect();
        let now = Utc::now();
        assert!(needed(&store, &journeys).await.unwrap());
        let typical: Typical = [(("shop-checkout".to_string(), "login".to_string()), 30.0)].into();
        let n = seed(&store, &journeys, "local", now, &typical)
            .await
            .unwrap();
        let per_journey = (DAYS * 24 * 60 / EVERY_MINUTES - 1) as usize;
        assert_eq!(n, per_journey * journeys.len());
        assert!(!needed(&store, &journeys).await.unwrap(), "only once");

        let runs = store
            .runs()
            .recent_runs("shop-checkout", 500)
            .await
            .unwrap();
        let failed = runs.iter().filter(|r| r.outcome == Outcome::Failed).count();
        assert!(failed < 10, "{failed} failures in 432 runs");
        // The median: a failed run's timeout would outweigh hundreds of passed ones in a mean.
        let mut durations: Vec<f64> = runs.iter().map(|r| r.duration_ms).collect();
        durations.sort_by(f64::total_cmp);
        let median = durations[durations.len() / 2];
        assert!(
            (60.0..160.0).contains(&median),
            "~30 ms and five steps of ~12 ms: {median}"
        );

        let mut engine = crate::service::baselines::Engine::new(store.clone());
        let warmed = engine.warm_up(&journeys, now).await.unwrap();
        assert!(warmed >= journeys.len(), "{warmed} series warmed up");
    }

    #[test]
    fn calibration_takes_the_slow_side_of_passed_steps() {
        let run = |ms: [u64; 2], second_passed: bool| -> RunResult {
            testkit::run("j")
                .step(step("a").ms(ms[0] as f64))
                .step(step("b").ms(ms[1] as f64).failed_if(!second_passed))
                .build()
        };
        let t = calibrate(&[
            run([20, 1], true),
            run([40, 500], false),
            run([30, 2], true),
        ]);
        let key = |s: &str| ("j".to_string(), s.to_string());
        assert_eq!(t[&key("a")], 36.0);
        assert_eq!(
            t[&key("b")],
            10.0,
            "failed attempts ignored; at least 10 ms"
        );
    }
}
