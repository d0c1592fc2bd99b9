//! A rule set: every rule file and list compiled together.
//!
//! This is where a rule's parts meet: metadata and filter (`rules`),
//! detector parameters (`detect`), alert text and limits. Compilation reads
//! no files; the caller hands over names and texts ([`RuleSources`]) and
//! gets a [`RuleSet`] or every problem at once ([`Diagnostics`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::detect::{self, Limits, ParamReader, Params};
use crate::event::enrich::{Format, Table};
use crate::event::{FieldId, Schema};
use crate::rules::fields::{FieldReader, Fields};
use crate::rules::spec::{RuleSpec, TestSpec};
use crate::rules::yaml::{self, Document, Loc, Node, Spanned};
use crate::rules::{filter, Diagnostic, Diagnostics, Filter, Lists, Severity, Sink, Template};
use crate::time::{Span, Timestamp};

/// Rule files, list files and lookup tables as read from disk (or
/// embedded).
#[derive(Debug, Clone, Default)]
pub struct RuleSources {
    pub files: Vec<(PathBuf, String)>,
    pub lists: Vec<(String, String)>,
    /// `rules/lists/NAME.csv` or `.jsonl`: (name, text).
    pub tables: Vec<(String, String)>,
}

impl RuleSources {
    /// A hash of every file's name and text: what tells a reload that the
    /// files changed.
    pub fn fingerprint(&self) -> u64 {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        for (path, text) in &self.files {
            hasher.update(path.to_string_lossy().as_bytes());
            hasher.update(&[0]);
            hasher.update(text.as_bytes());
            hasher.update(&[0]);
        }
        for (name, text) in self.lists.iter().chain(&self.tables) {
            hasher.update(name.as_bytes());
            hasher.update(&[0]);
            hasher.update(text.as_bytes());
            hasher.update(&[0]);
        }
        hasher.digest()
    }
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: Arc<str>,
    pub title: Arc<str>,
    pub description: Option<Arc<str>>,
    pub severity: Severity,
    pub tags: Arc<[String]>,
    pub runbook: Option<Arc<str>>,
    pub filter: Filter,
    pub group_by: Vec<(Arc<str>, FieldId)>,
    pub detector: Params,
    pub summary: Template,
    /// Fields whose most frequent values alerts list (`alert.top`).
    pub top: Vec<(Arc<str>, FieldId)>,
    /// How long the group must be quiet before the incident an alert
    /// opened is over (`None`: every alert stands alone).
    pub hold: Option<Span>,
    pub limits: Limits,
    pub tests: Vec<RuleTest>,
    /// Lists the rule needs filled in (`requires:`).
    pub requires: Vec<String>,
    pub file: PathBuf,
    pub loc: Loc,
    /// A hash of what the detector's state depends on (`filter`, `detect`,
    /// `limits`, `alert.realert`, `alert.evidence`, `alert.top`): a checkpoint or a
    /// reload keeps a rule's state only while it is unchanged, so editing a
    /// title, severity, summary, runbook or test keeps learned baselines.
    pub digest: u64,
}

/// An inline test of a rule: events in, expected alerts out.
#[derive(Debug, Clone)]
pub struct RuleTest {
    pub name: String,
    pub events: Vec<serde_json::Value>,
    /// Each expected alert: fields that must equal the alert's group values
    /// or top-level fields (`count`, `value`, `severity`, ...).
    pub expect: Vec<serde_json::Map<String, serde_json::Value>>,
    /// The rule compiled alone with the test's own `lists:` and `tables:`,
    /// if it gives any.
    pub site: Option<Arc<RuleSet>>,
    pub loc: Loc,
}

#[derive(Debug, Clone)]
pub struct RuleSet {
    /// The rules that run.
    pub rules: Vec<Arc<Rule>>,
    pub schema: Arc<Schema>,
    pub lists: Lists,
    /// Lookup tables, joined into events by the schema where rules use them.
    pub tables: Vec<Arc<Table>>,
    /// Valid rules that do not run until the site gives the data they need.
    pub inert: Vec<Inert>,
}

/// A rule that waits for site data: it compiles, its tests run, but it sees
/// no event, because what it compares with is not there yet (an allowlist
/// with no networks would call every address foreign).
#[derive(Debug, Clone)]
pub struct Inert {
    pub rule: Arc<Rule>,
    /// The empty lists and tables, as files.
    pub missing: Vec<String>,
}

