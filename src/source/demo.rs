//! The bundled demo stream: two weeks of a messaging business's security
//! events, then one live day with attacks in it.
//!
//! The stream is generated from a seed (ChaCha8, so the same seed gives the
//! same events on every platform and version of `rand`): agents logging in
//! on weekday mornings from their own devices (sometimes mistyping a
//! password, a few working late or at weekends by habit), API tokens calling
//! endpoints around the clock, and each messaging account reporting its
//! volume every five minutes with a daily rhythm. The history teaches the
//! learning detectors (baselines, devices, habits); the live day holds one
//! of each attack the shipped rules look for. Times are fixed (the live day
//! is Monday 2026-11-09, UTC), so the demo's alerts are the same every run.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::time::{Span, Timestamp};

/// Generation knobs; [`DemoSpec::default`] is the stream `vigil run` shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DemoSpec {
    pub seed: u64,
    /// Days of normal history before the live day.
    pub history_days: i64,
    pub users: usize,
    pub accounts: usize,
    pub tokens: usize,
    /// API calls per token per hour.
    pub calls_per_hour: u32,
    /// Whether the live day (with the attacks) is included.
    pub attacks: bool,
}

impl Default for DemoSpec {
    fn default() -> DemoSpec {
        DemoSpec { seed: 1, history_days: 14, users: 40, accounts: 12, tokens: 16, calls_per_hour: 12, attacks: true }
    }
}

impl DemoSpec {
    /// The larger stream the benchmarks replay: five times the users, many
    /// more tokens and calls, over `history_days` days.
    pub fn benchmark(history_days: i64) -> DemoSpec {
        DemoSpec { history_days, users: 200, accounts: 40, tokens: 120, calls_per_hour: 30, ..DemoSpec::default() }
    }
}

pub struct DemoStream {
    /// Events in time order, as JSON lines.
    pub events: Vec<(Timestamp, String)>,
    /// Where the live day starts: events before it are history.
    pub live_from: Timestamp,
}

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;
/// Monday 2026-11-09 00:00 UTC: the live day.
const LIVE_DAY: i64 = 1_794_182_400;
const NAMES: &[&str] = &[
    "alice", "bob", "carla", "dave", "erin", "frank", "gina", "hugo", "ines", "jon", "kara", "leo", "mia", "nico",
    "olga", "paul", "quinn", "rosa", "sam", "tara", "uma", "vic", "wes", "xena", "yuri", "zoe",
];
const ACCOUNTS: &[&str] = &[
    "lumen", "harbor", "nimbus", "orchid", "quartz", "sierra", "tundra", "vertex", "willow", "zephyr", "atlas", "blast",
];

struct User {
    email: String,
    role: &'static str,
    country: &'static str,
    devices: Vec<String>,
    ip: String,
    /// Usual login hour (UTC) on weekdays.
    hour: i64,
    works_late: bool,
    works_weekends: bool,
}

struct Token {
    id: String,
    user: String,
    role: &'static str,
    issued_at: &'static str,
    actions: &'static [&'static str],
    ip: String,
    around_the_clock: bool,
}

fn users(spec: &DemoSpec, rng: &mut ChaCha8Rng) -> Vec<User> {
    (0..spec.users)
        .map(|i| {
            let name = NAMES.get(i).map_or_else(|| format!("agent{i}"), |n| n.to_string());
            let role = match name.as_str() {
                "paul" => "owner",
                "frank" | "olga" => "admin",
                "mia" | "hugo" => "team_lead",
                _ => "agent",
            };
            let country = match i % 7 {
                3 => "PT",
                5 => "ES",
                _ => "DE",
            };
            let device_count = 1 + (i % 3);
            User {
                email: format!("{name}@acme.example"),
                role,
                country,
                devices: (0..device_count).map(|d| format!("dev-{name}-{d}")).collect(),
                ip: format!("203.0.113.{}", 10 + i),
                hour: 6 + (i as i64 % 3),
                works_late: i % 9 == 4,
                works_weekends: i % 11 == 2 || rng.random_ratio(1, 30),
            }
        })
        .collect()
}

