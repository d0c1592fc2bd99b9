//! What vigil ships: the rules of `rules/` (embedded at build time by the
//! core's build script), and the demo company's site data the demo stream
//! is made for. Every front end — `vigil run` from any directory, the
//! benches, the fuzz targets — gets them without reading a file.

use std::path::PathBuf;

use crate::ruleset::RuleSources;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_rules.rs"));
}

/// The shipped rules, lists and tables.
pub fn rules() -> RuleSources {
    RuleSources {
        files: embedded::RULE_FILES.iter().map(|(path, text)| (PathBuf::from(path), text.to_string())).collect(),
        lists: embedded::LIST_FILES.iter().map(|(name, text)| (name.to_string(), text.to_string())).collect(),
        tables: embedded::TABLE_FILES.iter().map(|(name, text)| (name.to_string(), text.to_string())).collect(),
    }
}

/// The shipped rules with the demo company's site data: what `vigil run`
/// runs on the demo stream, and what the benchmarks over it run.
pub fn demo_rules() -> RuleSources {
    let mut sources = rules();
    with_demo_site(&mut sources);
    sources
}

/// The demo company's site data, which the shipped lists leave for each
/// site to fill in: its networks, its revoked tokens, who has left. The
/// daemon lays these over the empty lists only when it runs the demo.
pub const SITE_LISTS: &[(&str, &str)] = &[
    ("office_networks", "203.0.113.0/24\n198.51.100.0/24\n10.0.0.0/8\n"),
    ("revoked_tokens", "tok-old-zapier\ntok-leaked-2026-07\n"),
    ("offboarded_users", "erin@acme.example\n"),
];

/// The demo company's staff directory (its admins and leads), which the
/// shipped `directory` table leaves for each site to fill in.
pub const SITE_TABLES: &[(&str, &str)] = &[(
    "directory",
    "user,timezone,office,manager\n\
     paul@acme.example,Europe/Berlin,berlin,\n\
     frank@acme.example,Europe/Berlin,berlin,paul@acme.example\n\
     olga@acme.example,Europe/Berlin,berlin,paul@acme.example\n\
     mia@acme.example,Europe/Lisbon,lisbon,paul@acme.example\n\
     hugo@acme.example,Europe/Madrid,madrid,paul@acme.example\n",
)];

/// Fills the lists and tables a site has left empty with the demo
/// company's ([`SITE_LISTS`], [`SITE_TABLES`]); those
/// with entries stay.
pub fn with_demo_site(sources: &mut RuleSources) {
    let mut lists = crate::rules::Lists::new();
    for (name, text) in &sources.lists {
        lists.insert(name, text);
    }
    for (name, demo) in SITE_LISTS {
        match sources.lists.iter_mut().find(|(n, _)| n == name) {
            Some((_, text)) if lists.get(name).is_none_or(|l| l.is_empty()) => text.push_str(demo),
            Some(_) => {}
            None => sources.lists.push((name.to_string(), demo.to_string())),
        }
    }
    for (name, demo) in SITE_TABLES {
        let empty = |text: &str| crate::event::enrich::Table::parse(name, text).map_or(true, |t| t.is_empty());
        match sources.tables.iter_mut().find(|(n, _)| n == name) {
            Some((_, text)) if empty(text) => *text = demo.to_string(),
            Some(_) => {}
            None => sources.tables.push((name.to_string(), demo.to_string())),
        }
    }
}