impl Inert {
    pub fn reason(&self) -> String {
        let files = &self.missing;
        format!("it needs site data: {} {} empty", files.join(", "), if files.len() == 1 { "is" } else { "are" })
    }
}

/// The most evidence events an alert may carry.
pub const MAX_EVIDENCE: u32 = 100;
/// The smallest `limits.evidence_bytes`: a few compacted lines.
pub const MIN_EVIDENCE_BYTES: u64 = 16 * 1024;
const DEFAULT_EVIDENCE: u32 = 10;
/// Test events a single `repeat:` may expand to.
const MAX_REPEAT: i64 = 10_000;

impl RuleSet {
    /// Compiles a site's rules. A set without a single rule is refused:
    /// run (or reloaded) it would silently detect nothing.
    pub fn compile(sources: &RuleSources) -> Result<RuleSet, Diagnostics> {
        let rules = RuleSet::compile_with(sources, true)?;
        if rules.rules.is_empty() && rules.inert.is_empty() {
            let file = sources.files.first().map_or_else(|| PathBuf::from("rules"), |(path, _)| path.clone());
            return Err(Diagnostics(vec![Diagnostic {
                file,
                loc: Loc { line: 1, column: 1 },
                rule: None,
                message: format!(
                    "no rules: {} rule file(s), none with an enabled rule; vigil would detect nothing",
                    sources.files.len()
                ),
            }]));
        }
        Ok(rules)
    }

    /// `test_sites`: whether tests that bring their own site data get a
    /// rule set of their own (not for those very sets).
    fn compile_with(sources: &RuleSources, test_sites: bool) -> Result<RuleSet, Diagnostics> {
        let mut lists = Lists::new();
        for (name, text) in &sources.lists {
            lists.insert(name, text);
        }
        let mut schema = Schema::new();
        let mut rules: Vec<Arc<Rule>> = Vec::new();
        let mut diagnostics = Vec::new();
        let mut tables = Vec::new();
        for (name, text) in &sources.tables {
            match Table::parse(name, text) {
                Ok(table) => tables.push(Arc::new(table)),
                Err(err) => diagnostics.push(Diagnostic {
                    file: PathBuf::from(format!("rules/lists/{name}.{}", Format::of(text).extension())),
                    loc: Loc { line: err.line.max(1), column: 1 },
                    rule: None,
                    message: err.message,
                }),
            }
        }
        let names = SiteData { lists: &lists, tables: &tables, sources: test_sites.then_some(sources) };
        let mut seen: HashMap<String, (PathBuf, Loc)> = HashMap::new();
        for (path, text) in &sources.files {
            for doc in yaml::documents(text) {
                let compiled = compile_document(path, &doc, &mut schema, &names, &mut diagnostics);
                let Some(rule) = compiled else { continue };
                if let Some((first_file, first_loc)) = seen.get(&*rule.id) {
                    diagnostics.push(Diagnostic {
                        file: path.clone(),
                        loc: rule.loc,
                        rule: Some(rule.id.to_string()),
                        message: format!("duplicate rule id; first defined at {}:{first_loc}", first_file.display()),
                    });
                    continue;
                }
                seen.insert(rule.id.to_string(), (path.clone(), rule.loc));
                rules.push(Arc::new(rule));
            }
        }
        if !diagnostics.is_empty() {
            diagnostics.sort();
            return Err(Diagnostics(diagnostics));
        }
        let (rules, inert): (Vec<_>, Vec<_>) = rules.into_iter().partition(|rule| names.missing(rule).is_empty());
        let inert = inert.into_iter().map(|rule| Inert { missing: names.missing(&rule), rule }).collect();
        for table in &tables {
            schema.join(table.clone());
        }
        Ok(RuleSet { rules, schema: Arc::new(schema), lists, tables, inert })
    }

