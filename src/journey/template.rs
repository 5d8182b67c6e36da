//! `{{ }}` templates: parsed once at load, rendered per run against a [`Scope`].
//!
//! A template never reads the environment or the clock by itself: everything it can see comes
//! through [`Scope`], so rendering is deterministic in tests. Every secret value that rendering
//! touches is registered with the run's [`Redactor`], which is what keeps secrets out of output.

use std::collections::BTreeMap;
use std::fmt;

pub use super::redact::{REDACTED, Redactor};

/// One parsed template string.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Ref(Ref),
}

/// What a `{{ ... }}` refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref {
    /// A journey variable, a `--var` override or a value extracted by an earlier step.
    Var(String),
    /// `secret.NAME`: read from `WAYMARK_SECRET_NAME` or the secrets file; always redacted.
    Secret(String),
    /// `env.NAME`: any environment variable, not redacted.
    Env(String),
    Uuid,
    NowUnix,
    NowRfc3339,
    RandomInt,
}

/// A template error, with the byte offset inside the template string where it starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
}

/// A value could not be produced while rendering.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("variable `{0}` is not defined")]
    UndefinedVar(String),
    #[error("secret `{0}` is not set (set WAYMARK_SECRET_{0} or add it to the secrets file)")]
    MissingSecret(String),
    #[error("environment variable `{0}` is not set")]
    MissingEnv(String),
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(is_name_char)
}

/// Why the inside of a `{{ ... }}` is not a reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    #[error("`{0}` is not a valid variable reference")]
    Invalid(String),
    #[error("unknown namespace `{namespace}` in `{{{{ {expr} }}}}` (expected `secret.` or `env.`)")]
    Namespace { namespace: String, expr: String },
}

impl Ref {
    fn parse(expr: &str) -> Result<Ref, RefError> {
        let builtin = match expr {
            "uuid" => Some(Ref::Uuid),
            "now_unix" => Some(Ref::NowUnix),
            "now_rfc3339" => Some(Ref::NowRfc3339),
            "random_int" => Some(Ref::RandomInt),
            _ => None,
        };
        if let Some(b) = builtin {
            return Ok(b);
        }
        let (ns, name) = match expr.split_once('.') {
            Some((ns, name)) => (Some(ns), name),
            None => (None, expr),
        };
        if !valid_name(name) {
            return Err(RefError::Invalid(expr.to_string()));
        }
        match ns {
            None => Ok(Ref::Var(name.to_string())),
            Some("secret") => Ok(Ref::Secret(name.to_string())),
            Some("env") => Ok(Ref::Env(name.to_string())),
            Some(other) => Err(RefError::Namespace {
                namespace: other.to_string(),
                expr: expr.to_string(),
            }),
        }
    }
}

impl Template {
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = src;
        let mut offset = 0;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                return Err(TemplateError {
                    offset: offset + open,
                    message: "unclosed `{{` (missing `}}`)".into(),
                });
            };
            let expr = after[..close].trim();
            let r = Ref::parse(expr).map_err(|e| TemplateError {
                offset: offset + open,
                message: e.to_string(),
            })?;
            parts.push(Part::Ref(r));
            let consumed = open + 2 + close + 2;
            rest = &rest[consumed..];
            offset += consumed;
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// A template made of literal text only.
    pub fn literal(text: impl Into<String>) -> Template {
        Template {
            parts: vec![Part::Text(text.into())],
        }
    }

    /// Everything the template refers to, in order.
    pub fn refs(&self) -> impl Iterator<Item = &Ref> {
        self.parts.iter().filter_map(|p| match p {
            Part::Ref(r) => Some(r),
            Part::Text(_) => None,
        })
    }

    pub fn is_literal(&self) -> bool {
        self.refs().next().is_none()
    }

    pub fn render(&self, scope: &Scope) -> Result<String, RenderError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Ref(r) => out.push_str(&scope.resolve(r)?),
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Template {
    /// The template's source form, never its rendered values: safe to print.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Text(t) => f.write_str(t)?,
                Part::Ref(r) => match r {
                    Ref::Var(n) => write!(f, "{{{{ {n} }}}}")?,
                    Ref::Secret(n) => write!(f, "{{{{ secret.{n} }}}}")?,
                    Ref::Env(n) => write!(f, "{{{{ env.{n} }}}}")?,
                    Ref::Uuid => f.write_str("{{ uuid }}")?,
                    Ref::NowUnix => f.write_str("{{ now_unix }}")?,
                    Ref::NowRfc3339 => f.write_str("{{ now_rfc3339 }}")?,
                    Ref::RandomInt => f.write_str("{{ random_int }}")?,
                },
            }
        }
        Ok(())
    }
}

/// Where secret values come from. Production reads the environment and an optional secrets file;
/// tests pass a map.
pub trait SecretSource: Send + Sync {
    fn secret(&self, name: &str) -> Option<String>;
    fn env(&self, name: &str) -> Option<String>;
}

/// Secrets from `WAYMARK_SECRET_<NAME>` first, then from a `NAME=value` secrets file.
#[derive(Debug, Default, Clone)]
pub struct EnvSecrets {
    file: BTreeMap<String, String>,
}

impl EnvSecrets {
    /// Parses a secrets file: one `NAME=value` per line, `#` comments and blank lines ignored.
    pub fn with_file_contents(contents: &str) -> EnvSecrets {
        let file = contents
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        EnvSecrets { file }
    }
}

