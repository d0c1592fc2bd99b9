//! Sigma-style event filters, compiled once and evaluated per event.
//!
//! A map is AND, a list of values is OR, `field|modifier: value` changes
//! how a value is compared, and named selections are combined by a
//! `condition:`. String comparisons ignore case unless `|cased` is given,
//! as in Sigma. Compilation resolves field paths to schema slots and builds
//! the matchers (regexes, Aho-Corasick automata, CIDR sets) up front, so
//! evaluation does no parsing and, on the common paths, no allocation.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use foldhash::fast::RandomState;
use ipnet::IpNet;
use regex::{Regex, RegexBuilder};

use super::condition::{self, Cond};
use super::lists::Lists;
use super::yaml::{Key, Loc, Node, Spanned};
use super::Sink;
use crate::event::{EventRef, FieldId, Schema, Value};
use crate::time::{Span, Timestamp};

/// A compiled filter.
#[derive(Debug, Clone)]
pub struct Filter {
    expr: Expr,
}

#[derive(Debug, Clone)]
enum Expr {
    True,
    And(Box<[Expr]>),
    Or(Box<[Expr]>),
    Not(Box<Expr>),
    Field(FieldTest),
    /// Sigma keywords: any of these strings anywhere in the raw event.
    Keywords(AhoCorasick),
}

#[derive(Debug, Clone)]
struct FieldTest {
    field: FieldId,
    test: Test,
}

#[derive(Debug, Clone)]
enum Test {
    Exists(bool),
    /// Case-insensitive equality with many strings (`in_list`, long lists).
    InSet(Arc<HashSet<Box<str>, RandomState>>),
    /// Any of the patterns occurs in the value (case-insensitive).
    ContainsAny(AhoCorasick),
    /// The value is an address in one of the networks (`cidr`, any length).
    InNetworks(Arc<Networks>),
    Atoms {
        atoms: Box<[Atom]>,
        all: bool,
    },
}

