//! The rule file format as serde reads it. Validation lives beside the
//! compiled types; these structs only mirror the YAML, with positions.
//! See `docs/rules.md` for the reference.

use serde::Deserialize;

use super::fields::Fields;
use super::yaml::{Node, Spanned};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub id: Spanned<String>,
    pub title: Spanned<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub severity: Spanned<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub runbook: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Site data the rule means nothing without: lists that must hold
    /// entries. Until they do, the rule is inert.
    #[serde(default)]
    pub requires: Option<Spanned<Vec<String>>>,
    pub filter: Spanned<Node>,
    /// The detector's flat map: each type takes its own parameters
    /// (see [`super::fields`]).
    pub detect: Spanned<Fields>,
    pub alert: Spanned<AlertSpec>,
    #[serde(default)]
    pub limits: Option<Spanned<LimitsSpec>>,
    #[serde(default)]
    pub tests: Vec<Spanned<TestSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSpec {
    pub summary: Spanned<String>,
    #[serde(default)]
    pub realert: Option<Spanned<String>>,
    #[serde(default)]
    pub evidence: Option<Spanned<u32>>,
    /// Fields whose most frequent values the alert lists, with counts, over
    /// the incident's events (`{{top.src_ip}}`).
    #[serde(default)]
    pub top: Option<Spanned<Vec<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    #[serde(default)]
    pub max_groups: Option<Spanned<u32>>,
    #[serde(default)]
    pub max_values: Option<Spanned<u32>>,
    /// Evidence bytes the rule's groups share.
    #[serde(default)]
    pub evidence_bytes: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    pub name: String,
    pub events: Vec<Spanned<Node>>,
    #[serde(default)]
    pub expect: Vec<Spanned<Node>>,
    /// List contents the test runs with, in place of the site's.
    #[serde(default)]
    pub lists: Option<Spanned<std::collections::BTreeMap<String, Vec<String>>>>,
    /// Lookup tables (CSV text) the test runs with, in place of the site's.
    #[serde(default)]
    pub tables: Option<Spanned<std::collections::BTreeMap<String, String>>>,
}
