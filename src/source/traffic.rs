//! Field traffic: weeks of a messaging business's security events as they
//! look from outside vigil's own world, with labelled attacks in them.
//!
//! The demo stream (`demo.rs`) is one office's tidy working day, written to
//! show every rule firing. This generator is the yardstick for noise: staff
//! in five offices from UTC−5 to UTC+5:30, each with its own weekend and
//! public holidays, hybrid work from home networks that no list knows
//! (some over IPv6), people who travel, change devices, mistype passwords,
//! work late or on a night shift; integrations calling around the clock from
//! cloud address pools; accounts whose message volume follows their
//! customers' day and week, weekly campaigns, Black Friday and the run-up
//! to December, tiny accounts and accounts that report only when they sent
//! something; and the internet's background of password guessing against
//! the login page. Into the evaluated days it injects attacks, each labelled
//! with the severity a SOC expects and the value (address, user, token,
//! account) an alert about it must name.
//!
//! Everything is drawn from one seed (ChaCha8), so a seed is a fixed,
//! reproducible world; times are fixed too (the last evaluated day ends on
//! Monday 2026-12-14, UTC).

use chrono::{Datelike, NaiveDate, TimeZone, Timelike, Weekday};
use chrono_tz::Tz;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrafficSpec {
    pub seed: u64,
    /// Days of history before the evaluated days: what the learning
    /// detectors get to learn from.
    pub history_days: i64,
    /// Days evaluated: attacks are injected here, and every alert that is
    /// not about one of them is noise.
    pub evaluated_days: i64,
    pub users: usize,
    pub accounts: usize,
    /// API integrations calling around the clock.
    pub integrations: usize,
    /// How many of each kind of attack the evaluated days hold.
    pub attacks_per_kind: usize,
}

impl Default for TrafficSpec {
    fn default() -> TrafficSpec {
        TrafficSpec {
            seed: 1,
            history_days: 7,
            evaluated_days: 14,
            users: 300,
            accounts: 60,
            integrations: 30,
            attacks_per_kind: 2,
        }
    }
}

/// An injected attack: where it starts, what a SOC expects to be told.
#[derive(Debug, Clone, PartialEq)]
pub struct Attack {
    pub kind: &'static str,
    pub start: Timestamp,
    pub end: Timestamp,
    /// The severity the alert about it should carry.
    pub severity: &'static str,
    /// A value an alert about it names (in its group, value or summary):
    /// the attacker's address, the victim, the token, the account.
    pub marker: String,
    pub what: String,
}

/// What a site knows about itself and would give vigil: the data the
/// list-driven rules and enrichment need.
#[derive(Debug, Clone, Default)]
pub struct Site {
    /// Office and VPN egress networks, CIDR.
    pub office_networks: Vec<String>,
    /// `user,office,country,timezone,role`, with a header line.
    pub directory_csv: String,
}

pub struct Traffic {
    /// Events in time order, as JSON lines.
    pub events: Vec<(Timestamp, String)>,
    pub attacks: Vec<Attack>,
    /// Where the evaluated days start.
    pub evaluated_from: Timestamp,
    pub end: Timestamp,
    pub site: Site,
    pub users: usize,
}

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;
const MINUTE: i64 = 60;
/// Monday 2026-12-14 00:00 UTC: the end of the evaluated days.
const END: i64 = 1_797_206_400;

struct Office {
    name: &'static str,
    tz: Tz,
    country: &'static str,
    /// Share of the staff.
    share: f64,
    weekend: [Weekday; 2],
    holidays: &'static [(i32, u32, u32)],
    /// Egress networks (a /24 each) of the office and its VPN.
    egress: [&'static str; 2],
    /// Home ISPs' /16s in the office's country.
    isps: &'static [&'static str],
    /// Home ISPs' IPv6 /32s, if homes there often have IPv6.
    isps_v6: &'static [&'static str],
}

