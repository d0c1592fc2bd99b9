//! Notifiers and routes in the config file: spec and validation.
//!
//! ```yaml
//! notifiers:
//!   oncall-email:
//!     type: email
//!     host: smtp.corp.example          # port 587, tls: starttls (or tls, none)
//!     username: vigil
//!     password_env: SMTP_PASSWORD      # or password_file
//!     from: vigil@corp.example
//!     to: [oncall@corp.example]
//!     timezone: Europe/Berlin          # times shown in UTC and here
//!   soc-digest: {type: digest, via: oncall-email, to: [soc@corp.example], every: 1h}
//!   pager: {type: webhook, format: pagerduty, routing_key_env: PD_ROUTING_KEY, resolve_after: 2h}
//!   soc-hook: {type: webhook, url: https://soc.example/hook, secret_env: VIGIL_WEBHOOK_SECRET}
//!   slack: {type: webhook, format: slack, url_env: SLACK_WEBHOOK_URL, redact: {src_ip: hash}}
//!   am: {type: webhook, format: alertmanager, url: http://alertmanager:9093, allow_http: true}
//!   siem: {type: kafka, topic: vigil-alerts}
//!   archive: {type: file, path: delivered.jsonl}       # or type: stdout
//! routes:
//!   - match: {severity: critical}
//!     notify: [oncall-email, pager, soc-hook]
//!     continue: true
//!   - match: {severity: warning}
//!     notify: [slack, soc-digest]
//!     limit: {max: 10, per: 1m}
//!   - notify: [siem]                   # no `match`: every alert (the default route)
//! ```
//!
//! Without `routes`, every alert goes to every notifier.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{brokers_of, properties_of, secret, KafkaClient, OneOrMany, OutputFormat, Scalar, Secret, Source};
use crate::rules::yaml::{Loc, Spanned};
use crate::rules::{Severity, Sink};
use crate::time::Span;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifierSpec {
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    // kafka
    pub topic: Option<Spanned<String>>,
    pub brokers: Option<Spanned<OneOrMany>>,
    pub properties: Option<BTreeMap<String, Spanned<Scalar>>>,
    // file, webhook
    pub path: Option<Spanned<String>>,
    pub format: Option<Spanned<String>>,
    // email
    pub host: Option<Spanned<String>>,
    pub port: Option<Spanned<u16>>,
    pub tls: Option<Spanned<String>>,
    pub ca: Option<Spanned<String>>,
    pub username: Option<Spanned<String>>,
    pub username_env: Option<Spanned<String>>,
    pub password_env: Option<Spanned<String>>,
    pub password_file: Option<Spanned<String>>,
    pub password: Option<Spanned<String>>,
    pub from: Option<Spanned<String>>,
    pub to: Option<Spanned<OneOrMany>>,
    pub timezone: Option<Spanned<String>>,
    // webhook
    pub url: Option<Spanned<String>>,
    pub url_env: Option<Spanned<String>>,
    pub url_file: Option<Spanned<String>>,
    pub secret_env: Option<Spanned<String>>,
    pub secret_file: Option<Spanned<String>>,
    pub secret: Option<Spanned<String>>,
    pub routing_key_env: Option<Spanned<String>>,
    pub routing_key_file: Option<Spanned<String>>,
    pub routing_key: Option<Spanned<String>>,
    pub allow_http: Option<Spanned<bool>>,
    pub resolve_after: Option<Spanned<String>>,
    // digest
    pub via: Option<Spanned<String>>,
    pub every: Option<Spanned<String>>,
    // every type
    pub redact: Option<BTreeMap<String, Spanned<String>>>,
    pub timeout: Option<Spanned<String>>,
    pub retry: Option<Spanned<RetrySpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    pub initial: Option<Spanned<String>>,
    pub max: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    #[serde(rename = "match")]
    pub matcher: Option<MatchSpec>,
    pub notify: Spanned<Vec<Spanned<String>>>,
    #[serde(rename = "continue")]
    pub cont: Option<bool>,
    pub limit: Option<Spanned<LimitSpec>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    pub severity: Option<Spanned<OneOrMany>>,
    pub rule: Option<OneOrMany>,
    pub tags: Option<OneOrMany>,
    pub group: Option<BTreeMap<String, OneOrMany>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSpec {
    pub max: Spanned<u32>,
    pub per: Spanned<String>,
}

/// A configured notifier.
#[derive(Debug, Clone, PartialEq)]
pub struct Notifier {
    pub name: String,
    pub kind: NotifierKind,
    /// Group and event fields hidden from this notifier's messages.
    pub redact: Vec<(String, Redaction)>,
    pub delivery: DeliveryPolicy,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NotifierKind {
    /// Alerts as JSON to a topic, keyed by rule and group.
    Kafka {
        client: KafkaClient,
        topic: String,
    },
    /// Lines on stdout (`path` none) or appended to a file.
    File {
        path: Option<PathBuf>,
        format: OutputFormat,
    },
    Email(Email),
    Webhook(Webhook),
    /// Alerts collected and sent as one email every `every`.
    Digest {
        email: Email,
        every: Duration,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required, not opportunistic).
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
    /// No encryption: only for a relay on the same host.
    None,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Email {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// A CA certificate (PEM) to trust besides the system's roots.
    pub ca: Option<PathBuf>,
    pub username: Option<Secret>,
    pub password: Option<Secret>,
    pub from: String,
    pub to: Vec<String>,
    pub timezone: Option<chrono_tz::Tz>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// vigil's alert JSON, signed per Standard Webhooks.
    Generic,
    Slack,
    PagerDuty,
    Alertmanager,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub format: WebhookFormat,
    /// Secret itself when it carries a token (Slack), so it may come from
    /// the environment or a file.
    pub url: Secret,
    pub secret: Option<Secret>,
    pub routing_key: Option<Secret>,
    pub allow_http: bool,
    pub ca: Option<PathBuf>,
    /// PagerDuty: resolve the incident of a rule and group once it has
    /// raised no alert for this long. Alertmanager: the alerts' `endsAt`.
    pub resolve_after: Option<Duration>,
}

pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redaction {
    /// Replaced by the first 16 hex digits of its SHA-256: still joinable
    /// across alerts, not readable.
    Hash,
    /// Replaced by `***` (an email address keeps its domain).
    Mask,
}

/// Timeouts and retries of one notifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryPolicy {
    pub timeout: Duration,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for DeliveryPolicy {
    fn default() -> DeliveryPolicy {
        DeliveryPolicy {
            timeout: Duration::from_secs(10),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
        }
    }
}

/// Where alerts go: the first matching route, and after it the next ones
/// while a matched route says `continue`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Route {
    pub matcher: RouteMatch,
    pub notify: Vec<String>,
    pub cont: bool,
    pub limit: Option<RateLimit>,
}

/// Every listed condition must hold; a list within one is any of.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RouteMatch {
    pub severity: Vec<Severity>,
    pub rules: Vec<String>,
    pub tags: Vec<String>,
    pub group: Vec<(String, Vec<String>)>,
}

/// At most `max` messages per `per` from one route to one notifier; the
/// alerts beyond go out together in the next message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub max: u32,
    pub per: Duration,
}

