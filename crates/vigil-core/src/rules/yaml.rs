//! YAML with positions.
//!
//! Every error vigil reports about a rule names its file, line and column,
//! so rule specs hold [`Spanned`] values, and the free-form parts (filters,
//! test events) are read into [`Node`], a YAML tree in which every value
//! knows where it was written. A file may hold several rules separated by
//! `---`; each document is parsed on its own so that one broken rule does
//! not hide the errors of the others.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
pub use serde_saphyr::Spanned;

/// A line and column, both 1-based, in the file being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Loc {
    pub line: u32,
    pub column: u32,
}

impl Loc {
    pub fn of<T>(spanned: &Spanned<T>) -> Loc {
        Loc { line: spanned.referenced.line() as u32, column: spanned.referenced.column() as u32 }
    }

    pub fn of_location(location: &serde_saphyr::Location) -> Loc {
        Loc { line: location.line() as u32, column: location.column() as u32 }
    }

    /// The position `offset` characters further on the same line.
    pub fn shifted(self, offset: usize) -> Loc {
        Loc { line: self.line, column: self.column + offset as u32 }
    }

    fn below(self, lines: u32) -> Loc {
        Loc { line: self.line + lines, column: self.column }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A YAML value whose children carry their positions.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(Spanned<Key>, Spanned<Node>)>),
}

/// A mapping key; YAML allows scalars of any type there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key(pub String);

impl Node {
    pub fn kind_name(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Int(_) | Node::Float(_) => "a number",
            Node::Str(_) => "a string",
            Node::Seq(_) => "a list",
            Node::Map(_) => "a map",
        }
    }

    /// The node as JSON, for test events written in YAML.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Node::Null => J::Null,
            Node::Bool(b) => J::Bool(*b),
            Node::Int(i) => J::from(*i),
            Node::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Node::Str(s) => J::String(s.clone()),
            Node::Seq(items) => J::Array(items.iter().map(|i| i.value.to_json()).collect()),
            Node::Map(entries) => {
                J::Object(entries.iter().map(|(k, v)| (k.value.0.clone(), v.value.to_json())).collect())
            }
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(i64::try_from(v).map_or(Node::Float(v as f64), Node::Int))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Node>>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Key>>()? {
            let value = map.next_value::<Spanned<Node>>()?;
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Key, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar key")
            }
            fn visit_str<E>(self, v: &str) -> Result<Key, E> {
                Ok(Key(v.to_owned()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_unit<E>(self) -> Result<Key, E> {
                Ok(Key("null".to_owned()))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}

/// One YAML document of a file, with the line it starts on.
pub struct Document<'a> {
    pub text: &'a str,
    pub first_line: u32,
}

/// Splits a file at `---` document markers (at the start of a line, as
/// YAML requires), so each document is parsed, and fails, on its own.
pub fn documents(text: &str) -> Vec<Document<'_>> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end();
        let is_marker = bare == "---" || bare.starts_with("--- ") || bare == "...";
        if is_marker {
            docs.push(Document { text: &text[start..offset], first_line: start_line });
            start = offset + line.len();
            start_line = index as u32 + 2;
        }
        offset += line.len();
    }
    docs.push(Document { text: &text[start..], first_line: start_line });
    docs.retain(|doc| {
        doc.text.lines().any(|l| {
            let l = l.trim();
            !l.is_empty() && !l.starts_with('#')
        })
    });
    docs
}

/// A YAML error in a document, with its position in the whole file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub loc: Loc,
    pub message: String,
}

/// Parses one document into `T`, with positions relative to the file.
pub fn parse_document<T: for<'de> Deserialize<'de>>(doc: &Document<'_>) -> Result<T, YamlError> {
    // YAML 1.2 core schema: only `true`/`false` are booleans, so that
    // `country: NO` (Norway) or `answer: yes` stay the strings they read as.
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            // Rules nest a few levels; each level costs stack in the
            // recursive descent, and reloads run on 2 MiB threads.
            max_depth: 32,
            max_nodes: 200_000,
        },
        strict_booleans: true,
    };
    serde_saphyr::from_str_with_options::<T>(doc.text, options).map_err(|err| {
        let loc = err.location().map(|l| Loc::of_location(&l)).unwrap_or(Loc { line: 1, column: 1 });
        YamlError { loc: loc.below(doc.first_line - 1), message: plain_message(&err) }
    })
}

