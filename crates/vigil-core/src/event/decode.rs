//! JSON line → [`EventRef`], keeping only the fields in the [`Schema`].
//!
//! The decoder is a serde visitor driven by the schema's trie: a key no rule
//! uses is skipped with `IgnoredAny`; a string without escapes is recorded as
//! a span of the line; only escaped strings are copied, into a scratch buffer
//! reused across events. After warm-up, decoding allocates nothing.

use std::fmt;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, Deserializer as _, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::schema::{Expect, Schema, Trie, TrieNode};
use super::{EventRef, FieldId, Slot, Text, Value};
use crate::time::Timestamp;

/// Why an event was rejected. The label is a bounded metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    TooLarge,
    InvalidUtf8,
    InvalidJson,
    NotAnObject,
    MissingTs,
    InvalidTs,
    MissingKind,
    InvalidKind,
    WrongType,
    /// A well-known count or duration below zero (one `count: -1e12`
    /// would hide a real burst from a `sum`).
    NegativeValue,
    /// A field vigil reads appears twice: readers that keep the first and
    /// readers that keep the last would see different events.
    DuplicateKey,
    /// `ts` beyond the wall clock's bound (`max_future`), or a replay's
    /// lone outlier far ahead of its stream.
    FutureTs,
}

impl Reason {
    pub const ALL: [Reason; 12] = [
        Reason::TooLarge,
        Reason::InvalidUtf8,
        Reason::InvalidJson,
        Reason::NotAnObject,
        Reason::MissingTs,
        Reason::InvalidTs,
        Reason::MissingKind,
        Reason::InvalidKind,
        Reason::WrongType,
        Reason::NegativeValue,
        Reason::DuplicateKey,
        Reason::FutureTs,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::TooLarge => "too_large",
            Reason::InvalidUtf8 => "invalid_utf8",
            Reason::InvalidJson => "invalid_json",
            Reason::NotAnObject => "not_an_object",
            Reason::MissingTs => "missing_ts",
            Reason::InvalidTs => "invalid_ts",
            Reason::MissingKind => "missing_kind",
            Reason::InvalidKind => "invalid_kind",
            Reason::WrongType => "wrong_type",
            Reason::NegativeValue => "negative_value",
            Reason::DuplicateKey => "duplicate_key",
            Reason::FutureTs => "future_ts",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected event: the reason (for metrics) and a sentence (for people).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct DecodeError {
    pub reason: Reason,
    pub detail: String,
}

impl DecodeError {
    pub fn new(reason: Reason, detail: impl Into<String>) -> DecodeError {
        DecodeError { reason, detail: detail.into() }
    }
}

/// Decodes lines into events; one per thread, reused for every line.
#[derive(Debug)]
pub struct Decoder {
    schema: Arc<Schema>,
    max_bytes: usize,
    slots: Vec<Slot>,
    items: Vec<Slot>,
    scratch: String,
    /// The lowercased key of a join.
    key: String,
}

/// The default cap on one event's size: larger lines are rejected, not
/// buffered, so one huge line cannot exhaust memory.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;

impl Decoder {
    pub fn new(schema: Arc<Schema>) -> Decoder {
        Decoder::with_max_bytes(schema, DEFAULT_MAX_EVENT_BYTES)
    }

    pub fn with_max_bytes(schema: Arc<Schema>, max_bytes: usize) -> Decoder {
        let slots = vec![Slot::Absent; schema.len()];
        Decoder { schema, max_bytes, slots, items: Vec::new(), scratch: String::new(), key: String::new() }
    }

    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Decodes bytes that may not be UTF-8 (from a file or a Kafka message).
    pub fn decode_bytes<'a>(&'a mut self, bytes: &'a [u8]) -> Result<EventRef<'a>, DecodeError> {
        self.decode_bytes_or_kind(bytes, None)
    }

    /// Like [`Decoder::decode_bytes`], with the `kind` to assume when the
    /// event has none (a Kafka topic's default kind).
    pub fn decode_bytes_or_kind<'a>(
        &'a mut self,
        bytes: &'a [u8],
        default_kind: Option<&'a str>,
    ) -> Result<EventRef<'a>, DecodeError> {
        if bytes.len() > self.max_bytes {
            return Err(self.too_large(bytes.len()));
        }
        let line = std::str::from_utf8(bytes).map_err(|err| DecodeError::new(Reason::InvalidUtf8, err.to_string()))?;
        self.decode_or_kind(line, default_kind)
    }