const OFFICES: &[Office] = &[
    Office {
        name: "berlin",
        tz: chrono_tz::Europe::Berlin,
        country: "DE",
        share: 0.34,
        weekend: [Weekday::Sat, Weekday::Sun],
        holidays: &[(2026, 12, 24), (2026, 12, 25)],
        egress: ["85.214.37", "195.201.88"],
        isps: &["91.64", "79.204", "84.160", "93.229"],
        isps_v6: &["2003:e6", "2a02:8108", "2a02:810d"],
    },
    Office {
        name: "london",
        tz: chrono_tz::Europe::London,
        country: "GB",
        share: 0.16,
        weekend: [Weekday::Sat, Weekday::Sun],
        holidays: &[(2026, 12, 25)],
        egress: ["81.2.69", "5.148.12"],
        isps: &["86.150", "81.107", "92.40"],
        isps_v6: &[],
    },
    Office {
        name: "newyork",
        tz: chrono_tz::America::New_York,
        country: "US",
        share: 0.2,
        weekend: [Weekday::Sat, Weekday::Sun],
        holidays: &[(2026, 11, 26), (2026, 11, 27)],
        egress: ["38.122.14", "64.71.130"],
        isps: &["68.173", "72.229", "98.116", "24.47"],
        isps_v6: &["2601:644", "2600:1700"],
    },
    Office {
        name: "dubai",
        tz: chrono_tz::Asia::Dubai,
        country: "AE",
        share: 0.06,
        weekend: [Weekday::Sat, Weekday::Sun],
        holidays: &[(2026, 12, 2), (2026, 12, 3)],
        egress: ["94.200.41", "213.42.20"],
        isps: &["86.98", "5.31"],
        isps_v6: &[],
    },
    Office {
        name: "bangalore",
        tz: chrono_tz::Asia::Kolkata,
        country: "IN",
        share: 0.24,
        weekend: [Weekday::Sat, Weekday::Sun],
        holidays: &[(2026, 11, 24), (2026, 12, 25)],
        egress: ["103.21.58", "49.207.44"],
        isps: &["106.51", "117.200", "49.37", "122.171"],
        isps_v6: &["2401:4900", "2409:4073"],
    },
];

/// Countries and networks of the internet's background of login guessing.
const NOISE_COUNTRIES: &[&str] = &["CN", "RU", "US", "BR", "VN", "IN", "NL", "DE", "ID", "KR", "UA", "FR"];
const COMMON_NAMES: &[&str] =
    &["admin", "test", "info", "support", "sales", "root", "user", "office", "billing", "hr", "guest", "demo"];
const FIRST_NAMES: &[&str] = &[
    "anna", "ben", "chen", "divya", "emma", "farid", "grace", "hiro", "ines", "jamal", "kofi", "lena", "marco",
    "nadia", "omar", "priya", "quentin", "rahul", "sofia", "tom", "uma", "victor", "wei", "yusuf", "zara",
];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
];

#[derive(Clone)]
struct Person {
    email: String,
    office: usize,
    role: &'static str,
    devices: Vec<String>,
    /// Local minute of the day work usually starts.
    start: i64,
    /// Hours of a working day.
    length: i64,
    /// Works from home on a share of days (0 = always in the office).
    home_share: f64,
    home: String,
    token: Option<String>,
    token_issued: String,
}

struct Integration {
    token: String,
    owner: String,
    /// Addresses the integration calls from.
    addresses: Vec<String>,
    calls_per_hour: f64,
    issued: String,
    actions: &'static [&'static str],
}

struct Account {
    name: String,
    office: usize,
    /// Mean messages per five minutes at the busiest time of a weekday.
    peak: f64,
    weekend: f64,
    /// Reporting cadence in seconds; `None`: reports only when it sent.
    cadence: Option<i64>,
    retail: bool,
    /// A weekly campaign: (weekday, local hour, factor).
    campaign: Option<(Weekday, u32, f64)>,
}

struct World {
    rng: ChaCha8Rng,
    out: Vec<(Timestamp, String)>,
}

impl World {
    fn emit(&mut self, at: i64, event: serde_json::Value) {
        self.out.push((Timestamp::from_secs(at), event.to_string()));
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p.clamp(0.0, 1.0))
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.random_range(0..items.len())]
    }

    /// A Poisson draw (Knuth below 30, a rounded normal above).
    fn poisson(&mut self, mean: f64) -> u64 {
        if mean <= 0.0 {
            return 0;
        }
        if mean < 30.0 {
            let limit = (-mean).exp();
            let mut k = 0;
            let mut p = 1.0;
            loop {
                p *= self.rng.random::<f64>();
                if p <= limit {
                    return k;
                }
                k += 1;
            }
        }
        let (u, v): (f64, f64) = (self.rng.random::<f64>().max(1e-12), self.rng.random());
        let normal = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
        (mean + normal * mean.sqrt()).round().max(0.0) as u64
    }

    fn public_ip(&mut self) -> String {
        loop {
            let a = self.rng.random_range(1..224u8);
            if [10, 127, 100, 172, 192, 198, 203].contains(&a) {
                continue;
            }
            return format!(
                "{a}.{}.{}.{}",
                self.rng.random::<u8>(),
                self.rng.random::<u8>(),
                self.rng.random_range(1..255u8)
            );
        }
    }
}

fn ts(secs: i64) -> String {
    Timestamp::from_secs(secs).to_string()
}

fn date_of(secs: i64, tz: Tz) -> NaiveDate {
    Timestamp::from_secs(secs).to_datetime().with_timezone(&tz).date_naive()
}

