//! The spans of one run: a root span `journey <name>` and one span per step attempt.
//!
//! Attempt spans are *started* when the attempt starts (their span id goes out in
//! `traceparent`), but they get their attributes, events and status only when the run is over,
//! from what the attempt observed, and every string of them passes through the run's
//! [`Redactor`] at that moment: by then every secret the run rendered and every value a
//! `sensitive` step extracted is registered, exactly as for the `RunResult`. The redaction
//! happens in one place, [`apply`], after which strings are cut to [`MAX_TEXT`] characters.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{
    Span as _, SpanBuilder, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
};
use opentelemetry::{Array, Context, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::Span;

use super::Telemetry;
use super::attributes::Attrs;
use crate::journey::facts::Facts;
use crate::journey::template::{Redactor, Scope};
use crate::journey::{Journey, Step, StepKind};
use crate::run::{Outcome, RunResult, StepResult, StepStatus};
use crate::step::{FailureClass, Timings};

/// Longest attribute or event text kept (after redaction), in characters.
pub const MAX_TEXT: usize = 2048;

/// The trace of one run, from [`Telemetry::start_run`] to [`RunTrace::finish`].
pub struct RunTrace {
    telemetry: Telemetry,
    /// Holds the root span; the parent of every step span.
    cx: Context,
    trace_id: TraceId,
    flags: TraceFlags,
    run_id: uuid::Uuid,
    journey_version: String,
    /// Finished attempts, waiting for the end of the run to be filled in and ended.
    records: Vec<Record>,
}

/// A step attempt's span, started; [`RunTrace::end_attempt`] finishes it.
pub struct AttemptSpan {
    span: Span,
    start: SystemTime,
    attempt: u32,
}

impl AttemptSpan {
    /// 16 lower-case hex digits.
    pub fn span_id(&self) -> String {
        self.span.span_context().span_id().to_string()
    }
}

struct Record {
    span: Span,
    end: SystemTime,
    attributes: Vec<KeyValue>,
    events: Vec<(Cow<'static, str>, SystemTime, Vec<KeyValue>)>,
    /// Status description when the attempt failed.
    error: Option<String>,
}

impl RunTrace {
    pub(super) fn start(telemetry: &Telemetry, journey: &Journey, run_id: uuid::Uuid) -> RunTrace {
        let root = SpanBuilder::from_name(format!("journey {}", journey.name))
            .with_kind(SpanKind::Internal)
            .start_with_context(telemetry.tracer(), &Context::new());
        let sc = root.span_context().clone();
        RunTrace {
            telemetry: telemetry.clone(),
            cx: Context::new().with_span(root),
            trace_id: sc.trace_id(),
            flags: sc.trace_flags(),
            run_id,
            journey_version: journey.source.content_sha256.clone(),
            records: Vec::new(),
        }
    }

    /// 32 lower-case hex digits.
    pub fn trace_id(&self) -> String {
        self.trace_id.to_string()
    }

    /// Starts the span of one attempt of `step` (1-based), now.
    pub fn start_attempt(&self, step: &Step, attempt: u32) -> AttemptSpan {
        let start = SystemTime::now();
        let span = SpanBuilder::from_name(span_name(step))
            .with_kind(kind_of(&step.kind))
            .with_start_time(start)
            .start_with_context(self.telemetry.tracer(), &self.cx);
        AttemptSpan {
            span,
            start,
            attempt,
        }
    }

    /// The propagation headers for requests made during this attempt: the attempt span is
    /// their parent.
    pub fn propagation_headers(&self, attempt: &AttemptSpan) -> Vec<(String, String)> {
        self.telemetry.propagation_headers(
            self.trace_id,
            attempt.span.span_context().span_id(),
            self.flags,
            self.run_id,
        )
    }

    /// Records what the attempt observed; the span ends at `end` when the run finishes.
    /// `scope` renders the step's target (host names of TCP, DNS and TLS steps) again.
    #[allow(clippy::too_many_arguments)]
    pub fn end_attempt(
        &mut self,
        span: AttemptSpan,
        end: SystemTime,
        step: &Step,
        scope: &Scope<'_>,
        facts: &Facts,
        result: &StepResult,
        final_attempt: bool,
    ) {
        if !self.telemetry.is_exporting() {
            // Nobody will see the attributes: the span only had to exist for its id.
            return;
        }
        let AttemptSpan {
            span,
            start,
            attempt,
        } = span;
        let mut a = Attrs::default();
        a.step(step, result);
        a.int("waymark.step.attempt", attempt.into());
        a.bool("waymark.step.final_attempt", final_attempt);
        a.kind_specific(step, scope, facts, result, start, attempt);
        let mut events = phase_events(start, &result.timings);
        let mut at = events.last().map_or(start, |e| e.1);
        for action in &result.actions {
            at += action.duration.unwrap_or_default();
            let mut attrs = vec![KeyValue::new("waymark.action.passed", action.passed)];
            if let Some(d) = action.duration {
                attrs.push(KeyValue::new("waymark.action.duration_ms", ms(d)));
            }
            if !action.detail.is_empty() {
                attrs.push(KeyValue::new(
                    "waymark.action.detail",
                    action.detail.clone(),
                ));
            }
            events.push((format!("websocket.{}", action.action).into(), at, attrs));
        }
        let at_end = end;
        for c in &result.conditions {
            events.push((
                "condition".into(),
                at_end,
                vec![
                    KeyValue::new("waymark.condition.expression", c.expression.clone()),
                    KeyValue::new("waymark.condition.passed", c.passed),
                    KeyValue::new("waymark.condition.actual", c.actual.clone()),
                ],
            ));
        }
        if let Some(f) = &result.failure
            && is_exception(f.class)
        {
            events.push((
                "exception".into(),
                at_end,
                vec![
                    KeyValue::new("exception.type", f.class.as_str()),
                    KeyValue::new("exception.message", f.message.clone()),
                ],
            ));
        }
        let error = match result.status {
            StepStatus::Failed | StepStatus::Error => Some(
                result
                    .failure
                    .as_ref()
                    .map_or_else(|| "failed".to_string(), |f| f.message.clone()),
            ),
            StepStatus::Passed | StepStatus::Skipped => None,
        };
        self.records.push(Record {
            span,
            end,
            attributes: a.0,
            events,
            error,
        });
    }

    /// A step that did not run (skipped, or the run's deadline had passed): an internal span
    /// of no duration. Returns its span id.
    pub fn not_run(&mut self, step: &Step, result: &StepResult) -> String {
        let now = SystemTime::now();
        let span = SpanBuilder::from_name(span_name(step))
            .with_kind(SpanKind::Internal)
            .with_start_time(now)
            .start_with_context(self.telemetry.tracer(), &self.cx);
        let id = span.span_context().span_id().to_string();
        if !self.telemetry.is_exporting() {
            return id;
        }
        let mut a = Attrs::default();
        a.step(step, result);
        if let Some(reason) = &result.skip_reason {
            a.str("waymark.step.skip_reason", reason);
        }
        self.records.push(Record {
            span,
            end: now,
            attributes: a.0,
            events: Vec::new(),
            error: result.failure.as_ref().map(|f| f.message.clone()),
        });
        id
    }

    /// Fills in and ends every span of the run. `result` is the finished run; `redactor` the
    /// run's, which by now knows every secret the run touched.
    pub fn finish(self, result: &RunResult, redactor: &Redactor) {
        for record in self.records {
            apply(record, redactor);
        }
        let root = self.cx.span();
        if !self.telemetry.is_exporting() {
            root.end();
            return;
        }
        let outcome = result.outcome.as_str();
        let mut attrs = vec![
            KeyValue::new("waymark.journey.name", result.journey.clone()),
            KeyValue::new("waymark.run.id", result.run_id.to_string()),
            KeyValue::new("waymark.location", result.location.clone()),
            KeyValue::new("waymark.run.outcome", outcome),
            KeyValue::new("waymark.run.steps", result.steps.len() as i64),
        ];
        if !self.journey_version.is_empty() {
            attrs.push(KeyValue::new(
                "waymark.journey.version",
                self.journey_version.clone(),
            ));
        }
        root.set_attributes(attrs.into_iter().map(|kv| redact_kv(kv, redactor)));
        if result.outcome != Outcome::Passed {
            let culprit = result
                .steps
                .iter()
                .find(|s| matches!(s.status, StepStatus::Failed | StepStatus::Error));
            let text = match culprit {
                Some(s) => format!(
                    "step `{}` {}: {}",
                    s.name,
                    if s.status == StepStatus::Error {
                        "errored"
                    } else {
                        "failed"
                    },
                    s.failure.as_ref().map_or("", |f| f.message.as_str())
                ),
                None => format!("run {outcome}"),
            };
            root.set_status(Status::error(clean(&text, redactor)));
        }
        root.end();
    }
}

/// The one place where span data meets the redactor: every string attribute, event attribute
/// and status description is redacted, then cut to [`MAX_TEXT`].
fn apply(record: Record, redactor: &Redactor) {
    let Record {
        mut span,
        end,
        attributes,
        events,
        error,
    } = record;
    span.set_attributes(attributes.into_iter().map(|kv| redact_kv(kv, redactor)));
    for (name, at, attrs) in events {
        let attrs = attrs
            .into_iter()
            .map(|kv| redact_kv(kv, redactor))
            .collect();
        span.add_event_with_timestamp(name, at, attrs);
    }
    if let Some(text) = error {
        span.set_status(Status::error(clean(&text, redactor)));
    }
    span.end_with_timestamp(end);
}

fn clean(text: &str, redactor: &Redactor) -> String {
    truncate(redactor.redact(text))
}

fn truncate(mut s: String) -> String {
    if let Some((cut, _)) = s.char_indices().nth(MAX_TEXT) {
        s.truncate(cut);
        s.push('…');
    }
    s
}

fn redact_kv(kv: KeyValue, redactor: &Redactor) -> KeyValue {
    let value = match kv.value {
        Value::String(s) => Value::String(clean(s.as_str(), redactor).into()),
        Value::Array(Array::String(items)) => Value::Array(Array::String(
            items
                .iter()
                .map(|s| StringValue::from(clean(s.as_str(), redactor)))
                .collect(),
        )),
        other => other,
    };
    KeyValue::new(kv.key, value)
}

fn span_name(step: &Step) -> String {
    format!("{} {}", step.kind.name(), step.name)
}

fn kind_of(kind: &StepKind) -> SpanKind {
    match kind {
        StepKind::Wait(_) => SpanKind::Internal,
        _ => SpanKind::Client,
    }
}

/// Failures that are errors of the exchange (recorded as `exception` events), as opposed to
/// conditions on a good exchange that did not hold.
fn is_exception(class: FailureClass) -> bool {
    !matches!(
        class,
        FailureClass::HttpStatus | FailureClass::Condition | FailureClass::Extraction
    )
}

/// Span events for the timed phases, each at the moment its phase ended (phases follow each
/// other from the attempt's start; after redirects each is the sum over the hops), with its
/// duration.
fn phase_events(
    start: SystemTime,
    t: &Timings,
) -> Vec<(Cow<'static, str>, SystemTime, Vec<KeyValue>)> {
    let mut at = start;
    t.phases()
        .map(|(name, d)| {
            at += d;
            let duration = vec![KeyValue::new("waymark.phase.duration_ms", ms(d))];
            (Cow::Borrowed(name), at, duration)
        })
        .collect()
}

pub(super) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