    pub fn decode<'a>(&'a mut self, line: &'a str) -> Result<EventRef<'a>, DecodeError> {
        self.decode_or_kind(line, None)
    }

    fn decode_or_kind<'a>(
        &'a mut self,
        line: &'a str,
        default_kind: Option<&'a str>,
    ) -> Result<EventRef<'a>, DecodeError> {
        if line.len() > self.max_bytes {
            return Err(self.too_large(line.len()));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if !line.trim_start().starts_with('{') {
            return Err(match serde_json::from_str::<IgnoredAny>(line) {
                Ok(_) => DecodeError::new(Reason::NotAnObject, "an event must be a JSON object"),
                Err(err) => DecodeError::new(Reason::InvalidJson, err.to_string()),
            });
        }
        self.slots.fill(Slot::Absent);
        self.items.clear();
        self.scratch.clear();
        let mut ctx = Ctx {
            slots: &mut self.slots,
            items: &mut self.items,
            scratch: &mut self.scratch,
            base: line.as_ptr() as usize,
            len: line.len(),
            duplicate: None,
        };
        let mut json = serde_json::Deserializer::from_str(line);
        json.deserialize_map(ObjectVisitor { trie: &self.schema.root, ctx: &mut ctx })
            .and_then(|()| json.end())
            .map_err(|err| DecodeError::new(Reason::InvalidJson, err.to_string()))?;
        if let Some(field) = ctx.duplicate {
            let detail = format!("`{}` appears more than once", self.schema.path(field));
            return Err(DecodeError::new(Reason::DuplicateKey, detail));
        }
        self.enrich(line);

        let event = EventRef {
            line,
            ts: Timestamp::MIN,
            kind: "",
            slots: &self.slots,
            items: &self.items,
            scratch: &self.scratch,
        };
        let ts = match event.get(FieldId::TS) {
            Value::Absent | Value::Null => return Err(DecodeError::new(Reason::MissingTs, "the event has no `ts`")),
            Value::Str(text) => Timestamp::parse_rfc3339(text).ok_or_else(|| {
                DecodeError::new(Reason::InvalidTs, format!("`ts` is not an RFC 3339 time: {text:?}"))
            })?,
            _ => return Err(DecodeError::new(Reason::InvalidTs, "`ts` must be an RFC 3339 string")),
        };
        let kind = match event.raw(FieldId::KIND) {
            Value::Absent | Value::Null => match default_kind {
                Some(kind) => kind,
                None => return Err(DecodeError::new(Reason::MissingKind, "the event has no `kind`")),
            },
            Value::Str(kind) if !kind.is_empty() => kind,
            _ => return Err(DecodeError::new(Reason::InvalidKind, "`kind` must be a non-empty string")),
        };
        let event = EventRef { ts, kind, ..event };
        check_types(&self.schema, &event)?;
        Ok(event)
    }

    /// Applies the schema's joins: each table's cells for the event's key
    /// go to scratch and their slots, or the slots are cleared.
    fn enrich(&mut self, line: &str) {
        for join in &self.schema.joins {
            let slot = self.slots.get(join.key.index()).copied().unwrap_or(Slot::Absent);
            self.key.clear();
            let found = match super::resolve(slot, &self.items, line, &self.scratch) {
                Value::Str(text) => {
                    self.key.extend(text.chars().map(|c| c.to_ascii_lowercase()));
                    join.table.row(&self.key)
                }
                Value::Num(_) | Value::Bool(_) => {
                    super::resolve(slot, &self.items, line, &self.scratch).write_text(&mut self.key);
                    join.table.row(&self.key)
                }
                _ => None,
            };
            for &(column, field) in &join.outputs {
                let value = match found.and_then(|row| row.get(column)) {
                    Some(cell) => {
                        let start = self.scratch.len() as u32;
                        self.scratch.push_str(cell);
                        Slot::Str(Text::Scratch { start, len: cell.len() as u32 })
                    }
                    None => Slot::Absent,
                };
                if let Some(target) = self.slots.get_mut(field.index()) {
                    *target = value;
                }
            }
        }
    }

    fn too_large(&self, len: usize) -> DecodeError {
        DecodeError::new(Reason::TooLarge, format!("{len} bytes exceeds the limit of {} bytes", self.max_bytes))
    }
}