/// The UTC second of a local date and minute in `tz`.
fn at_local(date: NaiveDate, minute: i64, tz: Tz) -> i64 {
    let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    let start = tz.from_local_datetime(&midnight).earliest().map_or(0, |t| t.timestamp());
    start + minute * MINUTE
}

fn is_day_off(office: &Office, date: NaiveDate) -> bool {
    office.weekend.contains(&date.weekday())
        || office.holidays.iter().any(|&(y, m, d)| NaiveDate::from_ymd_opt(y, m, d) == Some(date))
}

/// Who logs in, from where.
struct Who<'a> {
    user: &'a str,
    ip: &'a str,
    device: &'a str,
    agent: &'a str,
    country: &'a str,
    role: &'a str,
}

fn login(at: i64, outcome: &str, who: &Who<'_>) -> serde_json::Value {
    json!({"ts": ts(at), "kind": "login", "user": who.user, "outcome": outcome, "src_ip": who.ip,
           "device_id": who.device, "user_agent": who.agent, "country": who.country, "role": who.role,
           "mfa": outcome == "success"})
}

/// Whose token calls the API, from where.
struct Caller<'a> {
    token: &'a str,
    user: &'a str,
    role: &'a str,
    issued: &'a str,
    ip: &'a str,
}

fn api_call(at: i64, caller: &Caller<'_>, action: &str, status: u16, latency: u32) -> serde_json::Value {
    let (resource, verb) = action.split_once('.').unwrap_or((action, "read"));
    let method = match verb {
        "read" | "list" => "GET",
        "delete" => "DELETE",
        "update" => "PATCH",
        _ => "POST",
    };
    json!({"ts": ts(at), "kind": "api_call", "token_id": caller.token, "user": caller.user,
           "endpoint": format!("/v1/{resource}"), "method": method, "status": status, "latency_ms": latency,
           "src_ip": caller.ip, "role": caller.role, "action": action, "token_issued_at": caller.issued})
}

fn people(spec: &TrafficSpec, w: &mut World, begin: i64) -> Vec<Person> {
    let mut people = Vec::with_capacity(spec.users);
    for i in 0..spec.users {
        let mut roll = (i as f64 + 0.5) / spec.users as f64;
        let office = OFFICES
            .iter()
            .position(|o| {
                roll -= o.share;
                roll < 0.0
            })
            .unwrap_or(0);
        let role = match i % 50 {
            0 if i == 0 => "owner",
            7 | 31 => "admin",
            3 | 19 | 42 => "team_lead",
            _ => "agent",
        };
        let night_shift = OFFICES[office].name == "bangalore" && w.chance(0.12);
        let start =
            if night_shift { 18 * 60 + w.rng.random_range(0..90) } else { w.rng.random_range(7 * 60..10 * 60 + 30) };
        let isp = w.pick(OFFICES[office].isps).to_string();
        let v6 = OFFICES[office].isps_v6;
        let home = if !v6.is_empty() && w.chance(0.35) {
            let isp = w.pick(v6).to_string();
            format!(
                "{isp}:{:x}:{:x}::{:x}",
                w.rng.random::<u16>(),
                w.rng.random::<u16>() & 0xff00,
                w.rng.random::<u16>() | 1
            )
        } else {
            format!("{isp}.{}.{}", w.rng.random::<u8>(), w.rng.random_range(2..250u8))
        };
        let name = format!("{}.{i}", FIRST_NAMES[i % FIRST_NAMES.len()]);
        let devices =
            (0..w.rng.random_range(1..=3)).map(|d| format!("dev-{:08x}-{d}", w.rng.random::<u32>())).collect();
        let has_token = role != "agent" || w.chance(0.3);
        // Rotated within 90 days: none is older than that by the end.
        let issued_days = w.rng.random_range(1..45);
        people.push(Person {
            email: format!("{name}@acme.example"),
            office,
            role,
            devices,
            start,
            length: w.rng.random_range(7..10),
            home_share: if w.chance(0.15) { 1.0 } else { w.rng.random_range(0.0..0.6) },
            home,
            token: has_token.then(|| format!("tok-{}", name.replace('.', "-"))),
            token_issued: ts(begin - issued_days * DAY),
        });
    }
    people
}

