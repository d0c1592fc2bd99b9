//! Alert summaries: `"{{count}} failed logins for {{user}} within {{window}}"`.
//!
//! A variable names an alert value (`count`, `events`, `score`, `value`,
//! `window`, `threshold`, `rule`, `title`, `severity`, `first_ts`, `ts`,
//! `top.FIELD`), a group field, or any event field by its dotted path,
//! taken from the event that raised the alert. A value the alert does not
//! have reads `unknown`. Compiled once; rendering writes into one string.

use super::yaml::{Loc, Spanned};
use super::Sink;
use crate::event::{FieldId, Schema};

/// What a variable the alert has no value for reads as.
pub const MISSING: &str = "unknown";

#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
pub enum Part {
    Text(String),
    /// A named value; `field` is its event slot, used when the alert does
    /// not define the name itself.
    Var {
        name: String,
        field: FieldId,
    },
}

impl Template {
    pub fn compile(source: &Spanned<String>, schema: &mut Schema, sink: &mut Sink) -> Template {
        let text = source.value.as_str();
        let mut parts = Vec::new();
        let mut rest = text;
        let mut consumed = 0;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                sink.error_at(Loc::of(source).shifted(consumed + open + 1), "unclosed `{{` in template");
                return Template { parts };
            };
            let name = after[..close].trim();
            if name.is_empty() || name.contains(char::is_whitespace) {
                sink.error_at(Loc::of(source).shifted(consumed + open + 1), format!("invalid variable `{name}`"));
            } else {
                parts.push(Part::Var { name: name.to_owned(), field: schema.intern(name) });
            }
            consumed += open + 2 + close + 2;
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Template { parts }
    }

    /// The names of its variables.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|part| match part {
            Part::Var { name, .. } => Some(name.as_str()),
            Part::Text(_) => None,
        })
    }

    /// Renders with `lookup`, which writes a variable's value into the
    /// string and returns false if it has none (then [`MISSING`] is
    /// written).
    pub fn render(&self, out: &mut String, mut lookup: impl FnMut(&str, FieldId, &mut String) -> bool) {
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Var { name, field } => {
                    if !lookup(name, *field, out) {
                        out.push_str(MISSING);
                    }
                }
            }
        }
    }
}