/// A duration above zero (`30s`, `5m`); a problem goes to `sink`.
pub(super) fn duration(value: &Spanned<String>, sink: &mut Sink) -> Option<Duration> {
    match Span::parse(&value.value) {
        Ok(span) if span.0 > 0 => Some(Duration::from_micros(span.0 as u64)),
        Ok(_) => {
            sink.error(value, "must be above zero");
            None
        }
        Err(message) => {
            sink.error(value, message);
            None
        }
    }
}

fn list(value: &OneOrMany) -> Vec<String> {
    match value {
        OneOrMany::One(one) => vec![one.clone()],
        OneOrMany::Many(many) => many.clone(),
    }
}

fn secret_of(
    env: &Option<Spanned<String>>,
    file: &Option<Spanned<String>>,
    inline: &Option<Spanned<String>>,
    what: &str,
    base: &Path,
    sink: &mut Sink,
) -> Option<Secret> {
    if let Some(inline) = inline {
        sink.error(inline, format!("secrets are never read from the config: use `{what}_env` or `{what}_file`"));
    }
    secret(&env.as_ref().map(|e| e.value.clone()), &file.as_ref().map(|f| f.value.clone()), base)
}

/// A notifier name is also a file name in the state directory.
fn is_notifier_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
}

/// Validates the notifiers (emails before the digests that send through
/// them) and the routes.
pub(super) fn validate(
    notifiers: Option<&BTreeMap<String, Spanned<NotifierSpec>>>,
    routes: Option<&Spanned<Vec<RouteSpec>>>,
    source: &Source,
    base: &Path,
    sink: &mut Sink,
) -> (Vec<Notifier>, Vec<Route>) {
    let mut out: Vec<Notifier> = Vec::new();
    let specs: Vec<(&String, &Spanned<NotifierSpec>)> = notifiers.into_iter().flatten().collect();
    let (digests, others): (Vec<_>, Vec<_>) = specs.into_iter().partition(|(_, n)| n.value.kind.value == "digest");
    for (name, spec) in others.into_iter().chain(digests) {
        if !is_notifier_name(name) {
            sink.error(spec, format!("notifier name `{name}` may hold only letters, digits, `_` and `-`"));
        }
        if let Some(kind) = notifier_kind(spec, source, base, &out, sink) {
            let n = &spec.value;
            let mut delivery = DeliveryPolicy::default();
            if let Some(timeout) = n.timeout.as_ref().and_then(|t| duration(t, sink)) {
                delivery.timeout = timeout;
            }
            if let Some(retry) = &n.retry {
                if let Some(initial) = retry.value.initial.as_ref().and_then(|t| duration(t, sink)) {
                    delivery.initial_backoff = initial;
                }
                if let Some(max) = retry.value.max.as_ref().and_then(|t| duration(t, sink)) {
                    delivery.max_backoff = max;
                }
                if delivery.max_backoff < delivery.initial_backoff {
                    sink.error(retry, "`retry.max` must not be below `retry.initial`");
                }
            }
            let mut redact = Vec::new();
            for (field, how) in n.redact.iter().flatten() {
                match how.value.as_str() {
                    "hash" => redact.push((field.clone(), Redaction::Hash)),
                    "mask" => redact.push((field.clone(), Redaction::Mask)),
                    other => sink.error(how, format!("unknown redaction `{other}` (hash, mask)")),
                }
            }
            out.push(Notifier { name: name.clone(), kind, redact, delivery });
        }
    }
    let routes = routes.map(|routes| validate_routes(routes, notifiers, sink)).unwrap_or_default();
    (out, routes)
}

