//! Evaluates the anomaly detectors on the labelled benchmark in tests/data/anomaly/.
//!
//!     cargo bench --bench anomaly_eval
//!
//! Generates the data first if it is missing (python3 tests/data/anomaly/generate.py, fixed
//! seed). For each detector and sensitivity it prints precision, recall, median detection
//! delay in runs and false episodes per series per 30 days on the anomaly-free series; the
//! latency and failure detectors run exactly as `waymark anomaly replay` runs them.

// Clock reads are refused only in the pure modules (clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use waymark::baseline::replay::{Row, parse_csv};
use waymark::baseline::shift::compare;
use waymark::baseline::sketch::Sketch;
use waymark::baseline::{
    DetectorKind, DetectorParams, Episode, SeriesDetector, ShiftParams, Transition,
};
use waymark::journey::{AnomalySettings, Seasonality, Sensitivity};

#[derive(Deserialize)]
struct Labels {
    series: Vec<Series>,
}

#[derive(Deserialize)]
struct Series {
    file: String,
    group: String,
    base_ms: f64,
    anomalies: Vec<Anomaly>,
    periods: Periods,
}

#[derive(Deserialize, Clone)]
struct Anomaly {
    #[serde(rename = "type")]
    kind: String,
    detector: String,
    start: i64,
    end: i64,
    magnitude: f64,
}

#[derive(Deserialize)]
struct Periods {
    a: [i64; 2],
    b: [i64; 2],
    true_change: f64,
}

/// An episode is a true detection when it is detected while the anomaly lasts, or within
/// this long after it ended (the last anomalous runs need `k` runs to add up).
const GRACE_S: i64 = 10 * 60;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/anomaly");
    let series_dir = dir.join("series");
    if !series_dir.join("labels.json").exists() {
        eprintln!("generating the benchmark data (python3 tests/data/anomaly/generate.py)...");
        let status = std::process::Command::new("python3")
            .arg(dir.join("generate.py"))
            .status()
            .expect("python3 runs");
        assert!(status.success(), "the generator failed");
    }
    let labels: Labels =
        serde_json::from_str(&std::fs::read_to_string(series_dir.join("labels.json")).unwrap())
            .unwrap();
    let data: Vec<(Series, Vec<Row>)> = labels
        .series
        .into_iter()
        .map(|s| {
            let rows = load(&series_dir.join(&s.file));
            (s, rows)
        })
        .collect();
    let rows: usize = data.iter().map(|(_, r)| r.len()).sum();
    println!(
        "benchmark: {} series, {rows} runs (1 per minute, 30 days each)",
        data.len()
    );
    if std::env::var_os("SWEEP").is_some() {
        sweep(&data);
        return;
    }
    let seasonality = std::env::var("SEASONALITY").ok();
    for sensitivity in [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High] {
        let mut settings = AnomalySettings {
            sensitivity: Some(sensitivity),
            ..AnomalySettings::default()
        };
        settings.seasonality = match seasonality.as_deref() {
            Some("off") => Some(Seasonality::Off),
            Some("daily") => Some(Seasonality::Daily),
            _ => None,
        };
        let params = DetectorParams::resolve(settings).unwrap();
        println!("\n== sensitivity {sensitivity:?} ==");
        evaluate(&data, params);
        shifts(&data, &ShiftParams::preset(sensitivity).unwrap());
    }
}