/// The most errors [`parse_document_all`] reports for one document.
const MAX_ERRORS: usize = 20;
/// The bytes [`parse_document_all`] may read again to find more errors: a
/// rule of some kilobytes gets all its errors, a megabyte of generated
/// YAML its first ones, quickly.
const RECOVERY_BYTES: usize = 1 << 20;

/// Parses one document into `T`; on failure, reports every error serde
/// finds rather than the first only.
///
/// serde stops at the first error, so the document is parsed again with
/// the entry that held it blanked out (its lines emptied, so positions
/// stay true), until it parses, up to `MAX_ERRORS` errors and
/// `RECOVERY_BYTES` read again. A "missing field"
/// that only the blanking caused is not reported. Only block-style entries
/// (a key first on its line) are blanked: an error inside a flow mapping
/// blanks the block entry around it. A YAML syntax error is reported alone,
/// since nothing after it reads reliably.
pub fn parse_document_all<T: for<'de> Deserialize<'de>>(doc: &Document<'_>) -> Result<T, Unparsed<T>> {
    let first = match parse_document::<T>(doc) {
        Ok(value) => return Ok(value),
        Err(err) => err,
    };
    let mut reread = doc.text.len();
    if reread > RECOVERY_BYTES {
        return Err(Unparsed { errors: vec![first], rest: None });
    }
    let Ok(tree) = parse_document::<Spanned<Node>>(&Document { text: doc.text, first_line: 1 }) else {
        return Err(Unparsed { errors: vec![first], rest: None });
    };
    let mut lines: Vec<&str> = doc.text.split_inclusive('\n').collect();
    let mut entries = Vec::new();
    outline(&tree.value, None, lines.len().max(1) as u32, &lines, &mut entries);
    let mut blanked: Vec<usize> = Vec::new();
    let mut errors = Vec::new();
    let mut rest = None;
    let mut err = first;
    loop {
        let line = (err.loc.line + 1).saturating_sub(doc.first_line);
        let innermost = entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.first_line <= line && line <= e.last_line)
            .max_by_key(|(_, e)| e.depth)
            .map(|(index, _)| index);
        let target = match err.message.strip_prefix("missing field `").and_then(|m| m.strip_suffix('`')) {
            Some(field) => {
                // Reported at the last key of the mapping that lacks it:
                // the entry holding that mapping goes next.
                let column = err.loc.column;
                let key = entries.iter().position(|e| e.first_line == line && e.column == column && !e.key.is_empty());
                let parent = key.or(innermost).and_then(|i| entries[i].parent);
                // Caused by the recovery, or by a misspelling already
                // reported (`filtr` for `filter`).
                let caused = blanked.iter().any(|&b| entries[b].parent == parent && near(&entries[b].key, field));
                if !caused {
                    // Named where the mapping starts: its key, its list
                    // item, or the document's first key.
                    let start = parent.or((!entries.is_empty()).then_some(0)).map(|i| &entries[i]);
                    if let Some(start) = start {
                        err.loc = Loc { line: start.first_line + doc.first_line - 1, column: start.column };
                    }
                    errors.push(err);
                }
                parent
            }
            None => {
                errors.push(err);
                innermost
            }
        };
        let Some(target) = target.and_then(|t| blank_target(&entries, t, &blanked)) else { break };
        for line in entries[target].first_line..=entries[target].last_line {
            if let Some(text) = lines.get_mut((line as usize).wrapping_sub(1)) {
                *text = if text.ends_with('\n') { "\n" } else { "" };
            }
        }
        blanked.push(target);
        reread += doc.text.len();
        if errors.len() >= MAX_ERRORS || reread > RECOVERY_BYTES {
            break;
        }
        let text = lines.concat();
        match parse_document::<T>(&Document { text: &text, first_line: doc.first_line }) {
            Ok(value) => {
                rest = Some(value);
                break;
            }
            Err(next) => err = next,
        }
    }
    errors.sort_by_key(|e| e.loc);
    errors.dedup();
    Err(Unparsed { errors, rest })
}

/// A document [`parse_document_all`] could not read.
pub struct Unparsed<T> {
    pub errors: Vec<YamlError>,
    /// What the document read as once the entries holding the errors were
    /// blanked out, if it then parsed: the parts serde does not check (the
    /// [`super::fields::Fields`] maps) can still be checked in it.
    pub rest: Option<T>,
}

/// A mapping entry or a list item of a document, and the lines it spans.
struct Entry {
    /// The key; empty for a list item.
    key: String,
    parent: Option<usize>,
    depth: u32,
    first_line: u32,
    column: u32,
    last_line: u32,
    /// The entry starts its line (block style: only indentation, or a
    /// list item's dashes, before it).
    block: bool,
}