/// Reports each field set that the notifier's type does not read.
fn refuse_others(spec: &NotifierSpec, allowed: &[&str], kind: &str, at: Loc, sink: &mut Sink) {
    let fields: [(&str, Option<Loc>); 30] = [
        ("topic", spec.topic.as_ref().map(Loc::of)),
        ("brokers", spec.brokers.as_ref().map(Loc::of)),
        ("properties", spec.properties.as_ref().map(|_| at)),
        ("path", spec.path.as_ref().map(Loc::of)),
        ("format", spec.format.as_ref().map(Loc::of)),
        ("host", spec.host.as_ref().map(Loc::of)),
        ("port", spec.port.as_ref().map(Loc::of)),
        ("tls", spec.tls.as_ref().map(Loc::of)),
        ("ca", spec.ca.as_ref().map(Loc::of)),
        ("username", spec.username.as_ref().map(Loc::of)),
        ("username_env", spec.username_env.as_ref().map(Loc::of)),
        ("password_env", spec.password_env.as_ref().map(Loc::of)),
        ("password_file", spec.password_file.as_ref().map(Loc::of)),
        ("password", spec.password.as_ref().map(Loc::of)),
        ("from", spec.from.as_ref().map(Loc::of)),
        ("to", spec.to.as_ref().map(Loc::of)),
        ("timezone", spec.timezone.as_ref().map(Loc::of)),
        ("url", spec.url.as_ref().map(Loc::of)),
        ("url_env", spec.url_env.as_ref().map(Loc::of)),
        ("url_file", spec.url_file.as_ref().map(Loc::of)),
        ("secret_env", spec.secret_env.as_ref().map(Loc::of)),
        ("secret_file", spec.secret_file.as_ref().map(Loc::of)),
        ("secret", spec.secret.as_ref().map(Loc::of)),
        ("routing_key_env", spec.routing_key_env.as_ref().map(Loc::of)),
        ("routing_key_file", spec.routing_key_file.as_ref().map(Loc::of)),
        ("routing_key", spec.routing_key.as_ref().map(Loc::of)),
        ("allow_http", spec.allow_http.as_ref().map(Loc::of)),
        ("resolve_after", spec.resolve_after.as_ref().map(Loc::of)),
        ("via", spec.via.as_ref().map(Loc::of)),
        ("every", spec.every.as_ref().map(Loc::of)),
    ];
    for (name, at) in fields {
        if let Some(at) = at {
            if !allowed.contains(&name) {
                sink.error_at(at, format!("`{name}` does not apply to a `{kind}` notifier"));
            }
        }
    }
}