fn tokens(spec: &DemoSpec, users: &[User]) -> Vec<Token> {
    const AGENT: &[&str] = &["chats.read", "messages.send", "contacts.read"];
    const INTEGRATION: &[&str] = &["messages.send", "templates.read", "webhooks.read"];
    const ADMIN: &[&str] = &["users.read", "settings.read", "chats.read"];
    let named = [
        ("tok-ci-deploy", "frank@acme.example", "admin", "2026-09-01T00:00:00Z", INTEGRATION, true),
        ("tok-crm-sync", "olga@acme.example", "admin", "2026-10-01T00:00:00Z", INTEGRATION, true),
        ("tok-backoffice", "paul@acme.example", "owner", "2026-08-15T00:00:00Z", ADMIN, false),
        ("tok-frank-admin", "frank@acme.example", "admin", "2026-10-20T00:00:00Z", ADMIN, false),
    ];
    let mut tokens: Vec<Token> = named
        .iter()
        .enumerate()
        .map(|(i, (id, user, role, issued, actions, clock))| Token {
            id: id.to_string(),
            user: user.to_string(),
            role,
            issued_at: issued,
            actions,
            ip: format!("198.51.100.{}", 10 + i),
            around_the_clock: *clock,
        })
        .collect();
    let staff = users.iter().filter(|u| !u.email.starts_with("erin@"));
    for (i, user) in staff.enumerate().take(spec.tokens.saturating_sub(tokens.len())) {
        tokens.push(Token {
            id: format!("tok-{}", user.email.split('@').next().unwrap_or("user")),
            user: user.email.clone(),
            role: "agent",
            issued_at: "2026-10-05T00:00:00Z",
            actions: AGENT,
            ip: format!("198.51.100.{}", 40 + i),
            around_the_clock: false,
        });
    }
    tokens.truncate(spec.tokens.max(4));
    tokens
}

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_secs(secs)
}

fn login(at: i64, user: &User, outcome: &str, device: &str, ip: &str, country: &str) -> (Timestamp, Value) {
    (
        ts(at),
        json!({"ts": ts(at).to_string(), "kind": "login", "user": user.email, "outcome": outcome, "src_ip": ip,
               "device_id": device, "user_agent": "Mozilla/5.0", "country": country, "role": user.role, "mfa": true}),
    )
}

fn api(at: i64, token: &Token, action: &str, status: u16, ip: &str, latency: u32) -> (Timestamp, Value) {
    let (resource, verb) = action.split_once('.').unwrap_or((action, "read"));
    let method = if verb == "read" { "GET" } else { "POST" };
    (
        ts(at),
        json!({"ts": ts(at).to_string(), "kind": "api_call", "token_id": token.id, "user": token.user,
               "endpoint": format!("/v1/{resource}"), "method": method, "status": status, "latency_ms": latency,
               "src_ip": ip, "role": token.role, "action": action, "token_issued_at": token.issued_at}),
    )
}

fn volume(at: i64, account: &str, count: u64) -> (Timestamp, Value) {
    (
        ts(at),
        json!({"ts": ts(at).to_string(), "kind": "message_volume", "account": format!("acct-{account}"),
               "count": count, "interval_s": 300, "template": "order_update"}),
    )
}

/// A day's rhythm of messaging: quiet at night, busiest mid-afternoon.
fn rhythm(hour_utc: i64) -> f64 {
    let h = hour_utc as f64;
    0.25 + 0.75 * (std::f64::consts::PI * ((h - 3.0).rem_euclid(24.0)) / 24.0).sin().powi(2)
}