impl SecretSource for EnvSecrets {
    fn secret(&self, name: &str) -> Option<String> {
        std::env::var(format!("WAYMARK_SECRET_{name}"))
            .ok()
            .or_else(|| self.file.get(name).cloned())
    }
    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// The secrets tests pass: these names and values, and no environment variables.
#[cfg(test)]
pub(crate) struct MapSecrets(BTreeMap<String, String>);

#[cfg(test)]
impl MapSecrets {
    pub fn new(secrets: &[(&str, &str)]) -> MapSecrets {
        MapSecrets(
            secrets
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }
}

#[cfg(test)]
impl SecretSource for MapSecrets {
    fn secret(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
    fn env(&self, _: &str) -> Option<String> {
        None
    }
}

/// A run's variables. Values keep their JSON type (an extracted `7` stays a number), so a
/// JSON body leaf that is exactly `"{{ id }}"` sends what was extracted, not its text.
pub type Vars = BTreeMap<String, serde_json::Value>;

/// A variable's text in a string context: strings as they are, anything else as JSON.
pub fn value_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Everything a template can see during one run.
pub struct Scope<'a> {
    pub vars: &'a Vars,
    pub secrets: &'a dyn SecretSource,
    pub redactor: &'a Redactor,
    pub now: chrono::DateTime<chrono::Utc>,
}

#[cfg(test)]
impl<'a> Scope<'a> {
    /// A scope at a fixed instant (Unix time 1 700 000 000), so that the time built-ins render
    /// to known text.
    pub(crate) fn at_fixed_time(
        vars: &'a Vars,
        secrets: &'a dyn SecretSource,
        redactor: &'a Redactor,
    ) -> Scope<'a> {
        Scope {
            vars,
            secrets,
            redactor,
            now: chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("a valid instant"),
        }
    }
}

impl Scope<'_> {
    /// Renders a JSON string leaf: exactly one `{{ var }}` keeps the variable's JSON type,
    /// anything else (text around it, secrets, built-ins) is a string.
    pub fn render_json_leaf(&self, t: &Template) -> Result<serde_json::Value, RenderError> {
        if let [Part::Ref(Ref::Var(name))] = t.parts.as_slice() {
            return self
                .vars
                .get(name)
                .cloned()
                .ok_or_else(|| RenderError::UndefinedVar(name.clone()));
        }
        t.render(self).map(serde_json::Value::String)
    }

    fn resolve(&self, r: &Ref) -> Result<String, RenderError> {
        Ok(match r {
            Ref::Var(name) => self
                .vars
                .get(name)
                .map(value_text)
                .ok_or_else(|| RenderError::UndefinedVar(name.clone()))?,
            Ref::Secret(name) => {
                let value = self
                    .secrets
                    .secret(name)
                    .ok_or_else(|| RenderError::MissingSecret(name.clone()))?;
                self.redactor.register(&value);
                value
            }
            Ref::Env(name) => self
                .secrets
                .env(name)
                .ok_or_else(|| RenderError::MissingEnv(name.clone()))?,
            Ref::Uuid => uuid::Uuid::new_v4().to_string(),
            Ref::NowUnix => self.now.timestamp().to_string(),
            Ref::NowRfc3339 => self.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            Ref::RandomInt => rand::random_range(0..1_000_000_000u32).to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(src: &str, vars: &[(&str, &str)]) -> (Result<String, RenderError>, Redactor) {
        let vars = vars
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
            .collect();
        let secrets = MapSecrets::new(&[("PW", "hunter2")]);
        let redactor = Redactor::default();
        let scope = Scope::at_fixed_time(&vars, &secrets, &redactor);
        let out = Template::parse(src).unwrap().render(&scope);
        (out, redactor)
    }

    #[test]
    fn renders_vars_builtins_and_secrets() {
        let (out, red) = render(
            "{{base}}/x?t={{ now_unix }}&p={{ secret.PW }}",
            &[("base", "http://h")],
        );
        assert_eq!(out.unwrap(), "http://h/x?t=1700000000&p=hunter2");
        assert_eq!(red.redact("pw is hunter2!"), "pw is ***!");
        let (out, _) = render("{{ now_rfc3339 }}", &[]);
        assert_eq!(out.unwrap(), "2023-11-14T22:13:20Z");
        let (out, _) = render("{{ uuid }}", &[]);
        assert_eq!(out.unwrap().len(), 36);
    }

    #[test]
    fn undefined_and_missing_are_errors() {
        assert_eq!(
            render("{{ nope }}", &[]).0,
            Err(RenderError::UndefinedVar("nope".into()))
        );
        assert_eq!(
            render("{{ secret.NOPE }}", &[]).0,
            Err(RenderError::MissingSecret("NOPE".into()))
        );
    }

    #[test]
    fn parse_errors_point_at_the_brace() {
        let e = Template::parse("abc {{ x").unwrap_err();
        assert_eq!(e.offset, 4);
        let e = Template::parse("a {{ foo.bar }}").unwrap_err();
        assert!(e.message.contains("unknown namespace"), "{}", e.message);
        assert!(Template::parse("{{ 9x }}").is_err());
    }

    #[test]
    fn display_round_trips_without_values() {
        let t = Template::parse("Bearer {{token}} {{ secret.PW }}").unwrap();
        assert_eq!(t.to_string(), "Bearer {{ token }} {{ secret.PW }}");
        assert_eq!(Template::parse(&t.to_string()).unwrap(), t);
    }
}
