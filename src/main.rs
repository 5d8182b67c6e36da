//! The `waymark` command line: parses arguments and calls into the library. No logic here.

// Clock reads are refused only in the pure modules (clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use waymark::journey::parse::{self, Diagnostic, ParseOptions};
use waymark::journey::template::EnvSecrets;
use waymark::run::Outcome;
use waymark::runner::Runner;
use waymark::telemetry::{Telemetry, TelemetryConfig};

const EXAMPLES: &str = "\
Examples:
  waymark validate                        check every journey in journeys/
  waymark validate journeys/checkout.yaml
  waymark run checkout --var base=https://staging.example.com
  waymark run journeys/checkout.yaml --format json
  waymark serve --config waymark.toml     schedule journeys, store runs, serve the API
  waymark digest --owner shop-team --preview digest.html
  echo 'a long password' | waymark hash-password   for [[dashboard.users]]

Secrets: {{ secret.NAME }} reads WAYMARK_SECRET_NAME or the --secrets-file.
Traces: set OTEL_EXPORTER_OTLP_ENDPOINT (or --otlp-endpoint) to export each run's trace;
WAYMARK_TRACE_URL=http://localhost:16686/trace/{trace_id} prints a link to it.
Exit codes: 0 passed/valid, 1 failed/invalid, 2 usage or journey error.";

#[derive(Parser)]
#[command(name = "waymark", version, about = "Synthetic journey monitoring", after_help = EXAMPLES)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(flatten)]
    telemetry: TelemetryArgs,
    #[command(subcommand)]
    command: Command,
}

/// Tracing options of `run` and `demo`; the standard OTEL_* variables apply too (flags win).
#[derive(clap::Args)]
struct TelemetryArgs {
    /// Export each run's trace to this OTLP collector (base URL, as OTEL_EXPORTER_OTLP_ENDPOINT:
    /// http://127.0.0.1:4318 for HTTP, http://127.0.0.1:4317 for gRPC). Default: no export
    /// unless an OTEL_EXPORTER_OTLP_*ENDPOINT variable is set.
    #[arg(long, global = true, value_name = "URL", help_heading = "Tracing")]
    otlp_endpoint: Option<String>,
    /// OTLP protocol: grpc or http/protobuf (default: OTEL_EXPORTER_OTLP_PROTOCOL, else
    /// http/protobuf).
    #[arg(long, global = true, value_name = "PROTOCOL", help_heading = "Tracing")]
    otlp_protocol: Option<String>,
    /// Trace headers sent to targets, comma-separated: tracecontext, b3, b3multi, none
    /// (default: OTEL_PROPAGATORS, else tracecontext).
    #[arg(long, global = true, value_name = "LIST", help_heading = "Tracing")]
    propagators: Option<String>,
    /// Link to print with each run's trace id: a URL with {trace_id} in it.
    #[arg(
        long,
        global = true,
        env = "WAYMARK_TRACE_URL",
        value_name = "TEMPLATE",
        help_heading = "Tracing"
    )]
    trace_url: Option<String>,
}