fn load(path: &PathBuf) -> Vec<Row> {
    parse_csv(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Episodes of every detector over one series, with the row index of their detection.
fn episodes(rows: &[Row], params: DetectorParams) -> Vec<(Episode, usize)> {
    let mut d = SeriesDetector::new(params);
    let mut out: Vec<(Episode, usize)> = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        for t in d.observe(r.at_ms, r.value, r.ok).transitions {
            if let Transition::Started(e) = t {
                out.push((e, i));
            }
        }
    }
    out
}

#[derive(Default)]
struct Tally {
    labelled: usize,
    detected: usize,
    delays: Vec<usize>,
}

impl Tally {
    fn line(&self, what: &str) -> String {
        format!(
            "  {what:<34} recall {:>5.3} ({}/{})  median delay {} runs  (≤5 runs: {:.3})",
            ratio(self.detected, self.labelled),
            self.detected,
            self.labelled,
            median(&self.delays).map_or("-".into(), |d| format!("{d}")),
            ratio(
                self.delays.iter().filter(|&&d| d <= 5).count(),
                self.labelled
            ),
        )
    }
}

fn evaluate(data: &[(Series, Vec<Row>)], params: DetectorParams) {
    for (kind, name, group) in [
        (DetectorKind::Latency, "latency", "latency"),
        (DetectorKind::FailureRate, "failure", "failure"),
    ] {
        let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
        let (mut true_eps, mut false_eps) = (0usize, 0usize);
        let (mut clean_eps, mut clean_days) = (0usize, 0.0f64);
        for (s, rows) in data {
            let days = (rows.last().unwrap().at_ms - rows[0].at_ms) as f64 / 86_400_000.0;
            let eps: Vec<(Episode, usize)> = episodes(rows, params)
                .into_iter()
                .filter(|(e, _)| e.detector == kind)
                .collect();
            if s.group == "clean" {
                clean_eps += eps.len();
                clean_days += days;
                continue;
            }
            let labelled: Vec<&Anomaly> =
                s.anomalies.iter().filter(|a| a.detector == name).collect();
            if s.group == group {
                for (e, _) in &eps {
                    let t = e.detected_ms / 1000;
                    if labelled.iter().any(|a| t >= a.start && t < a.end + GRACE_S) {
                        true_eps += 1;
                    } else {
                        false_eps += 1;
                    }
                }
            }
            for a in labelled {
                let key = bucket(a);
                let tally = tallies.entry(key).or_default();
                tally.labelled += 1;
                let start_row = rows.partition_point(|r| r.at_ms < a.start * 1000);
                let hit = eps.iter().find(|(e, _)| {
                    let t = e.detected_ms / 1000;
                    t >= a.start && t < a.end + GRACE_S
                });
                if let Some((_, row)) = hit {
                    tally.detected += 1;
                    tally.delays.push(row + 1 - start_row.min(*row));
                }
            }
        }
        println!(
            "{name}: precision {:.3} ({true_eps} true, {false_eps} false episodes on `{group}` series), \
             {:.2} false episodes per series per 30 days on anomaly-free series",
            ratio(true_eps, true_eps + false_eps),
            clean_eps as f64 / clean_days * 30.0,
        );
        for (key, tally) in &tallies {
            println!("{}", tally.line(key));
        }
    }
}

/// The latency detector's episode rule and threshold around the medium preset: recall on
/// level shifts of +50 % or more within 5 runs, against false episodes on clean series.
fn sweep(data: &[(Series, Vec<Row>)]) {
    println!("open_p  window  recall(≥+50%, ≤5 runs)  median delay  false episodes/series/30 d");
    for threshold in [1e-6, 1e-5, 1e-4] {
        for (k, n) in [(0, 3), (0, 5), (0, 8)] {
            let mut params = DetectorParams::resolve(AnomalySettings::default()).unwrap();
            params.latency.open_p = threshold;
            params.latency.window = n;
            let _ = k;
            let (mut hits, mut total, mut delays) = (0, 0, Vec::new());
            let (mut clean_eps, mut clean_days) = (0usize, 0.0f64);
            for (s, rows) in data {
                let eps: Vec<(Episode, usize)> = episodes(rows, params)
                    .into_iter()
                    .filter(|(e, _)| e.detector == DetectorKind::Latency)
                    .collect();
                if s.group == "clean" {
                    clean_eps += eps.len();
                    clean_days +=
                        (rows.last().unwrap().at_ms - rows[0].at_ms) as f64 / 86_400_000.0;
                }
                for a in s
                    .anomalies
                    .iter()
                    .filter(|a| a.kind == "level_shift" && a.magnitude >= 0.5)
                {
                    total += 1;
                    let start_row = rows.partition_point(|r| r.at_ms < a.start * 1000);
                    let hit = eps.iter().find(|(e, _)| {
                        let t = e.detected_ms / 1000;
                        t >= a.start && t < a.end + GRACE_S
                    });
                    if let Some((_, row)) = hit {
                        let delay = row + 1 - start_row.min(*row);
                        delays.push(delay);
                        hits += usize::from(delay <= 5);
                    }
                }
            }
            println!(
                "{threshold:>9.1}  {k}/{n}  {:>22.3}  {:>12}  {:>26.2}",
                ratio(hits, total),
                median(&delays).unwrap_or(0),
                clean_eps as f64 / clean_days * 30.0
            );
        }
    }
}

fn bucket(a: &Anomaly) -> String {
    match a.kind.as_str() {
        "level_shift" | "regression" if a.magnitude >= 0.5 => format!("{} ≥ +50%", a.kind),
        "level_shift" | "regression" if a.magnitude > 0.0 => {
            format!("{} +{:.0}%", a.kind, a.magnitude * 100.0)
        }
        // Faster is not an anomaly: the latency detector is one-sided, so 0 is right here.
        "level_shift" | "regression" => {
            format!("{} {:.0}% (faster)", a.kind, a.magnitude * 100.0)
        }
        "gradual" => format!("gradual to +{:.0}%", a.magnitude * 100.0),
        "failure_rate" => format!("failure_rate {:.0}%", a.magnitude * 100.0),
        other => other.to_string(),
    }
}

/// Period-over-period comparison: a shift is real when the true median moved by 30 % or
/// more (and by at least the absolute margin), and absent when it moved by less than 10 %.
fn shifts(data: &[(Series, Vec<Row>)], params: &ShiftParams) {
    let (mut tp, mut fp, mut fn_, mut tn, mut tiny) = (0, 0, 0, 0, 0);
    let mut missed = Vec::new();
    for (s, rows) in data {
        let sketch = |[from, to]: [i64; 2]| {
            let mut k = Sketch::new();
            rows.iter()
                .filter(|r| r.ok && r.at_ms >= from * 1000 && r.at_ms < to * 1000)
                .for_each(|r| k.add(r.value));
            k
        };
        let Some(shift) = compare(&sketch(s.periods.a), &sketch(s.periods.b), params) else {
            continue;
        };
        let truth = s.periods.true_change.abs();
        if truth >= 0.3 && truth * s.base_ms < params.min_delta_ms {
            tiny += 1;
            continue;
        }
        match (truth >= 0.3, truth < 0.1, shift.significant) {
            (true, _, true) => tp += 1,
            (true, _, false) => {
                fn_ += 1;
                missed.push(format!(
                    "{} (true {:+.0}%, measured {:+.1}%, p {:.1e})",
                    s.file,
                    100.0 * s.periods.true_change,
                    100.0 * shift.change,
                    shift.p_value
                ));
            }
            (_, true, true) => fp += 1,
            (_, true, false) => tn += 1,
            _ => {}
        }
    }
    println!(
        "level shift (period over period): precision {:.3}, recall {:.3} ({tp} found, {fn_} missed, {fp} false, {tn} quiet; \
         {tiny} shifts smaller than {} ms not counted)",
        ratio(tp, tp + fp),
        ratio(tp, tp + fn_),
        params.min_delta_ms,
    );
    if !missed.is_empty() {
        println!("  missed: {}", missed.join(", "));
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        f64::NAN
    } else {
        a as f64 / b as f64
    }
}

fn median(v: &[usize]) -> Option<usize> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}