fn integrations(spec: &TrafficSpec, w: &mut World, people: &[Person], begin: i64) -> Vec<Integration> {
    const SYNC: &[&str] = &["messages.send", "templates.read", "contacts.read", "webhooks.read"];
    const BACKOFFICE: &[&str] = &["users.read", "chats.read", "settings.read", "contacts.update"];
    let admins: Vec<&Person> = people.iter().filter(|p| p.role == "admin" || p.role == "owner").collect();
    (0..spec.integrations.max(1))
        .map(|i| {
            let owner = admins[i % admins.len()].email.clone();
            let cloud = format!("{}.{}", w.pick(&[3u8, 18, 34, 35, 52, 54, 13, 20]), w.rng.random::<u8>());
            let pooled = i % 7 == 3;
            let addresses = if pooled {
                // An autoscaled integration: NAT gateways in several networks.
                (0..6).map(|_| format!("{cloud}.{}.{}", w.rng.random::<u8>(), w.rng.random_range(1..255u8))).collect()
            } else {
                let net = w.rng.random::<u8>();
                (0..w.rng.random_range(1..=3))
                    .map(|_| format!("{cloud}.{net}.{}", w.rng.random_range(1..255u8)))
                    .collect()
            };
            // Two long-lived integrations run on tokens older than 90 days.
            let issued_days = if i < 2 { 200 + i as i64 * 30 } else { w.rng.random_range(1..45) };
            Integration {
                token: format!("tok-int-{i:02}"),
                owner,
                addresses,
                calls_per_hour: w.rng.random_range(20.0..200.0),
                issued: ts(begin - issued_days * DAY),
                actions: if i % 5 == 4 { BACKOFFICE } else { SYNC },
            }
        })
        .collect()
}

fn accounts(spec: &TrafficSpec, w: &mut World) -> Vec<Account> {
    (0..spec.accounts)
        .map(|i| {
            // Sizes spread over five orders of magnitude.
            let peak = 10f64.powf(w.rng.random_range(-0.7..3.6));
            let cadence = match i % 10 {
                0 | 5 => Some(900),
                7 => None,
                _ => Some(300),
            };
            let campaign = (i % 5 == 2).then(|| {
                let day = [Weekday::Tue, Weekday::Wed, Weekday::Thu][i % 3];
                (day, w.rng.random_range(9..16), w.rng.random_range(3.0..6.0))
            });
            Account {
                name: format!("acct-{i:03}"),
                office: i % OFFICES.len(),
                peak,
                weekend: w.rng.random_range(0.15..0.8),
                cadence,
                retail: i % 3 == 0,
                campaign,
            }
        })
        .collect()
}

/// Messaging over a local day: a night trough, a morning rise, an evening
/// shoulder.
fn day_curve(local_minute: i64) -> f64 {
    let h = local_minute as f64 / 60.0;
    let day = (-(h - 13.5).powi(2) / 18.0).exp();
    let evening = 0.35 * (-(h - 20.0).powi(2) / 6.0).exp();
    0.06 + day + evening
}

fn volume(w: &mut World, accounts: &[Account], from: i64, to: i64) {
    let black_friday = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap_or_default();
    let cyber_monday = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap_or_default();
    for account in accounts {
        let tz = OFFICES[account.office].tz;
        let step = account.cadence.unwrap_or(300);
        let mut at = from + (account.name.len() as i64 * 37) % 60;
        while at < to {
            let local = Timestamp::from_secs(at).to_datetime().with_timezone(&tz);
            let date = local.date_naive();
            let minute = (local.time().num_seconds_from_midnight() / 60) as i64;
            let mut mean = account.peak * day_curve(minute) * step as f64 / 300.0;
            if matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
                mean *= account.weekend;
            }
            // The run-up to December: about 3 % more each week.
            mean *= 1.0 + 0.03 * ((at - (END - 42 * DAY)) as f64 / (7 * DAY) as f64);
            if account.retail && (date == black_friday || date == cyber_monday) {
                mean *= 1.8;
            }
            if let Some((day, hour, factor)) = account.campaign {
                if date.weekday() == day && local.time().hour() == hour {
                    mean *= factor;
                }
            }
            let count = w.poisson(mean);
            if account.cadence.is_some() || count > 0 {
                let jitter = w.rng.random_range(0..20);
                w.emit(
                    at + jitter,
                    json!({"ts": ts(at + jitter), "kind": "message_volume", "account": account.name, "count": count,
                           "interval_s": step, "template": "order_update"}),
                );
            }
            at += step;
        }
    }
}

