//! The `vigil` command line: `run`, `replay`, `check`, `test`, `generate`.
//! Errors from here down are `anyhow` with context; exit status 1 means the
//! command found a problem (invalid rules, failed tests, runtime error), 2 a
//! usage error.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use vigil::app;
use vigil::config::load;
use vigil::config::Settings;
use vigil::ruleset::{RuleSet, RuleSources};
use vigil::source::demo::{self, DemoSpec};
use vigil::telemetry::logging;
use vigil::time::Span;

#[derive(Parser)]
#[command(name = "vigil", version, about = "Real-time security anomaly detection and alerting")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct RuleArgs {
    /// Rules directory (default: the config's, else ./rules, else the built-in rules).
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Config file (YAML).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (default: the built-in demo stream, alerts on stdout, metrics on 127.0.0.1:9464).
    Run {
        #[command(flatten)]
        args: RuleArgs,
    },
    /// Backtest rules over recorded events (JSON lines; `-` for stdin); alerts as JSON lines on stdout.
    Replay {
        /// Events files (each its own source, merged by event time), or `-` for stdin.
        #[arg(required = true)]
        inputs: Vec<String>,
        #[command(flatten)]
        args: RuleArgs,
        /// Allowed event-time lateness (overrides the config), e.g. 30s.
        #[arg(long)]
        lateness: Option<String>,
        /// Each value of this field is its own source with its own clock
        /// (one input holding several recordings, e.g. `host`).
        #[arg(long, value_name = "FIELD")]
        source_field: Option<String>,
    },
    /// Validate the config and rules; every error with file:line:column.
    Check {
        #[command(flatten)]
        args: RuleArgs,
    },
    /// Run the rules' inline tests.
    Test {
        #[command(flatten)]
        args: RuleArgs,
    },
    /// Write the demo event stream (or a larger one, for benchmarks) to stdout.
    Generate {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Days of normal history before the live day.
        #[arg(long, default_value_t = 14)]
        days: i64,
        #[arg(long, default_value_t = 40)]
        users: usize,
        #[arg(long, default_value_t = 12)]
        accounts: usize,
        #[arg(long, default_value_t = 16)]
        tokens: usize,
        #[arg(long, default_value_t = 12)]
        calls_per_hour: u32,
        /// Leave out the live day with the attacks.
        #[arg(long)]
        no_attacks: bool,
        /// Write the field traffic instead: five offices from UTC−5 to
        /// UTC+5:30, `--days` of history then two evaluated weeks with
        /// labelled attacks (listed on stderr), `--users` staff.
        #[arg(long)]
        field: bool,
    },
}

fn settings(config: Option<&Path>) -> Result<Settings> {
    match config {
        Some(path) => load::read_config(path),
        None => Ok(Settings::default()),
    }
}

/// Compiles the rules, printing every diagnostic; `None` if any.
fn compile(args: &RuleArgs, settings: &Settings) -> Result<Option<RuleSet>> {
    compile_sources(&load::rules_for(args.rules.as_deref(), settings)?)
}

fn compile_sources(sources: &RuleSources) -> Result<Option<RuleSet>> {
    match RuleSet::compile(sources) {
        Ok(rules) => Ok(Some(rules)),
        Err(diagnostics) => {
            let mut err = io::stderr().lock();
            let printed = (|| {
                for d in &diagnostics.0 {
                    writeln!(err, "error: {d}")?;
                }
                writeln!(err, "{} error(s) in the rules", diagnostics.0.len())
            })();
            unless_closed(printed)?;
            Ok(None)
        }
    }
}