    /// Every rule, inert ones included: what `vigil test` tests.
    pub fn all_rules(&self) -> impl Iterator<Item = &Arc<Rule>> {
        self.rules.iter().chain(self.inert.iter().map(|i| &i.rule))
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Rule>> {
        self.rules.iter().find(|r| &*r.id == id)
    }

    /// A rule set running only `rule`, sharing this set's schema: what an
    /// inline test runs against.
    pub fn only(&self, rule: &Arc<Rule>) -> RuleSet {
        RuleSet {
            rules: vec![rule.clone()],
            schema: self.schema.clone(),
            lists: self.lists.clone(),
            tables: self.tables.clone(),
            inert: Vec::new(),
        }
    }

    /// The rules `keep` selects, sharing this set's schema and lists.
    pub fn subset(&self, keep: impl Fn(&Arc<Rule>) -> bool) -> RuleSet {
        let rules = self.rules.iter().filter(|r| keep(r)).cloned().collect();
        RuleSet {
            rules,
            schema: self.schema.clone(),
            lists: self.lists.clone(),
            tables: self.tables.clone(),
            inert: Vec::new(),
        }
    }
}

/// The site's lists and tables, which `requires:` names.
struct SiteData<'a> {
    lists: &'a Lists,
    tables: &'a [Arc<Table>],
    /// What they were read from, for tests that replace some.
    sources: Option<&'a RuleSources>,
}

impl SiteData<'_> {
    fn file(&self, name: &str) -> Option<String> {
        if self.lists.get(name).is_some() {
            Some(format!("rules/lists/{name}.txt"))
        } else {
            let table = self.tables.iter().find(|t| t.name == name)?;
            Some(format!("rules/lists/{name}.{}", table.format.extension()))
        }
    }

    fn is_empty(&self, name: &str) -> bool {
        match self.lists.get(name) {
            Some(list) => list.is_empty(),
            None => self.tables.iter().find(|t| t.name == name).is_none_or(|t| t.is_empty()),
        }
    }

    /// The files of what `rule` requires that hold no entry.
    fn missing(&self, rule: &Rule) -> Vec<String> {
        rule.requires.iter().filter(|name| self.is_empty(name)).filter_map(|name| self.file(name)).collect()
    }
}