const EMAIL_FIELDS: &[&str] = &[
    "host",
    "port",
    "tls",
    "ca",
    "username",
    "username_env",
    "password_env",
    "password_file",
    "password",
    "from",
    "to",
    "timezone",
];

fn notifier_kind(
    spec: &Spanned<NotifierSpec>,
    source: &Source,
    base: &Path,
    known: &[Notifier],
    sink: &mut Sink,
) -> Option<NotifierKind> {
    let n = &spec.value;
    let at = Loc::of(spec);
    let kind = n.kind.value.as_str();
    match kind {
        "kafka" => {
            refuse_others(n, &["topic", "brokers", "properties"], kind, at, sink);
            let Some(topic) = &n.topic else {
                sink.error(spec, "a `kafka` notifier needs a `topic`");
                return None;
            };
            let mut client = match (&n.brokers, source) {
                (Some(brokers), _) => KafkaClient { brokers: brokers_of(brokers, sink), ..KafkaClient::default() },
                (None, Source::Kafka(source)) => source.client.clone(),
                (None, _) => {
                    sink.error(spec, "a `kafka` notifier needs `brokers` unless the source is kafka");
                    return None;
                }
            };
            client.properties.extend(properties_of(n.properties.as_ref(), sink));
            Some(NotifierKind::Kafka { client, topic: topic.value.clone() })
        }
        "stdout" | "file" => {
            refuse_others(n, &["path", "format"], kind, at, sink);
            let format = match n.format.as_ref().map(|f| (f, f.value.as_str())) {
                None | Some((_, "json")) => OutputFormat::Json,
                Some((_, "text")) => OutputFormat::Text,
                Some((f, other)) => {
                    sink.error(f, format!("unknown format `{other}` (json, text)"));
                    OutputFormat::Json
                }
            };
            let path = match (kind, &n.path) {
                ("file", Some(path)) => Some(base.join(&path.value)),
                ("file", None) => {
                    sink.error(spec, "a `file` notifier needs a `path`");
                    return None;
                }
                _ => None,
            };
            Some(NotifierKind::File { path, format })
        }
        "email" => {
            refuse_others(n, EMAIL_FIELDS, kind, at, sink);
            email(spec, base, sink).map(NotifierKind::Email)
        }
        "digest" => {
            refuse_others(n, &["via", "every", "to"], kind, at, sink);
            let Some(via) = &n.via else {
                sink.error(spec, "a `digest` notifier needs `via`: the email notifier it sends through");
                return None;
            };
            let Some(NotifierKind::Email(mut email)) =
                known.iter().find(|k| k.name == via.value).map(|k| k.kind.clone())
            else {
                sink.error(via, format!("`{}` is not an email notifier", via.value));
                return None;
            };
            if let Some(to) = &n.to {
                email.to = list(&to.value);
            }
            let every = match &n.every {
                Some(every) => duration(every, sink)?,
                None => Duration::from_secs(3600),
            };
            Some(NotifierKind::Digest { email, every })
        }
        "webhook" => {
            refuse_others(
                n,
                &[
                    "format",
                    "url",
                    "url_env",
                    "url_file",
                    "secret_env",
                    "secret_file",
                    "secret",
                    "routing_key_env",
                    "routing_key_file",
                    "routing_key",
                    "allow_http",
                    "ca",
                    "resolve_after",
                ],
                kind,
                at,
                sink,
            );
            webhook(spec, base, sink).map(NotifierKind::Webhook)
        }
        other => {
            sink.error(
                &n.kind,
                format!("unknown notifier type `{other}` (email, digest, webhook, kafka, file, stdout)"),
            );
            None
        }
    }
}

