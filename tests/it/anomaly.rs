//! `waymark anomaly replay`: the real binary over CSV histories the tests generate (fixed
//! seed): a latency level shift and an outage are found, in both timestamp forms and both
//! output formats; bad input is refused with its line number.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, LogNormal};
use serde_json::Value;

/// 2026-01-05T00:00:00Z, a Monday.
const T0: i64 = 1_767_571_200;
/// Three days of one run a minute.
const ROWS: usize = 3 * 24 * 60;
/// Rows of the +100 % latency shift (day 3, 08:00–09:00: judging starts at 06:00, once 360
/// deviations are learnt after two days).
const SHIFT: std::ops::Range<usize> = 3360..3420;
/// Rows of the outage: 20 failed runs (day 3, 12:00–12:20).
const OUTAGE: std::ops::Range<usize> = 3600..3620;

/// One row per minute: (unix seconds, latency ms, passed), log-normal around 100 ms
/// (σ 0.1), doubled during [`SHIFT`], failing (with a timeout's latency) during [`OUTAGE`].
fn history() -> Vec<(i64, f64, bool)> {
    // A fixed seed, so the data is the same on every machine.
    let mut rng = StdRng::seed_from_u64(20_260_105);
    let noise = LogNormal::new(0.0, 0.1).unwrap();
    (0..ROWS)
        .map(|i| {
            let t = T0 + 60 * i as i64;
            let mut ms: f64 = 100.0 * noise.sample(&mut rng);
            if SHIFT.contains(&i) {
                ms *= 2.0;
            }
            if OUTAGE.contains(&i) {
                (t, 10_000.0, false)
            } else {
                (t, (ms * 1000.0).round() / 1000.0, true)
            }
        })
        .collect()
}

fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// With a header line and unix-second timestamps.
fn unix_csv() -> String {
    let mut out = String::from("timestamp,latency_ms,ok\n");
    for (t, ms, ok) in history() {
        out.push_str(&format!("{t},{ms},{}\n", u8::from(ok)));
    }
    out
}

/// No header, RFC 3339 timestamps.
fn rfc3339_csv() -> String {
    history()
        .into_iter()
        .map(|(t, ms, ok)| format!("{},{ms},{}\n", rfc3339(t), u8::from(ok)))
        .collect()
}

fn waymark(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_waymark"))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let text = text.to_string();
        std::thread::spawn(move || pipe.write_all(text.as_bytes()).unwrap());
    }
    child.wait_with_output().unwrap()
}

/// Runs `anomaly replay` on a file and returns stdout, checking that it succeeded.
fn replay(input: &Path, extra: &[&str]) -> String {
    let mut args = vec!["anomaly", "replay", "--input", input.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = waymark(&args, None);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {stderr}");
    String::from_utf8(o.stdout).unwrap()
}

fn replay_json(input: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["--format", "json"];
    args.extend_from_slice(extra);
    let out = replay(input, &args);
    assert_eq!(out.trim_end().lines().count(), 1, "one JSON object: {out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let keys: Vec<&str> = report
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["episodes", "period_s", "points", "value_kind"],
        "{out}"
    );
    report
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A timestamp of the output as unix seconds, whichever form it has.
fn seconds(v: &Value) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().expect("whole seconds"),
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp(),
        other => panic!("not a timestamp: {other}"),
    }
}

fn row_time(i: usize) -> i64 {
    T0 + 60 * i as i64
}

/// The episodes with their timestamps as unix seconds.
fn normalized(episodes: &Value) -> Vec<Value> {
    episodes
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let mut e = e.clone();
            for key in ["start", "detected", "end"] {
                if !e[key].is_null() {
                    e[key] = seconds(&e[key]).into();
                }
            }
            e
        })
        .collect()
}

