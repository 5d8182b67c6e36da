//! YAML journey files → validated [`Journey`] values, or every problem at once.
//!
//! Invariant: a `Journey` only exists if its file had no problem at all. Problems are reported
//! as `file:line:column: message`; a broken file never prevents the others from loading.

mod anomaly;
mod checker;
mod fields;
mod http;
mod kind;
mod probes;
mod websocket;

use std::collections::BTreeSet;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use self::checker::{Checker, Fields, every, valid_var_name};
use self::fields::{alert_rules, runbook, schedule, slo, texts, variables};
use self::kind::KindKey;
use super::condition::{Condition, Placeholder};
use super::model::{AlertRules, Journey, Retries, Schedule, Source, Step, StepKind};
use super::yaml::{self, Node, Pos, Value};

/// One problem in a journey file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// What the loader needs to know beyond the file itself.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    /// Variables supplied from outside the file (`--var`), so templates may use them.
    pub extra_vars: BTreeSet<String>,
    /// Largest journey file read, in bytes ([`DEFAULT_MAX_FILE_BYTES`]); a larger file is
    /// rejected at the position where it goes over, before any parsing.
    pub max_file_bytes: usize,
    /// Most steps one journey may have ([`DEFAULT_MAX_STEPS`]).
    pub max_steps: usize,
}

pub const DEFAULT_MAX_FILE_BYTES: usize = 4 * 1024 * 1024;
pub const DEFAULT_MAX_STEPS: usize = 1000;

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            extra_vars: BTreeSet::new(),
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            max_steps: DEFAULT_MAX_STEPS,
        }
    }
}

/// The outcome of loading many files: the valid journeys, and every problem found.
#[derive(Debug, Default)]
pub struct Loaded {
    pub journeys: Vec<Journey>,
    pub diagnostics: Vec<Diagnostic>,
}

const JOURNEY_KEYS: &[&str] = &[
    "name",
    "description",
    "schedule",
    "timeout",
    "tags",
    "owner",
    "runbook",
    "slo",
    "public",
    "group",
    "locations",
    "anomaly",
    "alert",
    "variables",
    "steps",
];
const STEP_KEYS: &[&str] = &[
    "name",
    "dependency",
    "timeout",
    "retries",
    "conditions",
    "extract",
    "always_run",
    "sensitive",
    "anomaly",
    "degraded_when",
    "http",
    "websocket",
    "tcp",
    "dns",
    "tls",
    "wait",
];

pub const DEFAULT_JOURNEY_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_millis(500);
pub const DEFAULT_EVERY: Duration = Duration::from_secs(60);
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// Parses one journey from its source text. `path` is only used in diagnostics and [`Source`].
pub fn parse_journey(
    src: &str,
    path: &Path,
    opts: &ParseOptions,
) -> Result<Journey, Vec<Diagnostic>> {
    let mut c = Checker::new(path);
    if src.len() > opts.max_file_bytes {
        c.err(
            Pos::of_byte(src.as_bytes(), opts.max_file_bytes),
            too_large(opts.max_file_bytes),
        );
        return Err(c.diagnostics);
    }
    let root = match yaml::parse(src) {
        Ok(root) => root,
        Err(e) => {
            c.err(e.pos, format!("YAML syntax error: {}", e.message));
            return Err(c.diagnostics);
        }
    };
    let journey = journey(&mut c, &root, opts, src, path);
    match journey {
        Some(j) if c.diagnostics.is_empty() => Ok(j),
        _ => {
            c.diagnostics.sort_by_key(|d| (d.line, d.col));
            Err(c.diagnostics)
        }
    }
}

fn too_large(max: usize) -> String {
    format!(
        "the file is larger than {}, the limit for a journey file; split it into several journeys",
        human_bytes(max)
    )
}

fn human_bytes(n: usize) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

