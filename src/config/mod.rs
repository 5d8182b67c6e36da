//! The service configuration (`waymark.toml`), with `WAYMARK_*` environment overrides.
//!
//! Loaded and validated once at start: unknown keys are errors, durations are humane strings
//! (`30s`, `30d`), and every option has a documented default (see `waymark.example.toml`).
//! Environment variables win over the file, the file over the defaults.
//!
//! A configuration that is not valid is reported whole: every syntax, type and semantic
//! problem of the file and of the environment, each with its line and column in the file (or
//! the variable that set it) and the setting's dotted path ([`ConfigError::Invalid`]).

pub mod alerting;
mod checks;
mod document;
pub mod problem;

pub use problem::{ConfigError, ConfigProblem, KeyPath};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address of the HTTP server (API, metrics, dashboard). `WAYMARK_LISTEN`.
    pub listen: SocketAddr,
    /// `sqlite://waymark.db` (created on first start) or `postgres://…`. `WAYMARK_DATABASE_URL`.
    pub database_url: String,
    /// Directory of journey files, watched for changes. `WAYMARK_JOURNEYS`.
    pub journeys: PathBuf,
    /// Token required by the API's write endpoints; none = they are disabled. `WAYMARK_API_TOKEN`.
    pub api_token: Option<String>,
    /// More API tokens, stored as the SHA-256 (hex) of the token, so the file holds none:
    /// `printf %s "$TOKEN" | sha256sum`.
    pub api_tokens: Vec<ApiToken>,
    /// Label of this node's vantage point, recorded with every run. `WAYMARK_LOCATION`.
    pub location: String,
    /// This node's identity among the nodes sharing the database, kept across restarts so a
    /// restarted leader takes its lease back at once. Default: host name, listen address and
    /// location (`web-1@10.0.0.5:8080/eu-west`). `WAYMARK_NODE_ID`.
    pub node_id: Option<String>,
    /// Most runs executing at once on this node. `WAYMARK_CONCURRENCY`.
    pub concurrency: usize,
    /// How long in-flight runs may take to finish on shutdown.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    pub retention: Retention,
    /// Incidents, channels, routes and maintenance windows (see docs/alerting.md).
    pub alerting: alerting::AlertConfig,
    /// The feedback digest: period, send time, channels (see docs/digest.md).
    pub digest: crate::digest::DigestConfig,
    /// The public status page at `/` (journeys with `public: true`).
    pub status_page: StatusPage,
    /// The internal dashboard at `/app`: who may log in.
    pub dashboard: Dashboard,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    /// Who holds it (logged when it is used).
    pub name: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dashboard {
    /// How long a login lasts.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// Users; none = nobody can log in (the dashboard shows how to add one).
    pub users: Vec<DashboardUser>,
}

