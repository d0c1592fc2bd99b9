//! Enrichment: lookup tables joined into events before any rule sees them.
//!
//! Events say who and where, rarely what a SOC knows about it: the office
//! and time zone of a user, the zone of a country. A table
//! (`rules/lists/NAME.csv`, a header line, then rows) names in its first
//! header cell the event field it is keyed by; each other column `col`
//! becomes the event field `NAME.col` for the events whose key is in the
//! table. A table may also be JSON lines (`NAME.jsonl`, one object per
//! line, as directory exports are): the first field of the first object
//! names the key, and its other fields are the columns. Filters, `group_by`, templates and the `off_hours` time zone read
//! those fields like any other.
//!
//! Only the columns some rule uses are joined, so an unused table costs
//! nothing per event. A join copies the cell into the decoder's scratch
//! buffer: no allocation once warm. Keys match without regard to ASCII
//! case (`Alice@Corp.example`, `de`). The table is the authority: an event
//! that carries `NAME.col` itself has it replaced, or removed when its key
//! is not in the table, so an event cannot pose as someone the site knows.

use std::collections::HashMap;
use std::sync::Arc;

use foldhash::fast::RandomState;

use super::FieldId;

/// How a table is written, told by its first line: an object starts JSON
/// lines; anything else is a CSV header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    JsonLines,
}

impl Format {
    pub fn of(text: &str) -> Format {
        let first = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#'));
        if first.is_some_and(|l| l.starts_with('{')) {
            Format::JsonLines
        } else {
            Format::Csv
        }
    }

    /// The file extension tables of this format have.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::JsonLines => "jsonl",
        }
    }
}

/// A parsed table: keys (lowercased) to rows of cells.
#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    pub format: Format,
    /// The event field rows are keyed by (the first header cell).
    pub key_field: String,
    /// The other header cells, in order.
    pub columns: Vec<String>,
    rows: HashMap<Box<str>, usize, RandomState>,
    cells: Vec<Box<str>>,
    /// While parsing: the line each key was read on.
    lines: HashMap<Box<str>, u64, RandomState>,
}

/// Why a table was refused, with the 1-based line it concerns.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct TableError {
    pub line: u32,
    pub message: String,
}

/// Tables larger than this are refused: site data, not a database.
pub const MAX_ROWS: usize = 1_000_000;

impl Table {
    /// Parses a table in its format (see [`Format::of`]).
    pub fn parse(name: &str, text: &str) -> Result<Table, TableError> {
        match Format::of(text) {
            Format::Csv => Table::parse_csv(name, text),
            Format::JsonLines => Table::parse_json_lines(name, text),
        }
    }

    /// Parses a CSV table (`#` starts a comment line).
    fn parse_csv(name: &str, text: &str) -> Result<Table, TableError> {
        let mut reader =
            csv::ReaderBuilder::new().comment(Some(b'#')).trim(csv::Trim::All).from_reader(text.as_bytes());
        let error = |line: u64, message: String| TableError { line: line.min(u32::MAX as u64) as u32, message };
        let header = reader.headers().map_err(|e| error(position(&e), format!("table `{name}`: {e}")))?.clone();
        let header_line = header.position().map_or(1, |p| p.line());
        let mut names = header.iter().map(str::to_owned);
        let key_field = names.next().unwrap_or_default();
        let columns: Vec<String> = names.collect();
        if key_field.is_empty() || columns.is_empty() || columns.iter().any(String::is_empty) {
            return Err(error(
                header_line,
                format!("table `{name}` needs a header naming the key field, then at least one column (user,timezone)"),
            ));
        }
        if let Some(dup) = columns.iter().enumerate().find(|(i, c)| columns[..*i].contains(c)) {
            return Err(error(header_line, format!("table `{name}` names column `{}` twice", dup.1)));
        }
        let mut table = Table::empty(name, Format::Csv, key_field, columns);
        for record in reader.records() {
            let record = record.map_err(|e| error(position(&e), format!("table `{name}`: {e}")))?;
            let line = record.position().map_or(0, |p| p.line());
            table.push(record.get(0).unwrap_or_default(), record.iter().skip(1), line)?;
        }
        Ok(table.finish())
    }