/// Compiles one YAML document; `None` if it is disabled or broken (the
/// problems are in `diagnostics`).
fn compile_document(
    path: &Path,
    doc: &Document<'_>,
    schema: &mut Schema,
    site: &SiteData<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Rule> {
    let spec: RuleSpec = match yaml::parse_document_all(doc) {
        Ok(spec) => spec,
        Err(unparsed) => {
            let rule = rule_id_of_broken(doc);
            let mut problems: Vec<(Loc, String)> = unparsed.errors.into_iter().map(|e| (e.loc, e.message)).collect();
            // serde does not look into the `detect:` map: what the rule
            // says there is checked on what parsed.
            if let Some(rest) = unparsed.rest {
                let mut sink = Sink::new(doc.first_line);
                compile_detector(&rest.detect, &mut Schema::new(), site.lists, &mut sink);
                problems.extend(sink.problems.into_iter().map(|p| (p.loc, p.message)));
            }
            diagnostics.extend(problems.into_iter().map(|(loc, message)| Diagnostic {
                file: path.to_owned(),
                loc,
                rule: rule.clone(),
                message,
            }));
            return None;
        }
    };
    let mut sink = Sink::with_text(doc.first_line, doc.text);
    let mut rule = validate(path, doc, &spec, schema, site, &mut sink);
    if let Some(rule) = &mut rule {
        if let Some(sources) = site.sources {
            with_test_sites(path, doc, &spec, sources, site, rule, &mut sink);
        }
    }
    let id = spec.id.value.clone();
    diagnostics.extend(sink.problems.into_iter().map(|p| Diagnostic {
        file: path.to_owned(),
        loc: p.loc,
        rule: Some(id.clone()),
        message: p.message,
    }));
    rule.filter(|_| spec.enabled != Some(false))
}

/// Compiles the rule alone, with the site data a test brings (`lists:`,
/// `tables:`) in place of the site's, for each test that brings some.
fn with_test_sites(
    path: &Path,
    doc: &Document<'_>,
    spec: &RuleSpec,
    sources: &RuleSources,
    site: &SiteData<'_>,
    rule: &mut Rule,
    sink: &mut Sink,
) {
    for (test, compiled) in spec.tests.iter().zip(rule.tests.iter_mut()) {
        let (lists, tables) = (&test.value.lists, &test.value.tables);
        if lists.is_none() && tables.is_none() {
            continue;
        }
        // Blank lines keep the document's line numbers.
        let text = "\n".repeat(doc.first_line.saturating_sub(1) as usize) + doc.text;
        let mut own = RuleSources { files: vec![(path.to_owned(), text)], ..sources.clone() };
        for (name, entries) in lists.iter().flat_map(|l| &l.value) {
            if site.lists.get(name).is_none() {
                if let Some(at) = lists {
                    sink.error(at, format!("the test gives list `{name}`, which the rule set does not have"));
                }
            }
            own.lists.retain(|(n, _)| n != name);
            own.lists.push((name.clone(), entries.join("\n")));
        }
        for (name, csv) in tables.iter().flat_map(|t| &t.value) {
            if !site.tables.iter().any(|t| &t.name == name) {
                if let Some(at) = tables {
                    sink.error(at, format!("the test gives table `{name}`, which the rule set does not have"));
                }
            }
            own.tables.retain(|(n, _)| n != name);
            own.tables.push((name.clone(), csv.clone()));
        }
        match RuleSet::compile_with(&own, false) {
            Ok(set) => compiled.site = Some(Arc::new(set)),
            Err(problems) => {
                // Problems of the site's own files are reported once, by
                // the compile of the whole set.
                let tables_of_test = |d: &Diagnostic| {
                    tables.as_ref().is_some_and(|t| {
                        t.value
                            .iter()
                            .any(|(n, text)| d.file.ends_with(format!("{n}.{}", Format::of(text).extension())))
                    })
                };
                let own: Vec<Diagnostic> =
                    problems.0.into_iter().filter(|d| d.file == path || tables_of_test(d)).collect();
                if !own.is_empty() {
                    let text = Diagnostics(own).to_string();
                    sink.error_at(Loc::of(test), format!("the test's site data does not compile: {text}"));
                }
            }
        }
    }
}

/// The `id:` of a document that did not parse as a rule, for the message.
fn rule_id_of_broken(doc: &Document<'_>) -> Option<String> {
    doc.text.lines().find_map(|line| {
        let rest = line.strip_prefix("id:")?;
        Some(rest.trim().trim_matches(['"', '\'']).to_owned()).filter(|id| !id.is_empty())
    })
}

fn validate(
    path: &Path,
    doc: &Document<'_>,
    spec: &RuleSpec,
    schema: &mut Schema,
    site: &SiteData<'_>,
    sink: &mut Sink,
) -> Option<Rule> {
    let lists = site.lists;
    let id = spec.id.value.trim();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
        sink.error(&spec.id, "a rule id must be non-empty and use only letters, digits, `.`, `_` and `-`");
    }
    if spec.title.value.trim().is_empty() {
        sink.error(&spec.title, "the title must not be empty");
    }
    let severity = Severity::parse(&spec.severity.value);
    if severity.is_none() {
        sink.error(&spec.severity, format!("severity must be `critical` or `warning`, not `{}`", spec.severity.value));
    }
    let filter = filter::compile(&spec.filter, &mut filter::FilterCtx { schema, lists, sink });

    let (group_by, detector) = compile_detector(&spec.detect, schema, lists, sink);

    let alert = &spec.alert.value;
    let mut top = Vec::new();
    if let Some(fields) = &alert.top {
        for name in &fields.value {
            let name = name.trim();
            if name.is_empty() {
                sink.error(fields, "`top` names an empty field");
            } else if top.iter().any(|(n, _): &(Arc<str>, FieldId)| &**n == name) {
                sink.error(fields, format!("`top` names `{name}` twice"));
            } else {
                top.push((Arc::from(name), schema.intern(name)));
            }
        }
    }
    let summary = Template::compile(&alert.summary, schema, sink);
    for name in summary.variables().filter_map(|v| v.strip_prefix("top.")) {
        if !top.iter().any(|(n, _)| &**n == name) {
            sink.error(&alert.summary, format!("`{{{{top.{name}}}}}` needs `{name}` in the alert's `top:` list"));
        }
    }
    let realert = match &alert.realert {
        None => detector.as_ref().map(Params::default_realert),
        Some(text) => match Span::parse(&text.value) {
            Ok(span) => Some(span),
            Err(message) => {
                sink.error(text, message);
                None
            }
        },
    };
    let evidence = alert.evidence.as_ref().map_or(DEFAULT_EVIDENCE, |e| e.value);
    if evidence > MAX_EVIDENCE {
        if let Some(e) = &alert.evidence {
            sink.error(e, format!("`evidence` is capped at {MAX_EVIDENCE} events"));
        }
    }
    let (mut max_groups, mut max_values) = (detect::groups::DEFAULT_MAX_GROUPS, detect::groups::DEFAULT_MAX_VALUES);
    if let Some(limits) = &spec.limits {
        for (value, target) in
            [(&limits.value.max_groups, &mut max_groups), (&limits.value.max_values, &mut max_values)]
        {
            if let Some(value) = value {
                if value.value == 0 {
                    sink.error(value, "limits must be at least 1");
                }
                *target = value.value.max(1) as usize;
            }
        }
    }
    let mut evidence_bytes = detect::evidence::DEFAULT_BUDGET;
    if let Some(bytes) = spec.limits.as_ref().and_then(|l| l.value.evidence_bytes.as_ref()) {
        if bytes.value < MIN_EVIDENCE_BYTES {
            sink.error(bytes, format!("`evidence_bytes` must be at least {MIN_EVIDENCE_BYTES}"));
        }
        evidence_bytes = usize::try_from(bytes.value).unwrap_or(usize::MAX);
    }
    let tests = spec.tests.iter().filter_map(|t| compile_test(t, sink)).collect();
    let mut requires = Vec::new();
    if let Some(names) = &spec.requires {
        for name in &names.value {
            if site.file(name).is_none() {
                sink.error(
                    names,
                    format!("`requires` names `{name}`, but there is no rules/lists/{name}.txt, .csv or .jsonl"),
                );
            }
            requires.push(name.clone());
        }
    }
    if !sink.is_empty() {
        return None;
    }
    let (detector, realert) = (detector?, realert?);
    Some(Rule {
        id: id.into(),
        title: spec.title.value.trim().into(),
        description: spec.description.as_deref().map(|d| d.trim().into()),
        severity: severity?,
        tags: spec.tags.clone().into(),
        runbook: spec.runbook.as_deref().map(Into::into),
        filter,
        group_by,
        hold: detector.incident_hold(realert),
        detector,
        summary,
        top,
        limits: Limits {
            max_groups,
            max_values,
            evidence: evidence.min(MAX_EVIDENCE) as usize,
            evidence_bytes,
            realert,
        },
        tests,
        requires,
        file: path.to_owned(),
        loc: yaml::file_loc(doc, Loc::of(&spec.id)),
        digest: state_digest(doc),
    })
}

