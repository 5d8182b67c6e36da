//! The checks serde cannot make on the top-level settings (database, tokens, dashboard users,
//! retention), and the digest section's problems placed at their settings' paths. Each check
//! returns every problem it finds.

use crate::digest::config::DigestError;

use super::Config;
use super::problem::{ConfigProblem, KeyPath};

/// The top-level settings' problems, in the file's usual order.
pub(super) fn validate(config: &Config) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    let mut invalid = |path: KeyPath, message: String| {
        problems.push(ConfigProblem::new(path, message));
    };
    if !(config.database_url.starts_with("sqlite:") || config.database_url.starts_with("postgres"))
    {
        invalid(
            "database_url".into(),
            "database_url must start with sqlite: or postgres://".into(),
        );
    }
    if config.concurrency == 0 {
        invalid(
            "concurrency".into(),
            "concurrency must be at least 1".into(),
        );
    }
    if config.location.trim().is_empty() {
        invalid("location".into(), "location must not be empty".into());
    }
    if config
        .node_id
        .as_deref()
        .is_some_and(|n| n.trim().is_empty())
    {
        invalid("node_id".into(), "node_id must not be empty".into());
    }
    if config.api_token.as_deref().is_some_and(|t| t.len() < 16) {
        invalid(
            "api_token".into(),
            "api_token must be at least 16 characters".into(),
        );
    }
    if let Some(logo) = &config.status_page.logo_url
        && url::Url::parse(logo).map_or(true, |u| u.scheme() != "https")
    {
        invalid(
            "status_page.logo_url".into(),
            "status_page.logo_url must be an https:// URL".into(),
        );
    }
    for (i, t) in config.api_tokens.iter().enumerate() {
        if t.sha256.len() != 64 || !t.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            invalid(
                KeyPath::from("api_tokens").index(i).key("sha256"),
                format!(
                    "api_tokens `{}`: sha256 must be 64 hex digits (printf %s \"$TOKEN\" | sha256sum)",
                    t.name
                ),
            );
        }
    }
    let users = &config.dashboard.users;
    for (i, user) in users.iter().enumerate() {
        let at = KeyPath::from("dashboard.users").index(i).key("name");
        if user.name.trim().is_empty() {
            invalid(at, "dashboard.users: a name must not be empty".into());
        } else if users[..i].iter().any(|u| u.name == user.name) {
            invalid(
                at,
                format!("dashboard.users: `{}` is listed twice", user.name),
            );
        }
    }
    if config.retention.rollup < config.retention.raw {
        invalid(
            "retention.rollup".into(),
            "retention.rollup must be at least retention.raw".into(),
        );
    }
    problems
}

/// The `[digest]` section's problems, each at its setting.
pub(super) fn digest(config: &Config) -> Vec<ConfigProblem> {
    let Err(problems) = config.digest.validate(&config.alerting.channels) else {
        return Vec::new();
    };
    problems
        .into_iter()
        .map(|e| {
            let path = match &e {
                DigestError::Timezone(_) => KeyPath::from("digest.timezone"),
                DigestError::Every => KeyPath::from("digest.every"),
                DigestError::Channel { list, index, .. } => match &list.0 {
                    None => KeyPath::from("digest.channels"),
                    Some(owner) => KeyPath::from("digest.owners").key(owner).key("channels"),
                }
                .index(*index),
            };
            ConfigProblem::new(path, e)
        })
        .collect()
}