/// A reader that went away (`vigil check | head -1`) is not an error: the
/// command stops printing and keeps its verdict.
fn unless_closed(printed: io::Result<()>) -> io::Result<()> {
    match printed {
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

fn broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| cause.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli.command) {
        Ok(code) => code,
        // `replay … | head`: the reader has what it wanted; exit quietly,
        // as Unix tools do.
        Err(err) if broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            let _ = writeln!(io::stderr(), "error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn execute(command: Command) -> Result<ExitCode> {
    match command {
        Command::Run { args } => {
            let settings = settings(args.config.as_deref())?;
            logging::init(settings.log_format, &settings.log_level);
            let mut origin = load::RuleOrigin::resolve(args.rules.as_deref(), &settings);
            origin.demo_site = matches!(settings.source, vigil::config::Source::Demo { .. });
            let sources = origin.read()?;
            let Some(rules) = compile_sources(&sources)? else { return Ok(ExitCode::FAILURE) };
            let start = app::StartRules { rules, origin, fingerprint: sources.fingerprint() };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("starting the runtime")?;
            runtime.block_on(app::run(settings, start))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay { inputs, args, lateness, source_field } => {
            let mut settings = settings(args.config.as_deref())?;
            if let Some(text) = lateness {
                settings.lateness = Span::parse(&text).map_err(anyhow::Error::msg)?;
            }
            let Some(rules) = compile(&args, &settings)? else { return Ok(ExitCode::FAILURE) };
            if inputs.iter().filter(|i| *i == "-").count() > 1 {
                anyhow::bail!("stdin (`-`) can be read once");
            }
            let sources = match source_field {
                Some(_) if inputs.len() > 1 => anyhow::bail!("--source-field splits one input; give one file"),
                Some(field) => app::ReplaySources::ByField(field),
                None => app::ReplaySources::PerInput,
            };
            let inputs = inputs.iter().map(|i| app::open_input(i)).collect::<Result<Vec<_>>>()?;
            let mut out = io::BufWriter::with_capacity(1 << 16, io::stdout().lock());
            let mut diag = io::stderr().lock();
            let report = app::replay(inputs, &sources, &rules, &settings, &mut out, &mut diag)?;
            writeln!(
                diag,
                "replay: {} events, {} alerts, {} rejected, {} late, {} ahead, {} updates",
                report.events, report.alerts, report.rejected, report.late, report.ahead, report.updates
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { args } => {
            let settings = match settings(args.config.as_deref()) {
                Ok(settings) => settings,
                Err(err) => {
                    let mut stderr = io::stderr().lock();
                    unless_closed(format!("{err:#}").lines().try_for_each(|line| writeln!(stderr, "error: {line}")))?;
                    drop(stderr);
                    // Still check the rules so every error shows at once.
                    let _ = compile(&args, &Settings::default());
                    return Ok(ExitCode::FAILURE);
                }
            };
            match compile(&args, &settings)? {
                Some(rules) => {
                    let mut out = io::stdout().lock();
                    let printed = (|| {
                        writeln!(
                            out,
                            "ok: {} rules, {} lists, {} tables",
                            rules.rules.len() + rules.inert.len(),
                            rules.lists.names().count(),
                            rules.tables.len()
                        )?;
                        for inert in &rules.inert {
                            writeln!(out, "note: {} is inert: {}", inert.rule.id, inert.reason())?;
                        }
                        out.flush()
                    })();
                    unless_closed(printed)?;
                    Ok(ExitCode::SUCCESS)
                }
                None => Ok(ExitCode::FAILURE),
            }
        }
        Command::Test { args } => {
            let settings = settings(args.config.as_deref())?;
            let Some(rules) = compile(&args, &settings)? else { return Ok(ExitCode::FAILURE) };
            let outcomes = vigil::ruletest::run_all(&rules, settings.lateness);
            let failed = outcomes.iter().filter(|o| o.failure.is_some()).count();
            let mut out = io::stdout().lock();
            let printed = (|| {
                for outcome in &outcomes {
                    match &outcome.failure {
                        None => writeln!(out, "test {} :: {} ... ok", outcome.rule, outcome.name)?,
                        Some(why) => writeln!(out, "test {} :: {} ... FAILED\n    {why}", outcome.rule, outcome.name)?,
                    }
                }
                let untested: Vec<&str> = rules.rules.iter().filter(|r| r.tests.is_empty()).map(|r| &*r.id).collect();
                if !untested.is_empty() {
                    writeln!(out, "note: rules without tests: {}", untested.join(", "))?;
                }
                let verdict = if failed == 0 { "ok" } else { "FAILED" };
                writeln!(out, "\nrule tests: {verdict}. {} passed; {failed} failed", outcomes.len() - failed)?;
                out.flush()
            })();
            unless_closed(printed)?;
            Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Generate { seed, days, users, accounts, tokens, calls_per_hour, no_attacks, field } => {
            let events = if field {
                let spec = vigil::source::traffic::TrafficSpec {
                    seed,
                    history_days: days,
                    users,
                    attacks_per_kind: if no_attacks { 0 } else { 2 },
                    ..Default::default()
                };
                let traffic = vigil::source::traffic::generate(&spec);
                let mut err = io::stderr().lock();
                for attack in &traffic.attacks {
                    writeln!(
                        err,
                        "attack {} {} {} {}: {}",
                        attack.start, attack.kind, attack.severity, attack.marker, attack.what
                    )?;
                }
                traffic.events
            } else {
                let spec = DemoSpec {
                    seed,
                    history_days: days,
                    users,
                    accounts,
                    tokens,
                    calls_per_hour,
                    attacks: !no_attacks,
                };
                demo::generate(&spec).events
            };
            let mut out = io::BufWriter::with_capacity(1 << 16, io::stdout().lock());
            for (_, line) in &events {
                writeln!(out, "{line}")?;
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
