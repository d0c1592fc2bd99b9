//! Rules: YAML specs → validated, compiled rules.
//!
//! This module does no IO: it is handed file names and texts and returns
//! compiled parts or [`Diagnostic`]s. Parsing is two-step, as in ripgrep:
//! serde reads the spec types in [`spec`] (unknown fields denied; the
//! `detect:` map, whose type chooses its keys, through the field reader in
//! [`fields`]), then validation turns them into types that cannot be
//! invalid, collecting every problem of every rule with its file, line,
//! column and rule id.

pub mod condition;
pub mod fields;
pub mod filter;
pub mod lists;
pub mod spec;
pub mod template;
pub mod yaml;

use std::fmt;
use std::path::PathBuf;

pub use filter::Filter;
pub use lists::Lists;
pub use template::Template;
use yaml::{Loc, Spanned};

/// How urgent an alert is; the two levels on-call distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(text: &str) -> Option<Severity> {
        match text {
            "critical" => Some(Severity::Critical),
            "warning" => Some(Severity::Warning),
            _ => None,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem found in a rule file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub loc: Loc,
    pub rule: Option<String>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file.display(), self.loc)?;
        if let Some(rule) = &self.rule {
            write!(f, "[{rule}] ")?;
        }
        f.write_str(&self.message)
    }
}

/// All problems of a rule set; returned instead of a rule set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diagnostic) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

/// A problem at a position in the current document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub loc: Loc,
    pub message: String,
}

/// Collects the problems of one YAML document, translating positions from
/// the document to its file.
#[derive(Debug)]
pub struct Sink {
    first_line: u32,
    text: String,
    pub problems: Vec<Problem>,
}

impl Sink {
    pub fn new(first_line: u32) -> Sink {
        Sink { first_line, text: String::new(), problems: Vec::new() }
    }

    /// A sink that can also look at the characters of the document.
    pub fn with_text(first_line: u32, text: &str) -> Sink {
        Sink { first_line, text: text.to_owned(), problems: Vec::new() }
    }

    pub fn error<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) {
        self.error_at(Loc::of(at), message);
    }

    /// `loc` is relative to the document.
    pub fn error_at(&mut self, loc: Loc, message: impl Into<String>) {
        let loc = Loc { line: loc.line + self.first_line - 1, column: loc.column };
        self.problems.push(Problem { loc, message: message.into() });
    }

    /// A document position as a file position.
    pub fn to_file(&self, loc: Loc) -> Loc {
        Loc { line: loc.line + self.first_line - 1, column: loc.column }
    }

    /// The character at a document position, if the text was given.
    pub fn char_at(&self, loc: Loc) -> Option<char> {
        let line = self.text.lines().nth(loc.line.checked_sub(1)? as usize)?;
        line.chars().nth(loc.column.checked_sub(1)? as usize)
    }

    pub fn is_empty(&self) -> bool {
        self.problems.is_empty()
    }
}