fn email(spec: &Spanned<NotifierSpec>, base: &Path, sink: &mut Sink) -> Option<Email> {
    let n = &spec.value;
    let tls = match n.tls.as_ref().map(|t| (t, t.value.as_str())) {
        None | Some((_, "starttls")) => SmtpTls::Starttls,
        Some((_, "tls")) => SmtpTls::Tls,
        Some((_, "none")) => SmtpTls::None,
        Some((t, other)) => {
            sink.error(t, format!("unknown `tls` mode `{other}` (starttls, tls, none)"));
            SmtpTls::Starttls
        }
    };
    let port = n.port.as_ref().map_or(
        match tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        },
        |p| p.value,
    );
    let username = match (&n.username, &n.username_env) {
        (Some(name), _) => Some(Secret::Value(name.value.clone())),
        (None, Some(var)) => Some(Secret::Env(var.value.clone())),
        (None, None) => None,
    };
    let password = secret_of(&n.password_env, &n.password_file, &n.password, "password", base, sink);
    if username.is_some() != password.is_some() {
        sink.error(spec, "SMTP AUTH needs both `username` (or `username_env`) and `password_env` or `password_file`");
    }
    if tls == SmtpTls::None && password.is_some() {
        sink.error(spec, "`tls: none` would send the SMTP password in clear text");
    }
    let to = n.to.as_ref().map(|t| list(&t.value)).unwrap_or_default();
    let mut ok = true;
    for (what, value) in [("host", &n.host), ("from", &n.from)] {
        if value.is_none() {
            sink.error(spec, format!("an `email` notifier needs `{what}`"));
            ok = false;
        }
    }
    if to.is_empty() {
        sink.error(spec, "an `email` notifier needs `to`: one or more addresses");
        ok = false;
    }
    for address in to.iter().map(String::as_str).chain(n.from.as_ref().map(|f| f.value.as_str())) {
        if address.parse::<lettre::message::Mailbox>().is_err() {
            let at = n.to.as_ref().map_or(Loc::of(spec), Loc::of);
            sink.error_at(at, format!("`{address}` is not an email address"));
            ok = false;
        }
    }
    let timezone = n.timezone.as_ref().and_then(|tz| match tz.value.parse::<chrono_tz::Tz>() {
        Ok(tz) => Some(tz),
        Err(_) => {
            sink.error(tz, format!("unknown timezone `{}` (an IANA name such as Europe/Berlin)", tz.value));
            None
        }
    });
    ok.then(|| Email {
        host: n.host.as_ref().map(|h| h.value.clone()).unwrap_or_default(),
        port,
        tls,
        ca: n.ca.as_ref().map(|c| base.join(&c.value)),
        username,
        password,
        from: n.from.as_ref().map(|f| f.value.clone()).unwrap_or_default(),
        to,
        timezone,
    })
}

