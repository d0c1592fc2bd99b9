//! Flat settings maps, read field by field by the type they configure.
//!
//! A rule's `detect:` map, a notifier and a source are each one flat map
//! whose `type` decides which keys mean anything. serde's internally
//! tagged enums (`#[serde(tag = "type")]`) would express that, but serde
//! buffers such a map in its own content type first, and serde-saphyr's
//! `Spanned` values read from that buffer carry no line and column (its
//! `Spanned` documentation says so) — while every error vigil reports
//! names its position. A struct holding every type's fields would keep
//! positions, but then a hand-kept table must say which fields apply to
//! which type, and a field missing from it is silently accepted.
//!
//! So such a map is read as [`Fields`]: each key and value with its
//! position. Each type's validator takes the fields it understands through
//! a [`FieldReader`], which converts them in the words serde's errors use
//! (see [`super::yaml`]); [`FieldReader::finish`] then reports every key
//! no one took. The code that reads a field is the only list of a type's
//! fields.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

use super::yaml::{
    near, whole_number_range, Key, Loc, Node, Spanned, EXPECTED_BOOLEAN, EXPECTED_LIST, EXPECTED_MAP, EXPECTED_NUMBER,
    EXPECTED_STRING,
};
use super::Sink;

/// A YAML map as written: keys and values in order, with positions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields(pub Vec<(Spanned<Key>, Spanned<Node>)>);

impl Fields {
    /// The value given for `name`; none if absent or null.
    pub fn get(&self, name: &str) -> Option<&Spanned<Node>> {
        self.0.iter().find(|(key, _)| key.value.0 == name).map(|(_, value)| value).filter(|v| v.value != Node::Null)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Fields, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(EXPECTED_MAP)
            }

            fn visit_unit<E>(self) -> Result<Fields, E> {
                Ok(Fields::default())
            }