fn normal_day(
    day_start: i64,
    spec: &DemoSpec,
    users: &[User],
    tokens: &[Token],
    rng: &mut ChaCha8Rng,
    out: &mut Vec<(Timestamp, Value)>,
) {
    let weekday = ((day_start - LIVE_DAY).rem_euclid(7 * DAY)) / DAY; // 0 = Monday
    let weekend = weekday >= 5;
    for user in users {
        if user.email.starts_with("erin@") {
            continue; // Erin left the company last month.
        }
        if weekend && !user.works_weekends {
            continue;
        }
        let start = day_start + user.hour * HOUR + rng.random_range(0..3600);
        let device = &user.devices[rng.random_range(0..user.devices.len())];
        if rng.random_ratio(1, 12) {
            out.push(login(start - 40, user, "failure", device, &user.ip, user.country));
        }
        out.push(login(start, user, "success", device, &user.ip, user.country));
        if !weekend && rng.random_ratio(1, 3) {
            let after_lunch = day_start + 12 * HOUR + rng.random_range(0..3600);
            out.push(login(after_lunch, user, "success", device, &user.ip, user.country));
        }
        if user.works_late && !weekend && rng.random_ratio(1, 2) {
            let late = day_start + 18 * HOUR + rng.random_range(0..1800);
            out.push(login(late, user, "success", device, &user.ip, user.country));
        }
    }
    for token in tokens {
        let hours = if token.around_the_clock {
            0..24
        } else if weekend {
            0..0
        } else {
            7..17
        };
        for hour in hours {
            for _ in 0..spec.calls_per_hour {
                let at = day_start + hour * HOUR + rng.random_range(0..3600);
                let action = token.actions[rng.random_range(0..token.actions.len())];
                let status = match rng.random_range(0..1000) {
                    0..=4 => 500,
                    5..=12 => 404,
                    13 => 401,
                    _ => 200,
                };
                out.push(api(at, token, action, status, &token.ip, rng.random_range(15..300)));
            }
        }
    }
    for (i, account) in ACCOUNTS.iter().cycle().take(spec.accounts).enumerate() {
        let base = 40.0 + 160.0 * (i % 6) as f64;
        for slot in 0..288 {
            let at = day_start + slot * 300;
            let noise = rng.random_range(0.85..1.15);
            let count = (base * rhythm(slot / 12) * noise).round() as u64;
            out.push(volume(at, account, count));
        }
    }
}