#[test]
fn json_report_finds_the_shift_and_the_outage() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "unix.csv", &unix_csv());
    let report = replay_json(&input, &[]);
    let episodes = report["episodes"].as_array().unwrap();
    let (shift_start, shift_end) = (row_time(SHIFT.start), row_time(SHIFT.end));
    // The shift and the outage, and no false episode on the clean days around them.
    assert_eq!(episodes.len(), 2, "{episodes:#?}");

    // Unix-second timestamps stay JSON numbers, everywhere.
    for e in episodes {
        assert!(e["start"].is_i64() && e["detected"].is_i64(), "{e}");
        assert!(e["end"].is_i64() || e["end"].is_null(), "{e}");
    }
    let points = report["points"].as_array().unwrap();
    assert!(!points.is_empty());
    assert!(points.iter().all(|p| p["timestamp"].is_i64()), "{points:?}");

    let shift: Vec<&Value> = episodes
        .iter()
        .filter(|e| {
            e["detector"] == "latency" && (shift_start..shift_end).contains(&seconds(&e["start"]))
        })
        .collect();
    assert_eq!(shift.len(), 1, "one episode for the shift: {episodes:#?}");
    let e = shift[0];
    let delay = e["delay_runs"].as_u64().unwrap();
    assert!((1..=5).contains(&delay), "detected within 5 runs: {e}");
    assert_eq!(
        seconds(&e["detected"]) - seconds(&e["start"]),
        60 * (delay as i64 - 1),
        "{e}"
    );
    let end = seconds(&e["end"]);
    assert!(end >= shift_end, "ends after the shift: {e}");
    assert!(end <= shift_end + 60 * 30, "and soon after it: {e}");
    let peak = e["peak_value"].as_f64().unwrap();
    assert!((150.0..400.0).contains(&peak), "{e}");
    let baseline = e["baseline"].as_f64().unwrap();
    assert!((85.0..115.0).contains(&baseline), "{e}");
    assert!(e["anomalous_runs"].as_u64().unwrap() >= 30, "{e}");

    let (outage_start, outage_end) = (row_time(OUTAGE.start), row_time(OUTAGE.end));
    let outage: Vec<&Value> = episodes
        .iter()
        .filter(|e| e["detector"] == "failure_rate")
        .collect();
    assert_eq!(outage.len(), 1, "one failure episode: {episodes:#?}");
    let e = outage[0];
    let (start, detected) = (seconds(&e["start"]), seconds(&e["detected"]));
    assert!(
        (outage_start..outage_end).contains(&start) && (start..outage_end).contains(&detected),
        "{e}"
    );
    assert!(seconds(&e["end"]) >= outage_end, "{e}");
    assert!(e["peak_value"].as_f64().unwrap() > 0.5, "{e}");

    // Flagged failure points are all in the outage (or just after, while the window holds
    // the failures); flagged latency points around the shift carry the expectation.
    for p in points {
        let t = seconds(&p["timestamp"]);
        if p["detector"] == "failure_rate" {
            assert!((outage_start..outage_end + 60 * 20).contains(&t), "{p}");
        } else if (shift_start..shift_end).contains(&t) {
            let value = p["value"].as_f64().unwrap();
            assert!(p["expected_ms"].as_f64().unwrap() < value, "{p}");
            assert!(p["likelihood"].as_f64().unwrap() >= 1.0 - 1e-5, "{p}");
            // A run alone would need to be slower still.
            assert!(p["threshold_ms"].as_f64().unwrap() > p["expected_ms"].as_f64().unwrap());
        }
    }
}