fn check_types(schema: &Schema, event: &EventRef<'_>) -> Result<(), DecodeError> {
    let Some(checks) = schema.checks.iter().find(|c| c.kind == event.kind) else { return Ok(()) };
    for &(field, expect) in &checks.fields {
        let ok = match (event.get(field), expect) {
            (Value::Absent | Value::Null, _) => true,
            (Value::Str(_), Expect::String) => true,
            (Value::Num(n), Expect::Number) => n.is_finite(),
            (Value::Num(n), Expect::NonNegative) if n.is_finite() && n < 0.0 => {
                let detail = format!("`{}` of a `{}` event must not be negative", schema.path(field), event.kind);
                return Err(DecodeError::new(Reason::NegativeValue, detail));
            }
            (Value::Num(n), Expect::NonNegative) => n.is_finite(),
            (Value::Bool(_), Expect::Bool) => true,
            _ => false,
        };
        if !ok {
            let expected = match expect {
                Expect::String => "a string",
                Expect::Number | Expect::NonNegative => "a number",
                Expect::Bool => "a boolean",
            };
            let path = schema.path(field);
            let detail = format!("`{path}` of a `{}` event must be {expected}", event.kind);
            return Err(DecodeError::new(Reason::WrongType, detail));
        }
    }
    Ok(())
}

struct Ctx<'c> {
    slots: &'c mut [Slot],
    items: &'c mut Vec<Slot>,
    scratch: &'c mut String,
    base: usize,
    len: usize,
    /// A field that was given twice.
    duplicate: Option<FieldId>,
}

impl Ctx<'_> {
    fn set(&mut self, node: &TrieNode, slot: Slot) {
        if let Some(field) = node.field {
            if let Some(target) = self.slots.get_mut(field.index()) {
                if !matches!(target, Slot::Absent) {
                    self.duplicate.get_or_insert(field);
                }
                *target = slot;
            }
        }
    }

    /// A span of the line if `text` borrows from it, else a copy in scratch.
    fn text(&mut self, text: &str, borrowed: bool) -> Slot {
        let offset = (text.as_ptr() as usize).wrapping_sub(self.base);
        if borrowed && offset <= self.len && text.len() <= self.len - offset {
            return Slot::Str(Text::Line { start: offset as u32, len: text.len() as u32 });
        }
        let start = self.scratch.len() as u32;
        self.scratch.push_str(text);
        Slot::Str(Text::Scratch { start, len: text.len() as u32 })
    }
}

struct ObjectVisitor<'t, 'x, 'c> {
    trie: &'t Trie,
    ctx: &'x mut Ctx<'c>,
}

