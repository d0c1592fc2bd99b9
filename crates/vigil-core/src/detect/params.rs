//! Reading a detector's parameters out of the flat `detect:` map.
//!
//! Each detector type takes the parameters it needs through a
//! [`ParamReader`], which records what was read; [`ParamReader::finish`]
//! then reports every parameter the rule gave that this type ignores, so a
//! typo or a parameter meant for another type is an error, not a no-op.

use crate::event::{FieldId, Schema};
use crate::rules::filter::{self, FilterCtx};
use crate::rules::spec::DetectSpec;
use crate::rules::yaml::{Loc, Node, Spanned};
use crate::rules::{Filter, Lists, Sink};
use crate::time::Span;

pub struct ParamReader<'a> {
    pub spec: &'a DetectSpec,
    pub kind: &'static str,
    pub at: Loc,
    pub schema: &'a mut Schema,
    pub lists: &'a Lists,
    pub sink: &'a mut Sink,
    used: Vec<&'static str>,
}

type Getter<T> = fn(&DetectSpec) -> &Option<Spanned<T>>;

impl<'a> ParamReader<'a> {
    pub fn new(
        spec: &'a DetectSpec,
        kind: &'static str,
        at: Loc,
        schema: &'a mut Schema,
        lists: &'a Lists,
        sink: &'a mut Sink,
    ) -> ParamReader<'a> {
        ParamReader { spec, kind, at, schema, lists, sink, used: vec!["type", "group_by"] }
    }

    pub fn optional<T>(&mut self, name: &'static str, get: Getter<T>) -> Option<&'a Spanned<T>> {
        self.used.push(name);
        get(self.spec).as_ref()
    }

    pub fn required<T>(&mut self, name: &'static str, get: Getter<T>) -> Option<&'a Spanned<T>> {
        let value = self.optional(name, get);
        if value.is_none() {
            self.sink.error_at(self.at, format!("`{}` detectors need `{name}`", self.kind));
        }
        value
    }

    /// A required duration above zero.
    pub fn duration(&mut self, name: &'static str, get: Getter<String>) -> Option<Span> {
        let value = self.required(name, get)?;
        self.parse_duration(name, value)
    }

    /// A duration above zero, or `default` if absent.
    pub fn duration_or(&mut self, name: &'static str, get: Getter<String>, default: Span) -> Option<Span> {
        match self.optional(name, get) {
            Some(value) => self.parse_duration(name, value),
            None => Some(default),
        }
    }

    fn parse_duration(&mut self, name: &'static str, value: &Spanned<String>) -> Option<Span> {
        match Span::parse(&value.value) {
            Ok(span) if span > Span::ZERO => Some(span),
            Ok(_) => {
                self.sink.error(value, format!("`{name}` must be longer than zero"));
                None
            }
            Err(message) => {
                self.sink.error(value, message);
                None
            }
        }
    }

    /// A required number above zero.
    pub fn positive(&mut self, name: &'static str, get: Getter<f64>) -> Option<f64> {
        let value = self.required(name, get)?;
        self.check_positive(name, value)
    }

    /// A number above zero, or `default` if absent.
    pub fn positive_or(&mut self, name: &'static str, get: Getter<f64>, default: f64) -> Option<f64> {
        match self.optional(name, get) {
            Some(value) => self.check_positive(name, value),
            None => Some(default),
        }
    }

    fn check_positive(&mut self, name: &'static str, value: &Spanned<f64>) -> Option<f64> {
        if value.value.is_finite() && value.value > 0.0 {
            Some(value.value)
        } else {
            self.sink.error(value, format!("`{name}` must be a number above zero"));
            None
        }
    }

    pub fn field(&mut self, name: &'static str, get: Getter<String>) -> Option<FieldId> {
        let value = self.required(name, get)?;
        Some(self.intern(value))
    }

    pub fn optional_field(&mut self, name: &'static str, get: Getter<String>) -> Option<FieldId> {
        let value = self.optional(name, get)?;
        Some(self.intern(value))
    }

    /// Optional field paths, one or a list, in order.
    pub fn optional_fields(&mut self, name: &'static str, get: Getter<crate::rules::spec::OneOrMany>) -> Vec<FieldId> {
        let Some(value) = self.optional(name, get) else { return Vec::new() };
        let mut fields = Vec::new();
        for path in value.value.items() {
            if path.trim().is_empty() {
                self.sink.error(value, "a field path must not be empty");
            }
            fields.push(self.schema.intern(path.trim()));
        }
        fields
    }

    fn intern(&mut self, value: &Spanned<String>) -> FieldId {
        if value.value.trim().is_empty() {
            self.sink.error(value, "a field path must not be empty");
        }
        self.schema.intern(value.value.trim())
    }

    pub fn filter(&mut self, node: &Spanned<Node>) -> Filter {
        filter::compile(node, &mut FilterCtx { schema: self.schema, lists: self.lists, sink: self.sink })
    }

    pub fn choice(
        &mut self,
        name: &'static str,
        get: Getter<String>,
        options: &[&'static str],
    ) -> Option<&'static str> {
        let value = self.optional(name, get)?;
        let found = options.iter().find(|o| **o == value.value).copied();
        if found.is_none() {
            self.sink.error(value, format!("`{name}` must be one of: {}", options.join(", ")));
        }
        found
    }

    pub fn error<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) {
        self.sink.error(at, message);
    }

    /// Reports every parameter that was given but not read.
    pub fn finish(self) {
        let spec = self.spec;
        let given = [
            ("window", spec.window.as_ref().map(Loc::of)),
            ("threshold", spec.threshold.as_ref().map(Loc::of)),
            ("sum", spec.sum.as_ref().map(Loc::of)),
            ("field", spec.field.as_ref().map(Loc::of)),
            ("match", spec.sub_filter.as_ref().map(Loc::of)),
            ("ratio", spec.ratio.as_ref().map(Loc::of)),
            ("min_events", spec.min_events.as_ref().map(Loc::of)),
            ("interval", spec.interval.as_ref().map(Loc::of)),
            ("method", spec.method.as_ref().map(Loc::of)),
            ("p_value", spec.p_value.as_ref().map(Loc::of)),
            ("min_history", spec.min_history.as_ref().map(Loc::of)),
            ("history", spec.history.as_ref().map(Loc::of)),
            ("min_value", spec.min_value.as_ref().map(Loc::of)),
            ("direction", spec.direction.as_ref().map(Loc::of)),
            ("alpha", spec.alpha.as_ref().map(Loc::of)),
            ("learning", spec.learning.as_ref().map(Loc::of)),
            ("forget_after", spec.forget_after.as_ref().map(Loc::of)),
            ("mode", spec.mode.as_ref().map(Loc::of)),
            ("timezone", spec.timezone.as_ref().map(Loc::of)),
            ("timezone_field", spec.timezone_field.as_ref().map(Loc::of)),
            ("hours", spec.hours.as_ref().map(Loc::of)),
            ("days", spec.days.as_ref().map(Loc::of)),
            ("holidays", spec.holidays.as_ref().map(Loc::of)),
            ("holidays_list", spec.holidays_list.as_ref().map(Loc::of)),
            ("min_share", spec.min_share.as_ref().map(Loc::of)),
            ("tolerance", spec.tolerance.as_ref().map(Loc::of)),
            ("day_tolerance", spec.day_tolerance.as_ref().map(Loc::of)),
            ("steps", spec.steps.as_ref().map(Loc::of)),
            ("type", spec.kind.as_ref().map(Loc::of)),
            ("group_by", spec.group_by.as_ref().map(Loc::of)),
        ];
        for (name, loc) in given {
            if let Some(loc) = loc {
                if !self.used.contains(&name) {
                    self.sink.error_at(loc, format!("`{name}` is not a parameter of `{}` detectors", self.kind));
                }
            }
        }
    }
}