/// Reads a rule's `detect:` map: the grouping and the detector.
fn compile_detector(
    detect: &Spanned<Fields>,
    schema: &mut Schema,
    lists: &Lists,
    sink: &mut Sink,
) -> (Vec<(Arc<str>, FieldId)>, Option<Params>) {
    let mut fields = FieldReader::new(&detect.value, Loc::of(detect), sink);
    let mut group_by = Vec::new();
    if let Some(names) = fields.get::<Vec<String>>("group_by") {
        for name in &names.value {
            if name.trim().is_empty() {
                fields.sink.error(&names, "`group_by` names an empty field");
            }
            group_by.push((Arc::from(name.trim()), schema.intern(name.trim())));
        }
    }
    let given = fields.given("type");
    let kind = fields.get::<String>("type");
    let detector = match kind {
        None if given.is_none() => {
            fields.sink.error(detect, format!("`detect` needs a `type`: one of {}", detect::TYPES.join(", ")));
            None
        }
        None => None,
        Some(kind) => match detect::TYPES.iter().find(|t| **t == kind.value) {
            None => {
                let message = format!("unknown detector type `{}` (one of {})", kind.value, detect::TYPES.join(", "));
                fields.sink.error(&kind, message);
                None
            }
            Some(name) => {
                let mut reader = ParamReader::new(fields, name, schema, lists);
                let params = Params::compile(name, &mut reader);
                reader.finish();
                params
            }
        },
    };
    (group_by, detector)
}