#[derive(Debug, Clone)]
enum Atom {
    Str { text: Box<str>, op: StrOp, cased: bool, number: Option<f64> },
    Num(f64),
    Bool(bool),
    Null,
    Regex(Regex),
    Cidr(IpNet),
    Compare(Cmp, f64),
    Age(AgeOp, Span),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StrOp {
    Equals,
    Contains,
    StartsWith,
    EndsWith,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Gt,
    Gte,
    Lt,
    Lte,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AgeOp {
    OlderThan,
    NewerThan,
}

/// Lists longer than this become a hash set.
const SET_THRESHOLD: usize = 8;

impl Filter {
    pub fn matches(&self, event: &EventRef<'_>) -> bool {
        self.expr.eval(event)
    }

    /// The event kinds this filter can match, if it requires `kind` to be one
    /// of a few literal values; lets the engine skip it for other kinds.
    pub fn required_kinds(&self) -> Option<Vec<String>> {
        self.expr.required_kinds()
    }
}

impl Expr {
    fn eval(&self, event: &EventRef<'_>) -> bool {
        match self {
            Expr::True => true,
            Expr::And(items) => items.iter().all(|e| e.eval(event)),
            Expr::Or(items) => items.iter().any(|e| e.eval(event)),
            Expr::Not(inner) => !inner.eval(event),
            Expr::Field(test) => test.eval(event),
            Expr::Keywords(ac) => ac.is_match(event.line),
        }
    }

    fn required_kinds(&self) -> Option<Vec<String>> {
        match self {
            Expr::Field(FieldTest { field, test: Test::Atoms { atoms, all: false } }) if *field == FieldId::KIND => {
                atoms
                    .iter()
                    .map(|atom| match atom {
                        Atom::Str { text, op: StrOp::Equals, .. } => Some(text.to_lowercase()),
                        _ => None,
                    })
                    .collect()
            }
            Expr::Field(FieldTest { field, test: Test::InSet(set) }) if *field == FieldId::KIND => {
                Some(set.iter().map(|s| s.to_string()).collect())
            }
            Expr::And(items) => items.iter().find_map(Expr::required_kinds),
            Expr::Or(items) => {
                let mut kinds = Vec::new();
                for item in items.iter() {
                    kinds.extend(item.required_kinds()?);
                }
                Some(kinds)
            }
            _ => None,
        }
    }
}

impl FieldTest {
    fn eval(&self, event: &EventRef<'_>) -> bool {
        let value = event.get(self.field);
        match &self.test {
            Test::Exists(expected) => value.is_present() == *expected,
            Test::InSet(set) => value.any(|v| match v {
                Value::Str(s) => in_set(set, s),
                Value::Num(_) | Value::Bool(_) => {
                    let mut text = String::new();
                    v.write_text(&mut text);
                    set.contains(text.as_str())
                }
                _ => false,
            }),
            Test::ContainsAny(ac) => value.any(|v| matches!(v, Value::Str(s) if ac.is_match(s))),
            Test::InNetworks(nets) => value.any(|v| v.as_str().and_then(parse_ip).is_some_and(|ip| nets.contains(ip))),
            Test::Atoms { atoms, all } => {
                if !value.is_present() {
                    let null = |a: &Atom| matches!(a, Atom::Null);
                    return if *all { atoms.iter().all(null) } else { atoms.iter().any(null) };
                }
                if *all {
                    atoms.iter().all(|atom| value.any(|v| atom.matches(v, event.ts)))
                } else {
                    value.any(|v| atoms.iter().any(|atom| atom.matches(v, event.ts)))
                }
            }
        }
    }
}

/// An address as events write it; `::ffff:a.b.c.d` is the IPv4 address it
/// carries, so it matches (and evades) nothing an IPv4 network would not.
fn parse_ip(text: &str) -> Option<IpAddr> {
    text.trim().parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// Networks as sorted, merged ranges of 128-bit addresses (IPv4 in the
/// IPv4-mapped block): a lookup is a binary search, whatever the length of
/// the list (a 1.2M-entry blocklist once stalled a replay as a linear scan
/// that parsed the address once per entry).
#[derive(Debug)]
pub(crate) struct Networks {
    ranges: Vec<(u128, u128)>,
}

impl Networks {
    fn new(nets: &[IpNet]) -> Networks {
        let mut ranges: Vec<(u128, u128)> = nets.iter().map(|net| (key(net.network()), key(net.broadcast()))).collect();
        ranges.sort_unstable();
        let mut merged: Vec<(u128, u128)> = Vec::with_capacity(ranges.len());
        for (start, end) in ranges {
            match merged.last_mut() {
                Some(last) if start <= last.1.saturating_add(1) => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        Networks { ranges: merged }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let k = key(ip);
        let at = self.ranges.partition_point(|&(start, _)| start <= k);
        at > 0 && self.ranges[at - 1].1 >= k
    }
}

fn key(ip: IpAddr) -> u128 {
    match ip.to_canonical() {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn in_set(set: &HashSet<Box<str>, RandomState>, text: &str) -> bool {
    if text.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii()) {
        set.contains(text.to_lowercase().as_str())
    } else {
        set.contains(text)
    }
}

impl Atom {
    fn matches(&self, value: Value<'_>, event_ts: Timestamp) -> bool {
        match self {
            Atom::Str { text, op, cased, number } => match value {
                Value::Str(s) => str_op(s, text, *op, *cased),
                Value::Num(n) => *op == StrOp::Equals && *number == Some(n),
                Value::Bool(b) => *op == StrOp::Equals && text.eq_ignore_ascii_case(if b { "true" } else { "false" }),
                _ => false,
            },
            Atom::Num(expected) => value.as_f64() == Some(*expected),
            Atom::Bool(expected) => match value {
                Value::Bool(b) => b == *expected,
                Value::Str(s) => s.eq_ignore_ascii_case(if *expected { "true" } else { "false" }),
                _ => false,
            },
            Atom::Null => matches!(value, Value::Null),
            Atom::Regex(re) => value.as_str().is_some_and(|s| re.is_match(s)),
            Atom::Cidr(net) => value.as_str().and_then(parse_ip).is_some_and(|ip| net.contains(&ip)),
            Atom::Compare(cmp, bound) => value.as_f64().is_some_and(|x| match cmp {
                Cmp::Gt => x > *bound,
                Cmp::Gte => x >= *bound,
                Cmp::Lt => x < *bound,
                Cmp::Lte => x <= *bound,
            }),
            Atom::Age(op, span) => {
                let Some(then) = value.as_str().and_then(Timestamp::parse_rfc3339) else {
                    return false;
                };
                let age = event_ts.since(then);
                match op {
                    AgeOp::OlderThan => age > *span,
                    AgeOp::NewerThan => age < *span,
                }
            }
        }
    }
}

/// Compares `hay` with `pattern`, which is already lower-case unless `cased`.
fn str_op(hay: &str, pattern: &str, op: StrOp, cased: bool) -> bool {
    if cased || pattern.is_ascii() {
        let (h, p) = (hay.as_bytes(), pattern.as_bytes());
        let eq = |a: &[u8], b: &[u8]| {
            if cased {
                a == b
            } else {
                a.eq_ignore_ascii_case(b)
            }
        };
        return match op {
            StrOp::Equals => h.len() == p.len() && eq(h, p),
            StrOp::StartsWith => h.len() >= p.len() && eq(&h[..p.len()], p),
            StrOp::EndsWith => h.len() >= p.len() && eq(&h[h.len() - p.len()..], p),
            StrOp::Contains if cased => hay.contains(pattern),
            StrOp::Contains => h.windows(p.len().max(1)).any(|w| eq(w, p)) || p.is_empty(),
        };
    }
    let hay = hay.to_lowercase();
    match op {
        StrOp::Equals => hay == pattern,
        StrOp::StartsWith => hay.starts_with(pattern),
        StrOp::EndsWith => hay.ends_with(pattern),
        StrOp::Contains => hay.contains(pattern),
    }
}

// ---------------------------------------------------------------------------
// Compilation

/// What a filter compiler needs from the rule set being built.
pub(crate) struct FilterCtx<'a> {
    pub schema: &'a mut Schema,
    pub lists: &'a Lists,
    pub sink: &'a mut Sink,
}

/// Compiles the `filter:` node of a rule. Errors go to the sink; on error
/// the returned filter is a placeholder and must not be used.
pub(crate) fn compile(node: &Spanned<Node>, ctx: &mut FilterCtx<'_>) -> Filter {
    Filter { expr: compile_top(node, ctx) }
}

fn compile_top(node: &Spanned<Node>, ctx: &mut FilterCtx<'_>) -> Expr {
    let Node::Map(entries) = &node.value else {
        return compile_selection(node, ctx);
    };
    let Some((_, condition)) = entries.iter().find(|(k, _)| k.value.0 == "condition") else {
        return compile_selection(node, ctx);
    };
    let names: Vec<String> =
        entries.iter().filter(|(k, _)| k.value.0 != "condition").map(|(k, _)| k.value.0.clone()).collect();
    let selections: Vec<Expr> =
        entries.iter().filter(|(k, _)| k.value.0 != "condition").map(|(_, v)| compile_selection(v, ctx)).collect();
    let Node::Str(text) = &condition.value else {
        ctx.sink.error(condition, "`condition` must be a string such as `selection and not allowlist`");
        return Expr::True;
    };
    match condition::parse(text, &names) {
        Ok(cond) => lower(&cond, &selections),
        Err(err) => {
            let loc = Loc::of(condition);
            let quote = usize::from(matches!(ctx.sink.char_at(loc), Some('"' | '\'')));
            ctx.sink.error_at(loc.shifted(err.offset + quote), format!("condition: {}", err.message));
            Expr::True
        }
    }
}

fn lower(cond: &Cond, selections: &[Expr]) -> Expr {
    match cond {
        Cond::Selection(i) => selections.get(*i).cloned().unwrap_or(Expr::True),
        Cond::And(items) => Expr::And(items.iter().map(|c| lower(c, selections)).collect()),
        Cond::Or(items) => Expr::Or(items.iter().map(|c| lower(c, selections)).collect()),
        Cond::Not(inner) => Expr::Not(Box::new(lower(inner, selections))),
    }
}

/// A selection: a map (AND of fields), a list of maps (OR), or a list of
/// keywords.
fn compile_selection(node: &Spanned<Node>, ctx: &mut FilterCtx<'_>) -> Expr {
    match &node.value {
        Node::Map(entries) => {
            let mut tests = Vec::with_capacity(entries.len());
            for (key, value) in entries {
                compile_field(&key.value.0, key, value, ctx, &mut tests);
            }
            Expr::And(tests.into())
        }
        Node::Seq(items) if items.iter().all(|i| matches!(i.value, Node::Map(_))) && !items.is_empty() => {
            Expr::Or(items.iter().map(|i| compile_selection(i, ctx)).collect())
        }
        Node::Seq(items) if !items.is_empty() => {
            let mut words = Vec::new();
            for item in items {
                match &item.value {
                    Node::Str(s) => words.push(s.clone()),
                    Node::Int(_) | Node::Float(_) | Node::Bool(_) => words.push(scalar_text(&item.value)),
                    _ => ctx.sink.error(item, "a keyword list may hold only strings (or only maps)"),
                }
            }
            Expr::Keywords(case_insensitive_automaton(&words))
        }
        other => {
            ctx.sink.error(node, format!("a selection must be a map of fields or a list, not {}", other.kind_name()));
            Expr::True
        }
    }
}

fn case_insensitive_automaton(patterns: &[String]) -> AhoCorasick {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::Standard)
        .build(patterns)
        .unwrap_or_else(|_| AhoCorasick::new([""; 0]).expect("an empty automaton always builds"))
}

fn scalar_text(node: &Node) -> String {
    match node {
        Node::Str(s) => s.clone(),
        Node::Int(i) => i.to_string(),
        Node::Float(f) => f.to_string(),
        Node::Bool(b) => b.to_string(),
        Node::Null => "null".into(),
        _ => String::new(),
    }
}

/// The comparison a modifier selects; at most one per field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Str(StrOp),
    Re,
    Cidr,
    Compare(Cmp),
    Exists,
    Age(AgeOp),
}

/// The modifiers after `field|`, parsed.
#[derive(Default)]
struct Modifiers {
    op: Option<Op>,
    all: bool,
    cased: bool,
    in_list: bool,
    regex_flags: String,
}

const MODIFIERS: &str = "contains, startswith, endswith, re (re|i, re|m, re|s), cidr, gt, gte, lt, lte, \
                         exists, all, cased, in_list, older_than, newer_than";

fn parse_modifiers(key: &Spanned<Key>, parts: &[&str], ctx: &mut FilterCtx<'_>) -> Option<Modifiers> {
    let mut mods = Modifiers::default();
    let mut ok = true;
    for &part in parts {
        let op = match part {
            "contains" => Op::Str(StrOp::Contains),
            "startswith" => Op::Str(StrOp::StartsWith),
            "endswith" => Op::Str(StrOp::EndsWith),
            "re" => Op::Re,
            "cidr" => Op::Cidr,
            "gt" => Op::Compare(Cmp::Gt),
            "gte" => Op::Compare(Cmp::Gte),
            "lt" => Op::Compare(Cmp::Lt),
            "lte" => Op::Compare(Cmp::Lte),
            "exists" => Op::Exists,
            "older_than" => Op::Age(AgeOp::OlderThan),
            "newer_than" => Op::Age(AgeOp::NewerThan),
            "i" | "m" | "s" if mods.op == Some(Op::Re) => {
                mods.regex_flags.push_str(part);
                continue;
            }
            "all" => {
                mods.all = true;
                continue;
            }
            "cased" => {
                mods.cased = true;
                continue;
            }
            "in_list" => {
                mods.in_list = true;
                continue;
            }
            other => {
                ctx.sink.error(key, format!("unknown modifier `{other}` (known: {MODIFIERS})"));
                ok = false;
                continue;
            }
        };
        if mods.op.is_some() {
            ctx.sink.error(key, format!("modifier `{part}` cannot be combined with another comparison"));
            ok = false;
        }
        mods.op = Some(op);
    }
    ok.then_some(mods)
}

fn compile_field(
    key_text: &str,
    key: &Spanned<Key>,
    value: &Spanned<Node>,
    ctx: &mut FilterCtx<'_>,
    out: &mut Vec<Expr>,
) {
    let mut parts = key_text.split('|');
    let path = parts.next().unwrap_or_default().trim();
    let modifiers: Vec<&str> = parts.collect();
    if path.is_empty() {
        ctx.sink.error(key, "a field name is missing before `|`");
        return;
    }
    // A nested map is a shorthand for dotted paths: `geo: {country: DE}`.
    if let (Node::Map(entries), true) = (&value.value, modifiers.is_empty()) {
        for (inner_key, inner_value) in entries {
            let nested = format!("{path}.{}", inner_key.value.0);
            compile_field(&nested, inner_key, inner_value, ctx, out);
        }
        return;
    }
    let Some(mods) = parse_modifiers(key, &modifiers, ctx) else {
        return;
    };
    let field = ctx.schema.intern(path);

    if mods.op == Some(Op::Exists) {
        match value.value {
            Node::Bool(expected) => out.push(Expr::Field(FieldTest { field, test: Test::Exists(expected) })),
            _ => ctx.sink.error(value, "`exists` takes true or false"),
        }
        return;
    }

    let values: Vec<(Node, Loc)> = if mods.in_list {
        let Node::Str(name) = &value.value else {
            ctx.sink.error(value, "`in_list` takes the name of a list in rules/lists/");
            return;
        };
        let Some(list) = ctx.lists.get(name) else {
            let known: Vec<&str> = ctx.lists.names().collect();
            ctx.sink.error(value, format!("unknown list `{name}` (loaded: {})", known.join(", ")));
            return;
        };
        list.iter().map(|entry| (Node::Str(entry.clone()), Loc::of(value))).collect()
    } else {
        match &value.value {
            Node::Seq(items) if items.is_empty() => {
                ctx.sink.error(value, "an empty list matches nothing; remove the field or add values");
                return;
            }
            Node::Seq(items) => items.iter().map(|i| (i.value.clone(), Loc::of(i))).collect(),
            Node::Map(_) => {
                ctx.sink.error(value, "a modified field takes a value or a list of values, not a map");
                return;
            }
            other => vec![(other.clone(), Loc::of(value))],
        }
    };

    let plain_strings = mods.op.is_none() && !mods.cased && !mods.all;
    if plain_strings && values.len() > SET_THRESHOLD && values.iter().all(|(v, _)| matches!(v, Node::Str(_))) {
        let set: HashSet<Box<str>, RandomState> =
            values.iter().map(|(v, _)| scalar_text(v).to_lowercase().into_boxed_str()).collect();
        out.push(Expr::Field(FieldTest { field, test: Test::InSet(Arc::new(set)) }));
        return;
    }
    let ascii_strings = values.iter().all(|(v, _)| matches!(v, Node::Str(s) if s.is_ascii()));
    if mods.op == Some(Op::Str(StrOp::Contains)) && !mods.cased && !mods.all && ascii_strings {
        let patterns: Vec<String> = values.iter().map(|(v, _)| scalar_text(v)).collect();
        out.push(Expr::Field(FieldTest { field, test: Test::ContainsAny(case_insensitive_automaton(&patterns)) }));
        return;
    }

    let mut atoms = Vec::with_capacity(values.len());
    for (node, loc) in &values {
        match compile_atom(node, &mods) {
            Ok(atom) => atoms.push(atom),
            Err(message) => ctx.sink.error_at(*loc, message),
        }
    }
    if atoms.len() == values.len() {
        let nets: Vec<IpNet> =
            atoms.iter().filter_map(|a| if let Atom::Cidr(net) = a { Some(*net) } else { None }).collect();
        if nets.len() == atoms.len() && nets.len() > 1 && !mods.all {
            out.push(Expr::Field(FieldTest { field, test: Test::InNetworks(Arc::new(Networks::new(&nets))) }));
            return;
        }
        out.push(Expr::Field(FieldTest { field, test: Test::Atoms { atoms: atoms.into(), all: mods.all } }));
    }
}

fn compile_atom(node: &Node, mods: &Modifiers) -> Result<Atom, String> {
    let text = || match node {
        Node::Str(s) => Ok(s.clone()),
        Node::Int(_) | Node::Float(_) | Node::Bool(_) => Ok(scalar_text(node)),
        other => Err(format!("expected a string, found {}", other.kind_name())),
    };
    let number = || match node {
        Node::Int(i) => Ok(*i as f64),
        Node::Float(f) => Ok(*f),
        Node::Str(s) => s.trim().parse::<f64>().map_err(|_| format!("expected a number, found `{s}`")),
        other => Err(format!("expected a number, found {}", other.kind_name())),
    };
    let string_atom = |op: StrOp| -> Result<Atom, String> {
        let raw = text()?;
        let number = raw.trim().parse::<f64>().ok().filter(|_| op == StrOp::Equals);
        let text = if mods.cased { raw } else { raw.to_lowercase() };
        Ok(Atom::Str { text: text.into(), op, cased: mods.cased, number })
    };
    match mods.op {
        None => match node {
            Node::Null => Ok(Atom::Null),
            Node::Bool(b) => Ok(Atom::Bool(*b)),
            Node::Int(_) | Node::Float(_) => number().map(Atom::Num),
            Node::Str(_) => string_atom(StrOp::Equals),
            other => Err(format!("expected a scalar value, found {}", other.kind_name())),
        },
        Some(Op::Str(op)) => string_atom(op),
        Some(Op::Re) => {
            let pattern = text()?;
            RegexBuilder::new(&pattern)
                .case_insensitive(mods.regex_flags.contains('i'))
                .multi_line(mods.regex_flags.contains('m'))
                .dot_matches_new_line(mods.regex_flags.contains('s'))
                .size_limit(1 << 20)
                .build()
                .map(Atom::Regex)
                .map_err(|err| format!("invalid regular expression: {}", err.to_string().replace('\n', " ")))
        }
        Some(Op::Cidr) => {
            let text = text()?;
            text.trim()
                .parse::<IpNet>()
                .or_else(|_| text.trim().parse::<IpAddr>().map(IpNet::from))
                .map(canonical_net)
                .map(Atom::Cidr)
                .map_err(|_| format!("`{text}` is not a CIDR network such as 10.0.0.0/8"))
        }
        Some(Op::Compare(cmp)) => number().map(|n| Atom::Compare(cmp, n)),
        Some(Op::Age(op)) => Ok(Atom::Age(op, Span::parse(&text()?)?)),
        Some(Op::Exists) => Err("`exists` takes true or false".into()),
    }
}

/// `::ffff:10.0.0.0/104` is `10.0.0.0/8`.
fn canonical_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, IpNet::V4),
            None => net,
        },
        _ => net.trunc(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Decoder;
    use crate::rules::yaml::{parse_document, Document};

    fn build(yaml: &str) -> Result<(Filter, Decoder), Vec<String>> {
        let mut schema = Schema::new();
        let mut lists = Lists::new();
        lists.insert("offboarded", "bob\nEve\n");
        lists.insert("office", "10.0.0.0/8\n192.168.1.0/24\n");
        let mut sink = Sink::new(1);
        let node: Spanned<Node> = parse_document(&Document { text: yaml, first_line: 1 }).unwrap();
        let filter = compile(&node, &mut FilterCtx { schema: &mut schema, lists: &lists, sink: &mut sink });
        if !sink.problems.is_empty() {
            return Err(sink.problems.iter().map(|p| format!("{}: {}", p.loc, p.message)).collect());
        }
        Ok((filter, Decoder::new(Arc::new(schema))))
    }

    fn check(yaml: &str, event: &str) -> bool {
        let (filter, mut decoder) = build(yaml).unwrap();
        let line = format!(r#"{{"ts":"2026-11-23T10:00:00Z",{}}}"#, event);
        let ev = decoder.decode(&line).unwrap();
        filter.matches(&ev)
    }

    #[test]
    fn maps_are_and_lists_are_or_case_insensitive() {
        let f = "kind: login\noutcome: [failure, locked]";
        assert!(check(f, r#""kind":"login","outcome":"FAILURE""#));
        assert!(check(f, r#""kind":"login","outcome":"locked""#));
        assert!(!check(f, r#""kind":"login","outcome":"success""#));
        assert!(!check(f, r#""kind":"api_call","outcome":"failure""#));
        assert!(!check("user|cased: Alice", r#""kind":"x","user":"alice""#));
    }

    #[test]
    fn string_modifiers() {
        assert!(check("ua|contains: CURL", r#""kind":"x","ua":"my-curl/8""#));
        assert!(check("ua|contains|all: [curl, '8']", r#""kind":"x","ua":"curl/8""#));
        assert!(!check("ua|contains|all: [curl, wget]", r#""kind":"x","ua":"curl/8""#));
        assert!(check("action|startswith: Billing.", r#""kind":"x","action":"billing.update""#));
        assert!(check("action|endswith: .delete", r#""kind":"x","action":"users.delete""#));
        assert!(check("ua|contains: ÉTÉ", r#""kind":"x","ua":"un été""#));
        assert!(check("ua|re: '^curl/\\d+$'", r#""kind":"x","ua":"curl/8""#));
        assert!(!check("ua|re: '^CURL'", r#""kind":"x","ua":"curl/8""#));
        assert!(check("ua|re|i: '^CURL'", r#""kind":"x","ua":"curl/8""#));
    }

    #[test]
    fn numbers_networks_ages_and_existence() {
        assert!(check("status: [401, 403]", r#""kind":"x","status":403"#));
        assert!(check("status: '401'", r#""kind":"x","status":401"#));
        assert!(check("status|gte: 500", r#""kind":"x","status":503"#));
        assert!(!check("status|lt: 500", r#""kind":"x","status":"503""#));
        assert!(check("src_ip|cidr: 10.0.0.0/8", r#""kind":"x","src_ip":"10.1.2.3""#));
        assert!(check("src_ip|cidr: '2001:db8::/32'", r#""kind":"x","src_ip":"2001:db8::1""#));
        assert!(!check("src_ip|cidr: 10.0.0.0/8", r#""kind":"x","src_ip":"not-an-ip""#));
        assert!(check("src_ip|cidr|in_list: office", r#""kind":"x","src_ip":"192.168.1.7""#));
        // An IPv4-mapped IPv6 address is the IPv4 address it carries.
        assert!(check("src_ip|cidr: 10.0.0.0/8", r#""kind":"x","src_ip":"::ffff:10.1.2.3""#));
        assert!(check("src_ip|cidr: '::ffff:10.0.0.0/104'", r#""kind":"x","src_ip":"10.1.2.3""#));
        assert!(!check("src_ip|cidr: 10.0.0.0/8", r#""kind":"x","src_ip":"::ffff:11.1.2.3""#));
        // Lists: any network of them, IPv4 and IPv6 mixed.
        let many = "src_ip|cidr: [10.0.0.0/8, '2001:db8::/32', 192.168.0.0/24, 192.168.1.0/24, 203.0.113.7]";
        for (ip, hit) in [
            ("10.9.9.9", true),
            ("::ffff:192.168.1.200", true),
            ("192.168.2.1", false),
            ("203.0.113.7", true),
            ("203.0.113.8", false),
            ("2001:db8::5", true),
            ("2001:db9::5", false),
            ("nope", false),
        ] {
            assert_eq!(check(many, &format!(r#""kind":"x","src_ip":"{ip}""#)), hit, "{ip}");
        }
        assert!(check("issued|older_than: 90d", r#""kind":"x","issued":"2026-01-01T00:00:00Z""#));
        assert!(!check("issued|older_than: 90d", r#""kind":"x","issued":"2026-11-01T00:00:00Z""#));
        assert!(check("mfa|exists: false", r#""kind":"x""#));
        assert!(check("mfa: null", r#""kind":"x""#));
        assert!(check("mfa: false", r#""kind":"x","mfa":false"#));
        assert!(check("geo.country: de", r#""kind":"x","geo":{"country":"DE"}"#));
        assert!(check("geo: {country: de}", r#""kind":"x","geo":{"country":"DE"}"#));
        assert!(check("tags: admin", r#""kind":"x","tags":["user","ADMIN"]"#));
    }

    #[test]
    fn lists_and_conditions() {
        assert!(check("user|in_list: offboarded", r#""kind":"x","user":"EVE""#));
        assert!(!check("user|in_list: offboarded", r#""kind":"x","user":"alice""#));
        let f = "sel_billing: {action|startswith: billing.}\nsel_delete: {action: account.delete}\nowner: {role: owner}\ncondition: 1 of sel_* and not owner";
        assert!(check(f, r#""kind":"x","action":"billing.update","role":"admin""#));
        assert!(!check(f, r#""kind":"x","action":"billing.update","role":"owner""#));
        assert!(!check(f, r#""kind":"x","action":"chats.read","role":"agent""#));
        assert!(check("- {user: a}\n- {user: b}", r#""kind":"x","user":"b""#));
        assert!(check("[DROP TABLE]", r#""kind":"x","q":"drop table users""#));
    }

    #[test]
    fn many_values_use_a_set() {
        let names: Vec<String> = (0..20).map(|i| format!("User{i}")).collect();
        let f = format!("user: [{}]", names.join(", "));
        assert!(check(&f, r#""kind":"x","user":"user7""#));
        assert!(!check(&f, r#""kind":"x","user":"user70""#));
    }

    #[test]
    fn kind_index_hint() {
        let (f, _) = build("kind: [Login, api_call]\nuser: x").unwrap();
        assert_eq!(f.required_kinds(), Some(vec!["login".to_string(), "api_call".to_string()]));
        let (f, _) = build("user: x").unwrap();
        assert_eq!(f.required_kinds(), None);
    }

    #[test]
    fn errors_are_located_and_all_reported() {
        let errors =
            build("a|foo: 1\nb|re: '('\nc|cidr: nope\nd|gt: many\ne|in_list: missing\nf|exists: 3\ng|contains|gt: 1")
                .unwrap_err();
        assert_eq!(errors.len(), 7, "{errors:#?}");
        assert!(errors[0].starts_with("1:1: unknown modifier `foo`"), "{errors:?}");
        assert!(errors[1].starts_with("2:7: invalid regular expression"), "{errors:?}");
        assert!(errors[4].contains("unknown list `missing`"), "{errors:?}");
        let errors = build("s: {a: 1}\ncondition: s and t").unwrap_err();
        assert_eq!(errors, vec!["2:18: condition: unknown selection `t` (defined: s)"]);
    }
}
