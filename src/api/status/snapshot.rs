//! What the public status page shows, computed from plain inputs (public journeys, daily run
//! totals, incidents, maintenance windows, the time) so the rules are tested without a store.
//!
//! Only names, states, uptime figures and incident times leave this module: never a URL, an
//! error message, a condition or a failure cause, which may be internal or secret.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::alert::maintenance::Window;
use crate::alert::{Incident, IncidentState, Severity};
use crate::journey::Journey;
use crate::store::status::DailyTotal;

/// Days of uptime bars.
pub const DAYS: i64 = 90;
/// Resolved incidents listed as "past incidents" for this long.
pub const PAST_INCIDENTS_DAYS: i64 = 14;
pub const DEFAULT_GROUP: &str = "Services";
/// Hours in the dashboard's p95 sparklines.
pub const SPARK_HOURS: i64 = 24;

/// Worst last: the order in which states combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Never ran in the last 90 days.
    Unknown,
    Operational,
    Maintenance,
    Degraded,
    Down,
}

impl State {
    pub fn label(self) -> &'static str {
        match self {
            State::Unknown => "No data",
            State::Operational => "Operational",
            State::Maintenance => "Under maintenance",
            State::Degraded => "Degraded performance",
            State::Down => "Down",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Snapshot {
    pub generated_at: DateTime<Utc>,
    pub state: State,
    pub groups: Vec<Group>,
    /// Open incidents first, then those resolved in the last two weeks; newest first.
    pub incidents: Vec<PublicIncident>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Group {
    pub name: String,
    pub state: State,
    pub journeys: Vec<JourneyStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct JourneyStatus {
    pub name: String,
    pub state: State,
    /// Percent over the days that had runs; None without runs.
    pub uptime_90d: Option<f64>,
    pub uptime_30d: Option<f64>,
    /// Where it ran from in the last 30 days (empty on the public page).
    pub locations: Vec<String>,
    /// Whole-run p95 (ms) of each of the last [`SPARK_HOURS`] hours, oldest first; None for an
    /// hour without runs (empty on the public page).
    pub p95_hourly: Vec<Option<f64>>,
    /// Oldest first, one per UTC day, today last.
    pub days: Vec<Day>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Day {
    pub date: String,
    pub runs: u64,
    pub failures: u64,
    pub uptime: Option<f64>,
    /// Incidents of the journey that were open at some time that day.
    pub incidents: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PublicIncident {
    pub id: i64,
    pub journey: String,
    pub title: String,
    /// `down` or `degraded`.
    pub impact: State,
    pub started_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// Until resolution, or until now while open.
    pub duration_s: i64,
}

pub struct Inputs<'a> {
    pub journeys: &'a [&'a Journey],
    /// The public page's view (`public: true` only), or every journey (the dashboard's).
    pub only_public: bool,
    pub totals: &'a [DailyTotal],
    /// (journey, location) pairs that ran lately; only the dashboard's view lists locations.
    pub locations: &'a [(String, String)],
    /// Whole-run p95 per journey and hour (the dashboard's sparklines; empty for the public page).
    pub hourly_p95: &'a [(String, DateTime<Utc>, f64)],
    pub incidents: &'a [Incident],
    pub maintenance: &'a [Window],
    pub now: DateTime<Utc>,
}

pub fn build(input: &Inputs<'_>) -> Snapshot {
    let public: Vec<&Journey> = input
        .journeys
        .iter()
        .copied()
        .filter(|j| j.public || !input.only_public)
        .collect();
    let today = day_start(input.now);
    let first_day = today - Duration::days(DAYS - 1);
    let mut by_journey: BTreeMap<&str, BTreeMap<DateTime<Utc>, (u64, u64)>> = BTreeMap::new();
    for t in input.totals.iter().filter(|t| t.day >= first_day) {
        by_journey
            .entry(t.journey.as_str())
            .or_default()
            .insert(t.day, (t.runs, t.failures));
    }
    let mut groups: BTreeMap<&str, Vec<JourneyStatus>> = BTreeMap::new();
    for j in &public {
        let totals = by_journey.get(j.name.as_str());
        let incidents: Vec<&Incident> = input
            .incidents
            .iter()
            .filter(|i| i.journey == j.name)
            .collect();
        let days: Vec<Day> = (0..DAYS)
            .map(|k| {
                let day = first_day + Duration::days(k);
                let (runs, failures) = totals.and_then(|t| t.get(&day)).copied().unwrap_or((0, 0));
                let end = day + Duration::days(1);
                Day {
                    date: crate::format::date(day),
                    runs,
                    failures,
                    uptime: uptime(runs, failures),
                    incidents: incidents
                        .iter()
                        .filter(|i| i.started_at < end && i.resolved_at.is_none_or(|r| r >= day))
                        .count() as u32,
                }
            })
            .collect();
        let over = |n: usize| uptime_over(&days, n);
        let state = journey_state(j, &incidents, input, days.iter().any(|d| d.runs > 0));
        groups
            .entry(j.group.as_deref().unwrap_or(DEFAULT_GROUP))
            .or_default()
            .push(JourneyStatus {
                name: j.name.clone(),
                state,
                uptime_90d: over(DAYS as usize),
                uptime_30d: over(30),
                locations: input
                    .locations
                    .iter()
                    .filter(|(journey, _)| *journey == j.name)
                    .map(|(_, l)| l.clone())
                    .collect(),
                p95_hourly: sparkline(&j.name, input),
                days,
            });
    }
    let groups: Vec<Group> = groups
        .into_iter()
        .map(|(name, journeys)| Group {
            name: name.to_string(),
            state: worst(journeys.iter().map(|j| j.state)),
            journeys,
        })
        .collect();
    Snapshot {
        generated_at: input.now,
        state: worst(groups.iter().map(|g| g.state)),
        incidents: public_incidents(&public, input),
        groups,
    }
}

/// The last [`SPARK_HOURS`] hours of `journey`'s p95, the current hour last.
fn sparkline(journey: &str, input: &Inputs<'_>) -> Vec<Option<f64>> {
    if input.hourly_p95.is_empty() {
        return Vec::new();
    }
    let hour = |t: DateTime<Utc>| t.timestamp().div_euclid(3600);
    let last = hour(input.now);
    let mut out = vec![None; SPARK_HOURS as usize];
    for (_, at, p95) in input.hourly_p95.iter().filter(|(j, _, _)| j == journey) {
        let age = last - hour(*at);
        if (0..SPARK_HOURS).contains(&age) {
            out[(SPARK_HOURS - 1 - age) as usize] = Some(*p95);
        }
    }
    out
}

fn day_start(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp().div_euclid(86_400) * 86_400, 0).unwrap_or(t)
}

/// Uptime over the last `n` of `days` (percent), None without runs.
pub fn uptime_over(days: &[Day], n: usize) -> Option<f64> {
    let (runs, failures) = days[days.len().saturating_sub(n)..]
        .iter()
        .fold((0, 0), |(r, f), d| (r + d.runs, f + d.failures));
    uptime(runs, failures)
}

fn uptime(runs: u64, failures: u64) -> Option<f64> {
    (runs > 0).then(|| 100.0 * (runs - failures.min(runs)) as f64 / runs as f64)
}

/// The worst state among `states`; a group of journeys that never ran is `unknown`, and
/// `unknown` next to real states does not hide them.
fn worst(states: impl Iterator<Item = State>) -> State {
    let states: Vec<State> = states.collect();
    let known = states
        .iter()
        .copied()
        .filter(|s| *s != State::Unknown)
        .max();
    known.unwrap_or(State::Unknown)
}

fn active(i: &Incident) -> bool {
    matches!(i.state, IncidentState::Open | IncidentState::Acknowledged)
}

fn journey_state(j: &Journey, incidents: &[&Incident], input: &Inputs<'_>, ran: bool) -> State {
    let impact = incidents
        .iter()
        .filter(|i| active(i))
        .map(|i| impact(i.severity))
        .max();
    let maintenance = input
        .maintenance
        .iter()
        .any(|w| w.applies_to(&j.name, &j.tags) && w.active_until(input.now).is_some());
    match (maintenance, impact) {
        // Maintenance explains whatever happens during it.
        (true, _) => State::Maintenance,
        (false, Some(state)) => state,
        (false, None) if ran => State::Operational,
        (false, None) => State::Unknown,
    }
}

fn impact(severity: Severity) -> State {
    match severity {
        Severity::Failure => State::Down,
        Severity::Degraded => State::Degraded,
    }
}

fn public_incidents(public: &[&Journey], input: &Inputs<'_>) -> Vec<PublicIncident> {
    let since = input.now - Duration::days(PAST_INCIDENTS_DAYS);
    let mut out: Vec<PublicIncident> = input
        .incidents
        .iter()
        .filter(|i| public.iter().any(|j| j.name == i.journey))
        .filter(|i| active(i) || i.resolved_at.is_some_and(|r| r >= since))
        .map(|i| {
            let impact = impact(i.severity);
            let end = i.resolved_at.unwrap_or(input.now);
            PublicIncident {
                id: i.id,
                journey: i.journey.clone(),
                title: format!("{}: {}", i.journey, impact.label().to_lowercase()),
                impact,
                started_at: i.started_at,
                resolved_at: i.resolved_at.filter(|_| !active(i)),
                duration_s: (end - i.started_at).num_seconds().max(0),
            }
        })
        .collect();
    out.sort_by(|a, b| {
        (
            a.resolved_at.is_some(),
            std::cmp::Reverse(a.started_at),
            a.id,
        )
            .cmp(&(
                b.resolved_at.is_some(),
                std::cmp::Reverse(b.started_at),
                b.id,
            ))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Cause;
    use chrono::TimeZone;

    fn journey(name: &str, extra: &str) -> Journey {
        crate::run::testkit::journey(&format!(
            "name: {name}\n{extra}steps:\n  - name: a\n    wait: 1ms\n"
        ))
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap()
    }

    fn day(ago: i64) -> DateTime<Utc> {
        day_start(now()) - Duration::days(ago)
    }

    fn total(journey: &str, ago: i64, runs: u64, failures: u64) -> DailyTotal {
        DailyTotal {
            journey: journey.into(),
            day: day(ago),
            runs,
            failures,
        }
    }

    /// The public page's inputs now, without maintenance windows.
    fn public_page<'a>(
        journeys: &'a [&'a Journey],
        totals: &'a [DailyTotal],
        incidents: &'a [Incident],
    ) -> Inputs<'a> {
        Inputs {
            journeys,
            only_public: true,
            locations: &[],
            hourly_p95: &[],
            totals,
            incidents,
            maintenance: &[],
            now: now(),
        }
    }

    fn incident(
        id: i64,
        journey: &str,
        severity: Severity,
        started: DateTime<Utc>,
        resolved: Option<DateTime<Utc>>,
    ) -> Incident {
        Incident {
            id,
            state: if resolved.is_some() {
                IncidentState::Resolved
            } else {
                IncidentState::Open
            },
            resolved_at: resolved,
            cause: Cause {
                step: Some("a".into()),
                error: Some("connect to 10.0.0.7:5432 refused; token=hunter2".into()),
                ..Cause::default()
            },
            ..Incident::open_for_test(journey, severity, started)
        }
    }

    #[test]
    fn public_journeys_by_group_with_daily_uptime_and_states() {
        let checkout = journey("checkout", "public: true\ngroup: Shop\n");
        let search = journey("search", "public: true\ngroup: Shop\n");
        let api = journey("api", "public: true\n");
        let fresh = journey("fresh", "public: true\ngroup: New\n");
        let internal = journey("internal", "");
        let journeys = [&checkout, &search, &api, &fresh, &internal];
        let totals = [
            total("checkout", 0, 100, 0),
            total("checkout", 1, 200, 4),
            total("checkout", 45, 100, 50),
            total("checkout", 120, 100, 100), // older than 90 days: not shown
            total("search", 0, 10, 0),
            total("api", 0, 10, 0),
            total("internal", 0, 10, 10),
        ];
        let incidents = [
            incident(
                1,
                "checkout",
                Severity::Failure,
                now() - Duration::minutes(30),
                None,
            ),
            incident(
                2,
                "search",
                Severity::Degraded,
                day(3),
                Some(day(3) + Duration::hours(2)),
            ),
            incident(
                3,
                "internal",
                Severity::Failure,
                now() - Duration::hours(1),
                None,
            ),
            incident(
                4,
                "api",
                Severity::Failure,
                day(20),
                Some(day(20) + Duration::hours(1)),
            ),
        ];
        let s = build(&public_page(&journeys, &totals, &incidents));
        let names: Vec<(&str, Vec<&str>)> = s
            .groups
            .iter()
            .map(|g| {
                (
                    g.name.as_str(),
                    g.journeys.iter().map(|j| j.name.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("New", vec!["fresh"]),
                ("Services", vec!["api"]),
                ("Shop", vec!["checkout", "search"])
            ]
        );
        let shop = &s.groups[2];
        assert_eq!(
            (shop.state, shop.journeys[0].state, shop.journeys[1].state),
            (State::Down, State::Down, State::Operational)
        );
        assert_eq!(
            (s.groups[0].state, s.groups[1].state),
            (State::Unknown, State::Operational)
        );
        assert_eq!(s.state, State::Down, "the worst known state");
        // The dashboard's view has every journey, the private one too.
        let locations = [("internal".to_string(), "eu-west".to_string())];
        let p95 = [
            ("internal".to_string(), now() - Duration::hours(2), 180.0),
            ("internal".to_string(), now(), 120.0),
            ("internal".to_string(), now() - Duration::hours(30), 999.0),
        ];
        let all = build(&Inputs {
            only_public: false,
            locations: &locations,
            hourly_p95: &p95,
            ..public_page(&journeys, &totals, &incidents)
        });
        let internal = all
            .groups
            .iter()
            .flat_map(|g| &g.journeys)
            .find(|j| j.name == "internal")
            .unwrap();
        assert_eq!(
            (internal.state, internal.uptime_30d),
            (State::Down, Some(0.0))
        );
        assert_eq!(internal.locations, ["eu-west"]);
        let spark = &internal.p95_hourly;
        assert_eq!(spark.len(), 24);
        assert_eq!(
            (spark[23], spark[21], spark[22]),
            (Some(120.0), Some(180.0), None)
        );
        assert_eq!(
            spark.iter().flatten().count(),
            2,
            "older hours are out of the sparkline"
        );
        assert!(
            s.groups
                .iter()
                .flat_map(|g| &g.journeys)
                .all(|j| j.locations.is_empty()),
            "no location on the public page"
        );
        let c = &shop.journeys[0];
        assert_eq!(c.days.len(), 90);
        assert_eq!(c.days[89].date, "2026-11-29");
        assert_eq!(
            (c.days[89].runs, c.days[89].uptime, c.days[89].incidents),
            (100, Some(100.0), 1)
        );
        assert_eq!(c.days[88].uptime, Some(98.0));
        assert_eq!(c.days[44].uptime, Some(50.0));
        assert_eq!(c.days[0].uptime, None);
        assert_eq!(c.uptime_90d, Some(100.0 * 346.0 / 400.0));
        assert_eq!(c.uptime_30d, Some(100.0 * 296.0 / 300.0));
        assert_eq!(
            shop.journeys[1].days[86].incidents, 1,
            "search's incident three days ago"
        );
        // Incidents: public ones, open first, then resolved in the last two weeks.
        let listed: Vec<(i64, &str, bool)> = s
            .incidents
            .iter()
            .map(|i| (i.id, i.title.as_str(), i.resolved_at.is_some()))
            .collect();
        assert_eq!(
            listed,
            [
                (1, "checkout: down", false),
                (2, "search: degraded performance", true)
            ]
        );
        assert_eq!(s.incidents[0].duration_s, 1800);
        // Nothing internal leaves: no cause, no error, no private journey.
        let json = serde_json::to_string(&s).unwrap();
        for secret in ["10.0.0.7", "hunter2", "refused", "internal"] {
            assert!(!json.contains(secret), "`{secret}` leaked: {json}");
        }
    }

    #[test]
    fn maintenance_explains_an_incident() {
        let checkout = journey("checkout", "public: true\ntags: [db]\n");
        let windows: crate::config::alerting::AlertConfig = toml::from_str(&format!(
            "[[maintenance]]\nname = \"upgrade\"\ntags = [\"db\"]\nstart = \"{}\"\nend = \"{}\"\n",
            (now() - Duration::hours(1)).to_rfc3339(),
            (now() + Duration::hours(1)).to_rfc3339()
        ))
        .unwrap();
        let windows: Vec<Window> = windows
            .maintenance
            .iter()
            .map(|w| Window::new(w).unwrap())
            .collect();
        let incidents = [incident(1, "checkout", Severity::Failure, now(), None)];
        let totals = [total("checkout", 0, 5, 5)];
        let journeys = [&checkout];
        let input = |maintenance| Inputs {
            maintenance,
            ..public_page(&journeys, &totals, &incidents)
        };
        assert_eq!(build(&input(&windows)).state, State::Maintenance);
        assert_eq!(build(&input(&[])).state, State::Down);
        let later = Inputs {
            now: now() + Duration::hours(2),
            ..input(&windows)
        };
        assert_eq!(build(&later).state, State::Down, "the window is over");
    }
}