    /// Parses JSON lines: objects of strings, numbers and booleans (`null`
    /// or a missing field is an empty cell), every one with the key field
    /// and no field the first object lacks.
    fn parse_json_lines(name: &str, text: &str) -> Result<Table, TableError> {
        let mut table: Option<Table> = None;
        for (index, raw) in text.lines().enumerate() {
            let line = index as u64 + 1;
            let raw = raw.trim();
            if raw.is_empty() || raw.starts_with('#') {
                continue;
            }
            let error = |message: String| TableError { line: line.min(u32::MAX as u64) as u32, message };
            let Ordered(fields) = serde_json::from_str::<Ordered>(raw)
                .map_err(|e| error(format!("table `{name}`: not a JSON object of plain values: {e}")))?;
            let table = match &mut table {
                Some(table) => table,
                None => {
                    let mut names = fields.iter().map(|(n, _)| n.clone());
                    let key_field = names.next().unwrap_or_default();
                    let columns: Vec<String> = names.collect();
                    if key_field.is_empty() || columns.is_empty() {
                        return Err(error(format!(
                            "table `{name}`: the first object names the key field first, then at least one column \
                             ({{\"user\": \"anna\", \"timezone\": \"Asia/Kolkata\"}})"
                        )));
                    }
                    table.insert(Table::empty(name, Format::JsonLines, key_field, columns))
                }
            };
            if let Some((unknown, _)) = fields.iter().find(|(n, _)| *n != table.key_field && !table.columns.contains(n))
            {
                return Err(error(format!("table `{name}`: field `{unknown}` is not among the first object's")));
            }
            let cell = |column: &str| fields.iter().find(|(n, _)| n == column).map_or("", |(_, v)| v.as_str());
            let key = cell(&table.key_field).to_owned();
            let cells: Vec<&str> = table.columns.iter().map(|c| cell(c)).collect();
            table.push(&key, cells.into_iter(), line)?;
        }
        Ok(table.map(Table::finish).unwrap_or_else(|| Table::empty(name, Format::JsonLines, String::new(), Vec::new())))
    }

    fn empty(name: &str, format: Format, key_field: String, columns: Vec<String>) -> Table {
        Table {
            name: name.to_owned(),
            format,
            key_field,
            columns,
            rows: HashMap::default(),
            cells: Vec::new(),
            lines: HashMap::default(),
        }
    }