/// One person's day: logins, their token's calls, an admin's changes.
fn workday(w: &mut World, person: &mut Person, date: NaiveDate, traveling: Option<usize>) {
    let office_index = traveling.unwrap_or(person.office);
    let office = &OFFICES[office_index];
    let day_off = is_day_off(office, date);
    let tz = office.tz;
    let weekend_work = day_off && w.chance(0.03);
    if day_off && !weekend_work {
        return;
    }
    if !day_off && w.chance(0.05) {
        return; // ill, or a day off
    }
    let from_home = traveling.is_none() && w.chance(person.home_share);
    let ip = if from_home || weekend_work {
        person.home.clone()
    } else {
        format!("{}.{}", office.egress[usize::from(w.chance(0.2))], w.rng.random_range(2..60u8))
    };
    // A new laptop or phone, about once a year.
    if w.chance(1.0 / 300.0) {
        let device = format!("dev-{:08x}-n", w.rng.random::<u32>());
        person.devices.push(device);
    }
    let device = person.devices[w.rng.random_range(0..person.devices.len())].clone();
    let agent = AGENTS[person.email.len() % AGENTS.len()];
    let country = office.country;
    let start_minute =
        if weekend_work { w.rng.random_range(10 * 60..16 * 60) } else { person.start + w.rng.random_range(-25..40) };
    let start = at_local(date, start_minute, tz) + w.rng.random_range(0..60);
    let length = if weekend_work { 2 } else { person.length };
    // Mistyped passwords.
    let failures = match w.rng.random_range(0..1000) {
        0..=1 => 3,
        2..=7 => 2,
        8..=90 => 1,
        _ => 0,
    };
    for f in 0..failures {
        let at = start - 20 * (failures - f) as i64;
        w.emit(
            at,
            login(
                at,
                "failure",
                &Who { user: &person.email, ip: &ip, device: &device, agent, country, role: person.role },
            ),
        );
    }
    w.emit(
        start,
        login(
            start,
            "success",
            &Who { user: &person.email, ip: &ip, device: &device, agent, country, role: person.role },
        ),
    );
    let end = start + length * HOUR;
    // Session renewals during the day.
    let renewals = w.rng.random_range(0..3);
    for _ in 0..renewals {
        let at = w.rng.random_range(start + HOUR..end.max(start + HOUR + 1));
        w.emit(
            at,
            login(
                at,
                "success",
                &Who { user: &person.email, ip: &ip, device: &device, agent, country, role: person.role },
            ),
        );
    }
    // Now and then a late evening.
    let late = !weekend_work && w.chance(0.03);
    if late {
        let at = end + w.rng.random_range(HOUR..3 * HOUR);
        w.emit(
            at,
            login(
                at,
                "success",
                &Who { user: &person.email, ip: &person.home, device: &device, agent, country, role: person.role },
            ),
        );
    }
    if let Some(token) = person.token.clone() {
        let caller =
            Caller { token: &token, user: &person.email, role: person.role, issued: &person.token_issued, ip: &ip };
        let calls = w.poisson(15.0 * length as f64);
        for _ in 0..calls {
            let at = w.rng.random_range(start..end);
            let action = *w.pick(&["chats.read", "contacts.read", "messages.send", "templates.read"]);
            let status = match w.rng.random_range(0..1000) {
                0..=2 => 500,
                3..=8 => 404,
                9 => 401,
                _ => 200,
            };
            let latency = w.rng.random_range(20..400);
            let event = api_call(at, &caller, action, status, latency);
            w.emit(at, event);
        }
        if matches!(person.role, "admin" | "owner") {
            for _ in 0..w.poisson(3.0) {
                let at = w.rng.random_range(start..end + if late { 2 * HOUR } else { 0 });
                let action =
                    *w.pick(&["settings.update", "users.create", "users.update", "tokens.create", "tokens.revoke"]);
                let event = api_call(at, &caller, action, 200, 90);
                w.emit(at, event);
            }
        }
    }
}

fn integration_calls(w: &mut World, integration: &Integration, from: i64, to: i64) {
    let mut at = from;
    let rate = integration.calls_per_hour / HOUR as f64;
    loop {
        let gap = -(1.0 - w.rng.random::<f64>()).ln() / rate;
        at += gap.ceil() as i64;
        if at >= to {
            break;
        }
        let ip = w.pick(&integration.addresses).clone();
        let action = *w.pick(integration.actions);
        let status = match w.rng.random_range(0..2000) {
            0..=5 => 500,
            6..=7 => 503,
            8..=15 => 404,
            16..=20 => 429,
            _ => 200,
        };
        let latency = w.rng.random_range(30..900);
        let event = api_call(
            at,
            &Caller {
                token: &integration.token,
                user: &integration.owner,
                role: "admin",
                issued: &integration.issued,
                ip: &ip,
            },
            action,
            status,
            latency,
        );
        w.emit(at, event);
    }
}

/// The internet's background: short sessions of password guessing from
/// addresses all over the world, mostly against names that do not exist,
/// sometimes against leaked staff addresses.
fn background(w: &mut World, people: &[Person], from: i64, to: i64) {
    let mut at = from;
    loop {
        at += w.rng.random_range(60..420);
        if at >= to {
            break;
        }
        let ip = w.public_ip();
        let country = *w.pick(NOISE_COUNTRIES);
        let attempts = w.rng.random_range(1..=5);
        let mut t = at;
        for _ in 0..attempts {
            let user = if w.chance(0.25) {
                w.pick(people).email.clone()
            } else {
                format!("{}@acme.example", w.pick(COMMON_NAMES))
            };
            let device = format!("dev-{:08x}", w.rng.random::<u32>());
            w.emit(
                t,
                login(
                    t,
                    "failure",
                    &Who {
                        user: &user,
                        ip: &ip,
                        device: &device,
                        agent: "python-requests/2.32",
                        country,
                        role: "unknown",
                    },
                ),
            );
            t += w.rng.random_range(20..240);
        }
    }
}