impl TelemetryArgs {
    /// The standard environment variables, with the flags in place of the generic ones.
    fn config(&self) -> anyhow::Result<TelemetryConfig> {
        let flag = |name: &str| -> Option<Option<String>> {
            match name {
                "OTEL_EXPORTER_OTLP_ENDPOINT" => self.otlp_endpoint.clone().map(Some),
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" => self.otlp_endpoint.as_ref().map(|_| None),
                "OTEL_EXPORTER_OTLP_PROTOCOL" => self.otlp_protocol.clone().map(Some),
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL" => self.otlp_protocol.as_ref().map(|_| None),
                "OTEL_PROPAGATORS" => self.propagators.clone().map(Some),
                _ => None,
            }
        };
        Ok(TelemetryConfig::from_env(|name| {
            flag(name).unwrap_or_else(|| std::env::var(name).ok())
        })?)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Check journey files and print every problem as file:line:column: message.
    Validate {
        /// Files or directories (default: journeys/).
        paths: Vec<PathBuf>,
    },
    /// Run one journey once, now, and print its result.
    Run {
        /// A journey file, or the name of a journey in --journeys.
        journey: String,
        /// Override or add a variable: --var base=http://127.0.0.1:8081 (repeatable).
        #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
        vars: Vec<(String, String)>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Where journeys are looked up by name.
        #[arg(long, default_value = "journeys", env = "WAYMARK_JOURNEYS")]
        journeys: PathBuf,
        /// A NAME=value file of secrets (WAYMARK_SECRET_NAME variables take precedence).
        #[arg(long, env = "WAYMARK_SECRETS_FILE")]
        secrets_file: Option<PathBuf>,
        /// Location label recorded with the run.
        #[arg(long, default_value = "local", env = "WAYMARK_LOCATION")]
        location: String,
    },
    /// Run the monitoring service: schedule every journey, store runs, serve the API.
    Serve {
        /// The service configuration (WAYMARK_* variables override it).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Apply the database migrations not applied yet, and exit.
    Migrate {
        /// The service configuration (for its database_url; WAYMARK_DATABASE_URL overrides it).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// The whole product on this machine: the bundled demo shop (with its payments service)
    /// and `waymark serve` monitoring it with the example journeys, dashboard included.
    Demo {
        /// The service configuration (WAYMARK_* variables override it), as for `serve`.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Journeys to run (default: the configuration's `journeys`, normally `journeys/`).
        #[arg(long)]
        journeys: Option<PathBuf>,
        /// Port for the demo shop; 0 picks a free one.
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Run every journey this often instead of on its own schedule.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "10s")]
        every: Duration,
        /// Inject faults into the demo shop, one kind at a time with calm in between.
        #[arg(long)]
        chaos: bool,
        /// How long each chaos phase (fault or calm) lasts.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "90s")]
        chaos_phase: Duration,
        /// Run every journey once against the demo shop, print the results and exit.
        #[arg(long)]
        once: bool,
    },
    /// Compute an owner's feedback digest from the store and write it as an HTML preview
    /// (nothing is sent).
    Digest {
        /// The team, as journeys name it in `owner:`.
        #[arg(long)]
        owner: String,
        /// Start of the period (a date, 00:00 UTC); default: 14 days before --to.
        #[arg(long, value_name = "YYYY-MM-DD")]
        from: Option<chrono::NaiveDate>,
        /// End of the period, exclusive (a date, 00:00 UTC); default: today.
        #[arg(long, value_name = "YYYY-MM-DD")]
        to: Option<chrono::NaiveDate>,
        /// Write the digest's HTML (charts inline) to this file.
        #[arg(long, value_name = "FILE")]
        preview: Option<PathBuf>,
        /// Print the figures as text (the email's plain-text part) or JSON.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// The service configuration (database_url, journeys, alerting links).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Print the Argon2id hash of a password read from standard input, for a
    /// `[[dashboard.users]]` entry's `password_hash`.
    HashPassword,
    /// Anomaly detection tools.
    Anomaly {
        #[command(subcommand)]
        action: AnomalyCommand,
    },
}

#[derive(Subcommand)]
enum AnomalyCommand {
    /// Run the production detectors over a CSV history (`timestamp,value[,ok]`) and print
    /// every flagged point (or every point, with its anomaly likelihood) and every episode.
    Replay {
        /// The CSV file (`-` for standard input).
        #[arg(long)]
        input: PathBuf,
        #[arg(long, value_enum, default_value_t = SensitivityArg::Medium)]
        sensitivity: SensitivityArg,
        #[arg(long, value_enum, default_value_t = SeasonalityArg::Weekly)]
        seasonality: SeasonalityArg,
        /// Which changes count: rises, falls or both (the service's default for latency is up).
        #[arg(long, value_enum, default_value_t = DirectionArg::Both)]
        direction: DirectionArg,
        /// What the values are; `auto` reads a gauge when any value is negative, else a latency.
        #[arg(long, value_enum, default_value_t = ValueKindArg::Auto)]
        value_kind: ValueKindArg,
        /// Print every row with its likelihood, not only the flagged ones.
        #[arg(long)]
        all_points: bool,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum DirectionArg {
    Up,
    Down,
    Both,
}

#[derive(Clone, Copy, ValueEnum)]
enum ValueKindArg {
    Auto,
    Latency,
    Count,
    Gauge,
}

#[derive(Clone, Copy, ValueEnum)]
enum SensitivityArg {
    Low,
    Medium,
    High,
}

#[derive(Clone, Copy, ValueEnum)]
enum SeasonalityArg {
    Off,
    Daily,
    Weekly,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{s}` is not NAME=VALUE"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let service = matches!(
        cli.command,
        Command::Serve { .. } | Command::Migrate { .. } | Command::Demo { once: false, .. }
    );
    init_logging(cli.log_format, if service { "info" } else { "warn" });
    let _ = rustls::crypto::ring::default_provider().install_default();
    let telemetry = cli.telemetry;
    let result = match cli.command {
        Command::Validate { paths } => Ok(validate(paths)),
        Command::Run {
            journey,
            vars,
            format,
            journeys,
            secrets_file,
            location,
        } => run(
            &journey,
            vars,
            format,
            &journeys,
            secrets_file.as_deref(),
            location,
            &telemetry,
        ),
        Command::Demo {
            config,
            journeys,
            port,
            every,
            chaos,
            chaos_phase,
            once,
        } => {
            let options = waymark::demo::launch::DemoOptions {
                port,
                every: Some(every),
                chaos: chaos.then_some(chaos_phase),
            };
            demo(config.as_deref(), journeys, options, once, &telemetry)
        }
        Command::Serve { config } => serve(config.as_deref(), &telemetry),
        Command::Migrate { config } => migrate(config.as_deref()),
        Command::Digest {
            owner,
            from,
            to,
            preview,
            format,
            config,
        } => digest(
            &owner,
            from,
            to,
            preview.as_deref(),
            format,
            config.as_deref(),
        ),
        Command::HashPassword => hash_password(),
        Command::Anomaly {
            action:
                AnomalyCommand::Replay {
                    input,
                    sensitivity,
                    seasonality,
                    direction,
                    value_kind,
                    all_points,
                    format,
                },
        } => anomaly_replay(
            &input,
            (sensitivity, seasonality, direction, value_kind),
            all_points,
            format,
        ),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WAYMARK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    // Colour codes only for a person at a terminal, never into a file or a journal.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn load_config(path: Option<&Path>) -> anyhow::Result<waymark::config::Config> {
    Ok(waymark::config::Config::load(path, |k| {
        std::env::var(k).ok()
    })?)
}

/// Prints the bound address as the first line of stdout (scripts and tests read it), then
/// serves until SIGINT/SIGTERM; a clean shutdown exits 0.
fn serve(config: Option<&Path>, telemetry: &TelemetryArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(config)?;
    let telemetry_config = telemetry.config()?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let options = waymark::app::Options {
            telemetry: telemetry_config,
            ..Default::default()
        };
        let app = waymark::app::App::build(config, options).await?;
        print(&format!("listening on http://{}\n", app.local_addr()));
        app.run_until_stopped().await?;
        Ok(ExitCode::SUCCESS)
    })
}

fn migrate(config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = load_config(config)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(waymark::app::migrate(&config.database_url))?;
    print(&format!(
        "migrations applied to {}\n",
        waymark::app::redacted_url(&config.database_url)
    ));
    Ok(ExitCode::SUCCESS)
}

fn digest(
    owner: &str,
    from: Option<chrono::NaiveDate>,
    to: Option<chrono::NaiveDate>,
    preview: Option<&Path>,
    format: Format,
    config: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    use waymark::app::digest::{DigestRequest, digest_now};
    use waymark::digest::render::{Images, LinkBase, render};
    let config = load_config(config)?;
    let request = DigestRequest {
        owner: owner.to_owned(),
        from,
        to,
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let (digest, problems) = runtime.block_on(digest_now(&config, &request, chrono::Utc::now()))?;
    for d in &problems {
        eprintln!("{d}");
    }
    let links = LinkBase {
        dashboard_url: config.alerting.dashboard_url.as_deref().map(str::to_string),
        trace_url: config.alerting.trace_url.as_deref().map(str::to_string),
    };
    let rendered = render(&digest, &links, Images::DataUri);
    if let Some(path) = preview {
        std::fs::write(path, &rendered.html)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("preview written to {}", path.display());
    }
    match format {
        Format::Json => print(&format!("{}\n", serde_json::to_string_pretty(&digest)?)),
        Format::Text => print(&format!("{}\n\n{}", rendered.subject, rendered.text)),
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads one line (the password, without its newline) so that it never appears in the shell's
/// history or the process list.
fn hash_password() -> anyhow::Result<ExitCode> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(!password.is_empty(), "the password is empty");
    println!("{}", waymark::auth::PasswordHash::of(password));
    Ok(ExitCode::SUCCESS)
}

/// Writes to stdout; a closed pipe (`waymark run x | head`) is not an error.
fn anomaly_replay(
    input: &Path,
    (sensitivity, seasonality, direction, value_kind): (
        SensitivityArg,
        SeasonalityArg,
        DirectionArg,
        ValueKindArg,
    ),
    all_points: bool,
    format: Format,
) -> anyhow::Result<ExitCode> {
    use waymark::baseline::{DetectorParams, ValueKind, replay};
    use waymark::journey::{AnomalySettings, Direction, Seasonality, Sensitivity};
    let text = if input == Path::new("-") {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(input)
            .with_context(|| format!("cannot read {}", input.display()))?
    };
    let rows = replay::parse_csv(&text).with_context(|| input.display().to_string())?;
    let settings = AnomalySettings {
        sensitivity: Some(match sensitivity {
            SensitivityArg::Low => Sensitivity::Low,
            SensitivityArg::Medium => Sensitivity::Medium,
            SensitivityArg::High => Sensitivity::High,
        }),
        seasonality: Some(match seasonality {
            SeasonalityArg::Off => Seasonality::Off,
            SeasonalityArg::Daily => Seasonality::Daily,
            SeasonalityArg::Weekly => Seasonality::Weekly,
        }),
        direction: Some(match direction {
            DirectionArg::Up => Direction::Up,
            DirectionArg::Down => Direction::Down,
            DirectionArg::Both => Direction::Both,
        }),
        ..AnomalySettings::default()
    };
    let mut params = DetectorParams::resolve(settings).expect("a sensitivity other than off");
    params.latency = params.latency.for_kind(match value_kind {
        ValueKindArg::Auto => replay::guess_kind(&rows),
        ValueKindArg::Latency => ValueKind::Latency,
        ValueKindArg::Count => ValueKind::Count,
        ValueKindArg::Gauge => ValueKind::Gauge,
    });
    let options = replay::Options { params, all_points };
    let report = replay::replay(&rows, options);
    match format {
        Format::Json => print(&format!("{}\n", serde_json::to_string(&report)?)),
        Format::Text => print(&replay::render_text(&report, rows.len())),
    }
    Ok(ExitCode::SUCCESS)
}

fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
}

fn print_diagnostics(diagnostics: &[Diagnostic]) {
    let text: String = diagnostics
        .iter()
        .map(|d| format!("{}\n", waymark::report::terminal_safe(&d.to_string())))
        .collect();
    print(&text);
}

fn validate(paths: Vec<PathBuf>) -> ExitCode {
    let paths = if paths.is_empty() {
        vec![PathBuf::from("journeys")]
    } else {
        paths
    };
    let loaded = parse::load_paths(&paths, &ParseOptions::default());
    print_diagnostics(&loaded.diagnostics);
    let files = loaded.journeys.len();
    if loaded.diagnostics.is_empty() {
        print(&format!("{files} journey(s) valid\n"));
        ExitCode::SUCCESS
    } else {
        print(&format!(
            "{} problem(s); {files} journey(s) valid\n",
            loaded.diagnostics.len()
        ));
        ExitCode::from(1)
    }
}

fn run(
    journey: &str,
    vars: Vec<(String, String)>,
    format: Format,
    journeys_dir: &Path,
    secrets_file: Option<&Path>,
    location: String,
    telemetry: &TelemetryArgs,
) -> anyhow::Result<ExitCode> {
    let telemetry_config = telemetry.config()?;
    let overrides: BTreeMap<String, String> = vars.into_iter().collect();
    let opts = ParseOptions {
        extra_vars: overrides.keys().cloned().collect(),
        ..ParseOptions::default()
    };
    let journey = match find_journey(journey, journeys_dir, &opts)? {
        Ok(j) => j,
        Err(diagnostics) => {
            print_diagnostics(&diagnostics);
            return Ok(ExitCode::from(2));
        }
    };
    let secrets = match secrets_file {
        Some(path) => {
            let contents = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read secrets file {}", path.display()))?;
            EnvSecrets::with_file_contents(&contents)
        }
        None => EnvSecrets::default(),
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    // One CLI run is one complete trace: exported (if configured) before the process exits.
    let result = runtime.block_on(async {
        let traces = Telemetry::new(&telemetry_config)?;
        let runner = Runner {
            location,
            secrets: Arc::new(secrets),
            overrides,
            telemetry: traces.clone(),
        };
        let result = runner.run(&journey).await;
        traces.shutdown().await;
        anyhow::Ok(result)
    })?;
    match format {
        Format::Text => print(&waymark::report::text_with_trace_url(
            &result,
            telemetry.trace_url.as_deref(),
        )),
        Format::Json => print(&(serde_json::to_string_pretty(&result)? + "\n")),
    }
    Ok(match result.outcome {
        Outcome::Passed => ExitCode::SUCCESS,
        Outcome::Failed => ExitCode::from(1),
        Outcome::Error => ExitCode::from(2),
    })
}

/// A path to a file, or the name of a journey among the files of `dir`.
fn find_journey(
    arg: &str,
    dir: &Path,
    opts: &ParseOptions,
) -> anyhow::Result<Result<waymark::journey::Journey, Vec<Diagnostic>>> {
    let path = Path::new(arg);
    if path.is_file() {
        return Ok(parse::load_file(path, opts));
    }
    let loaded = parse::load_paths(&[dir.to_path_buf()], opts);
    if let Some(j) = loaded.journeys.into_iter().find(|j| j.name == arg) {
        return Ok(Ok(j));
    }
    if !loaded.diagnostics.is_empty() {
        print_diagnostics(&loaded.diagnostics);
    }
    anyhow::bail!(
        "no journey file or journey named `{arg}` in {}",
        dir.display()
    )
}

/// `waymark demo`: the service over the demo shop until a signal, or (`--once`) every journey
/// run once and printed.
fn demo(
    config: Option<&Path>,
    journeys: Option<PathBuf>,
    options: waymark::demo::launch::DemoOptions,
    once: bool,
    telemetry: &TelemetryArgs,
) -> anyhow::Result<ExitCode> {
    let mut config = load_config(config)?;
    if let Some(dir) = journeys {
        config.journeys = dir;
    }
    let telemetry_config = telemetry.config()?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    if once {
        let passed = runtime.block_on(waymark::demo::launch::once(
            &config.journeys,
            options.port,
            &telemetry_config,
            telemetry.trace_url.as_deref(),
            print,
        ))?;
        return Ok(if passed {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    runtime.block_on(waymark::demo::launch::run(
        config,
        telemetry_config,
        options,
        |banner| print(&format!("{banner}\n")),
    ))?;
    Ok(ExitCode::SUCCESS)
}