/// Lists every mapping entry and list item under `node`; `end` is the last
/// line its children may take.
fn outline(node: &Node, parent: Option<usize>, end: u32, lines: &[&str], entries: &mut Vec<Entry>) {
    let depth = parent.map_or(0, |p| entries[p].depth + 1);
    let starts_line = |loc: Loc, item: bool| {
        lines.get((loc.line as usize).wrapping_sub(1)).is_some_and(|l| {
            let before: String = l.chars().take((loc.column as usize).saturating_sub(1)).collect();
            let before = before.trim();
            before.is_empty() && !item
                || item && before.starts_with('-') && before.chars().all(|c| c == '-' || c == ' ')
        })
    };
    let push = |key: String, loc: Loc, next: Option<Loc>, block: bool, entries: &mut Vec<Entry>| {
        let last_line = next.filter(|n| n.line > loc.line).map_or(end, |n| n.line - 1).max(loc.line);
        entries.push(Entry { key, parent, depth, first_line: loc.line, column: loc.column, last_line, block });
        (entries.len() - 1, last_line)
    };
    match node {
        Node::Map(items) => {
            for (index, (key, value)) in items.iter().enumerate() {
                let loc = Loc::of(key);
                let next = items.get(index + 1).map(|(next, _)| Loc::of(next));
                let (me, last_line) = push(key.value.0.clone(), loc, next, starts_line(loc, false), entries);
                outline(&value.value, Some(me), last_line, lines, entries);
            }
        }
        Node::Seq(items) => {
            for (index, item) in items.iter().enumerate() {
                let loc = Loc::of(item);
                let next = items.get(index + 1).map(Loc::of);
                let (me, last_line) = push(String::new(), loc, next, starts_line(loc, true), entries);
                outline(&item.value, Some(me), last_line, lines, entries);
            }
        }
        _ => {}
    }
}

/// The entry to blank for an error in `entry`: the nearest block-style
/// entry around it, or its parent where blanking would leave the parent
/// empty (an empty mapping or list reads as null). None once nothing is
/// left.
fn blank_target(entries: &[Entry], mut entry: usize, blanked: &[usize]) -> Option<usize> {
    loop {
        let e = &entries[entry];
        let siblings_left = entries
            .iter()
            .enumerate()
            .any(|(i, other)| i != entry && other.parent == e.parent && !blanked.contains(&i));
        let keeps_parent = e.parent.is_none() || siblings_left;
        if e.block && keeps_parent && !blanked.contains(&entry) {
            return Some(entry);
        }
        entry = e.parent?;
    }
}

/// Shifts every position a parsed document carries; used where a document
/// does not start on the first line of its file.
pub fn file_loc(doc: &Document<'_>, loc: Loc) -> Loc {
    loc.below(doc.first_line - 1)
}

fn plain_message(err: &serde_saphyr::Error) -> String {
    let text = err.to_string();
    // The crate renders "error: line L column C: message" plus a snippet;
    // vigil prints its own file:line:column prefix, so keep the message.
    let first = text.lines().next().unwrap_or_default();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let message = match first.strip_prefix("line ").and_then(|rest| rest.split_once(": ")) {
        Some((position, message)) if position.contains("column") => message,
        _ => first,
    };
    let message = match message.find(" at line ") {
        Some(cut) => &message[..cut],
        None => message,
    };
    in_our_words(message)
}

/// The crate's messages, without its own API's vocabulary.
fn in_our_words(message: &str) -> String {
    if let Some(key) = message.strip_prefix("duplicate mapping key") {
        let key = key.split(", set DuplicateKeyPolicy").next().unwrap_or_default();
        return format!("duplicate key{key}: each key may appear once").replace("key: ", "key `").replacen(
            ": each",
            "`: each",
            usize::from(!key.is_empty()),
        );
    }
    if let Some(breach) = message.strip_prefix("budget breached: ") {
        let what = breach.split([' ', '{']).next().unwrap_or_default().to_ascii_lowercase();
        return format!("the YAML is too large or nested too deep (too many {what})");
    }
    if let Some((field, expected)) =
        message.strip_prefix("unknown field `").and_then(|m| m.split_once("`, expected one of "))
    {
        let closest = expected
            .split(", ")
            .filter(|known| near(field, known))
            .min_by_key(|known| strsim::levenshtein(field, known));
        return match closest {
            Some(known) => format!("unknown field `{field}`: did you mean `{known}`?"),
            None => format!("unknown field `{field}`; the fields are {expected}"),
        };
    }
    match message {
        "expected sequence start" => return EXPECTED_LIST.into(),
        "expected mapping start" => return EXPECTED_MAP.into(),
        "expected string scalar" => return EXPECTED_STRING.into(),
        "invalid floating point" => return EXPECTED_NUMBER.into(),
        _ => {}
    }
    if let Some(range) = message.strip_prefix("invalid ").and_then(whole_number_range) {
        return format!("expected a whole number from {range}");
    }
    if message.starts_with("invalid boolean") {
        return EXPECTED_BOOLEAN.into();
    }
    message.to_owned()
}