/// Reads and parses one file, reading at most one byte more than `max_file_bytes`.
pub fn load_file(path: &Path, opts: &ParseOptions) -> Result<Journey, Vec<Diagnostic>> {
    let problem = |pos: Pos, message: String| {
        Err(vec![Diagnostic {
            file: path.to_path_buf(),
            line: pos.line,
            col: pos.col,
            message,
        }])
    };
    let start = Pos { line: 1, col: 1 };
    let mut bytes = Vec::new();
    let read = std::fs::File::open(path).and_then(|f| {
        let limit = u64::try_from(opts.max_file_bytes).unwrap_or(u64::MAX);
        f.take(limit.saturating_add(1)).read_to_end(&mut bytes)
    });
    if let Err(e) = read {
        return problem(start, format!("cannot read file: {e}"));
    }
    if bytes.len() > opts.max_file_bytes {
        let at = Pos::of_byte(&bytes, opts.max_file_bytes);
        return problem(at, too_large(opts.max_file_bytes));
    }
    match std::str::from_utf8(&bytes) {
        Ok(src) => parse_journey(src, path, opts),
        Err(e) => {
            let at = e.valid_up_to();
            problem(
                Pos::of_byte(&bytes, at),
                format!(
                    "the file is not valid UTF-8: byte 0x{:02x} cannot start or continue a character here",
                    bytes[at]
                ),
            )
        }
    }
}

/// Journey files under `path`: the file itself, or the `*.yaml`/`*.yml` files of a directory
/// (not recursive), sorted so that results are stable.
pub fn journey_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Loads every journey under `paths`; reports duplicate journey names across files.
pub fn load_paths(paths: &[PathBuf], opts: &ParseOptions) -> Loaded {
    let mut loaded = Loaded::default();
    // Journey name → the file that defined it first.
    let mut names: HashMap<String, PathBuf> = HashMap::new();
    for path in paths {
        let files = match journey_files(path) {
            Ok(f) => f,
            Err(e) => {
                loaded.diagnostics.push(Diagnostic {
                    file: path.clone(),
                    line: 1,
                    col: 1,
                    message: format!("cannot read directory: {e}"),
                });
                continue;
            }
        };
        for file in files {
            match load_file(&file, opts) {
                Ok(j) => {
                    if let Some(first) = names.get(&j.name) {
                        loaded.diagnostics.push(Diagnostic {
                            file: file.clone(),
                            line: j.source.name_pos.0,
                            col: j.source.name_pos.1,
                            message: format!(
                                "duplicate journey name `{}` (also defined in {})",
                                j.name,
                                first.display()
                            ),
                        });
                    } else {
                        names.insert(j.name.clone(), j.source.path.clone());
                        loaded.journeys.push(j);
                    }
                }
                Err(d) => loaded.diagnostics.extend(d),
            }
        }
    }
    loaded
}

fn journey(
    c: &mut Checker,
    root: &Node,
    opts: &ParseOptions,
    src: &str,
    path: &Path,
) -> Option<Journey> {
    let f = c.fields(root, "the journey", JOURNEY_KEYS)?;
    let name_node = f.get("name");
    let name = match name_node {
        Some(n) => c.non_empty_text(n, "`name`"),
        None => {
            c.err(root.pos, "missing required key `name`");
            None
        }
    };
    let description = f
        .get("description")
        .and_then(|n| c.text(n, "`description`"));
    let owner = f.get("owner").and_then(|n| c.non_empty_text(n, "`owner`"));
    let runbook = f.get("runbook").and_then(|n| runbook(c, n));
    let tags = f
        .get("tags")
        .map(|n| texts(c, n, "tags", "a tag"))
        .unwrap_or_default();
    let locations = f
        .get("locations")
        .map(|n| texts(c, n, "locations", "a location"))
        .unwrap_or_default();
    let slo = f.get("slo").and_then(|n| slo(c, n));
    let public = f
        .get("public")
        .and_then(|n| c.bool(n, "`public`"))
        .unwrap_or(false);
    let group = f.get("group").and_then(|n| c.non_empty_text(n, "`group`"));
    let anomaly = f
        .get("anomaly")
        .and_then(|n| anomaly::anomaly(c, n, "`anomaly`"))
        .unwrap_or_default();
    let alert = match f.get("alert") {
        Some(n) => alert_rules(c, n),
        None => Some(AlertRules::default()),
    };
    let timeout = match f.get("timeout") {
        Some(n) => c.duration(n, "`timeout`", Duration::from_millis(1), MAX_TIMEOUT),
        None => Some(DEFAULT_JOURNEY_TIMEOUT),
    };
    let schedule = match f.get("schedule") {
        Some(n) => schedule(c, n),
        None => Some(Schedule::Every(DEFAULT_EVERY)),
    };
    let mut defined = opts.extra_vars.clone();
    let variables = f
        .get("variables")
        .map(|n| variables(c, n, &mut defined))
        .unwrap_or_default();
    let steps = steps(c, &f, root, &mut defined, opts.max_steps);
    Some(Journey {
        name: name?,
        description,
        schedule: schedule?,
        timeout: timeout?,
        tags,
        owner,
        runbook,
        slo,
        public,
        group,
        locations,
        variables,
        anomaly,
        alert: alert?,
        steps: steps?,
        source: Source {
            path: path.to_path_buf(),
            content_sha256: hex::encode(Sha256::digest(src.as_bytes())),
            name_pos: name_node.map_or((1, 1), |n| (n.pos.line, n.pos.col)),
        },
    })
}