/// Why a webhook URL given inline holds a credential, if it does: a user
/// and password, a query parameter that names one, or a service whose hook
/// URLs are bearer secrets (Slack, Discord, Microsoft Teams, Google Chat).
fn inline_credential(url: &reqwest::Url) -> Option<String> {
    if !url.username().is_empty() || url.password().is_some() {
        return Some("the URL carries a user and password".into());
    }
    const SECRET_PARAMS: [&str; 11] =
        ["token", "key", "apikey", "secret", "sig", "signature", "password", "pass", "auth", "code", "credential"];
    for (name, _) in url.query_pairs() {
        let lower = name.to_ascii_lowercase();
        let last = lower.rsplit(['_', '-']).next().unwrap_or_default();
        if SECRET_PARAMS.contains(&last) || lower.ends_with("token") {
            return Some(format!("the URL carries `?{name}=`"));
        }
    }
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let path = url.path();
    let secret_path = (host == "hooks.slack.com" && path.starts_with("/services/"))
        || (matches!(host.as_str(), "discord.com" | "discordapp.com") && path.starts_with("/api/webhooks/"))
        || host.ends_with(".webhook.office.com")
        || (host == "outlook.office.com" && path.starts_with("/webhook"))
        || host == "chat.googleapis.com";
    secret_path.then(|| format!("a {host} hook URL is itself the credential"))
}

fn webhook(spec: &Spanned<NotifierSpec>, base: &Path, sink: &mut Sink) -> Option<Webhook> {
    let n = &spec.value;
    let format = match n.format.as_ref().map(|f| (f, f.value.as_str())) {
        None | Some((_, "generic")) => WebhookFormat::Generic,
        Some((_, "slack")) => WebhookFormat::Slack,
        Some((_, "pagerduty")) => WebhookFormat::PagerDuty,
        Some((_, "alertmanager")) => WebhookFormat::Alertmanager,
        Some((f, other)) => {
            sink.error(f, format!("unknown webhook format `{other}` (generic, slack, pagerduty, alertmanager)"));
            return None;
        }
    };
    let allow_http = n.allow_http.as_ref().is_some_and(|a| a.value);
    let url = match (&n.url, &n.url_env, &n.url_file) {
        (Some(url), None, None) => {
            let scheme_ok = url.value.starts_with("https://") || (allow_http && url.value.starts_with("http://"));
            if !scheme_ok {
                let message = if url.value.starts_with("http://") {
                    "plain HTTP is refused unless the notifier sets `allow_http: true`"
                } else {
                    "`url` must start with https://"
                };
                sink.error(url, message);
            } else {
                match reqwest::Url::parse(&url.value) {
                    Err(_) => sink.error(url, "`url` is not a URL"),
                    Ok(parsed) => {
                        if let Some(why) = inline_credential(&parsed) {
                            sink.error(
                                url,
                                format!("{why}: a URL that is a credential goes in `url_env` or `url_file`, not in the config"),
                            );
                        }
                    }
                }
            }
            Secret::Value(url.value.clone())
        }
        (None, Some(var), None) => Secret::Env(var.value.clone()),
        (None, None, Some(file)) => Secret::File(base.join(&file.value)),
        (None, None, None) if format == WebhookFormat::PagerDuty => Secret::Value(PAGERDUTY_EVENTS_URL.to_owned()),
        (None, None, None) => {
            sink.error(spec, "a `webhook` notifier needs `url` (or `url_env`, `url_file`)");
            return None;
        }
        _ => {
            sink.error(spec, "set one of `url`, `url_env` and `url_file`");
            return None;
        }
    };
    let secret = secret_of(&n.secret_env, &n.secret_file, &n.secret, "secret", base, sink);
    let routing_key = secret_of(&n.routing_key_env, &n.routing_key_file, &n.routing_key, "routing_key", base, sink);
    match format {
        WebhookFormat::Generic if secret.is_none() => {
            sink.error(spec, "a `generic` webhook is signed: set `secret_env` or `secret_file`");
        }
        WebhookFormat::PagerDuty if routing_key.is_none() => {
            sink.error(spec, "a `pagerduty` webhook needs `routing_key_env` or `routing_key_file`");
        }
        WebhookFormat::Generic | WebhookFormat::PagerDuty => {}
        _ if secret.is_some() || routing_key.is_some() => {
            sink.error(spec, "only `generic` webhooks are signed and only `pagerduty` takes a routing key");
        }
        _ => {}
    }
    let resolve_after = n.resolve_after.as_ref().and_then(|r| {
        if !matches!(format, WebhookFormat::PagerDuty | WebhookFormat::Alertmanager) {
            sink.error(r, "`resolve_after` applies to `pagerduty` and `alertmanager` webhooks");
        }
        duration(r, sink)
    });
    let ca = n.ca.as_ref().map(|c| base.join(&c.value));
    Some(Webhook { format, url, secret, routing_key, allow_http, ca, resolve_after })
}

