//! Email over SMTP (lettre): STARTTLS or implicit TLS, AUTH, a plain-text
//! and an HTML part. An alert's mail holds what on-call needs without
//! opening a console: the summary, the group, the time in UTC and in the
//! configured timezone, count or score, the rule's description and runbook,
//! and the evidence events as a table.

pub mod config;

use std::fmt::Write as _;

use anyhow::{Context, Result};
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::message::{evidence_table, times, Descriptions, Kind, Message};
use super::sink::Failure;
use crate::alert::Alert;
use crate::config::DeliveryPolicy;
pub use config::{Email, SmtpTls};

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    timezone: Option<chrono_tz::Tz>,
    descriptions: Descriptions,
}

impl Mailer {
    /// Builds the transport; reads the credentials and the CA file now, so
    /// a missing secret stops vigil at start-up rather than at the first alert.
    pub fn new(email: &Email, policy: &DeliveryPolicy, descriptions: Descriptions) -> Result<Mailer> {
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&email.host)
            .port(email.port)
            .timeout(Some(policy.timeout));
        if email.tls != SmtpTls::None {
            let mut params = TlsParameters::builder(email.host.clone());
            if let Some(ca) = &email.ca {
                let pem = std::fs::read(ca).with_context(|| format!("reading the CA file {}", ca.display()))?;
                let cert = Certificate::from_pem(&pem)
                    .with_context(|| format!("{} is not a PEM certificate", ca.display()))?;
                params = params.add_root_certificate(cert);
            }
            let params = params.build_rustls().context("setting up TLS")?;
            builder = builder.tls(match email.tls {
                SmtpTls::Tls => Tls::Wrapper(params),
                _ => Tls::Required(params),
            });
        }
        if let (Some(user), Some(password)) = (&email.username, &email.password) {
            let user = user.read().context("the SMTP user name")?;
            let password = password.read().context("the SMTP password")?;
            builder = builder.credentials(Credentials::new(user, password));
        }
        let from = email.from.parse().with_context(|| format!("the sender {}", email.from))?;
        let to = email
            .to
            .iter()
            .map(|t| t.parse().with_context(|| format!("the recipient {t}")))
            .collect::<Result<Vec<Mailbox>>>()?;
        Ok(Mailer { transport: builder.build(), from, to, timezone: email.timezone, descriptions })
    }

    pub async fn send(&self, message: &Message) -> Result<(), Failure> {
        let mail = self.compose(message).map_err(|err| Failure::Permanent(format!("building the mail: {err}")))?;
        match self.transport.send(mail).await {
            Ok(_) => Ok(()),
            Err(err) => Err(classify(err.is_permanent(), err.status().map(u16::from), err.to_string())),
        }
    }

    pub fn compose(&self, message: &Message) -> Result<lettre::Message, lettre::error::Error> {
        let mut builder = lettre::Message::builder()
            .from(self.from.clone())
            .subject(message.subject())
            .message_id(Some(format!("<{}@vigil>", message.id)));
        // An update joins the thread of its alert's first mail.
        if let (Kind::Single, Some(alert)) = (message.kind, message.alerts.first()) {
            if alert.update > 0 {
                let first = format!("<{}@vigil>", alert.id);
                builder = builder.in_reply_to(first.clone()).references(first);
            }
        }
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let text = self.text(message);
        let html = self.html(message);
        builder.multipart(
            MultiPart::alternative()
                .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(text))
                .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(html)),
        )
    }

    fn text(&self, message: &Message) -> String {
        let mut out = String::new();
        match message.kind {
            Kind::Single => {
                if let Some(alert) = message.alerts.first() {
                    self.alert_text(&mut out, alert);
                }
            }
            _ => {
                let _ = writeln!(out, "{}\n", message.subject());
                for line in message.lines() {
                    let _ = writeln!(out, "- {line}");
                }
            }
        }
        out.push_str("\n-- \nSent by vigil\n");
        out
    }

    fn alert_text(&self, out: &mut String, alert: &Alert) {
        let _ = writeln!(out, "{}\n", alert.summary);
        let _ = writeln!(out, "Rule:      {} ({})", alert.title, alert.rule);
        let _ = writeln!(out, "Severity:  {}", alert.severity.as_str());
        for (name, value) in &alert.group {
            let _ = writeln!(out, "{:<10} {value}", format!("{name}:"));
        }
        let _ = writeln!(out, "Time:      {}", times(alert.ts, self.timezone));
        if alert.first_ts != alert.ts {
            let _ = writeln!(out, "First:     {}", times(alert.first_ts, self.timezone));
        }
        for (label, value) in figures(alert) {
            let _ = writeln!(out, "{:<10} {value}", format!("{label}:"));
        }
        if let Some(runbook) = &alert.runbook {
            let _ = writeln!(out, "Runbook:   {runbook}");
        }
        if let Some(description) = self.descriptions.get(&alert.rule) {
            let _ = writeln!(out, "\n{description}");
        }
        let (columns, rows) = evidence_table(alert);
        if !rows.is_empty() {
            let _ = writeln!(out, "\nEvidence ({} events):", rows.len());
            let widths: Vec<usize> = columns
                .iter()
                .enumerate()
                .map(|(i, c)| rows.iter().map(|r| r[i].chars().count()).chain([c.len()]).max().unwrap_or(0).min(40))
                .collect();
            let line = |cells: &[String]| {
                let padded: Vec<String> = cells
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{:<w$}", c.chars().take(40).collect::<String>()))
                    .collect();
                padded.join("  ").trim_end().to_owned()
            };
            let _ = writeln!(out, "{}", line(&columns));
            for row in &rows {
                let _ = writeln!(out, "{}", line(row));
            }
        }
    }

    fn html(&self, message: &Message) -> String {
        let mut out = String::from(
            "<!DOCTYPE html><html><body style=\"font-family:sans-serif\">\
             <style>table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;\
             text-align:left;font-size:13px}</style>",
        );
        match (message.kind, message.alerts.first()) {
            (Kind::Single, Some(alert)) => self.alert_html(&mut out, alert),
            _ => {
                let _ = write!(out, "<h2>{}</h2><table><tr><th>time</th><th>severity</th><th>rule</th><th>group</th><th>summary</th></tr>", escape(&message.subject()));
                for alert in &message.alerts {
                    let _ = write!(
                        out,
                        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        escape(&times(alert.ts, self.timezone)),
                        alert.severity.as_str(),
                        escape(&alert.rule),
                        escape(&alert.group_text()),
                        escape(&alert.summary)
                    );
                }
                out.push_str("</table>");
                if !message.unlisted.is_empty() {
                    out.push_str("<p>Not listed:</p><ul>");
                    for count in &message.unlisted {
                        let _ = write!(
                            out,
                            "<li>{} × {} ({})</li>",
                            count.count,
                            escape(&count.title),
                            escape(&count.rule)
                        );
                    }
                    out.push_str("</ul>");
                }
            }
        }
        out.push_str("<p style=\"color:#888\">Sent by vigil</p></body></html>");
        out
    }

    fn alert_html(&self, out: &mut String, alert: &Alert) {
        let color = match alert.severity {
            crate::rules::Severity::Critical => "#b00020",
            crate::rules::Severity::Warning => "#b26a00",
        };
        let _ = write!(
            out,
            "<h2 style=\"color:{color}\">{}</h2><p>{}</p><table>",
            escape(&alert.title),
            escape(&alert.summary)
        );
        let mut row = |label: &str, value: &str| {
            let _ = write!(out, "<tr><th>{}</th><td>{}</td></tr>", escape(label), escape(value));
        };
        row("rule", &alert.rule);
        row("severity", alert.severity.as_str());
        for (name, value) in &alert.group {
            row(name, value);
        }
        row("time", &times(alert.ts, self.timezone));
        if alert.first_ts != alert.ts {
            row("first", &times(alert.first_ts, self.timezone));
        }
        for (label, value) in figures(alert) {
            row(label, &value);
        }
        out.push_str("</table>");
        if let Some(runbook) = &alert.runbook {
            let _ = write!(out, "<p><a href=\"{0}\">Runbook: {0}</a></p>", escape(runbook));
        }
        if let Some(description) = self.descriptions.get(&alert.rule) {
            let _ = write!(out, "<p>{}</p>", escape(&description));
        }
        let (columns, rows) = evidence_table(alert);
        if !rows.is_empty() {
            let _ = write!(out, "<h3>Evidence ({} events)</h3><table><tr>", rows.len());
            for column in &columns {
                let _ = write!(out, "<th>{}</th>", escape(column));
            }
            out.push_str("</tr>");
            for cells in &rows {
                out.push_str("<tr>");
                for cell in cells {
                    let _ = write!(out, "<td>{}</td>", escape(cell));
                }
                out.push_str("</tr>");
            }
            out.push_str("</table>");
        }
    }
}

