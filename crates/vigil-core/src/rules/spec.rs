//! The rule file format as serde reads it. Validation lives beside the
//! compiled types; these structs only mirror the YAML, with positions.
//! See `docs/rules.md` for the reference.

use serde::Deserialize;

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
    pub detect: Spanned<DetectSpec>,
    pub alert: Spanned<AlertSpec>,
    #[serde(default)]
    pub limits: Option<Spanned<LimitsSpec>>,
    #[serde(default)]
    pub tests: Vec<Spanned<TestSpec>>,
}

/// Every detector's parameters in one flat map; each detector type says
/// which it takes, and a parameter given to a type that ignores it is an
/// error rather than a silent no-op.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectSpec {
    #[serde(rename = "type")]
    pub kind: Option<Spanned<String>>,
    pub group_by: Option<Spanned<Vec<String>>>,
    pub window: Option<Spanned<String>>,
    pub threshold: Option<Spanned<f64>>,
    pub sum: Option<Spanned<String>>,
    pub field: Option<Spanned<String>>,
    #[serde(rename = "match")]
    pub sub_filter: Option<Spanned<Node>>,
    pub ratio: Option<Spanned<f64>>,
    pub min_events: Option<Spanned<u64>>,
    pub interval: Option<Spanned<String>>,
    pub method: Option<Spanned<String>>,
    pub p_value: Option<Spanned<f64>>,
    pub min_history: Option<Spanned<u32>>,
    pub history: Option<Spanned<u32>>,
    pub min_value: Option<Spanned<f64>>,
    pub direction: Option<Spanned<String>>,
    pub alpha: Option<Spanned<f64>>,
    pub season: Option<Spanned<String>>,
    pub empty: Option<Spanned<String>>,
    pub noise: Option<Spanned<String>>,
    pub learning: Option<Spanned<String>>,
    pub forget_after: Option<Spanned<String>>,
    pub prefix: Option<Spanned<u8>>,
    pub prefix_v6: Option<Spanned<u8>>,
    pub common_in: Option<Spanned<u32>>,
    pub learn_gaps: Option<Spanned<String>>,
    pub also_new: Option<Spanned<OneOrMany>>,
    pub mode: Option<Spanned<String>>,
    pub timezone: Option<Spanned<String>>,
    pub timezone_field: Option<Spanned<OneOrMany>>,
    pub hours: Option<Spanned<String>>,
    pub days: Option<Spanned<Vec<String>>>,
    pub holidays: Option<Spanned<Vec<String>>>,
    pub holidays_list: Option<Spanned<String>>,
    pub min_share: Option<Spanned<f64>>,
    pub tolerance: Option<Spanned<u32>>,
    pub day_tolerance: Option<Spanned<u32>>,
    pub span_gap: Option<Spanned<String>>,
    pub tolerance_after: Option<Spanned<u32>>,
    pub steps: Option<Spanned<Vec<Spanned<StepSpec>>>>,
}

/// A value or a list of them (`timezone_field: tz` or `[a, b]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn items(&self) -> &[String] {
        match self {
            OneOrMany::One(one) => std::slice::from_ref(one),
            OneOrMany::Many(many) => many,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    pub name: Option<String>,
    pub filter: Spanned<Node>,
    #[serde(default)]
    pub count: Option<Spanned<u32>>,
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