fn validate_routes(
    routes: &Spanned<Vec<RouteSpec>>,
    notifiers: Option<&BTreeMap<String, Spanned<NotifierSpec>>>,
    sink: &mut Sink,
) -> Vec<Route> {
    let mut out = Vec::new();
    for spec in &routes.value {
        let mut route = Route { cont: spec.cont.unwrap_or(false), ..Route::default() };
        if spec.notify.value.is_empty() {
            sink.error(&spec.notify, "`notify` must name at least one notifier");
        }
        for name in &spec.notify.value {
            if !notifiers.is_some_and(|n| n.contains_key(&name.value)) {
                sink.error(name, format!("no notifier is named `{}`", name.value));
            }
            route.notify.push(name.value.clone());
        }
        if let Some(m) = &spec.matcher {
            if let Some(severity) = &m.severity {
                for level in list(&severity.value) {
                    match level.as_str() {
                        "critical" => route.matcher.severity.push(Severity::Critical),
                        "warning" => route.matcher.severity.push(Severity::Warning),
                        other => sink.error(severity, format!("unknown severity `{other}` (critical, warning)")),
                    }
                }
            }
            route.matcher.rules = m.rule.as_ref().map(list).unwrap_or_default();
            route.matcher.tags = m.tags.as_ref().map(list).unwrap_or_default();
            route.matcher.group =
                m.group.iter().flatten().map(|(field, values)| (field.clone(), list(values))).collect();
        }
        if let Some(limit) = &spec.limit {
            if limit.value.max.value == 0 {
                sink.error(&limit.value.max, "`max` must be at least 1");
            }
            if let Some(per) = duration(&limit.value.per, sink) {
                route.limit = Some(RateLimit { max: limit.value.max.value.max(1), per });
            }
        }
        out.push(route);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::parse;

    fn errors(text: &str) -> String {
        parse(Path::new("c.yml"), text, Path::new("/etc/vigil")).unwrap_err().to_string()
    }

    #[test]
    fn reads_notifiers_routes_and_their_defaults() {
        let text = "notifiers:\n  \
            mail: {type: email, host: smtp.corp.example, username: vigil, password_env: SMTP_PASSWORD, \
            from: vigil@corp.example, to: [oncall@corp.example], timezone: Europe/Berlin}\n  \
            digest: {type: digest, via: mail, to: soc@corp.example, every: 24h}\n  \
            pager: {type: webhook, format: pagerduty, routing_key_file: pd.key}\n  \
            hook: {type: webhook, url: https://soc.example/hook, secret_env: WH, redact: {user: mask}, \
            timeout: 5s, retry: {initial: 2s, max: 1m}}\n\
            routes:\n  \
            - {match: {severity: critical}, notify: [mail, pager, hook], continue: true}\n  \
            - {match: {severity: warning, group: {user: [a, b]}}, notify: [digest], limit: {max: 10, per: 1m}}\n";
        let s = parse(Path::new("c.yml"), text, Path::new("/etc/vigil")).unwrap();
        let by_name = |name: &str| s.notifiers.iter().find(|n| n.name == name).unwrap();
        let NotifierKind::Email(mail) = &by_name("mail").kind else { panic!() };
        assert_eq!((mail.port, mail.tls), (587, SmtpTls::Starttls));
        assert_eq!(mail.password, Some(Secret::Env("SMTP_PASSWORD".into())));
        assert_eq!(mail.timezone, Some(chrono_tz::Europe::Berlin));
        let NotifierKind::Digest { email, every } = &by_name("digest").kind else { panic!() };
        assert_eq!((email.to.as_slice(), *every), (&["soc@corp.example".to_owned()][..], Duration::from_secs(86_400)));
        let NotifierKind::Webhook(pager) = &by_name("pager").kind else { panic!() };
        assert_eq!(pager.url, Secret::Value(PAGERDUTY_EVENTS_URL.into()));
        assert_eq!(pager.routing_key, Some(Secret::File("/etc/vigil/pd.key".into())));
        let hook = by_name("hook");
        assert_eq!(hook.redact, [("user".to_owned(), Redaction::Mask)]);
        assert_eq!(hook.delivery.timeout, Duration::from_secs(5));
        assert_eq!(hook.delivery.max_backoff, Duration::from_secs(60));
        assert_eq!(s.routes.len(), 2);
        assert!(s.routes[0].cont);
        assert_eq!(s.routes[1].matcher.group, [("user".to_owned(), vec!["a".to_owned(), "b".to_owned()])]);
        assert_eq!(s.routes[1].limit, Some(RateLimit { max: 10, per: Duration::from_secs(60) }));
    }

    #[test]
    fn every_mistake_is_reported_at_its_position() {
        let text = "notifiers:\n  \
            hook: {type: webhook, url: http://soc.example/hook, secret: hunter2}\n  \
            mail: {type: email, host: h, from: vigil, to: [], tls: none, username: u, password_env: P}\n  \
            chat: {type: webhook, format: teams, url: https://x.example}\n  \
            d: {type: digest, via: hook}\n  \
            odd: {type: file, path: out.jsonl, url: https://x.example}\n\
            routes:\n  \
            - {match: {severity: urgent}, notify: [hook, nobody], limit: {max: 0, per: 1m}}\n";
        let err = errors(text);
        for needle in [
            "c.yml:2:30: plain HTTP is refused unless the notifier sets `allow_http: true`",
            "c.yml:2:63: secrets are never read from the config: use `secret_env` or `secret_file`",
            "`tls: none` would send the SMTP password in clear text",
            "an `email` notifier needs `to`",
            "c.yml:3:49: `vigil` is not an email address",
            "c.yml:4:33: unknown webhook format `teams`",
            "c.yml:5:26: `hook` is not an email notifier",
            "c.yml:6:43: `url` does not apply to a `file` notifier",
            "c.yml:8:24: unknown severity `urgent`",
            "c.yml:8:48: no notifier is named `nobody`",
            "c.yml:8:70: `max` must be at least 1",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
        }
        assert!(errors("notifiers:\n  x: {type: email, hots: h}\n").contains("c.yml:2:20: unknown field `hots`"));
        assert!(errors("notifiers:\n  bad/name: {type: stdout}\n").contains("notifier name `bad/name`"));
    }

    #[test]
    fn a_webhook_url_that_is_a_credential_is_refused_inline() {
        for (url, why) in [
            ("https://bob:hunter2@soc.example/hook", "the URL carries a user and password"),
            ("https://soc.example/hook?token=abc", "the URL carries `?token=`"),
            ("https://soc.example/hook?x=1&api_key=abc", "the URL carries `?api_key=`"),
            ("https://hooks.slack.com/services/T000/B000/XXXX", "a hooks.slack.com hook URL is itself the credential"),
            ("https://discord.com/api/webhooks/1/abc", "a discord.com hook URL is itself the credential"),
            ("https://acme.webhook.office.com/webhookb2/x", "a acme.webhook.office.com hook URL"),
        ] {
            let err = errors(&format!("notifiers:\n  hook: {{type: webhook, format: slack, url: \"{url}\"}}\n"));
            assert!(err.contains(&format!("c.yml:2:45: {why}")), "{url}: {err}");
            assert!(err.contains("goes in `url_env` or `url_file`"), "{err}");
            assert!(!err.contains("hunter2") && !err.contains("XXXX"), "the error does not repeat the secret: {err}");
        }
        let fine =
            "notifiers:\n  hook: {type: webhook, format: slack, url: \"https://soc.example/hook?channel=soc\"}\n";
        parse(Path::new("c.yml"), fine, Path::new("/etc/vigil")).unwrap();
        assert!(errors("notifiers:\n  bad/name: {type: stdout}\n").contains("notifier name `bad/name`"));
    }
}
