//! The daemon's configuration file: spec (serde, unknown fields denied) and
//! validated settings. No secrets live here (there are none yet; later
//! notifiers read theirs from the environment or files).
//!
//! ```yaml
//! rules: rules            # directory, relative to this file
//! lateness: 1m            # allowed event-time lateness
//! source: {type: file, path: events.jsonl}   # or stdin, or demo
//! output: {format: auto}  # auto | text | json; optional path
//! metrics: {listen: 127.0.0.1:9464}          # or enabled: false
//! log: {format: text, level: info}
//! limits: {max_event_bytes: 1048576}
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::event::decode::DEFAULT_MAX_EVENT_BYTES;
use crate::rules::yaml::{self, Document, Spanned};
use crate::rules::{Diagnostic, Diagnostics, Sink};
use crate::time::Span;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigSpec {
    pub rules: Option<Spanned<String>>,
    pub lateness: Option<Spanned<String>>,
    pub source: Option<Spanned<SourceSpec>>,
    pub output: Option<OutputSpec>,
    pub metrics: Option<MetricsSpec>,
    pub log: Option<LogSpec>,
    pub limits: Option<LimitsSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    pub path: Option<Spanned<String>>,
    pub speed: Option<Spanned<f64>>,
    pub seed: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    pub format: Option<Spanned<String>>,
    pub path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSpec {
    pub enabled: Option<bool>,
    pub listen: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSpec {
    pub format: Option<Spanned<String>>,
    pub level: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    pub max_event_bytes: Option<Spanned<u64>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// The bundled demo stream, replayed `speed` times faster than real time.
    Demo {
        speed: f64,
        seed: u64,
    },
    File(PathBuf),
    Stdin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Text on a terminal, JSON lines otherwise.
    Auto,
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Validated settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub rules_dir: Option<PathBuf>,
    pub lateness: Span,
    pub source: Source,
    pub output: OutputFormat,
    pub output_path: Option<PathBuf>,
    pub metrics_listen: Option<SocketAddr>,
    pub log_format: LogFormat,
    pub log_level: String,
    pub max_event_bytes: usize,
}

pub const DEFAULT_LATENESS: Span = Span(60_000_000);
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";
pub const DEFAULT_DEMO_SPEED: f64 = 300.0;

impl Default for Settings {
    /// The embedded default: the demo stream, text alerts, metrics on
    /// loopback.
    fn default() -> Settings {
        Settings {
            rules_dir: None,
            lateness: DEFAULT_LATENESS,
            source: Source::Demo { speed: DEFAULT_DEMO_SPEED, seed: 1 },
            output: OutputFormat::Auto,
            output_path: None,
            metrics_listen: DEFAULT_METRICS_LISTEN.parse().ok(),
            log_format: LogFormat::Text,
            log_level: "info".into(),
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
        }
    }
}

/// Parses and validates a config file's text; relative paths are resolved
/// against `base` (the file's directory).
pub fn parse(file: &Path, text: &str, base: &Path) -> Result<Settings, Diagnostics> {
    let doc = Document { text, first_line: 1 };
    let spec: ConfigSpec = if text.trim().is_empty() {
        ConfigSpec::default()
    } else {
        yaml::parse_document(&doc).map_err(|err| {
            Diagnostics(vec![Diagnostic { file: file.to_owned(), loc: err.loc, rule: None, message: err.message }])
        })?
    };
    let mut sink = Sink::with_text(1, text);
    let settings = validate(&spec, base, &mut sink);
    if !sink.is_empty() {
        return Err(Diagnostics(
            sink.problems
                .into_iter()
                .map(|p| Diagnostic { file: file.to_owned(), loc: p.loc, rule: None, message: p.message })
                .collect(),
        ));
    }
    Ok(settings)
}

fn validate(spec: &ConfigSpec, base: &Path, sink: &mut Sink) -> Settings {
    let mut settings = Settings::default();
    if let Some(rules) = &spec.rules {
        settings.rules_dir = Some(base.join(&rules.value));
    }
    if let Some(lateness) = &spec.lateness {
        match Span::parse(&lateness.value) {
            Ok(span) => settings.lateness = span,
            Err(message) => sink.error(lateness, message),
        }
    }
    if let Some(source) = &spec.source {
        let s = &source.value;
        settings.source = match s.kind.value.as_str() {
            "demo" => {
                let speed = s.speed.as_ref().map_or(DEFAULT_DEMO_SPEED, |v| v.value);
                if !(speed.is_finite() && speed > 0.0) {
                    if let Some(v) = &s.speed {
                        sink.error(v, "`speed` must be above zero");
                    }
                }
                Source::Demo { speed, seed: s.seed.unwrap_or(1) }
            }
            "file" => match &s.path {
                Some(path) if path.value == "-" => Source::Stdin,
                Some(path) => Source::File(base.join(&path.value)),
                None => {
                    sink.error(source, "a `file` source needs a `path` (or `-` for stdin)");
                    Source::Stdin
                }
            },
            "stdin" => Source::Stdin,
            other => {
                sink.error(&s.kind, format!("unknown source type `{other}` (demo, file, stdin)"));
                Source::Stdin
            }
        };
    }
    if let Some(output) = &spec.output {
        if let Some(format) = &output.format {
            settings.output = match format.value.as_str() {
                "auto" => OutputFormat::Auto,
                "text" => OutputFormat::Text,
                "json" => OutputFormat::Json,
                other => {
                    sink.error(format, format!("unknown output format `{other}` (auto, text, json)"));
                    OutputFormat::Auto
                }
            };
        }
        settings.output_path = output.path.as_ref().map(|p| base.join(p));
    }
    if let Some(metrics) = &spec.metrics {
        if metrics.enabled == Some(false) {
            settings.metrics_listen = None;
        } else if let Some(listen) = &metrics.listen {
            match listen.value.parse::<SocketAddr>() {
                Ok(addr) => settings.metrics_listen = Some(addr),
                Err(_) => sink.error(listen, format!("`{}` is not an address like 127.0.0.1:9464", listen.value)),
            }
        }
    }
    if let Some(log) = &spec.log {
        if let Some(format) = &log.format {
            settings.log_format = match format.value.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    sink.error(format, format!("unknown log format `{other}` (text, json)"));
                    LogFormat::Text
                }
            };
        }
        if let Some(level) = &log.level {
            settings.log_level = level.clone();
        }
    }
    if let Some(max) = spec.limits.as_ref().and_then(|l| l.max_event_bytes.as_ref()) {
        if max.value < 64 {
            sink.error(max, "`max_event_bytes` must be at least 64");
        }
        settings.max_event_bytes = usize::try_from(max.value).unwrap_or(usize::MAX);
    }
    settings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_the_default() {
        assert_eq!(parse(Path::new("c.yml"), "", Path::new(".")).unwrap(), Settings::default());
    }

    #[test]
    fn reads_and_resolves_paths() {
        let text = "rules: r\nlateness: 5m\nsource: {type: file, path: ev.jsonl}\nmetrics: {enabled: false}\n";
        let s = parse(Path::new("/etc/vigil/c.yml"), text, Path::new("/etc/vigil")).unwrap();
        assert_eq!(s.rules_dir, Some(PathBuf::from("/etc/vigil/r")));
        assert_eq!(s.lateness, Span::from_secs(300));
        assert_eq!(s.source, Source::File(PathBuf::from("/etc/vigil/ev.jsonl")));
        assert_eq!(s.metrics_listen, None);
    }

    #[test]
    fn reports_every_error_with_position() {
        let text = "lateness: soon\nsource: {type: kafka}\nmetrics: {listen: everywhere}\n";
        let err = parse(Path::new("c.yml"), text, Path::new(".")).unwrap_err();
        let lines: Vec<String> = err.0.iter().map(|d| d.to_string()).collect();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].starts_with("c.yml:1:11: invalid duration"), "{lines:?}");
        assert!(lines[1].starts_with("c.yml:2:16: unknown source type `kafka`"), "{lines:?}");
        let err = parse(Path::new("c.yml"), "sauce: {}\n", Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("c.yml:1:1"), "{err}");
        assert!(err.to_string().contains("sauce"), "{err}");
    }
}