    /// Adds a row; `line` is where it was read, for errors.
    fn push<'a>(&mut self, key: &str, cells: impl Iterator<Item = &'a str>, line: u64) -> Result<(), TableError> {
        let error = |message: String| TableError { line: line.min(u32::MAX as u64) as u32, message };
        let name = &self.name;
        let key = key.to_ascii_lowercase();
        if key.is_empty() {
            return Err(error(format!("table `{name}`: a row with an empty key")));
        }
        if let Some(first) = self.lines.get(key.as_str()) {
            return Err(error(format!("table `{name}`: key `{key}` again (first on line {first})")));
        }
        if self.rows.len() >= MAX_ROWS {
            return Err(error(format!("table `{name}` has more than {MAX_ROWS} rows")));
        }
        self.rows.insert(key.as_str().into(), self.rows.len());
        self.lines.insert(key.into(), line);
        self.cells.extend(cells.map(Box::from));
        Ok(())
    }

    fn finish(mut self) -> Table {
        self.lines = HashMap::default();
        self
    }

    /// The row of `key` (already lowercased): one cell per column.
    pub fn row(&self, key: &str) -> Option<&[Box<str>]> {
        let width = self.columns.len();
        let row = *self.rows.get(key)?;
        self.cells.get(row * width..(row + 1) * width)
    }

    /// The event field a column becomes.
    pub fn field_name(&self, column: &str) -> String {
        format!("{}.{column}", self.name)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// A JSON object's plain values as text, in the order written.
struct Ordered(Vec<(String, String)>);

impl<'de> serde::Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Ordered, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of strings, numbers and booleans")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut fields: Vec<(String, String)> = Vec::new();
                while let Some((name, value)) = map.next_entry::<String, serde_json::Value>()? {
                    let text = match value {
                        serde_json::Value::String(s) => s,
                        serde_json::Value::Null => String::new(),
                        serde_json::Value::Bool(_) | serde_json::Value::Number(_) => value.to_string(),
                        _ => return Err(serde::de::Error::custom(format!("field `{name}` is not a plain value"))),
                    };
                    if fields.iter().any(|(n, _)| *n == name) {
                        return Err(serde::de::Error::custom(format!("field `{name}` twice")));
                    }
                    fields.push((name, text));
                }
                Ok(Ordered(fields))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

fn position(err: &csv::Error) -> u64 {
    err.position().map_or(0, |p| p.line())
}

/// A table joined into events: the key field, and which column fills which
/// field slot.
#[derive(Debug, Clone)]
pub struct Join {
    pub key: FieldId,
    pub table: Arc<Table>,
    pub outputs: Vec<(usize, FieldId)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIRECTORY: &str = "# who works where\nuser, office, timezone\nAnna@acme.example,berlin,Europe/Berlin\n\"rahul@acme.example\",bangalore,Asia/Kolkata\n";

    #[test]
    fn parses_a_table_keyed_by_its_first_column() {
        let table = Table::parse("directory", DIRECTORY).unwrap();
        assert_eq!(
            (table.key_field.as_str(), table.columns.as_slice()),
            ("user", &["office".to_owned(), "timezone".to_owned()][..])
        );
        assert_eq!(table.row("anna@acme.example").map(|r| r[1].as_ref()), Some("Europe/Berlin"));
        assert_eq!(table.row("rahul@acme.example").map(|r| r[0].as_ref()), Some("bangalore"));
        assert!(table.row("nobody").is_none());
        assert_eq!(table.field_name("timezone"), "directory.timezone");
    }

    #[test]
    fn refuses_broken_tables_with_the_line() {
        let err = |text: &str| Table::parse("t", text).unwrap_err();
        assert!(err("user\nanna\n").message.contains("at least one column"));
        assert_eq!(err("user,tz\nanna,UTC\nANNA,UTC\n").line, 3);
        assert!(err("user,tz\nanna,UTC\nANNA,UTC\n").message.contains("first on line 2"));
        assert!(err("user,tz\nanna,UTC,extra\n").message.contains("t"));
        assert!(err("user,tz,tz\n").message.contains("twice"));
        assert!(err("user,tz\n,UTC\n").message.contains("empty key"));
    }

    #[test]
    fn parses_json_lines_keyed_by_the_first_field_of_the_first_object() {
        let text = "# an export of the directory\n\
                    {\"user\":\"Anna@acme.example\",\"office\":\"berlin\",\"timezone\":\"Europe/Berlin\",\"level\":3}\n\
                    \n\
                    {\"timezone\":\"Asia/Kolkata\",\"user\":\"rahul@acme.example\",\"office\":null}\n";
        assert_eq!(Format::of(text), Format::JsonLines);
        let table = Table::parse("directory", text).unwrap();
        assert_eq!(table.format.extension(), "jsonl");
        assert_eq!(table.key_field, "user");
        assert_eq!(table.columns, ["office", "timezone", "level"]);
        assert_eq!(table.row("anna@acme.example").map(|r| r[2].as_ref()), Some("3"));
        let rahul = table.row("rahul@acme.example").unwrap();
        assert_eq!((rahul[0].as_ref(), rahul[1].as_ref(), rahul[2].as_ref()), ("", "Asia/Kolkata", ""));
        assert_eq!(Format::of(DIRECTORY), Format::Csv);
    }

    #[test]
    fn refuses_broken_json_lines_with_the_line() {
        let err = |text: &str| Table::parse("t", text).unwrap_err();
        assert!(err("{\"user\":\"anna\"}\n").message.contains("at least one column"));
        let twice = err("{\"user\":\"anna\",\"tz\":\"UTC\"}\n{\"user\":\"ANNA\",\"tz\":\"UTC\"}\n");
        assert_eq!((twice.line, twice.message.contains("first on line 1")), (2, true));
        let unknown = err("{\"user\":\"anna\",\"tz\":\"UTC\"}\n{\"user\":\"bo\",\"role\":\"admin\"}\n");
        assert!(unknown.message.contains("`role` is not among the first object's"), "{unknown}");
        assert!(err("{\"user\":\"anna\",\"tz\":{\"a\":1}}\n").message.contains("not a plain value"));
        assert_eq!(err("{\"user\":\"anna\",\"tz\":\"UTC\"}\n{\"user\":\n").line, 2);
        assert!(err("{\"user\":\"a\",\"tz\":\"UTC\"}\n{\"tz\":\"UTC\"}\n").message.contains("empty key"));
    }
}