impl<'de> Visitor<'de> for ObjectVisitor<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(node) = map.next_key_seed(KeySeed(self.trie))? {
            match node {
                Some(node) => map.next_value_seed(ValueSeed { node, ctx: &mut *self.ctx })?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

struct KeySeed<'t>(&'t Trie);

impl<'de, 't> DeserializeSeed<'de> for KeySeed<'t> {
    type Value = Option<&'t TrieNode>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de, 't> Visitor<'de> for KeySeed<'t> {
    type Value = Option<&'t TrieNode>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.get(key))
    }
}

struct ValueSeed<'t, 'x, 'c> {
    node: &'t TrieNode,
    ctx: &'x mut Ctx<'c>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.ctx.set(self.node, Slot::Bool(v));
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.ctx.set(self.node, Slot::Num(v as f64));
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.ctx.set(self.node, Slot::Num(v as f64));
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.ctx.set(self.node, Slot::Num(v));
        Ok(())
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<(), E> {
        if self.node.field.is_some() {
            let slot = self.ctx.text(v, true);
            self.ctx.set(self.node, slot);
        }
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        if self.node.field.is_some() {
            let slot = self.ctx.text(v, false);
            self.ctx.set(self.node, slot);
        }
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.ctx.set(self.node, Slot::Null);
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let ValueSeed { node, ctx } = self;
        ctx.set(node, Slot::Object);
        if node.children.is_empty() {
            IgnoredAny.visit_map(map).map(|_| ())
        } else {
            ObjectVisitor { trie: &node.children, ctx }.visit_map(map)
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let ValueSeed { node, ctx } = self;
        if node.field.is_none() {
            return IgnoredAny.visit_seq(seq).map(|_| ());
        }
        let start = ctx.items.len() as u32;
        while let Some(item) = seq.next_element_seed(ScalarSeed { ctx: &mut *ctx })? {
            if let Some(slot) = item {
                ctx.items.push(slot);
            }
        }
        let len = ctx.items.len() as u32 - start;
        ctx.set(node, Slot::List { start, len });
        Ok(())
    }
}

/// One array element: kept if it is a scalar, skipped otherwise.
struct ScalarSeed<'x, 'c> {
    ctx: &'x mut Ctx<'c>,
}

impl<'de> DeserializeSeed<'de> for ScalarSeed<'_, '_> {
    type Value = Option<Slot>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Option<Slot>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScalarSeed<'_, '_> {
    type Value = Option<Slot>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Option<Slot>, E> {
        Ok(Some(Slot::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<Slot>, E> {
        Ok(Some(Slot::Num(v as f64)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<Slot>, E> {
        Ok(Some(Slot::Num(v as f64)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<Slot>, E> {
        Ok(Some(Slot::Num(v)))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Option<Slot>, E> {
        Ok(Some(self.ctx.text(v, true)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<Slot>, E> {
        Ok(Some(self.ctx.text(v, false)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<Slot>, E> {
        Ok(Some(Slot::Null))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<Slot>, A::Error> {
        IgnoredAny.visit_map(map).map(|_| None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Option<Slot>, A::Error> {
        IgnoredAny.visit_seq(seq).map(|_| None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decoder(paths: &[&str]) -> Decoder {
        let mut schema = Schema::new();
        for path in paths {
            schema.intern(path);
        }
        Decoder::new(Arc::new(schema))
    }

    fn field(d: &Decoder, path: &str) -> FieldId {
        d.schema().lookup(path).unwrap()
    }

    #[test]
    fn keeps_schema_fields_and_skips_the_rest() {
        let mut d = decoder(&["geo.country", "tags", "extra"]);
        let (user, country, tags, extra) =
            (field(&d, "user"), field(&d, "geo.country"), field(&d, "tags"), field(&d, "extra"));
        let line = r#"{"ts":"2026-11-23T10:00:00Z","kind":"login","user":"al\"ice","geo":{"country":"DE","city":"x"},"tags":["a",1,{"x":1},true],"ignored":{"deep":[1,2,{"a":"b"}]},"extra":{"k":1}}"#;
        let ev = d.decode(line).unwrap();
        assert_eq!(ev.kind, "login");
        assert_eq!(ev.ts, Timestamp::parse_rfc3339("2026-11-23T10:00:00Z").unwrap());
        assert_eq!(ev.get(user), Value::Str("al\"ice"));
        assert_eq!(ev.get(country), Value::Str("DE"));
        assert_eq!(ev.get(extra), Value::Object);
        let Value::List(list) = ev.get(tags) else { panic!("not a list") };
        let items: Vec<_> = list.iter().collect();
        assert_eq!(items, vec![Value::Str("a"), Value::Num(1.0), Value::Bool(true)]);
    }

    #[test]
    fn flat_dotted_keys_match_dotted_paths() {
        let mut d = decoder(&["geo.country"]);
        let country = field(&d, "geo.country");
        let ev = d.decode(r#"{"ts":"2026-11-23T10:00:00Z","kind":"x","geo.country":"FR"}"#).unwrap();
        assert_eq!(ev.get(country), Value::Str("FR"));
    }

    #[test]
    fn rejects_with_reasons() {
        let mut d = decoder(&[]);
        let cases = [
            ("not json", Reason::InvalidJson),
            ("[1,2]", Reason::NotAnObject),
            ("\"text\"", Reason::NotAnObject),
            ("7", Reason::NotAnObject),
            ("{\"ts\":\"2026-11-23T10:00:00Z\",\"kind\":\"login\",\"kind\":\"heartbeat\"}", Reason::DuplicateKey),
            (
                "{\"ts\":\"2026-11-23T10:00:00Z\",\"ts\":\"2026-11-23T10:00:00Z\",\"kind\":\"login\"}",
                Reason::DuplicateKey,
            ),
            ("{\"ts\":\"2026-11-23T10:00:00Z\",\"kind\":\"message_volume\",\"count\":-1e12}", Reason::NegativeValue),
            ("{\"ts\":", Reason::InvalidJson),
            ("{} trailing", Reason::InvalidJson),
            ("{\"kind\":\"login\"}", Reason::MissingTs),
            ("{\"ts\":\"yesterday\",\"kind\":\"login\"}", Reason::InvalidTs),
            ("{\"ts\":12,\"kind\":\"login\"}", Reason::InvalidTs),
            ("{\"ts\":\"2026-11-23T10:00:00Z\"}", Reason::MissingKind),
            ("{\"ts\":\"2026-11-23T10:00:00Z\",\"kind\":7}", Reason::InvalidKind),
            ("{\"ts\":\"2026-11-23T10:00:00Z\",\"kind\":\"api_call\",\"status\":\"ok\"}", Reason::WrongType),
            ("{\"ts\":\"2026-11-23T10:00:00Z\",\"kind\":\"login\",\"user\":5}", Reason::WrongType),
        ];
        for (line, reason) in cases {
            assert_eq!(d.decode(line).unwrap_err().reason, reason, "{line}");
        }
        let mut small = Decoder::with_max_bytes(Arc::new(Schema::new()), 10);
        assert_eq!(small.decode_bytes(&[b'{'; 11]).unwrap_err().reason, Reason::TooLarge);
        assert_eq!(d.decode_bytes(&[b'{', 0xff, b'}']).unwrap_err().reason, Reason::InvalidUtf8);
    }

    #[test]
    fn buffers_are_reused_between_events() {
        let mut d = decoder(&[]);
        let user = field(&d, "user");
        let first = r#"{"ts":"2026-11-23T10:00:00Z","kind":"login","user":"a\u00e9"}"#;
        assert_eq!(d.decode(first).unwrap().get(user), Value::Str("aé"));
        let second = r#"{"ts":"2026-11-23T10:00:00Z","kind":"login"}"#;
        assert_eq!(d.decode(second).unwrap().get(user), Value::Absent);
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut d = decoder(&["a.b", "c"]);
            let _ = d.decode_bytes(&bytes);
        }

        #[test]
        fn never_panics_on_json_like_text(text in r#"\{("[a-z.]{0,3}":("[^"]{0,4}"|[0-9]{1,3}|\{|\[|null|true),?){0,6}\}?"#) {
            let mut d = decoder(&["a.b", "c", "ts", "kind"]);
            let _ = d.decode(&text);
        }
    }
}