impl Default for Dashboard {
    fn default() -> Self {
        Dashboard {
            session_ttl: Duration::from_secs(12 * 3600),
            users: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardUser {
    pub name: String,
    /// An Argon2id PHC string, as `waymark hash-password` prints it.
    pub password_hash: crate::auth::PasswordHash,
}

#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusPage {
    pub title: String,
    /// A sentence under the overall state.
    pub description: Option<String>,
    /// An `https://` image shown beside the title.
    pub logo_url: Option<String>,
}

impl Default for StatusPage {
    fn default() -> Self {
        StatusPage {
            title: "Service status".into(),
            description: None,
            logo_url: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// Raw runs and step results are pruned after this long.
    #[serde(with = "humantime_serde")]
    pub raw: Duration,
    /// Hourly rollups are pruned after this long.
    #[serde(with = "humantime_serde")]
    pub rollup: Duration,
}

const DAY: Duration = Duration::from_secs(24 * 3600);

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            raw: 30 * DAY,
            rollup: 400 * DAY,
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://waymark.db".into(),
            journeys: PathBuf::from("journeys"),
            api_token: None,
            api_tokens: Vec::new(),
            location: "local".into(),
            node_id: None,
            concurrency: crate::scheduler::default_concurrency(),
            shutdown_grace: Duration::from_secs(30),
            retention: Retention::default(),
            alerting: Default::default(),
            digest: Default::default(),
            status_page: StatusPage::default(),
            dashboard: Dashboard::default(),
        }
    }
}

/// The settings that `WAYMARK_*` variables override, by top-level key.
const OVERRIDES: [(&str, &str); 7] = [
    ("listen", "WAYMARK_LISTEN"),
    ("database_url", "WAYMARK_DATABASE_URL"),
    ("journeys", "WAYMARK_JOURNEYS"),
    ("api_token", "WAYMARK_API_TOKEN"),
    ("location", "WAYMARK_LOCATION"),
    ("node_id", "WAYMARK_NODE_ID"),
    ("concurrency", "WAYMARK_CONCURRENCY"),
];

impl Config {
    /// The file (if given) under the environment's overrides, validated. Every problem is
    /// reported at once ([`ConfigError::Invalid`]).
    pub fn load(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let text = match path {
            Some(path) => {
                Some(
                    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                        path: path.to_path_buf(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        let document = text
            .as_deref()
            .zip(path)
            .map(|(text, path)| document::Document::parse(text, path));
        let (config, mut problems) = match &document {
            Some(document) => document.config(),
            None => (Some(Config::default()), Vec::new()),
        };
        let Some(mut config) = config else {
            return Err(ConfigError::Invalid(problems));
        };
        problems.extend(config.apply_env(&env));
        let mut semantic = checks::validate(&config);
        if let Err(e) = config.alerting.validate(&env) {
            semantic.extend(e);
        }
        semantic.extend(checks::digest(&config));
        for mut problem in semantic {
            let overridden = OVERRIDES
                .iter()
                .find(|(key, var)| problem.path.first() == Some(key) && env(var).is_some());
            match (overridden, &document) {
                (Some((_, var)), _) => problem.source = problem::Source::Env(var),
                (None, Some(document)) => document.place(&mut problem),
                (None, None) => {}
            }
            problems.push(problem);
        }
        if problems.is_empty() {
            return Ok(config);
        }
        // In the file's order; then the environment's, then what the file does not hold.
        problems.sort_by_key(|p| match &p.source {
            problem::Source::File { at: Some(at), .. } => (0, *at),
            problem::Source::File { at: None, .. } => (1, (0, 0)),
            problem::Source::Env(_) => (2, (0, 0)),
            problem::Source::Unplaced => (3, (0, 0)),
        });
        Err(ConfigError::Invalid(problems))
    }

    /// Parses the text of a `waymark.toml` (no environment, no semantic checks); every
    /// problem carries its line and column.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let document = document::Document::parse(text, Path::new("waymark.toml"));
        match document.config() {
            (Some(config), problems) if problems.is_empty() => Ok(config),
            (_, problems) => Err(ConfigError::Invalid(problems)),
        }
    }

    /// Applies the `WAYMARK_*` overrides; a value that does not parse is a problem, located
    /// by the variable's name.
    fn apply_env(&mut self, env: &impl Fn(&str) -> Option<String>) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        let mut bad = |path: &str, var: &'static str, message: String| {
            problems.push(ConfigProblem {
                source: problem::Source::Env(var),
                ..ConfigProblem::new(path, message)
            });
        };
        if let Some(v) = env("WAYMARK_LISTEN") {
            match v.parse() {
                Ok(listen) => self.listen = listen,
                Err(e) => bad(
                    "listen",
                    "WAYMARK_LISTEN",
                    format!("`{v}` is not an address like 127.0.0.1:8080 ({e})"),
                ),
            }
        }
        if let Some(v) = env("WAYMARK_DATABASE_URL") {
            self.database_url = v;
        }
        if let Some(v) = env("WAYMARK_JOURNEYS") {
            self.journeys = PathBuf::from(v);
        }
        if let Some(v) = env("WAYMARK_API_TOKEN") {
            self.api_token = Some(v);
        }
        if let Some(v) = env("WAYMARK_LOCATION") {
            self.location = v;
        }
        if let Some(v) = env("WAYMARK_NODE_ID") {
            self.node_id = Some(v);
        }
        if let Some(v) = env("WAYMARK_CONCURRENCY") {
            match v.parse() {
                Ok(n) => self.concurrency = n,
                Err(_) => bad(
                    "concurrency",
                    "WAYMARK_CONCURRENCY",
                    format!("`{v}` is not a positive integer"),
                ),
            }
        }
        problems
    }
}

#[cfg(test)]
mod load_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults_are_documented_values() {
        let c = Config::load(None, no_env).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url, "sqlite://waymark.db");
        assert_eq!(c.retention.raw, 30 * DAY);
        assert_eq!(c.retention.rollup, 400 * DAY);
        assert!(c.concurrency >= 1);
    }

    #[test]
    fn the_example_file_parses_to_the_defaults() {
        let text = include_str!("../../waymark.example.toml");
        let mut parsed = Config::parse(text).unwrap();
        parsed.concurrency = Config::default().concurrency;
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn file_then_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("waymark.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\nlocation = \"eu-west\"\n[retention]\nraw = \"7d\"\n",
        )
        .unwrap();
        let env = |name: &str| (name == "WAYMARK_LISTEN").then(|| "0.0.0.0:9100".to_string());
        let c = Config::load(Some(&path), env).unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:9100");
        assert_eq!(c.location, "eu-west");
        assert_eq!(c.retention.raw, 7 * DAY);
        assert_eq!(c.retention.rollup, 400 * DAY);
    }

    #[test]
    fn problems_are_reported_with_their_place() {
        let e = Config::parse("listen = \"x\"\nlocatoin = \"a\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1") || e.contains("listen"), "{e}");
        let e = Config::parse("locatoin = \"a\"\n").unwrap_err().to_string();
        assert!(e.contains("unknown field `locatoin`"), "{e}");
        let bad = |k: &str, v: &str| {
            let env = |n: &str| (n == k).then(|| v.to_string());
            Config::load(None, env).unwrap_err().to_string()
        };
        assert!(bad("WAYMARK_LISTEN", "nowhere").contains("WAYMARK_LISTEN"));
        assert!(bad("WAYMARK_CONCURRENCY", "0").contains("at least 1"));
        assert!(bad("WAYMARK_DATABASE_URL", "mysql://x").contains("database_url"));
        assert!(bad("WAYMARK_API_TOKEN", "short").contains("16 characters"));
    }
}