struct Injector<'a> {
    people: &'a [Person],
    integrations: &'a [Integration],
    accounts: &'a [Account],
    attacks: Vec<Attack>,
}

impl Injector<'_> {
    /// A time in the evaluated days, any hour of any day.
    fn when(w: &mut World, from: i64, to: i64) -> i64 {
        w.rng.random_range(from..to - 3 * HOUR)
    }

    /// The UTC second of `minute` past local midnight in `tz` on a random
    /// day of the evaluated ones.
    fn local_when(w: &mut World, from: i64, to: i64, tz: Tz, minute: i64) -> i64 {
        let mut at = at_local(date_of(Self::when(w, from, to), tz), minute, tz);
        while at < from {
            at += DAY;
        }
        while at >= to - 3 * HOUR {
            at -= DAY;
        }
        at
    }

    fn add(&mut self, kind: &'static str, start: i64, end: i64, severity: &'static str, marker: String, what: String) {
        self.attacks.push(Attack {
            kind,
            start: Timestamp::from_secs(start),
            end: Timestamp::from_secs(end),
            severity,
            marker,
            what,
        });
    }

    fn staff(&self, w: &mut World) -> Person {
        w.pick(self.people).clone()
    }

    fn inject(&mut self, w: &mut World, from: i64, to: i64, per_kind: usize) {
        for _ in 0..per_kind {
            let start = Self::when(w, from, to);
            self.brute_force(w, start);
            let start = Self::when(w, from, to);
            self.spray(w, start);
            let start = Self::when(w, from, to);
            self.slow_guessing(w, start);
            let start = Self::when(w, from, to);
            self.takeover(w, start);
            self.night_login(w, from, to);
            self.night_change(w, from, to);
            let start = Self::when(w, from, to);
            self.token_abroad(w, start);
            let start = Self::when(w, from, to);
            self.privilege_probe(w, start);
            self.spam(w, from, to);
        }
    }

    fn brute_force(&mut self, w: &mut World, start: i64) {
        let victim = self.staff(w);
        let ip = w.public_ip();
        let mut t = start;
        for _ in 0..150 {
            w.emit(
                t,
                login(
                    t,
                    "failure",
                    &Who {
                        user: &victim.email,
                        ip: &ip,
                        device: "dev-hydra",
                        agent: "python-requests/2.32",
                        country: "RU",
                        role: victim.role,
                    },
                ),
            );
            t += w.rng.random_range(2..8);
        }
        w.emit(
            t,
            login(
                t,
                "success",
                &Who {
                    user: &victim.email,
                    ip: &ip,
                    device: "dev-hydra",
                    agent: "python-requests/2.32",
                    country: "RU",
                    role: victim.role,
                },
            ),
        );
        self.add(
            "brute_force",
            start,
            t,
            "critical",
            ip,
            format!("150 failed logins for {} then a success", victim.email),
        );
    }

    fn spray(&mut self, w: &mut World, start: i64) {
        let ip = w.public_ip();
        let mut t = start;
        for i in 0..40 {
            let victim = &self.people[(i * 7 + start as usize) % self.people.len()];
            w.emit(
                t,
                login(
                    t,
                    "failure",
                    &Who {
                        user: &victim.email,
                        ip: &ip,
                        device: "dev-spray",
                        agent: "Mozilla/5.0",
                        country: "NL",
                        role: victim.role,
                    },
                ),
            );
            t += w.rng.random_range(5..15);
        }
        self.add("password_spray", start, t, "critical", ip, "one password against 40 users".into());
    }

    fn slow_guessing(&mut self, w: &mut World, start: i64) {
        let ip = w.public_ip();
        let mut t = start;
        for round in 0..4 {
            for i in 0..5 {
                let victim = &self.people[(i * 13 + round + start as usize) % self.people.len()];
                w.emit(
                    t,
                    login(
                        t,
                        "failure",
                        &Who {
                            user: &victim.email,
                            ip: &ip,
                            device: "dev-slow",
                            agent: "Mozilla/5.0",
                            country: "BR",
                            role: victim.role,
                        },
                    ),
                );
                t += w.rng.random_range(30..75);
            }
        }
        self.add(
            "slow_guessing",
            start,
            t,
            "critical",
            ip,
            "4 passwords against 5 users, under any per-user limit".into(),
        );
    }

    fn takeover(&mut self, w: &mut World, start: i64) {
        let victim = self.staff(w);
        let ip = w.public_ip();
        w.emit(
            start,
            login(
                start,
                "success",
                &Who {
                    user: &victim.email,
                    ip: &ip,
                    device: "dev-stolen",
                    agent: AGENTS[0],
                    country: "NG",
                    role: victim.role,
                },
            ),
        );
        self.add(
            "takeover",
            start,
            start,
            "warning",
            victim.email.clone(),
            "a login from a new country and device".into(),
        );
    }

    fn night_login(&mut self, w: &mut World, from: i64, to: i64) {
        let victim = loop {
            let p = self.staff(w);
            if p.start < 12 * 60 {
                break p;
            }
        };
        let tz = OFFICES[victim.office].tz;
        let at = Self::local_when(w, from, to, tz, 3 * 60 + 10);
        let device = victim.devices[0].clone();
        w.emit(
            at,
            login(
                at,
                "success",
                &Who {
                    user: &victim.email,
                    ip: &victim.home,
                    device: &device,
                    agent: AGENTS[0],
                    country: OFFICES[victim.office].country,
                    role: victim.role,
                },
            ),
        );
        self.add(
            "night_login",
            at,
            at,
            "warning",
            victim.email.clone(),
            "a day worker logs in at 03:10 local time".into(),
        );
    }

    fn night_change(&mut self, w: &mut World, from: i64, to: i64) {
        let admins: Vec<&Person> = self.people.iter().filter(|p| p.role == "admin" && p.token.is_some()).collect();
        let admin = (*w.pick(&admins)).clone();
        let tz = OFFICES[admin.office].tz;
        let at = Self::local_when(w, from, to, tz, 2 * 60 + 30);
        let token = admin.token.clone().unwrap_or_default();
        let event = api_call(
            at,
            &Caller {
                token: &token,
                user: &admin.email,
                role: admin.role,
                issued: &admin.token_issued,
                ip: &admin.home,
            },
            "settings.update",
            200,
            70,
        );
        w.emit(at, event);
        self.add(
            "night_change",
            at,
            at,
            "warning",
            admin.email.clone(),
            "an admin changes settings at 02:30 local time".into(),
        );
    }

    fn token_abroad(&mut self, w: &mut World, start: i64) {
        let integration = w.pick(self.integrations);
        let ip = w.public_ip();
        let mut t = start;
        for _ in 0..12 {
            let event = api_call(
                t,
                &Caller {
                    token: &integration.token,
                    user: &integration.owner,
                    role: "admin",
                    issued: &integration.issued,
                    ip: &ip,
                },
                "contacts.read",
                200,
                300,
            );
            w.emit(t, event);
            t += w.rng.random_range(5..40);
        }
        self.add(
            "token_abroad",
            start,
            t,
            "warning",
            integration.token.clone(),
            "an integration's token used from a network it never used".into(),
        );
    }

    fn privilege_probe(&mut self, w: &mut World, start: i64) {
        let agents: Vec<&Person> = self.people.iter().filter(|p| p.role == "agent" && p.token.is_some()).collect();
        let agent = (*w.pick(&agents)).clone();
        let token = agent.token.clone().unwrap_or_default();
        let mut t = start;
        for i in 0..25 {
            let action = ["users.delete", "billing.update", "tokens.create", "settings.update"][i % 4];
            let event = api_call(
                t,
                &Caller {
                    token: &token,
                    user: &agent.email,
                    role: agent.role,
                    issued: &agent.token_issued,
                    ip: &agent.home,
                },
                action,
                403,
                30,
            );
            w.emit(t, event);
            t += w.rng.random_range(3..12);
        }
        self.add("privilege_probe", start, t, "critical", token, "an agent's token tries admin actions".into());
    }

    fn spam(&mut self, w: &mut World, from: i64, to: i64) {
        let busy: Vec<&Account> = self.accounts.iter().filter(|a| a.peak >= 30.0 && a.cadence == Some(300)).collect();
        let account = *w.pick(&busy);
        let tz = OFFICES[account.office].tz;
        // At night for the account's customers, when it should be quiet.
        let start = Self::local_when(w, from, to, tz, 2 * 60);
        for slot in 0..24 {
            let at = start + slot * 300 + 151;
            let count = (account.peak * 6.0) as u64 + w.rng.random_range(0..50);
            w.emit(
                at,
                json!({"ts": ts(at), "kind": "message_volume", "account": account.name, "count": count,
                               "interval_s": 300, "template": "promo"}),
            );
        }
        self.add(
            "spam",
            start,
            start + 2 * HOUR,
            "critical",
            account.name.clone(),
            "six times the daytime peak, at night".into(),
        );
    }
}

