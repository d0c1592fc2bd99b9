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

use super::values::{duration, KafkaClient, OutputFormat};
use super::Source;
use crate::notify;
pub use crate::notify::email::config::{Email, SmtpTls};
pub use crate::notify::webhook::config::{Webhook, WebhookFormat};
use crate::rules::fields::{FieldReader, Fields, FromNode};
use crate::rules::yaml::{Loc, Node, Spanned};
use crate::rules::{Severity, Sink};

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

/// One name or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

fn list(value: &OneOrMany) -> Vec<String> {
    match value {
        OneOrMany::One(one) => vec![one.clone()],
        OneOrMany::Many(many) => many.clone(),
    }
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

/// A notifier name is also a file name in the state directory.
fn is_notifier_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
}

/// Validates the notifiers (emails before the digests that send through
/// them) and the routes.
pub(super) fn validate(
    notifiers: Option<&BTreeMap<String, Spanned<Fields>>>,
    routes: Option<&Spanned<Vec<RouteSpec>>>,
    source: &Source,
    base: &Path,
    sink: &mut Sink,
) -> (Vec<Notifier>, Vec<Route>) {
    let mut out: Vec<Notifier> = Vec::new();
    let specs: Vec<(&String, &Spanned<Fields>)> = notifiers.into_iter().flatten().collect();
    let is_digest =
        |spec: &Spanned<Fields>| spec.value.get("type").is_some_and(|t| t.value == Node::Str("digest".into()));
    let (digests, others): (Vec<_>, Vec<_>) = specs.into_iter().partition(|(_, n)| is_digest(n));
    for (name, spec) in others.into_iter().chain(digests) {
        if !is_notifier_name(name) {
            sink.error(spec, format!("notifier name `{name}` may hold only letters, digits, `_` and `-`"));
        }
        let mut r = FieldReader::new(&spec.value, Loc::of(spec), sink);
        let Some(kind) = r.require::<String>("type", || "missing field `type`".into()) else { continue };
        let delivery = delivery_policy(&mut r);
        let redact = redactions(&mut r);
        let read = notifier_kind(&kind, &mut r, source, base, &out);
        if read.is_known {
            let kind = kind.value.clone();
            r.finish(|field| format!("`{field}` does not apply to a `{kind}` notifier"));
        }
        if let Some(kind) = read.kind {
            out.push(Notifier { name: name.clone(), kind, redact, delivery });
        }
    }
    let routes = routes.map(|routes| validate_routes(routes, notifiers, sink)).unwrap_or_default();
    (out, routes)
}

/// `timeout` and `retry`, which every notifier takes.
fn delivery_policy(r: &mut FieldReader<'_>) -> DeliveryPolicy {
    let mut delivery = DeliveryPolicy::default();
    if let Some(timeout) = r.get::<String>("timeout").and_then(|t| duration(&t, r.sink)) {
        delivery.timeout = timeout;
    }
    if let Some(retry) = r.get::<Fields>("retry") {
        let mut fields = FieldReader::new(&retry.value, Loc::of(&retry), r.sink);
        if let Some(initial) = fields.get::<String>("initial").and_then(|t| duration(&t, fields.sink)) {
            delivery.initial_backoff = initial;
        }
        if let Some(max) = fields.get::<String>("max").and_then(|t| duration(&t, fields.sink)) {
            delivery.max_backoff = max;
        }
        fields.finish(|field| format!("`{field}` is not a setting of `retry` (initial, max)"));
        if delivery.max_backoff < delivery.initial_backoff {
            r.sink.error(&retry, "`retry.max` must not be below `retry.initial`");
        }
    }
    delivery
}

/// `redact`, which every notifier takes: field → `hash` or `mask`.
fn redactions(r: &mut FieldReader<'_>) -> Vec<(String, Redaction)> {
    let mut redact = Vec::new();
    for (field, how) in r.get::<Fields>("redact").map(|f| f.value.0).unwrap_or_default() {
        match String::from_node(&how) {
            Ok(way) if way == "hash" => redact.push((field.value.0, Redaction::Hash)),
            Ok(way) if way == "mask" => redact.push((field.value.0, Redaction::Mask)),
            Ok(other) => r.sink.error(&how, format!("unknown redaction `{other}` (hash, mask)")),
            Err(mismatch) => r.sink.error_at(mismatch.loc, mismatch.message),
        }
    }
    redact
}

/// What a notifier type's reader made of its fields.
struct Read {
    kind: Option<NotifierKind>,
    /// Whether the type is one vigil knows (else its fields mean nothing).
    is_known: bool,
}

/// Hands the notifier's fields to its type's reader (each in the
/// notifier's own folder under `notify/`).
fn notifier_kind(
    kind: &Spanned<String>,
    r: &mut FieldReader<'_>,
    source: &Source,
    base: &Path,
    known: &[Notifier],
) -> Read {
    let kind = match kind.value.as_str() {
        "kafka" => {
            let source = match source {
                Source::Kafka(source) => Some(&source.client),
                _ => None,
            };
            notify::kafka::read(r, source).map(|(client, topic)| NotifierKind::Kafka { client, topic })
        }
        "stdout" | "file" => {
            notify::file::read(r, kind.value == "file", base).map(|(path, format)| NotifierKind::File { path, format })
        }
        "email" => notify::email::config::read(r, base).map(NotifierKind::Email),
        "digest" => {
            let email_named = |name: &str| match known.iter().find(|k| k.name == name).map(|k| &k.kind) {
                Some(NotifierKind::Email(email)) => Some(email.clone()),
                _ => None,
            };
            notify::email::config::read_digest(r, email_named)
                .map(|(email, every)| NotifierKind::Digest { email, every })
        }
        "webhook" => notify::webhook::config::read(r, base).map(NotifierKind::Webhook),
        other => {
            r.sink
                .error(kind, format!("unknown notifier type `{other}` (email, digest, webhook, kafka, file, stdout)"));
            return Read { kind: None, is_known: false };
        }
    };
    Read { kind, is_known: true }
}

fn validate_routes(
    routes: &Spanned<Vec<RouteSpec>>,
    notifiers: Option<&BTreeMap<String, Spanned<Fields>>>,
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
    use crate::config::Secret;
    use crate::notify::webhook::PAGERDUTY_EVENTS_URL;

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
    fn a_notifiers_settings_are_checked_even_where_another_section_does_not_parse() {
        let text = "notifiers:\n  \
            hook: {type: webhook, url: https://soc.example/hook, secret_env: S, timeout: [5s], retry: {inital: 2s}}\n\
            metrics: {enabled: maybe}\n";
        let err = errors(text);
        for needle in [
            "c.yml:2:80: expected a string",
            "c.yml:2:94: unknown field `inital`: did you mean `initial`?",
            "c.yml:3:20: not a boolean",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
        }
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
