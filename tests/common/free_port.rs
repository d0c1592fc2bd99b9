// Included by `notify.rs` and `kafka.rs` (which benches include alone).

/// A port that was free a moment ago, for a server started later. Taken
/// below Linux's ephemeral range (32768–60999), where every `bind(0)` of
/// the tests running alongside lands, and never twice in one test binary:
/// between now and the server's start, no one else takes it.
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 600) as u16 * 20;
    loop {
        let port = base + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 12_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
