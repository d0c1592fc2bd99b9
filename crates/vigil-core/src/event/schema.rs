//! The set of event fields the loaded rules can look at.
//!
//! Rules are compiled before any event is read, so vigil knows every field
//! path a filter, a group key or a template will ask for. The decoder keeps
//! only those and skips the rest of the JSON without allocating; the raw line
//! is kept whole for evidence. A dotted path (`geo.country`) matches both the
//! nested object and a flat key spelled with the dot.

use std::collections::HashMap;

use foldhash::fast::RandomState;

/// Index of a field in a [`Schema`]: a slot in every decoded event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldId(pub(crate) u32);

impl FieldId {
    pub const TS: FieldId = FieldId(0);
    pub const KIND: FieldId = FieldId(1);

    pub(crate) fn index(self) -> usize {
        self.0 as usize
    }
}

/// The JSON type a well-known field must have (`docs/rules.md`, "Events").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    String,
    Number,
    /// A count or a duration: a number, never below zero.
    NonNegative,
    Bool,
}

/// Fields whose type the product specification fixes, per event kind. An
/// event that breaks one is rejected as `wrong_type` rather than silently
/// never matching a rule.
const WELL_KNOWN: &[(&str, &str, Expect)] = &[
    ("login", "user", Expect::String),
    ("login", "outcome", Expect::String),
    ("login", "src_ip", Expect::String),
    ("login", "device_id", Expect::String),
    ("login", "user_agent", Expect::String),
    ("login", "country", Expect::String),
    ("login", "role", Expect::String),
    ("login", "mfa", Expect::Bool),
    ("api_call", "token_id", Expect::String),
    ("api_call", "user", Expect::String),
    ("api_call", "endpoint", Expect::String),
    ("api_call", "method", Expect::String),
    ("api_call", "status", Expect::Number),
    ("api_call", "latency_ms", Expect::NonNegative),
    ("api_call", "src_ip", Expect::String),
    ("api_call", "role", Expect::String),
    ("api_call", "action", Expect::String),
    ("api_call", "token_issued_at", Expect::String),
    ("message_volume", "account", Expect::String),
    ("message_volume", "count", Expect::NonNegative),
    ("message_volume", "interval_s", Expect::NonNegative),
    ("message_volume", "template", Expect::String),
];

#[derive(Debug, Clone, Default)]
pub(crate) struct Trie {
    entries: HashMap<Box<str>, TrieNode, RandomState>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct TrieNode {
    pub(crate) field: Option<FieldId>,
    pub(crate) children: Trie,
}

impl Trie {
    pub(crate) fn get(&self, key: &str) -> Option<&TrieNode> {
        self.entries.get(key)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn node_mut(&mut self, key: &str) -> &mut TrieNode {
        self.entries.entry(Box::from(key)).or_default()
    }
}

/// The typed fields of one event kind.
#[derive(Debug, Clone)]
pub(crate) struct KindChecks {
    pub(crate) kind: &'static str,
    pub(crate) fields: Vec<(FieldId, Expect)>,
}

#[derive(Debug, Clone)]
pub struct Schema {
    paths: Vec<Box<str>>,
    by_path: HashMap<Box<str>, FieldId, RandomState>,
    pub(crate) root: Trie,
    pub(crate) checks: Vec<KindChecks>,
    /// Tables joined into every event after it is parsed, in order.
    pub(crate) joins: Vec<super::enrich::Join>,
}

impl Default for Schema {
    fn default() -> Self {
        Self::new()
    }
}

impl Schema {
    /// A schema with `ts`, `kind` and the well-known typed fields.
    pub fn new() -> Schema {
        let mut schema = Schema {
            paths: Vec::new(),
            by_path: HashMap::default(),
            root: Trie::default(),
            checks: Vec::new(),
            joins: Vec::new(),
        };
        let ts = schema.intern("ts");
        let kind = schema.intern("kind");
        debug_assert_eq!((ts, kind), (FieldId::TS, FieldId::KIND));
        for &(kind, path, expect) in WELL_KNOWN {
            let field = schema.intern(path);
            match schema.checks.iter_mut().find(|c| c.kind == kind) {
                Some(checks) => checks.fields.push((field, expect)),
                None => schema.checks.push(KindChecks { kind, fields: vec![(field, expect)] }),
            }
        }
        schema
    }

    /// The slot for `path`, adding it if no rule asked for it before.
    pub fn intern(&mut self, path: &str) -> FieldId {
        if let Some(&id) = self.by_path.get(path) {
            return id;
        }
        let id = FieldId(u32::try_from(self.paths.len()).unwrap_or(u32::MAX));
        self.paths.push(path.into());
        self.by_path.insert(path.into(), id);
        self.root.node_mut(path).field = Some(id);
        if path.contains('.') {
            let mut node = &mut self.root;
            let mut segments = path.split('.').peekable();
            while let Some(segment) = segments.next() {
                let child = node.node_mut(segment);
                if segments.peek().is_none() {
                    child.field = Some(id);
                }
                node = &mut child.children;
            }
        }
        id
    }

    /// Joins `table` into events for the columns some rule asked for (the
    /// fields `NAME.col` interned so far); false if none is used.
    pub fn join(&mut self, table: std::sync::Arc<super::enrich::Table>) -> bool {
        let outputs: Vec<(usize, FieldId)> = table
            .columns
            .iter()
            .enumerate()
            .filter_map(|(i, column)| self.lookup(&table.field_name(column)).map(|field| (i, field)))
            .collect();
        if outputs.is_empty() {
            return false;
        }
        let key = self.intern(&table.key_field);
        self.joins.push(super::enrich::Join { key, table, outputs });
        true
    }

    pub fn lookup(&self, path: &str) -> Option<FieldId> {
        self.by_path.get(path).copied()
    }

    pub fn path(&self, field: FieldId) -> &str {
        self.paths.get(field.index()).map_or("", |p| p)
    }

    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }
}
