//! Where alerts go. For now the console (stdout or a file): text for a
//! person at a terminal, JSON lines for everything else. Email, webhooks and
//! routing arrive as further notifiers beside this one.

pub mod console;
