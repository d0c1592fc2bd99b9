//! Reading a detector's parameters out of the flat `detect:` map.
//!
//! Each detector type takes the parameters it needs through a
//! [`ParamReader`] (a [`FieldReader`] that also knows the rule's schema and
//! lists); [`ParamReader::finish`] then reports every parameter the rule
//! gave that this type did not take, so a typo or a parameter meant for
//! another type is an error, not a no-op.

use crate::event::{FieldId, Schema};
use crate::rules::fields::{FieldReader, Fields, FromNode, OneOrMany};
use crate::rules::filter::{self, FilterCtx};
use crate::rules::yaml::{Loc, Node, Spanned};
use crate::rules::{Filter, Lists};
use crate::time::Span;

pub struct ParamReader<'a> {
    fields: FieldReader<'a>,
    /// The detector type, as rules name it.
    pub kind: &'static str,
    /// Set for the reader of one of a sequence's steps.
    step: bool,
    pub schema: &'a mut Schema,
    pub lists: &'a Lists,
}

impl<'a> ParamReader<'a> {
    /// `fields` has already taken `type` and `group_by`.
    pub fn new(
        fields: FieldReader<'a>,
        kind: &'static str,
        schema: &'a mut Schema,
        lists: &'a Lists,
    ) -> ParamReader<'a> {
        ParamReader { fields, kind, step: false, schema, lists }
    }

    pub fn optional<T: FromNode>(&mut self, name: &'static str) -> Option<Spanned<T>> {
        self.fields.get(name)
    }

    pub fn required<T: FromNode>(&mut self, name: &'static str) -> Option<Spanned<T>> {
        let (kind, step) = (self.kind, self.step);
        self.fields.require(name, || match step {
            false => format!("`{kind}` detectors need `{name}`"),
            true => format!("each step of a `{kind}` needs `{name}`"),
        })
    }

    /// Where `name` is given, without taking it.
    pub fn given(&self, name: &str) -> Option<Loc> {
        self.fields.given(name)
    }

    /// A required duration above zero.
    pub fn duration(&mut self, name: &'static str) -> Option<Span> {
        let value = self.required(name)?;
        self.parse_duration(name, &value)
    }

    /// A duration above zero, or `default` if absent.
    pub fn duration_or(&mut self, name: &'static str, default: Span) -> Option<Span> {
        match self.optional(name) {
            Some(value) => self.parse_duration(name, &value),
            None => Some(default),
        }
    }

    /// A duration above zero if given: `Some(None)` if absent, `None` if
    /// given and wrong (reported).
    pub fn optional_duration(&mut self, name: &'static str) -> Option<Option<Span>> {
        match self.optional(name) {
            Some(value) => self.parse_duration(name, &value).map(Some),
            None => Some(None),
        }
    }

    fn parse_duration(&mut self, name: &'static str, value: &Spanned<String>) -> Option<Span> {
        match Span::parse(&value.value) {
            Ok(span) if span > Span::ZERO => Some(span),
            Ok(_) => {
                self.error(value, format!("`{name}` must be longer than zero"));
                None
            }
            Err(message) => {
                self.error(value, message);
                None
            }
        }
    }

    /// A required number above zero.
    pub fn positive(&mut self, name: &'static str) -> Option<f64> {
        let value = self.required(name)?;
        self.check_positive(name, &value)
    }

    /// A number above zero, or `default` if absent.
    pub fn positive_or(&mut self, name: &'static str, default: f64) -> Option<f64> {
        match self.optional(name) {
            Some(value) => self.check_positive(name, &value),
            None => Some(default),
        }
    }

    fn check_positive(&mut self, name: &'static str, value: &Spanned<f64>) -> Option<f64> {
        if value.value.is_finite() && value.value > 0.0 {
            Some(value.value)
        } else {
            self.error(value, format!("`{name}` must be a number above zero"));
            None
        }
    }

    pub fn field(&mut self, name: &'static str) -> Option<FieldId> {
        let value = self.required(name)?;
        Some(self.intern(&value))
    }

    pub fn optional_field(&mut self, name: &'static str) -> Option<FieldId> {
        let value = self.optional(name)?;
        Some(self.intern(&value))
    }

    /// Optional field paths, one or a list, in order.
    pub fn optional_fields(&mut self, name: &'static str) -> Vec<FieldId> {
        let Some(value) = self.optional::<OneOrMany>(name) else { return Vec::new() };
        let mut fields = Vec::new();
        for path in &value.value.0 {
            if path.trim().is_empty() {
                self.error(&value, "a field path must not be empty");
            }
            fields.push(self.schema.intern(path.trim()));
        }
        fields
    }

    fn intern(&mut self, value: &Spanned<String>) -> FieldId {
        if value.value.trim().is_empty() {
            self.error(value, "a field path must not be empty");
        }
        self.schema.intern(value.value.trim())
    }

    pub fn filter(&mut self, node: &Spanned<Node>) -> Filter {
        filter::compile(node, &mut FilterCtx { schema: self.schema, lists: self.lists, sink: self.fields.sink })
    }

    pub fn choice(&mut self, name: &'static str, options: &[&'static str]) -> Option<&'static str> {
        let value = self.optional::<String>(name)?;
        let found = options.iter().find(|o| **o == value.value).copied();
        if found.is_none() {
            self.error(&value, format!("`{name}` must be one of: {}", options.join(", ")));
        }
        found
    }

    pub fn error<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) {
        self.fields.sink.error(at, message);
    }

    pub fn error_at(&mut self, at: Loc, message: impl Into<String>) {
        self.fields.sink.error_at(at, message);
    }

    /// Reads one step of a sequence (a map of its own) with `read`, then
    /// reports what the step gave that `read` did not take.
    pub fn step<R>(&mut self, step: &Spanned<Fields>, read: impl FnOnce(&mut ParamReader<'_>) -> R) -> R {
        let fields = FieldReader::new(&step.value, Loc::of(step), self.fields.sink);
        let mut reader = ParamReader { fields, kind: self.kind, step: true, schema: self.schema, lists: self.lists };
        let result = read(&mut reader);
        reader.fields.finish(|name| format!("`{name}` is not a field of a step"));
        result
    }

    /// Reports every parameter that was given but not taken.
    pub fn finish(self) {
        let kind = self.kind;
        self.fields.finish(|name| format!("`{name}` is not a parameter of `{kind}` detectors"));
    }
}