/// The live day's normal traffic plus one of each attack.
fn live_day(
    spec: &DemoSpec,
    users: &[User],
    tokens: &[Token],
    rng: &mut ChaCha8Rng,
    out: &mut Vec<(Timestamp, Value)>,
) {
    let day = LIVE_DAY;
    normal_day(day, spec, users, tokens, rng, out);
    let at = |h: i64, m: i64| day + h * HOUR + m * 60;
    let user = |name: &str| users.iter().find(|u| u.email.starts_with(&format!("{name}@")));
    let token = |id: &str| tokens.iter().find(|t| t.id == id);

    // 08:01 brute force against carla from a Tor exit, then it works.
    if let Some(carla) = user("carla") {
        for i in 0..12 {
            out.push(login(at(8, 1) + i * 10, carla, "failure", "dev-unknown-7f3a", "185.220.101.7", "RO"));
        }
        out.push(login(at(8, 3), carla, "success", "dev-unknown-7f3a", "185.220.101.7", "RO"));
    }
    // 08:20 password spraying: one try per user from one address.
    for (i, victim) in users.iter().take(25).enumerate() {
        out.push(login(at(8, 20) + i as i64 * 9, victim, "failure", "dev-spray", "45.155.205.33", "NL"));
    }
    // 08:40 acct-lumen's volume jumps fifteenfold for an hour.
    for slot in 0..12 {
        out.push(volume(at(8, 40) + slot * 300 + 7, "lumen", 3000 + slot as u64 * 40));
    }
    // 09:00 tok-ci-deploy starts failing: 70% server errors.
    if let Some(ci) = token("tok-ci-deploy") {
        for i in 0..40 {
            let status = if i % 10 < 7 { 500 } else { 200 };
            out.push(api(at(9, 0) + i * 6, ci, "messages.send", status, &ci.ip, 2900));
        }
    }
    // 09:30 dave, an agent, tries to change billing and is refused.
    if let Some(dave) = user("dave") {
        let tok = Token {
            id: "tok-dave".into(),
            user: dave.email.clone(),
            role: "agent",
            issued_at: "2026-10-05T00:00:00Z",
            actions: &[],
            ip: dave.ip.clone(),
            around_the_clock: false,
        };
        out.push(api(at(9, 30), &tok, "billing.update", 403, &tok.ip, 40));
    }
    // 10:00 erin, offboarded last week, logs in.
    if let Some(erin) = user("erin") {
        out.push(login(at(10, 0), erin, "success", &erin.devices[0], "77.91.68.12", "DE"));
    }
    // 10:15 a revoked token is used.
    let revoked = Token {
        id: "tok-old-zapier".into(),
        user: "integrations@acme.example".into(),
        role: "admin",
        issued_at: "2026-03-01T00:00:00Z",
        actions: &[],
        ip: "34.120.8.14".into(),
        around_the_clock: false,
    };
    out.push(api(at(10, 15), &revoked, "contacts.read", 401, &revoked.ip, 12));
    // 10:30 the back-office token is used from outside the office networks.
    if let Some(back) = token("tok-backoffice") {
        out.push(api(at(10, 30), back, "users.read", 200, "91.243.44.10", 80));
    }
    // 11:00 a legacy token issued more than 90 days ago comes back.
    let legacy = Token {
        id: "tok-legacy-crm".into(),
        user: "olga@acme.example".into(),
        role: "admin",
        issued_at: "2026-06-02T00:00:00Z",
        actions: &[],
        ip: "198.51.100.12".into(),
        around_the_clock: false,
    };
    out.push(api(at(11, 0), &legacy, "contacts.read", 200, &legacy.ip, 50));
    // 11:30 acct-blast pushes 60,000 messages in five minutes.
    out.push(volume(at(11, 30) + 11, "blast", 60_000));
    // 12:00 acct-harbor stops reporting volume (the last report is 11:55).
    out.retain(|(t, v)| !(v["account"] == "acct-harbor" && *t >= ts(at(12, 0))));
    // 21:30 frank changes settings at 22:30 Berlin time.
    if let Some(frank) = token("tok-frank-admin") {
        out.push(api(at(21, 30), frank, "settings.update", 200, &frank.ip, 60));
    }
    // 22:45 gina, a morning person, logs in late at night.
    if let Some(gina) = user("gina") {
        out.push(login(at(22, 45), gina, "success", &gina.devices[0], &gina.ip, gina.country));
    }
}

pub fn generate(spec: &DemoSpec) -> DemoStream {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let users = users(spec, &mut rng);
    let tokens = tokens(spec, &users);
    let mut events: Vec<(Timestamp, Value)> = Vec::new();
    for day in (1..=spec.history_days).rev() {
        normal_day(LIVE_DAY - day * DAY, spec, &users, &tokens, &mut rng, &mut events);
    }
    if spec.attacks {
        live_day(spec, &users, &tokens, &mut rng, &mut events);
    }
    events.sort_by_key(|e| e.0);
    DemoStream {
        events: events.into_iter().map(|(t, v)| (t, v.to_string())).collect(),
        live_from: ts(LIVE_DAY + 8 * HOUR),
    }
}

/// How long to wait before sending an event at `at`, replaying the live
/// part `speed` times faster than real time; history goes at once.
pub fn delay(live_from: Timestamp, at: Timestamp, speed: f64) -> std::time::Duration {
    let ahead: Span = at.since(live_from);
    if ahead <= Span::ZERO || speed.is_nan() || speed <= 0.0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::from_secs_f64(ahead.as_secs_f64() / speed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_ordered() {
        let a = generate(&DemoSpec { history_days: 2, ..DemoSpec::default() });
        let b = generate(&DemoSpec { history_days: 2, ..DemoSpec::default() });
        assert_eq!(a.events, b.events);
        assert!(a.events.windows(2).all(|w| w[0].0 <= w[1].0));
        assert!(a.events.len() > 10_000);
    }
}
