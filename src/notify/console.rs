//! Alerts on a console or in a file: one JSON object per line, or one
//! readable line per alert with the severity in colour on a terminal.

use std::io::{self, Write};

use crate::alert::Alert;
use crate::rules::Severity;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Json,
    Text { color: bool },
}

pub fn write(out: &mut impl Write, alert: &Alert, style: Style) -> io::Result<()> {
    match style {
        Style::Json => {
            serde_json::to_writer(&mut *out, alert)?;
            out.write_all(b"\n")
        }
        Style::Text { color } => write_text(out, alert, color),
    }
}

fn write_text(out: &mut impl Write, alert: &Alert, color: bool) -> io::Result<()> {
    let (label, paint) = match alert.severity {
        Severity::Critical => ("CRITICAL", "\x1b[1;31m"),
        Severity::Warning => ("WARNING ", "\x1b[1;33m"),
    };
    let (start, end) = if color { (paint, "\x1b[0m") } else { ("", "") };
    let group = alert.group_text();
    let group = if group.is_empty() { String::new() } else { format!(" [{group}]") };
    let notice = alert.notice_label().map(|l| format!(" ({l})")).unwrap_or_default();
    writeln!(out, "{} {start}{label}{end} {}{group}{notice}: {}", alert.ts, alert.rule, alert.summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::message::tests::alert;

    #[test]
    fn an_update_says_so_on_its_line() {
        let mut update = alert("a1", Severity::Critical, "alice");
        let line = |a: &Alert| {
            let mut out = Vec::new();
            write(&mut out, a, Style::Text { color: false }).unwrap();
            String::from_utf8(out).unwrap()
        };
        assert!(line(&update).contains("auth.failed_login_burst [user=alice]: 5 failed"), "{}", line(&update));
        update.update = 2;
        assert!(line(&update).contains("[user=alice] (update 2): "), "{}", line(&update));
        update.status = crate::alert::Status::Resolved;
        assert!(line(&update).contains("[user=alice] (resolved): "), "{}", line(&update));
    }
}
