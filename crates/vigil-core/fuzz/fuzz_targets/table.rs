//! Fuzzes lookup tables: CSV parsing and validation, then the join of the
//! parsed table into a decoded event.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use vigil_core::event::enrich::Table;
use vigil_core::event::{Decoder, Schema};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(table) = Table::parse("t", text) else { return };
    let mut schema = Schema::new();
    for column in &table.columns {
        schema.intern(&table.field_name(column));
    }
    let key = table.key_field.clone();
    schema.join(Arc::new(table));
    let mut decoder = Decoder::new(Arc::new(schema));
    let mut event = serde_json::Map::new();
    event.insert("ts".into(), "2026-11-09T10:00:00Z".into());
    event.insert("kind".into(), "login".into());
    event.insert(key, "anna@acme.example".into());
    let line = serde_json::Value::Object(event).to_string();
    let _ = decoder.decode(&line);
});
