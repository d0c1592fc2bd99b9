//! An email notifier's settings (`type: email`, and `type: digest`, which
//! sends through one), read from its map in the config file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::values::{duration, secret_of, Secret};
use crate::rules::fields::{FieldReader, OneOrMany};
use crate::rules::yaml::Loc;

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

/// Reads a `type: email` notifier.
pub fn read(r: &mut FieldReader<'_>, base: &Path) -> Option<Email> {
    let at = r.at();
    let tls = match r.get::<String>("tls") {
        None => SmtpTls::Starttls,
        Some(t) => match t.value.as_str() {
            "starttls" => SmtpTls::Starttls,
            "tls" => SmtpTls::Tls,
            "none" => SmtpTls::None,
            other => {
                r.sink.error(&t, format!("unknown `tls` mode `{other}` (starttls, tls, none)"));
                SmtpTls::Starttls
            }
        },
    };
    let port = r.get::<u16>("port").map_or(
        match tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        },
        |p| p.value,
    );
    let username = match (r.get::<String>("username"), r.get::<String>("username_env")) {
        (Some(name), _) => Some(Secret::Value(name.value)),
        (None, Some(var)) => Some(Secret::Env(var.value)),
        (None, None) => None,
    };
    let password = secret_of(r, ["password_env", "password_file", "password"], base);
    if username.is_some() != password.is_some() {
        r.sink
            .error_at(at, "SMTP AUTH needs both `username` (or `username_env`) and `password_env` or `password_file`");
    }
    if tls == SmtpTls::None && password.is_some() {
        r.sink.error_at(at, "`tls: none` would send the SMTP password in clear text");
    }
    let to_given = r.get::<OneOrMany>("to");
    let to = to_given.as_ref().map(|t| t.value.0.clone()).unwrap_or_default();
    let host = r.require::<String>("host", || "an `email` notifier needs `host`".into());
    let from = r.require::<String>("from", || "an `email` notifier needs `from`".into());
    let mut ok = host.is_some() && from.is_some();
    if to.is_empty() {
        r.sink.error_at(at, "an `email` notifier needs `to`: one or more addresses");
        ok = false;
    }
    for address in to.iter().map(String::as_str).chain(from.as_ref().map(|f| f.value.as_str())) {
        if address.parse::<lettre::message::Mailbox>().is_err() {
            let loc = to_given.as_ref().map_or(at, Loc::of);
            r.sink.error_at(loc, format!("`{address}` is not an email address"));
            ok = false;
        }
    }
    let timezone = r.get::<String>("timezone").and_then(|tz| match tz.value.parse::<chrono_tz::Tz>() {
        Ok(zone) => Some(zone),
        Err(_) => {
            r.sink.error(&tz, format!("unknown timezone `{}` (an IANA name such as Europe/Berlin)", tz.value));
            None
        }
    });
    let ca = r.get::<String>("ca").map(|c| base.join(c.value));
    ok.then(|| Email {
        host: host.map(|h| h.value).unwrap_or_default(),
        port,
        tls,
        ca,
        username,
        password,
        from: from.map(|f| f.value).unwrap_or_default(),
        to,
        timezone,
    })
}

/// Reads a `type: digest` notifier: the email notifier it sends through
/// (found by `email_named`), its own `to` if given, and how often.
pub fn read_digest(r: &mut FieldReader<'_>, email_named: impl Fn(&str) -> Option<Email>) -> Option<(Email, Duration)> {
    let via =
        r.require::<String>("via", || "a `digest` notifier needs `via`: the email notifier it sends through".into())?;
    let to = r.get::<OneOrMany>("to");
    let every = r.get::<String>("every");
    let Some(mut email) = email_named(&via.value) else {
        r.sink.error(&via, format!("`{}` is not an email notifier", via.value));
        return None;
    };
    if let Some(to) = to {
        email.to = to.value.0;
    }
    let every = match every {
        Some(every) => duration(&every, r.sink)?,
        None => Duration::from_secs(3600),
    };
    Some((email, every))
}