#[test]
fn rfc3339_input_gives_the_same_episodes_with_string_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let unix = replay_json(&write(dir.path(), "unix.csv", &unix_csv()), &[]);
    let text = replay_json(&write(dir.path(), "rfc.csv", &rfc3339_csv()), &[]);
    for e in text["episodes"].as_array().unwrap() {
        assert!(e["start"].is_string() && e["detected"].is_string(), "{e}");
        assert!(e["end"].is_string() || e["end"].is_null(), "{e}");
        let start = e["start"].as_str().unwrap();
        assert!(start.ends_with('Z') && start.contains('T'), "{e}");
    }
    assert!(
        text["points"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["timestamp"].is_string())
    );
    assert!(!unix["episodes"].as_array().unwrap().is_empty());
    assert_eq!(normalized(&unix["episodes"]), normalized(&text["episodes"]));
    let times = |r: &Value| -> Vec<(i64, Value)> {
        r["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (seconds(&p["timestamp"]), p["detector"].clone()))
            .collect()
    };
    assert_eq!(times(&unix), times(&text));
}

#[test]
fn text_report_lists_points_and_episodes() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "unix.csv", &unix_csv());
    let report = replay_json(&input, &[]);
    let text = replay(&input, &[]);
    let episodes = report["episodes"].as_array().unwrap();
    let points = report["points"].as_array().unwrap();
    for e in episodes {
        let line = format!(
            "episode  {} .. {}  {}  detected at {} (run {} of the episode)",
            e["start"],
            e["end"],
            e["detector"].as_str().unwrap(),
            e["detected"],
            e["delay_runs"]
        );
        assert!(text.contains(&line), "`{line}` in:\n{text}");
    }
    assert!(text.contains("  latency  "), "{text}");
    assert!(text.contains("  failure_rate  "), "{text}");
    let flagged = text.lines().filter(|l| l.starts_with("flagged  ")).count();
    assert_eq!(flagged, points.len());
    let summary = format!(
        "{ROWS} rows, {} points flagged, {} episodes",
        points.len(),
        episodes.len()
    );
    assert_eq!(text.lines().last(), Some(summary.as_str()), "{text}");
}

#[test]
fn a_malformed_row_is_an_error_naming_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines: Vec<String> = unix_csv().lines().map(str::to_string).collect();
    // Line 5 of the file (after the header and three rows).
    lines.insert(4, "abc,12".into());
    let input = write(dir.path(), "bad.csv", &(lines.join("\n") + "\n"));
    for format in ["text", "json"] {
        let o = waymark(
            &[
                "anomaly",
                "replay",
                "--input",
                input.to_str().unwrap(),
                "--format",
                format,
            ],
            None,
        );
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("line 5"), "{stderr}");
        assert!(stderr.contains("abc"), "{stderr}");
        assert!(stderr.contains("bad.csv"), "{stderr}");
        assert!(o.stdout.is_empty(), "nothing printed for a partial input");
    }
    // A missing file is an error too.
    let o = waymark(
        &["anomaly", "replay", "--input", "/nonexistent/x.csv"],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn lower_sensitivity_flags_no_more_than_higher() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "unix.csv", &unix_csv());
    let count = |level: &str| {
        let r = replay_json(&input, &["--sensitivity", level]);
        (
            r["points"].as_array().unwrap().len(),
            r["episodes"].as_array().unwrap().len(),
        )
    };
    let (low, medium, high) = (count("low"), count("medium"), count("high"));
    assert!(
        low.0 <= medium.0 && medium.0 <= high.0,
        "{low:?} {medium:?} {high:?}"
    );
    assert!(low.0 < high.0, "{low:?} {high:?}");
    assert!(
        low.1 >= 1,
        "even low finds the outage and the shift: {low:?}"
    );
}

#[test]
fn reads_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let csv = unix_csv();
    let input = write(dir.path(), "unix.csv", &csv);
    for format in ["json", "text"] {
        let from_file = replay(&input, &["--format", format]);
        let o = waymark(
            &["anomaly", "replay", "--input", "-", "--format", format],
            Some(&csv),
        );
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(String::from_utf8(o.stdout).unwrap(), from_file);
    }
    // A bad row on standard input names its line too.
    let o = waymark(
        &["anomaly", "replay", "--input", "-"],
        Some("timestamp,value\n1767571200,100\nabc,12\n"),
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("line 3"), "{stderr}");
}
