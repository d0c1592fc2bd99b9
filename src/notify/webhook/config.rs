//! A webhook notifier's settings (`type: webhook`), read from its map in
//! the config file. A URL that is itself a credential is refused inline.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::values::{duration, secret_of, Secret};
use crate::rules::fields::FieldReader;

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

/// Reads a `type: webhook` notifier.
pub fn read(r: &mut FieldReader<'_>, base: &Path) -> Option<Webhook> {
    let at = r.at();
    let format = match r.get::<String>("format") {
        None => WebhookFormat::Generic,
        Some(f) => match f.value.as_str() {
            "generic" => WebhookFormat::Generic,
            "slack" => WebhookFormat::Slack,
            "pagerduty" => WebhookFormat::PagerDuty,
            "alertmanager" => WebhookFormat::Alertmanager,
            other => {
                r.sink.error(&f, format!("unknown webhook format `{other}` (generic, slack, pagerduty, alertmanager)"));
                return None;
            }
        },
    };
    let allow_http = r.get::<bool>("allow_http").is_some_and(|a| a.value);
    let url = match (r.get::<String>("url"), r.get::<String>("url_env"), r.get::<String>("url_file")) {
        (Some(url), None, None) => {
            let scheme_ok = url.value.starts_with("https://") || (allow_http && url.value.starts_with("http://"));
            if !scheme_ok {
                let message = if url.value.starts_with("http://") {
                    "plain HTTP is refused unless the notifier sets `allow_http: true`"
                } else {
                    "`url` must start with https://"
                };
                r.sink.error(&url, message);
            } else {
                match reqwest::Url::parse(&url.value) {
                    Err(_) => r.sink.error(&url, "`url` is not a URL"),
                    Ok(parsed) => {
                        if let Some(why) = inline_credential(&parsed) {
                            r.sink.error(
                                &url,
                                format!("{why}: a URL that is a credential goes in `url_env` or `url_file`, not in the config"),
                            );
                        }
                    }
                }
            }
            Secret::Value(url.value)
        }
        (None, Some(var), None) => Secret::Env(var.value),
        (None, None, Some(file)) => Secret::File(base.join(file.value)),
        (None, None, None) if format == WebhookFormat::PagerDuty => Secret::Value(PAGERDUTY_EVENTS_URL.to_owned()),
        (None, None, None) => {
            r.sink.error_at(at, "a `webhook` notifier needs `url` (or `url_env`, `url_file`)");
            return None;
        }
        _ => {
            r.sink.error_at(at, "set one of `url`, `url_env` and `url_file`");
            return None;
        }
    };
    let secret = secret_of(r, ["secret_env", "secret_file", "secret"], base);
    let routing_key = secret_of(r, ["routing_key_env", "routing_key_file", "routing_key"], base);
    match format {
        WebhookFormat::Generic if secret.is_none() => {
            r.sink.error_at(at, "a `generic` webhook is signed: set `secret_env` or `secret_file`");
        }
        WebhookFormat::PagerDuty if routing_key.is_none() => {
            r.sink.error_at(at, "a `pagerduty` webhook needs `routing_key_env` or `routing_key_file`");
        }
        WebhookFormat::Generic | WebhookFormat::PagerDuty => {}
        _ if secret.is_some() || routing_key.is_some() => {
            r.sink.error_at(at, "only `generic` webhooks are signed and only `pagerduty` takes a routing key");
        }
        _ => {}
    }
    let resolve_after = r.get::<String>("resolve_after").and_then(|after| {
        if !matches!(format, WebhookFormat::PagerDuty | WebhookFormat::Alertmanager) {
            r.sink.error(&after, "`resolve_after` applies to `pagerduty` and `alertmanager` webhooks");
        }
        duration(&after, r.sink)
    });
    let ca = r.get::<String>("ca").map(|c| base.join(c.value));
    Some(Webhook { format, url, secret, routing_key, allow_http, ca, resolve_after })
}
