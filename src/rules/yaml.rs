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
    if message.starts_with("invalid boolean") {
        return "not a boolean: write `true` or `false` (`yes`, `no`, `on` and `off` are strings)".into();
    }
    message.to_owned()
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
    }

    #[test]
    fn errors_carry_file_positions() {
        let doc = Document { text: "a: [1,\n", first_line: 10 };
        let err = parse_document::<Node>(&doc).unwrap_err();
        assert!(err.loc.line >= 10, "{err:?}");
        assert!(!err.message.is_empty());
    }
}