pub fn generate(spec: &TrafficSpec) -> Traffic {
    let mut w = World { rng: ChaCha8Rng::seed_from_u64(spec.seed), out: Vec::new() };
    let history = spec.history_days.max(1);
    let evaluated = spec.evaluated_days.max(1);
    let begin = END - (history + evaluated) * DAY;
    let evaluated_from = END - evaluated * DAY;
    let mut people = people(spec, &mut w, begin);
    let integrations = integrations(spec, &mut w, &people, begin);
    let accounts = accounts(spec, &mut w);
    // Travel: a few people spend some days at another office.
    let mut trips: Vec<(usize, i64, i64, usize)> = Vec::new();
    for (i, person) in people.iter().enumerate() {
        if w.chance(0.06) {
            let start = w.rng.random_range(begin..END);
            let to = (person.office + w.rng.random_range(1..OFFICES.len())) % OFFICES.len();
            trips.push((i, start, start + w.rng.random_range(3..6) * DAY, to));
        }
    }
    // Home networks that change now and then (a new lease from the ISP).
    for day in 0..history + evaluated {
        let day_start = begin + day * DAY;
        for (i, person) in people.iter_mut().enumerate() {
            let traveling = trips.iter().find(|t| t.0 == i && t.1 <= day_start && day_start < t.2).map(|t| t.3);
            let tz = OFFICES[traveling.unwrap_or(person.office)].tz;
            // The local date that starts in this UTC day.
            let date = date_of(day_start + 12 * HOUR, tz);
            if w.chance(1.0 / 45.0) && !person.home.contains(':') {
                let isp = w.pick(OFFICES[person.office].isps).to_string();
                person.home = format!("{isp}.{}.{}", w.rng.random::<u8>(), w.rng.random_range(2..250u8));
            }
            workday(&mut w, person, date, traveling);
        }
    }
    for integration in &integrations {
        integration_calls(&mut w, integration, begin, END);
    }
    volume(&mut w, &accounts, begin, END);
    background(&mut w, &people, begin, END);
    let mut injector =
        Injector { people: &people, integrations: &integrations, accounts: &accounts, attacks: Vec::new() };
    injector.inject(&mut w, evaluated_from, END, spec.attacks_per_kind);
    let mut attacks = injector.attacks;
    attacks.sort_by_key(|a| a.start);
    let mut events = w.out;
    events.retain(|(t, _)| t.0 >= begin * 1_000_000 && t.0 < END * 1_000_000);
    events.sort_by_key(|e| e.0);
    let mut office_networks: Vec<String> =
        OFFICES.iter().flat_map(|o| o.egress.iter().map(|e| format!("{e}.0/24"))).collect();
    office_networks.sort();
    let mut directory_csv = String::from("user,office,country,timezone,role\n");
    for p in &people {
        let office = &OFFICES[p.office];
        directory_csv.push_str(&format!(
            "{},{},{},{},{}\n",
            p.email,
            office.name,
            office.country,
            office.tz.name(),
            p.role
        ));
    }
    Traffic {
        events,
        attacks,
        evaluated_from: Timestamp::from_secs(evaluated_from),
        end: Timestamp::from_secs(END),
        site: Site { office_networks, directory_csv },
        users: spec.users,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_ordered_and_labelled() {
        let spec = TrafficSpec {
            history_days: 2,
            evaluated_days: 2,
            users: 60,
            accounts: 10,
            integrations: 3,
            ..TrafficSpec::default()
        };
        let a = generate(&spec);
        let b = generate(&spec);
        assert_eq!(a.events, b.events);
        assert!(a.events.windows(2).all(|w| w[0].0 <= w[1].0));
        assert_eq!(a.attacks.len(), 9 * spec.attacks_per_kind);
        assert!(a.attacks.iter().all(|x| x.start >= a.evaluated_from && x.start < a.end), "attacks are evaluated");
        assert!(a.events.iter().all(|(_, l)| !l.contains("203.0.113.") && !l.contains("198.51.100.")));
    }

    #[test]
    fn offices_keep_their_own_hours() {
        let spec = TrafficSpec {
            history_days: 7,
            evaluated_days: 1,
            users: 100,
            accounts: 5,
            attacks_per_kind: 0,
            ..TrafficSpec::default()
        };
        let traffic = generate(&spec);
        // Logins by Bangalore's staff happen in its morning, which is the
        // middle of the night in New York.
        let bangalore: Vec<String> = traffic
            .site
            .directory_csv
            .lines()
            .filter(|l| l.contains(",bangalore,"))
            .filter_map(|l| l.split(',').next())
            .map(|u| format!("\"user\":\"{u}\""))
            .collect();
        let mut utc_hours = [0u32; 24];
        for (t, line) in &traffic.events {
            if line.contains("\"outcome\":\"success\"") && bangalore.iter().any(|u| line.contains(u.as_str())) {
                utc_hours[t.to_datetime().hour() as usize] += 1;
            }
        }
        assert!(utc_hours[3] + utc_hours[4] > utc_hours[16] + utc_hours[17], "{utc_hours:?}");
    }
}