// What a value of the wrong type is told, here and by [`super::fields`].
pub(crate) const EXPECTED_LIST: &str = "expected a list: `[a, b]`, or one `- item` per line";
pub(crate) const EXPECTED_MAP: &str = "expected a map of `key: value`";
pub(crate) const EXPECTED_STRING: &str = "expected a string";
pub(crate) const EXPECTED_NUMBER: &str = "expected a number";
pub(crate) const EXPECTED_BOOLEAN: &str =
    "not a boolean: write `true` or `false` (`yes`, `no`, `on` and `off` are strings)";

/// Whether `written` is a likely misspelling of `known` (or is it).
pub(crate) fn near(written: &str, known: &str) -> bool {
    let distance = strsim::levenshtein(written, known);
    distance <= 2 && distance < known.len()
}

/// The range of a Rust integer type named in a message (`u32`).
pub(crate) fn whole_number_range(ty: &str) -> Option<String> {
    let range: (i128, i128) = match ty {
        "u8" => (0, u8::MAX.into()),
        "u16" => (0, u16::MAX.into()),
        "u32" => (0, u32::MAX.into()),
        "u64" | "usize" => (0, u64::MAX.into()),
        "i32" => (i32::MIN.into(), i32::MAX.into()),
        "i64" => (i64::MIN.into(), i64::MAX.into()),
        _ => return None,
    };
    Some(format!("{} to {}", range.0, range.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_documents_and_keeps_line_numbers() {
        let text = "# header\nid: a\n---\n\nid: b\n--- # c\nid: c\n...\n";
        let docs = documents(text);
        let starts: Vec<_> = docs.iter().map(|d| d.first_line).collect();
        assert_eq!(starts, vec![1, 4, 7]);
        assert!(docs[1].text.contains("id: b"));
    }

    #[test]
    fn nodes_know_their_positions() {
        let doc = Document { text: "a:\n  b: [1, x]\n", first_line: 3 };
        let node: Spanned<Node> = parse_document(&doc).unwrap();
        let Node::Map(entries) = &node.value else { panic!() };
        let Node::Map(inner) = &entries[0].1.value else { panic!() };
        assert_eq!(inner[0].0.value.0, "b");
        assert_eq!(file_loc(&doc, Loc::of(&inner[0].0)), Loc { line: 4, column: 3 });
    }

    #[test]
    fn only_true_and_false_are_booleans() {
        let doc = Document { text: "country: NO\nb: yes\nc: on\nd: n\ne: true\nf: False\n", first_line: 1 };
        let node: Spanned<Node> = parse_document(&doc).unwrap();
        let Node::Map(entries) = &node.value else { panic!() };
        let values: Vec<&Node> = entries.iter().map(|(_, v)| &v.value).collect();
        assert!(matches!(values[0], Node::Str(s) if s == "NO"), "{values:?}");
        assert!(matches!(values[1], Node::Str(s) if s == "yes"));
        assert!(matches!(values[2], Node::Str(s) if s == "on"));
        assert!(matches!(values[3], Node::Str(s) if s == "n"));
        assert!(matches!(values[4], Node::Bool(true)));
        assert!(matches!(values[5], Node::Bool(false)));
    }

    #[test]
    fn messages_speak_of_the_document_not_the_library() {
        let err = |text: &str| parse_document::<Node>(&Document { text, first_line: 1 }).unwrap_err().message;
        assert_eq!(err("id: a\nid: b\n"), "duplicate key `id`: each key may appear once");
        let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
        assert_eq!(err(&deep), "the YAML is too large or nested too deep (too many depth)");
        #[derive(Debug, serde::Deserialize)]
        struct Flag {
            #[allow(dead_code)]
            on: bool,
        }
        let flag = parse_document::<Flag>(&Document { text: "on: yes\n", first_line: 1 }).unwrap_err().message;
        assert!(flag.starts_with("not a boolean: write `true` or `false`"), "{flag}");
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Typed {
            count: Option<u32>,
            ratio: Option<f64>,
            names: Option<Vec<String>>,
        }
        let typed = |text: &str| parse_document::<Typed>(&Document { text, first_line: 1 }).unwrap_err().message;
        assert_eq!(typed("count: -1\n"), "expected a whole number from 0 to 4294967295");
        assert_eq!(typed("ratio: half\n"), "expected a number");
        assert_eq!(typed("names: alice\n"), "expected a list: `[a, b]`, or one `- item` per line");
        assert_eq!(typed("ration: 1\n"), "unknown field `ration`: did you mean `ratio`?");
        assert_eq!(typed("sizes: 1\n"), "unknown field `sizes`; the fields are count, ratio, names");
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Rule {
        id: String,
        title: String,
        detect: Detect,
        alert: Alert,
        #[serde(default)]
        tests: Vec<Case>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Detect {
        #[serde(rename = "type")]
        kind: String,
        window: Option<String>,
        threshold: Option<f64>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Alert {
        summary: String,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Case {
        name: String,
        events: Vec<Node>,
    }

    fn all_errors(text: &str) -> Vec<(u32, String)> {
        let errors = parse_document_all::<Rule>(&Document { text, first_line: 3 }).unwrap_err().errors;
        errors.into_iter().map(|e| (e.loc.line - 2, e.message.split(',').next().unwrap().to_owned())).collect()
    }

    #[test]
    fn every_error_of_a_document_is_reported_where_it_was_written() {
        let text = "id: a\ntitle: [t]\ndetect:\n  type: threshold\n  windw: 5m\n  threshold: lots\nalert:\n  summary: s\n  realert: 5m\n";
        assert_eq!(
            all_errors(text),
            [
                (2, "expected a string".to_owned()),
                (5, "unknown field `windw`: did you mean `window`?".to_owned()),
                (6, "expected a number".to_owned()),
                (9, "unknown field `realert`; the fields are summary".to_owned()),
            ]
        );
    }

    #[test]
    fn a_field_missing_is_reported_but_not_one_the_recovery_removed() {
        let text = "id: a\ntitle: t\ndetect: {type: t}\ntests:\n  - name: x\n    evnts: []\n";
        assert_eq!(
            all_errors(text),
            [(1, "missing field `alert`".to_owned()), (6, "unknown field `evnts`: did you mean `events`?".to_owned())]
        );
        let text = "id: a\ntitle: t\ndetect:\n  type: t\nalert:\n  summary: s\n  sumary: s\n";
        assert_eq!(all_errors(text), [(7, "unknown field `sumary`: did you mean `summary`?".to_owned())]);
        let text = "id: a\ntitle: t\ndetect:\n  type: t\nalert:\n  text: s\n";
        assert_eq!(all_errors(text), [(6, "unknown field `text`; the fields are summary".to_owned())]);
        // A required entry blanked for its error hides any field missing
        // besides: serde names one missing field, and that is the blanked.
        let text = "id: a\ntitle: t\ndetect: {type: threshold, windw: 5m}\n";
        assert_eq!(all_errors(text), [(3, "unknown field `windw`: did you mean `window`?".to_owned())]);
    }

    #[test]
    fn errors_in_list_items_are_reported_per_item() {
        let text = "id: a\ntitle: t\ndetect: {type: t}\nalert: {summary: s}\ntests:\n  - name: one\n    evnts: []\n  - name: two\n    events: []\n    expect: []\n";
        let errors = all_errors(text);
        assert_eq!(errors[0], (7, "unknown field `evnts`: did you mean `events`?".to_owned()));
        assert!(errors.iter().any(|(line, m)| *line == 10 && m.starts_with("unknown field `expect`")), "{errors:?}");
    }

    #[test]
    fn a_syntax_error_is_reported_alone() {
        let text = "id: a\ntitle: [t\ndetect:\n  windw: 5m\n";
        assert_eq!(all_errors(text).len(), 1);
    }

    #[test]
    fn errors_carry_file_positions() {
        let doc = Document { text: "a: [1,\n", first_line: 10 };
        let err = parse_document::<Node>(&doc).unwrap_err();
        assert!(err.loc.line >= 10, "{err:?}");
        assert!(!err.message.is_empty());
    }
}