            fn visit_none<E>(self) -> Result<Fields, E> {
                Ok(Fields::default())
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<Key>>()? {
                    entries.push((key, map.next_value::<Spanned<Node>>()?));
                }
                Ok(Fields(entries))
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

/// A value read out of a [`Node`]; the error says what was expected, in
/// the words of serde's own messages.
pub trait FromNode: Sized {
    fn from_node(node: &Spanned<Node>) -> Result<Self, Mismatch>;
}

/// A value of the wrong type, and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    pub loc: Loc,
    pub message: String,
}

impl Mismatch {
    fn at(node: &Spanned<Node>, message: impl Into<String>) -> Mismatch {
        Mismatch { loc: Loc::of(node), message: message.into() }
    }
}

impl FromNode for String {
    /// Any scalar, as serde-saphyr reads one into a string (`5` is `"5"`).
    fn from_node(node: &Spanned<Node>) -> Result<String, Mismatch> {
        match &node.value {
            Node::Str(text) => Ok(text.clone()),
            Node::Int(value) => Ok(value.to_string()),
            Node::Float(value) => Ok(value.to_string()),
            Node::Bool(value) => Ok(value.to_string()),
            _ => Err(Mismatch::at(node, EXPECTED_STRING)),
        }
    }
}

impl FromNode for f64 {
    /// A number, quoted or not.
    fn from_node(node: &Spanned<Node>) -> Result<f64, Mismatch> {
        match &node.value {
            Node::Int(value) => Ok(*value as f64),
            Node::Float(value) => Ok(*value),
            Node::Str(text) => text.trim().parse().map_err(|_| Mismatch::at(node, EXPECTED_NUMBER)),
            _ => Err(Mismatch::at(node, EXPECTED_NUMBER)),
        }
    }
}

impl FromNode for bool {
    fn from_node(node: &Spanned<Node>) -> Result<bool, Mismatch> {
        match &node.value {
            Node::Bool(value) => Ok(*value),
            Node::Str(text) if text == "true" => Ok(true),
            Node::Str(text) if text == "false" => Ok(false),
            _ => Err(Mismatch::at(node, EXPECTED_BOOLEAN)),
        }
    }
}

macro_rules! whole_numbers {
    ($($ty:ident),*) => {$(
        impl FromNode for $ty {
            /// A whole number in the type's range, quoted or not.
            fn from_node(node: &Spanned<Node>) -> Result<$ty, Mismatch> {
                let value = match &node.value {
                    Node::Int(value) => $ty::try_from(*value).ok(),
                    Node::Str(text) => text.trim().parse().ok(),
                    _ => None,
                };
                value.ok_or_else(|| {
                    let range = whole_number_range(stringify!($ty)).unwrap_or_default();
                    Mismatch::at(node, format!("expected a whole number from {range}"))
                })
            }
        }
    )*};
}

whole_numbers!(u8, u16, u32, u64, i32, i64);

impl<T: FromNode> FromNode for Vec<T> {
    fn from_node(node: &Spanned<Node>) -> Result<Vec<T>, Mismatch> {
        match &node.value {
            Node::Seq(items) => items.iter().map(T::from_node).collect(),
            _ => Err(Mismatch::at(node, EXPECTED_LIST)),
        }
    }
}

impl<T: FromNode> FromNode for Spanned<T> {
    fn from_node(node: &Spanned<Node>) -> Result<Spanned<T>, Mismatch> {
        T::from_node(node).map(|value| Spanned::new(value, node.referenced, node.defined))
    }
}

impl FromNode for Node {
    fn from_node(node: &Spanned<Node>) -> Result<Node, Mismatch> {
        Ok(node.value.clone())
    }
}

impl FromNode for Fields {
    fn from_node(node: &Spanned<Node>) -> Result<Fields, Mismatch> {
        match &node.value {
            Node::Map(entries) => Ok(Fields(entries.clone())),
            _ => Err(Mismatch::at(node, EXPECTED_MAP)),
        }
    }
}

/// One string or a list of them (`to: a@x` or `to: [a@x, b@x]`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OneOrMany(pub Vec<String>);

impl FromNode for OneOrMany {
    fn from_node(node: &Spanned<Node>) -> Result<OneOrMany, Mismatch> {
        match &node.value {
            Node::Seq(_) => Vec::from_node(node).map(OneOrMany),
            _ => String::from_node(node).map(|one| OneOrMany(vec![one])),
        }
    }
}

/// Reads the fields of one [`Fields`] map for the type it configures, and
/// remembers which were taken.
pub struct FieldReader<'a> {
    fields: &'a Fields,
    at: Loc,
    pub sink: &'a mut Sink,
    /// The names the type asked for, given or not: what a misspelling is
    /// compared with.
    asked: Vec<&'static str>,
    taken: Vec<bool>,
}