/// A 5xx reply about the message (a recipient or the content refused)
/// will not change by retrying. A refused login (530, 534, 535, 538) is the
/// server or vigil's configuration, not the alert: like a server that is
/// down, it delays the alerts until it is fixed, and they are not dropped.
fn classify(permanent: bool, code: Option<u16>, detail: String) -> Failure {
    match code {
        Some(530 | 534 | 535 | 538) => Failure::Retry(detail),
        _ if permanent => Failure::Permanent(detail),
        _ => Failure::Retry(detail),
    }
}

/// Count, score and the other figures an alert may carry.
fn figures(alert: &Alert) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(count) = alert.count {
        out.push(("Count", count.to_string()));
    }
    if let Some(events) = alert.events {
        out.push(("Events", events.to_string()));
    }
    for (field, values) in &alert.top {
        let listed: Vec<String> = values.iter().map(|(v, n)| format!("{v} ({n})")).collect();
        if !listed.is_empty() {
            out.push(("Top", format!("{field}: {}", listed.join(", "))));
        }
    }
    if let Some(score) = alert.score {
        out.push(("Score", score.to_string()));
    }
    if let Some(value) = &alert.value {
        out.push(("Value", value.clone()));
    }
    if let Some(observed) = alert.observed {
        out.push(("Observed", observed.to_string()));
    }
    if let Some(baseline) = alert.baseline {
        out.push(("Baseline", baseline.to_string()));
    }
    out
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use super::*;
    use crate::notify::message::tests::alert;
    use crate::rules::Severity;

    fn mailer() -> Mailer {
        let email = Email {
            host: "localhost".into(),
            port: 25,
            tls: SmtpTls::None,
            ca: None,
            username: None,
            password: None,
            from: "vigil@corp.example".into(),
            to: vec!["oncall@corp.example".into(), "soc@corp.example".into()],
            timezone: "Europe/Berlin".parse().ok(),
        };
        let descriptions = Arc::new(crate::notify::message::RuleDescriptions::from_map(HashMap::from([(
            Arc::from("auth.failed_login_burst"),
            Arc::from("Many failed logins <in> a short time."),
        )])));
        Mailer::new(&email, &DeliveryPolicy::default(), descriptions).unwrap()
    }

    #[test]
    fn a_refused_login_is_retried_a_refused_recipient_is_not() {
        assert!(matches!(classify(true, Some(535), String::new()), Failure::Retry(_)));
        assert!(matches!(classify(true, Some(550), String::new()), Failure::Permanent(_)));
        assert!(matches!(classify(true, Some(554), String::new()), Failure::Permanent(_)));
        assert!(matches!(classify(false, Some(451), String::new()), Failure::Retry(_)));
        assert!(matches!(classify(false, None, String::new()), Failure::Retry(_)));
    }

    #[test]
    fn an_update_joins_the_thread_of_its_alert_and_tells_the_incident() {
        let mailer = mailer();
        let mut update = alert("a1", Severity::Critical, "alice@corp.example");
        update.update = 1;
        update.events = Some(150);
        update.top = vec![("src_ip".into(), vec![("203.0.113.5".into(), 150)])];
        let message = Message::single(update);
        let mail = String::from_utf8(mailer.compose(&message).unwrap().formatted()).unwrap();
        assert!(mail.contains("Message-ID: <a1.1@vigil>"), "{mail}");
        assert!(mail.contains("In-Reply-To: <a1@vigil>") && mail.contains("References: <a1@vigil>"), "{mail}");
        assert!(mail.contains("(update 1)"), "{mail}");
        let text = mailer.text(&message);
        assert!(text.contains("Events:    150") && text.contains("Top:       src_ip: 203.0.113.5 (150)"), "{text}");
        let first = String::from_utf8(
            mailer.compose(&Message::single(alert("a1", Severity::Critical, "alice"))).unwrap().formatted(),
        )
        .unwrap();
        assert!(!first.contains("In-Reply-To"), "{first}");
    }

    #[test]
    fn a_mail_has_both_parts_with_everything_on_call_needs() {
        let mailer = mailer();
        let message = Message::single(alert("a1", Severity::Critical, "alice@corp.example"));
        let mail = String::from_utf8(mailer.compose(&message).unwrap().formatted()).unwrap();
        assert!(mail.contains("Subject: [CRITICAL] Multiple failed logins: alice@corp.example"), "{mail}");
        assert!(mail.contains("To: oncall@corp.example, soc@corp.example"), "{mail}");
        assert!(mail.contains("multipart/alternative"), "{mail}");
        let text = mailer.text(&message);
        for needle in [
            "5 failed logins for alice@corp.example",
            "user:      alice@corp.example",
            "2026-11-23 10:00:00 UTC (2026-11-23 11:00:00 Europe/Berlin)",
            "Count:     5",
            "Runbook:   https://runbooks.example/auth",
            "Many failed logins <in> a short time.",
            "Evidence (2 events):",
            "203.0.113.9",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        let html = mailer.html(&message);
        assert!(html.contains("Many failed logins &lt;in&gt; a short time."), "{html}");
        assert!(html.contains("<th>src_ip</th>"), "{html}");
    }
}
