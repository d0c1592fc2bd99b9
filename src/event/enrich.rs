//! Enrichment: lookup tables joined into events before any rule sees them.
//!
//! Events say who and where, rarely what a SOC knows about it: the office
//! and time zone of a user, the zone of a country. A table
//! (`rules/lists/NAME.csv`, a header line, then rows) names in its first
//! header cell the event field it is keyed by; each other column `col`
//! becomes the event field `NAME.col` for the events whose key is in the
//! table. Filters, `group_by`, templates and the `off_hours` time zone read
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

/// A parsed table: keys (lowercased) to rows of cells.
#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    /// The event field rows are keyed by (the first header cell).
    pub key_field: String,
    /// The other header cells, in order.
    pub columns: Vec<String>,
    rows: HashMap<Box<str>, usize, RandomState>,
    cells: Vec<Box<str>>,
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
    /// Parses a CSV table (`#` starts a comment line).
    pub fn parse(name: &str, text: &str) -> Result<Table, TableError> {
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
        let mut rows: HashMap<Box<str>, usize, RandomState> = HashMap::default();
        let mut lines: HashMap<Box<str>, u64, RandomState> = HashMap::default();
        let mut cells = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| error(position(&e), format!("table `{name}`: {e}")))?;
            let line = record.position().map_or(0, |p| p.line());
            let key = record.get(0).unwrap_or_default().to_ascii_lowercase();
            if key.is_empty() {
                return Err(error(line, format!("table `{name}`: a row with an empty key")));
            }
            if let Some(first) = lines.get(key.as_str()) {
                return Err(error(line, format!("table `{name}`: key `{key}` again (first on line {first})")));
            }
            if rows.len() >= MAX_ROWS {
                return Err(error(line, format!("table `{name}` has more than {MAX_ROWS} rows")));
            }
            rows.insert(key.as_str().into(), rows.len());
            lines.insert(key.into(), line);
            cells.extend(record.iter().skip(1).map(Box::from));
        }
        Ok(Table { name: name.to_owned(), key_field, columns, rows, cells })
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
}