impl<'a> FieldReader<'a> {
    /// `at` is where the map is, for what it lacks.
    pub fn new(fields: &'a Fields, at: Loc, sink: &'a mut Sink) -> FieldReader<'a> {
        FieldReader { fields, at, sink, asked: Vec::new(), taken: vec![false; fields.0.len()] }
    }

    /// The position of the map.
    pub fn at(&self) -> Loc {
        self.at
    }

    /// The value of `name` as written, taken; none if absent or null.
    pub fn node(&mut self, name: &'static str) -> Option<&'a Spanned<Node>> {
        if !self.asked.contains(&name) {
            self.asked.push(name);
        }
        for (index, (key, _)) in self.fields.0.iter().enumerate() {
            if key.value.0 == name {
                self.taken[index] = true;
            }
        }
        self.fields.get(name)
    }

    /// Whether `name` is given, without taking it.
    pub fn given(&self, name: &str) -> Option<Loc> {
        self.fields.get(name).map(Loc::of)
    }

    /// The value of `name`, taken; a value of the wrong type is reported
    /// and reads as absent.
    pub fn get<T: FromNode>(&mut self, name: &'static str) -> Option<Spanned<T>> {
        let node = self.node(name)?;
        match Spanned::<T>::from_node(node) {
            Ok(value) => Some(value),
            Err(mismatch) => {
                self.sink.error_at(mismatch.loc, mismatch.message);
                None
            }
        }
    }

    /// The value of `name`; if absent, `missing` is reported at the map,
    /// unless a key given looks like a misspelling of `name` (that key is
    /// reported by [`FieldReader::finish`]).
    pub fn require<T: FromNode>(&mut self, name: &'static str, missing: impl FnOnce() -> String) -> Option<Spanned<T>> {
        if self.fields.get(name).is_none() {
            self.node(name);
            let misspelt = self.fields.0.iter().any(|(key, _)| key.value.0 != name && near(&key.value.0, name));
            if !misspelt {
                self.sink.error_at(self.at, missing());
            }
            return None;
        }
        self.get(name)
    }

    /// Reports every key no one took: a likely misspelling of a field this
    /// type reads as an unknown field (at the key), any other with
    /// `not_here(key)` (at its value).
    pub fn finish(self, not_here: impl Fn(&str) -> String) {
        for ((key, value), taken) in self.fields.0.iter().zip(&self.taken) {
            if *taken {
                continue;
            }
            let name = key.value.0.as_str();
            let closest = self
                .asked
                .iter()
                .filter(|known| near(name, known))
                .min_by_key(|known| strsim::levenshtein(name, known));
            match closest {
                Some(known) => self.sink.error(key, format!("unknown field `{name}`: did you mean `{known}`?")),
                None => self.sink.error(value, not_here(name)),
            }
        }
    }

    /// The names this reader was asked for, in order.
    pub fn asked(&self) -> &[&'static str] {
        &self.asked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::yaml::{parse_document, Document};

    fn fields(text: &str) -> Spanned<Fields> {
        parse_document(&Document { text, first_line: 1 }).unwrap()
    }

    fn problems(sink: Sink) -> Vec<String> {
        sink.problems.into_iter().map(|p| format!("{}: {}", p.loc, p.message)).collect()
    }

    #[test]
    fn reads_values_in_serdes_terms_and_reports_what_no_one_took() {
        let map = fields("window: 5m\nthreshold: \"10\"\ncount: -1\nnames: one\nwindw: 1m\nspare: x\nflag: yes\n");
        let mut sink = Sink::new(1);
        let mut r = FieldReader::new(&map.value, Loc::of(&map), &mut sink);
        assert_eq!(r.get::<String>("window").map(|w| w.value), Some("5m".to_owned()));
        assert_eq!(r.get::<f64>("threshold").map(|t| t.value), Some(10.0));
        assert_eq!(r.get::<u32>("count"), None);
        assert_eq!(r.get::<OneOrMany>("names").map(|n| n.value.0), Some(vec!["one".to_owned()]));
        assert_eq!(r.get::<Vec<String>>("names"), None, "one string is not a list");
        assert_eq!(r.get::<bool>("flag"), None);
        assert_eq!(r.get::<String>("absent"), None);
        r.finish(|name| format!("`{name}` is not for this type"));
        assert_eq!(
            problems(sink),
            [
                "3:8: expected a whole number from 0 to 4294967295",
                "4:8: expected a list: `[a, b]`, or one `- item` per line",
                "7:7: not a boolean: write `true` or `false` (`yes`, `no`, `on` and `off` are strings)",
                "5:1: unknown field `windw`: did you mean `window`?",
                "6:8: `spare` is not for this type",
            ]
        );
    }

    #[test]
    fn a_missing_field_is_reported_unless_a_key_looks_like_it() {
        let map = fields("{windw: 5m, threshold: 3}");
        let mut sink = Sink::new(1);
        let mut r = FieldReader::new(&map.value, Loc::of(&map), &mut sink);
        assert_eq!(r.require::<String>("window", || "needs a window".into()), None);
        assert_eq!(r.require::<String>("field", || "needs a field".into()), None);
        assert_eq!(r.require::<f64>("threshold", || "needs a threshold".into()).map(|t| t.value), Some(3.0));
        r.finish(|name| format!("`{name}` is not for this type"));
        assert_eq!(problems(sink), ["1:1: needs a field", "1:2: unknown field `windw`: did you mean `window`?"]);
    }

    #[test]
    fn null_reads_as_absent_and_a_scalar_is_not_a_map() {
        let map = fields("window: ~\n");
        let mut sink = Sink::new(1);
        let mut r = FieldReader::new(&map.value, Loc::of(&map), &mut sink);
        assert_eq!(r.get::<String>("window"), None);
        r.finish(|name| name.to_owned());
        assert!(sink.is_empty());
        let err = parse_document::<Fields>(&Document { text: "just text\n", first_line: 1 }).unwrap_err();
        assert_eq!(err.message, EXPECTED_MAP, "{err:?}");
    }
}
