//! Named value lists (`rules/lists/NAME.txt`) for the `in_list` modifier:
//! offboarded users, revoked tokens, allowlisted networks. One entry a
//! line; blank lines and `#` comments are ignored. Lists live in files so
//! that HR or IT can update them without touching a rule.

use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Clone, Default)]
pub struct Lists {
    by_name: BTreeMap<String, Arc<[String]>>,
}

impl Lists {
    pub fn new() -> Lists {
        Lists::default()
    }

    /// Adds the list `name` from the text of its file.
    pub fn insert(&mut self, name: &str, text: &str) {
        let entries: Vec<String> = text
            .lines()
            .map(|line| line.split_once('#').map_or(line, |(before, _)| before).trim())
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect();
        self.by_name.insert(name.to_owned(), entries.into());
    }

    /// Sets the list `name` to `entries`.
    pub fn set(&mut self, name: &str, entries: Vec<String>) {
        self.by_name.insert(name.to_owned(), entries.into());
    }

    pub fn get(&self, name: &str) -> Option<&Arc<[String]>> {
        self.by_name.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_entries_and_skips_comments() {
        let mut lists = Lists::new();
        lists.insert("users", "# offboarded\nbob@corp.example\n\n  eve@corp.example  # left 2026-10\n");
        assert_eq!(&**lists.get("users").unwrap(), ["bob@corp.example", "eve@corp.example"]);
        assert!(lists.get("nope").is_none());
    }
}