/// The hash behind [`Rule::digest`]: the state-bearing sections as
/// canonical JSON (sorted keys, no positions), so moving or reformatting a
/// rule does not change it.
fn state_digest(doc: &Document<'_>) -> u64 {
    let Ok(node) = yaml::parse_document::<Node>(doc) else {
        return xxhash_rust::xxh3::xxh3_64(doc.text.as_bytes());
    };
    let serde_json::Value::Object(mut all) = node.to_json() else {
        return xxhash_rust::xxh3::xxh3_64(doc.text.as_bytes());
    };
    let mut kept = serde_json::Map::new();
    for section in ["filter", "detect", "limits"] {
        if let Some(value) = all.remove(section) {
            kept.insert(section.into(), value);
        }
    }
    if let Some(serde_json::Value::Object(alert)) = all.remove("alert") {
        for field in ["realert", "evidence", "top"] {
            if let Some(value) = alert.get(field) {
                kept.insert(format!("alert.{field}"), value.clone());
            }
        }
    }
    xxhash_rust::xxh3::xxh3_64(serde_json::Value::Object(kept).to_string().as_bytes())
}

/// Expands a test's events: `ts` may be absolute or `+DURATION` after the
/// previous event, and `repeat: N` with `every: DURATION` writes N events.
fn compile_test(test: &Spanned<TestSpec>, sink: &mut Sink) -> Option<RuleTest> {
    let mut events = Vec::new();
    let mut previous: Option<Timestamp> = None;
    let mut ok = true;
    for node in &test.value.events {
        let serde_json::Value::Object(mut event) = node.value.to_json() else {
            sink.error(node, "a test event must be a map");
            ok = false;
            continue;
        };
        let repeat = match event.remove("repeat") {
            None => 1,
            Some(serde_json::Value::Number(n)) if n.as_i64().is_some_and(|n| (1..=MAX_REPEAT).contains(&n)) => {
                n.as_i64().unwrap_or(1)
            }
            Some(_) => {
                sink.error(node, format!("`repeat` must be a whole number from 1 to {MAX_REPEAT}"));
                ok = false;
                continue;
            }
        };
        let every = match event.remove("every") {
            None => Span::from_secs(1),
            Some(serde_json::Value::String(text)) => match Span::parse(&text) {
                Ok(span) => span,
                Err(message) => {
                    sink.error(node, message);
                    ok = false;
                    continue;
                }
            },
            Some(_) => {
                sink.error(node, "`every` must be a duration such as 30s");
                ok = false;
                continue;
            }
        };
        let ts = match event.get("ts") {
            Some(serde_json::Value::String(text)) if text.starts_with('+') => {
                match (previous, Span::parse(&text[1..])) {
                    (Some(prev), Ok(offset)) => Some(prev.saturating_add(offset)),
                    (None, _) => {
                        sink.error(node, "the first test event needs an absolute `ts`");
                        None
                    }
                    (_, Err(message)) => {
                        sink.error(node, message);
                        None
                    }
                }
            }
            Some(serde_json::Value::String(text)) => {
                let parsed = Timestamp::parse_rfc3339(text);
                if parsed.is_none() {
                    sink.error(node, format!("`ts` is not an RFC 3339 time: {text}"));
                }
                parsed
            }
            // Left as written: the test then checks that such an event is rejected.
            _ => {
                events.push(serde_json::Value::Object(event));
                continue;
            }
        };
        let Some(ts) = ts else {
            ok = false;
            continue;
        };
        for i in 0..repeat {
            let at = Timestamp(ts.0.saturating_add(every.0.saturating_mul(i)));
            event.insert("ts".into(), serde_json::Value::String(at.to_string()));
            events.push(serde_json::Value::Object(event.clone()));
            previous = Some(at);
        }
    }
    let mut expect = Vec::new();
    for node in &test.value.expect {
        match &node.value {
            Node::Map(_) => {
                if let serde_json::Value::Object(map) = node.value.to_json() {
                    expect.push(map);
                }
            }
            _ => {
                sink.error(node, "an expected alert is a map of fields, e.g. {user: alice}");
                ok = false;
            }
        }
    }
    ok.then(|| RuleTest { name: test.value.name.clone(), events, expect, site: None, loc: sink.to_file(Loc::of(test)) })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOWLIST: &str = r#"
id: net.outside
title: Outside
severity: critical
requires: [nets]
filter:
  call: {kind: api_call}
  inside: {src_ip|cidr|in_list: nets}
  condition: call and not inside
detect: {type: match}
alert: {summary: "{{src_ip}}"}
tests:
  - name: with the site's networks
    lists: {nets: [10.0.0.0/8]}
    events:
      - {ts: "2026-11-09T10:00:00Z", kind: api_call, src_ip: 10.1.2.3}
      - {ts: "+1s", kind: api_call, src_ip: 8.8.8.8}
    expect:
      - {summary: 8.8.8.8}
"#;

    fn compile(rule: &str, nets: &str) -> Result<RuleSet, Diagnostics> {
        RuleSet::compile(&RuleSources {
            files: vec![("r.yml".into(), rule.to_owned())],
            lists: vec![("nets".into(), nets.to_owned())],
            tables: vec![("directory".into(), "user,timezone\n".to_owned())],
        })
    }

    #[test]
    fn a_rule_whose_site_data_is_missing_is_inert_and_says_why() {
        let rules = compile(ALLOWLIST, "# fill in your networks\n").unwrap();
        assert!(rules.rules.is_empty(), "an empty allowlist would call every address foreign");
        assert_eq!(rules.inert.len(), 1);
        assert_eq!(rules.inert[0].reason(), "it needs site data: rules/lists/nets.txt is empty");
        let filled = compile(ALLOWLIST, "10.0.0.0/8\n").unwrap();
        assert_eq!((filled.rules.len(), filled.inert.len()), (1, 0));
    }

    #[test]
    fn inert_rules_still_run_their_tests_with_the_tests_lists() {
        let rules = compile(ALLOWLIST, "").unwrap();
        let outcomes = crate::ruletest::run_all(&rules, Span::from_secs(60));
        assert_eq!(outcomes.len(), 1);
        assert_eq!(outcomes[0].failure, None);
        // Without the test's lists the same events raise two alerts.
        let rule = &rules.inert[0].rule;
        let bare = RuleTest { site: None, ..rule.tests[0].clone() };
        assert!(crate::ruletest::run_one(&rules, rule, &bare, Span::from_secs(60)).is_err());
    }

    #[test]
    fn detector_parameters_that_cannot_work_are_each_reported() {
        let rule = |detect: &str| {
            format!("id: x.y\ntitle: T\nseverity: warning\nfilter: {{kind: login}}\ndetect: {detect}\nalert: {{summary: s}}\n")
        };
        let messages = |detect: &str| -> Vec<String> {
            compile(&rule(detect), "").unwrap_err().0.into_iter().map(|d| format!("{}: {}", d.loc, d.message)).collect()
        };
        let got = messages("{type: off_hours, hours: '9 to 5', days: [mon, funday], holidays: [xmas]}");
        assert_eq!(got.len(), 3, "each parameter has its own message: {got:?}");
        assert!(got[0].contains("`hours` must look like 08:00-18:00"), "{got:?}");
        assert!(got[1].contains("unknown day `funday`"), "{got:?}");
        assert!(got[2].contains("holiday `xmas` is not a date"), "{got:?}");
        assert!(messages("{type: off_hours, days: []}")[0].contains("`days` names no day"));
        assert!(messages("{type: off_hours, hours: 09:00-09:00}")[0].contains("is empty"));
        let spike = messages("{type: spike, group_by: [user], interval: 1h, history: 100000000}");
        assert!(spike[0].contains("`history` is capped at 10000 intervals"), "{spike:?}");
    }

    #[test]
    fn each_detector_type_takes_its_own_parameters_and_reports_the_rest_where_written() {
        let rule = |detect: &str| {
            format!("id: x.y\ntitle: T\nseverity: warning\nfilter: {{kind: login}}\ndetect: {detect}\nalert: {{summary: s}}\n")
        };
        let messages = |detect: &str| -> Vec<String> {
            compile(&rule(detect), "").unwrap_err().0.into_iter().map(|d| format!("{}: {}", d.loc, d.message)).collect()
        };
        // A parameter of another type, at its value; a misspelling, at its key.
        assert_eq!(
            messages("{type: threshold, window: 5m, threshold: 3, field: user, treshold: 4}"),
            [
                "5:60: `field` is not a parameter of `threshold` detectors",
                "5:66: unknown field `treshold`: did you mean `threshold`?"
            ]
        );
        // A misspelt required parameter is reported once, as the misspelling.
        assert_eq!(
            messages("{type: distinct, windw: 5m, threshold: 3, field: user}"),
            ["5:26: unknown field `windw`: did you mean `window`?"]
        );
        // A bad time zone does not make the other parameters unknown.
        assert_eq!(
            messages("{type: off_hours, timezone: Mars/Base, hours: 09:00-17:00}"),
            ["5:37: unknown time zone `Mars/Base` (use an IANA name such as Europe/Berlin)"]
        );
        // A sequence's steps are maps of their own, read the same way.
        let steps = "{type: sequence, window: 5m, steps: [{filter: {kind: a}, cout: 2}, {name: b}]}";
        assert_eq!(
            messages(steps),
            ["5:66: unknown field `cout`: did you mean `count`?", "5:76: each step of a `sequence` needs `filter`"]
        );
        assert_eq!(messages("{type: match, window: [5m]}"), ["5:31: `window` is not a parameter of `match` detectors"]);
    }

    #[test]
    fn requiring_or_giving_an_unknown_list_is_an_error() {
        let wrong = ALLOWLIST.replace("requires: [nets]", "requires: [networks]");
        let err = compile(&wrong, "10.0.0.0/8").unwrap_err();
        assert!(err.0.iter().any(|d| d.message.contains("no rules/lists/networks.txt, .csv or .jsonl")), "{err:?}");
        let wrong = ALLOWLIST.replace("lists: {nets:", "lists: {netz:");
        let err = compile(&wrong, "10.0.0.0/8").unwrap_err();
        assert!(err.0.iter().any(|d| d.message.contains("list `netz`")), "{err:?}");
    }

    #[test]
    fn tables_join_into_filters_groups_templates_and_replace_what_events_claim() {
        let rule = r#"
id: t.office
title: By office
severity: warning
filter: {kind: login, directory.office: bangalore}
detect: {type: match, group_by: [directory.office]}
alert: {summary: "{{user}} in {{directory.office}} ({{directory.timezone}})"}
"#;
        let rules = RuleSet::compile(&RuleSources {
            files: vec![("r.yml".into(), rule.into())],
            tables: vec![(
                "directory".into(),
                "user,office,timezone\nRahul@acme.example,bangalore,Asia/Kolkata\nanna@acme.example,berlin,Europe/Berlin\n".into(),
            )],
            ..RuleSources::default()
        })
        .unwrap();
        let mut pipeline = crate::pipeline::Pipeline::new(&rules, Span::from_secs(60), 1 << 20);
        for line in [
            r#"{"ts":"2026-11-09T04:00:00Z","kind":"login","user":"rahul@ACME.example"}"#,
            r#"{"ts":"2026-11-09T04:01:00Z","kind":"login","user":"anna@acme.example"}"#,
            // Not in the directory: what the event claims is dropped.
            r#"{"ts":"2026-11-09T04:02:00Z","kind":"login","user":"mallory","directory":{"office":"bangalore"}}"#,
            r#"{"ts":"2026-11-09T04:03:00Z","kind":"login","user":"eve","directory.office":"bangalore"}"#,
        ] {
            let _ = pipeline.feed(line.as_bytes());
        }
        let alerts: Vec<_> = pipeline.drain_alerts().collect();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].summary, "rahul@ACME.example in bangalore (Asia/Kolkata)");
        assert_eq!(alerts[0].group_value("directory.office"), Some("bangalore"));
    }

    #[test]
    fn a_table_nobody_uses_is_not_joined_and_a_broken_one_is_an_error() {
        let sources = |csv: &str| RuleSources {
            files: vec![("r.yml".into(), ALLOWLIST.into())],
            lists: vec![("nets".into(), "10.0.0.0/8".into())],
            tables: vec![("directory".into(), csv.into())],
        };
        let rules = RuleSet::compile(&sources("user,tz\nanna,UTC\n")).unwrap();
        assert!(rules.schema.joins.is_empty());
        let err = RuleSet::compile(&sources("user,tz\nanna,UTC\nANNA,UTC\n")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "rules/lists/directory.csv:3:1: table `directory`: key `anna` again (first on line 2)"
        );
    }
}