fn steps(
    c: &mut Checker,
    f: &Fields<'_>,
    root: &Node,
    defined: &mut BTreeSet<String>,
    max_steps: usize,
) -> Option<Vec<Step>> {
    let Some(n) = f.get("steps") else {
        c.err(root.pos, "missing required key `steps`");
        return None;
    };
    let items = c.list(n, "`steps`")?;
    if items.is_empty() {
        c.err(n.pos, "`steps` must contain at least one step");
        return None;
    }
    let mut ok = true;
    if let Some(over) = items.get(max_steps) {
        c.err(
            over.pos,
            format!(
                "too many steps: a journey has at most {max_steps}, this one has {}; split it into several journeys",
                items.len()
            ),
        );
        ok = false;
    }
    let mut names = HashSet::new();
    let steps = every(items.iter().take(max_steps), |item| {
        step(c, item, defined, &mut names)
    })?;
    ok.then_some(steps)
}

fn step(
    c: &mut Checker,
    n: &Node,
    defined: &mut BTreeSet<String>,
    names: &mut HashSet<String>,
) -> Option<Step> {
    let f = c.fields(n, "a step", STEP_KEYS)?;
    let name = match f.get("name") {
        Some(v) => c.non_empty_text(v, "step `name`"),
        None => {
            c.err(n.pos, "step is missing required key `name`");
            None
        }
    };
    if let (Some(name), Some(v)) = (&name, f.get("name"))
        && !names.insert(name.clone())
    {
        c.err(v.pos, format!("duplicate step name `{name}`"));
    }
    let what = |field: &str| format!("`{field}` of step `{}`", name.as_deref().unwrap_or("?"));
    let kinds: Vec<KindKey> = KindKey::ALL
        .into_iter()
        .filter(|k| f.get(k.key()).is_some())
        .collect();
    let kind = match kinds.as_slice() {
        [kind] => {
            let body = f.get(kind.key())?;
            match kind {
                KindKey::Http => http::http_step(c, body, defined, &name).map(StepKind::Http),
                KindKey::Websocket => {
                    websocket::websocket_step(c, body, defined).map(StepKind::Websocket)
                }
                KindKey::Tcp => probes::tcp_step(c, body, defined).map(StepKind::Tcp),
                KindKey::Dns => probes::dns_step(c, body, defined).map(StepKind::Dns),
                KindKey::Tls => probes::tls_step(c, body, defined).map(StepKind::Tls),
                KindKey::Wait => probes::wait_step(c, body).map(StepKind::Wait),
            }
        }
        [] => {
            c.err(
                n.pos,
                format!(
                    "step needs exactly one kind: {}",
                    KindKey::ALL.map(KindKey::key).join(", ")
                ),
            );
            None
        }
        [_, second, ..] => {
            c.err(
                f.key_pos(second.key())?,
                format!(
                    "a step has exactly one kind; found {}",
                    kinds
                        .iter()
                        .map(|k| k.key())
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
            );
            None
        }
    };
    let dependency = f
        .get("dependency")
        .and_then(|v| c.non_empty_text(v, &what("dependency")));
    let timeout = match f.get("timeout") {
        Some(v) => c.duration(v, &what("timeout"), Duration::from_millis(1), MAX_TIMEOUT),
        None => Some(DEFAULT_STEP_TIMEOUT),
    };
    let retries = match f.get("retries") {
        Some(v) => retries(c, v, &what("retries")),
        None => Some(Retries::default()),
    };
    let conditions = f.get("conditions").map_or(Some(Vec::new()), |v| {
        self::conditions(c, v, defined, "`conditions`")
    });
    let degraded_when = f.get("degraded_when").map_or(Some(Vec::new()), |v| {
        self::conditions(c, v, defined, &what("degraded_when"))
    });
    let always_run = f
        .get("always_run")
        .and_then(|v| c.bool(v, &what("always_run")))
        .unwrap_or(false);
    let sensitive = f
        .get("sensitive")
        .and_then(|v| c.bool(v, &what("sensitive")))
        .unwrap_or(false);
    let extract = f
        .get("extract")
        .map_or(Some(Vec::new()), |v| extract(c, v, defined));
    let anomaly = f
        .get("anomaly")
        .and_then(|v| anomaly::anomaly(c, v, &what("anomaly")))
        .unwrap_or_default();
    Some(Step {
        name: name?,
        kind: kind?,
        dependency,
        timeout: timeout?,
        retries: retries?,
        conditions: conditions?,
        extract: extract?,
        always_run,
        sensitive,
        anomaly,
        degraded_when: degraded_when?,
    })
}

/// `retries: 2` or `retries: { count: 2, delay: 1s }`.
fn retries(c: &mut Checker, n: &Node, what: &str) -> Option<Retries> {
    if let Value::Int(_) = n.value {
        let count = c.uint(n, what, 10)? as u32;
        return Some(Retries {
            count,
            delay: DEFAULT_RETRY_DELAY,
        });
    }
    let f = c.fields(n, what, &["count", "delay"])?;
    let count = match f.get("count") {
        Some(v) => c.uint(v, &format!("{what} count"), 10).map(|v| v as u32),
        None => {
            c.err(n.pos, format!("{what} needs `count`"));
            None
        }
    };
    let delay = match f.get("delay") {
        Some(v) => c.duration(
            v,
            &format!("{what} delay"),
            Duration::ZERO,
            Duration::from_secs(60),
        ),
        None => Some(DEFAULT_RETRY_DELAY),
    };
    Some(Retries {
        count: count?,
        delay: delay?,
    })
}

fn conditions(
    c: &mut Checker,
    n: &Node,
    defined: &BTreeSet<String>,
    what: &str,
) -> Option<Vec<Condition>> {
    let items = c.list(n, what)?;
    every(items, |item| {
        let text = c.text(item, "a condition")?;
        let cond = c.parsed(item, "condition", &text, Condition::parse(&text))?;
        for t in cond.templates() {
            c.check_vars(item, t, &format!("condition `{text}`"), defined);
        }
        Some(cond)
    })
}

/// Variables extracted by a step become defined for the steps after it.
fn extract(
    c: &mut Checker,
    n: &Node,
    defined: &mut BTreeSet<String>,
) -> Option<Vec<(String, Placeholder)>> {
    let entries = c.string_map(n, "`extract`");
    every(entries, |(name, v, kpos)| {
        let valid = valid_var_name(&name);
        if !valid {
            c.err(kpos, format!("`{name}` is not a valid variable name"));
        }
        let text = c.text(v, &format!("extract `{name}`"))?;
        let p = c.parsed(v, "extraction", &text, Placeholder::parse(text.trim()))?;
        defined.insert(name.clone());
        valid.then_some((name, p))
    })
}

#[cfg(test)]
mod limits_tests;
#[cfg(test)]
mod tests;
