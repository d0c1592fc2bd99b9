//! Events: JSON objects with an event time (`ts`) and a `kind`.
//!
//! Decoding is the hottest code in vigil, so an event is not a tree of owned
//! values: [`Decoder`] reuses its buffers and hands out an [`EventRef`] that
//! borrows the line it came from. Decode failures are values
//! ([`DecodeError`]) with a bounded `reason`, because a malformed event is
//! counted and set aside, never fatal.

pub mod decode;
pub mod enrich;
mod schema;

pub use decode::{DecodeError, Decoder, Reason};
pub use schema::{Expect, FieldId, Schema};

use crate::time::Timestamp;

/// A decoded event borrowing the line it was read from.
#[derive(Debug, Clone, Copy)]
pub struct EventRef<'a> {
    pub line: &'a str,
    pub ts: Timestamp,
    pub kind: &'a str,
    slots: &'a [Slot],
    items: &'a [Slot],
    scratch: &'a str,
}

/// One field's value as a rule sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// The field is not in the event.
    Absent,
    Null,
    Bool(bool),
    Num(f64),
    Str(&'a str),
    List(List<'a>),
    /// A nested object; present, but not a scalar.
    Object,
}

/// An array of scalars (nested objects and arrays inside it are skipped).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct List<'a> {
    items: &'a [Slot],
    line: &'a str,
    scratch: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Slot {
    Absent,
    Null,
    Bool(bool),
    Num(f64),
    Str(Text),
    List { start: u32, len: u32 },
    Object,
}

/// Where a string value lives: in the line itself (no escapes) or, once
/// unescaped, in the decoder's scratch buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Text {
    Line { start: u32, len: u32 },
    Scratch { start: u32, len: u32 },
}

fn resolve<'a>(slot: Slot, items: &'a [Slot], line: &'a str, scratch: &'a str) -> Value<'a> {
    match slot {
        Slot::Absent => Value::Absent,
        Slot::Null => Value::Null,
        Slot::Bool(b) => Value::Bool(b),
        Slot::Num(n) => Value::Num(n),
        Slot::Str(Text::Line { start, len }) => {
            Value::Str(line.get(start as usize..(start + len) as usize).unwrap_or(""))
        }
        Slot::Str(Text::Scratch { start, len }) => {
            Value::Str(scratch.get(start as usize..(start + len) as usize).unwrap_or(""))
        }
        Slot::List { start, len } => {
            Value::List(List { items: items.get(start as usize..(start + len) as usize).unwrap_or(&[]), line, scratch })
        }
        Slot::Object => Value::Object,
    }
}

impl<'a> EventRef<'a> {
    pub fn get(&self, field: FieldId) -> Value<'a> {
        if field == FieldId::KIND {
            // The decoded kind, which may be a source's default.
            return if self.kind.is_empty() { Value::Absent } else { Value::Str(self.kind) };
        }
        self.raw(field)
    }

    /// The field as it appears in the event.
    pub(crate) fn raw(&self, field: FieldId) -> Value<'a> {
        let slot = self.slots.get(field.index()).copied().unwrap_or(Slot::Absent);
        resolve(slot, self.items, self.line, self.scratch)
    }
}

impl<'a> List<'a> {
    pub fn iter(&self) -> impl Iterator<Item = Value<'a>> + '_ {
        self.items.iter().map(|&slot| resolve(slot, &[], self.line, self.scratch))
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl<'a> Value<'a> {
    pub fn is_present(&self) -> bool {
        !matches!(self, Value::Absent)
    }

    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A number, or a string that holds one (`"401"`).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Num(n) => Some(*n),
            Value::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// Calls `f` with each scalar: the value itself, or each list element.
    /// Sigma semantics: a condition on a list field holds if it holds for
    /// any element.
    pub fn any(&self, mut f: impl FnMut(Value<'a>) -> bool) -> bool {
        match self {
            Value::List(list) => list.iter().any(f),
            other => f(*other),
        }
    }

    /// Writes the value as group-key, distinct-value or template text.
    /// Returns false for a value that has no text form (absent, null,
    /// object): such a value is no group, no value and renders as `?`.
    pub fn write_text(&self, out: &mut String) -> bool {
        use std::fmt::Write;
        match self {
            Value::Str(s) => out.push_str(s),
            Value::Num(n) => {
                let _ = write!(out, "{n}");
            }
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::List(list) => {
                for (i, item) in list.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_text(out);
                }
            }
            Value::Absent | Value::Null | Value::Object => return false,
        }
        true
    }
}
