//! `off_hours`: activity outside business hours, or outside the group's
//! own habits.
//!
//! `mode: schedule` (default) fires for an event outside the configured
//! `hours` on the configured `days`, or on a holiday, in `timezone` (or the
//! first zone named by the event's `timezone_field`s, for teams across
//! zones: the event's own field or one a lookup table joined in).
//! `mode: profile` learns each group's hour-of-week histogram and fires for
//! an event in an hour (± `tolerance` hours) that holds at most `min_share`
//! of the group's history, once the group has `min_events` events and has
//! been known for `learning`. With `match:`, every event teaches but only
//! those it matches can fire: an admin's rare changes are judged against
//! the hours of all their activity.

use std::collections::HashSet;

use chrono::{Datelike, NaiveDate, Timelike, Weekday};
use chrono_tz::Tz;

use super::groups::{GroupTable, Heat};
use super::{conclude, Firing, Limits, Outcome, ParamReader, Kind};
use crate::event::{EventRef, FieldId};
use crate::rules::yaml::Node;
use crate::time::{Span, Timestamp};

#[derive(Debug, Clone)]
pub struct Params {
    pub timezone: Tz,
    /// Fields naming the event's time zone, first present wins (a user's
    /// zone from the directory, then their country's).
    pub timezone_field: Vec<FieldId>,
    pub mode: Mode,
}

#[derive(Debug, Clone)]
pub enum Mode {
    Schedule(Schedule),
    Profile(Profile),
}

#[derive(Debug, Clone)]
pub struct Schedule {
    /// Monday first.
    pub days: [bool; 7],
    /// Minutes after midnight; `end < start` is a shift across midnight.
    pub start: u32,
    pub end: u32,
    pub holidays: HashSet<NaiveDate>,
}

#[derive(Debug, Clone)]
pub struct Profile {
    pub learning: Span,
    pub min_events: u64,
    pub min_share: f64,
    pub tolerance: u32,
    /// Hours after a habitual hour that still count as usual
    /// (`tolerance_after`, default `tolerance`): days run long more often
    /// than they start early.
    pub tolerance_after: u32,
    /// Days either side whose same hours count too: habits carry over to
    /// neighbouring days, and two weeks of history rarely cover every
    /// hour of every weekday.
    pub day_tolerance: u32,
    /// Two events of a group closer than this mark the hours between them
    /// as habitual too (`span_gap`): a person is active between the login
    /// that starts their day and the one that renews it at noon.
    pub span_gap: Option<Span>,
    /// Only events this matches can fire (`match:`); every event teaches.
    /// An admin's changes are judged by the hours of all their API calls.
    pub fires_on: Option<crate::rules::Filter>,
}

const HOURS_PER_WEEK: usize = 168;

impl Params {
    pub fn compile(r: &mut ParamReader<'_>) -> Option<Params> {
        // A bad time zone is reported and the other parameters are still
        // read, so that they are not reported as unknown.
        let timezone = match r.optional::<String>("timezone") {
            None => Some(Tz::UTC),
            Some(spec) => match spec.value.parse::<Tz>() {
                Ok(tz) => Some(tz),
                Err(_) => {
                    r.error(
                        &spec,
                        format!("unknown time zone `{}` (use an IANA name such as Europe/Berlin)", spec.value),
                    );
                    None
                }
            },
        };
        let timezone_field = r.optional_fields("timezone_field");
        let mode = match r.choice("mode", &["schedule", "profile"]) {
            None | Some("schedule") => Mode::Schedule(schedule(r)?),
            Some(_) => {
                let learning = r.duration_or("learning", Span::from_secs(14 * 86_400));
                let tolerance = r.optional::<u32>("tolerance").map(|t| t.value);
                let tolerance_after = r.optional::<u32>("tolerance_after").map(|t| t.value).or(tolerance);
                let span_gap = r.optional_duration("span_gap");
                Mode::Profile(Profile {
                    min_events: r.optional::<u64>("min_events").map_or(50, |m| m.value),
                    min_share: r.optional::<f64>("min_share").map_or(0.0, |m| m.value),
                    tolerance: tolerance.map_or(1, |t| t.min(11)),
                    tolerance_after: tolerance_after.map_or(1, |t| t.min(11)),
                    day_tolerance: r.optional::<u32>("day_tolerance").map_or(1, |t| t.value.min(3)),
                    fires_on: r.optional::<Node>("match").map(|node| r.filter(&node)),
                    learning: learning?,
                    span_gap: span_gap?,
                })
            }
        };
        Some(Params { timezone: timezone?, timezone_field, mode })
    }
}

fn schedule(r: &mut ParamReader<'_>) -> Option<Schedule> {
    let hours = r.optional::<String>("hours");
    // A bad `hours` is reported and the other parameters are still read,
    // so each gets its own message.
    let mut valid = true;
    let (start, end) = match hours {
        None => (8 * 60, 18 * 60),
        Some(spec) => match parse_hours(&spec.value) {
            Some((start, end)) if start == end => {
                r.error(&spec, format!("`hours` `{}` is empty: the end must differ from the start", spec.value));
                valid = false;
                (start, end)
            }
            Some(range) => range,
            None => {
                r.error(&spec, format!("`hours` must look like 08:00-18:00, not `{}`", spec.value));
                valid = false;
                (8 * 60, 18 * 60)
            }
        },
    };
    let mut days = [false; 7];
    match r.optional::<Vec<String>>("days") {
        None => days[..5].fill(true),
        Some(spec) if spec.value.is_empty() => {
            r.error(&spec, "`days` names no day: every hour would be off hours (use e.g. [mon-fri])");
            valid = false;
        }
        Some(spec) => {
            for day in &spec.value {
                match parse_days(day) {
                    Some(range) => range.into_iter().for_each(|d| days[d] = true),
                    None => r.error(&spec, format!("unknown day `{day}` (use mon..sun or mon-fri)")),
                }
            }
        }
    }
    let mut holidays = HashSet::new();
    if let Some(spec) = r.optional::<Vec<String>>("holidays") {
        for day in &spec.value {
            match NaiveDate::parse_from_str(day.trim(), "%Y-%m-%d") {
                Ok(date) => {
                    holidays.insert(date);
                }
                Err(_) => r.error(&spec, format!("holiday `{day}` is not a date like 2026-12-25")),
            }
        }
    }
    if let Some(spec) = r.optional::<String>("holidays_list") {
        match r.lists.get(&spec.value) {
            Some(list) => {
                for day in list.iter() {
                    match NaiveDate::parse_from_str(day, "%Y-%m-%d") {
                        Ok(date) => {
                            holidays.insert(date);
                        }
                        Err(_) => r.error(&spec, format!("list `{}` holds `{day}`, not a date", spec.value)),
                    }
                }
            }
            None => r.error(&spec, format!("unknown list `{}`", spec.value)),
        }
    }
    valid.then_some(Schedule { days, start, end, holidays })
}

fn parse_hours(text: &str) -> Option<(u32, u32)> {
    let (from, to) = text.split_once('-')?;
    let minutes = |t: &str| -> Option<u32> {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
    };
    Some((minutes(from)?, minutes(to)?))
}

fn parse_days(text: &str) -> Option<Vec<usize>> {
    let day = |t: &str| -> Option<usize> {
        let t = t.trim().to_ascii_lowercase();
        ["mon", "tue", "wed", "thu", "fri", "sat", "sun"].iter().position(|d| t.starts_with(d))
    };
    match text.split_once('-') {
        None => Some(vec![day(text)?]),
        Some((a, b)) => {
            let (a, b) = (day(a)?, day(b)?);
            Some(if a <= b { (a..=b).collect() } else { (a..7).chain(0..=b).collect() })
        }
    }
}

/// The local time of an event: the first zone the event names (by its own
/// field or an enriched one), or the rule's.
fn local(params: &Params, event: &EventRef<'_>) -> chrono::DateTime<Tz> {
    let tz = params
        .timezone_field
        .iter()
        .find_map(|&f| event.get(f).as_str().and_then(|name| name.parse::<Tz>().ok()))
        .unwrap_or(params.timezone);
    event.ts.to_datetime().with_timezone(&tz)
}

impl Schedule {
    pub fn is_business_time(&self, local: &chrono::DateTime<Tz>) -> bool {
        let day = local.weekday().num_days_from_monday() as usize;
        let minute = local.hour() * 60 + local.minute();
        if self.holidays.contains(&local.date_naive()) {
            return false;
        }
        if self.start <= self.end {
            self.days[day] && minute >= self.start && minute < self.end
        } else {
            // A shift across midnight belongs to the day it started.
            let yesterday = (day + 6) % 7;
            (self.days[day] && minute >= self.start) || (self.days[yesterday] && minute < self.end)
        }
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Habits {
    first_seen: Timestamp,
    /// The newest event, for `span_gap`.
    last: Timestamp,
    total: u64,
    #[serde(with = "week")]
    hours: Box<[u32; HOURS_PER_WEEK]>,
}

impl Heat for Habits {
    fn heat(&self) -> usize {
        usize::try_from(self.total).unwrap_or(usize::MAX)
    }
}

/// serde for the hour-of-week counts (serde derives arrays up to 32 only).
mod week {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    use super::HOURS_PER_WEEK;

    pub fn serialize<S: Serializer>(hours: &[u32; HOURS_PER_WEEK], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(hours.iter())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Box<[u32; HOURS_PER_WEEK]>, D::Error> {
        let hours = Vec::<u32>::deserialize(d)?;
        let len = hours.len();
        hours.into_boxed_slice().try_into().map_err(|_| D::Error::invalid_length(len, &"168 hourly counts"))
    }
}

#[derive(Debug)]
pub enum Detector {
    Schedule { params: Params, groups: GroupTable<()> },
    Profile { params: Params, groups: GroupTable<Habits> },
}

impl Detector {
    pub fn new(params: Params, limits: &Limits) -> Detector {
        match params.mode {
            Mode::Schedule(_) => Detector::Schedule { params, groups: GroupTable::new(limits) },
            Mode::Profile(_) => Detector::Profile { params, groups: GroupTable::new(limits) },
        }
    }

    pub fn observe(&mut self, event: &EventRef<'_>, key: &str, limits: &Limits) -> Outcome {
        match self {
            Detector::Schedule { params, groups } => {
                let Mode::Schedule(schedule) = &params.mode else {
                    return Outcome::Quiet;
                };
                let local = local(params, event);
                if schedule.is_business_time(&local) {
                    return Outcome::Quiet;
                }
                let group = groups.entry(key, || ());
                group.evidence.record(event.ts, event.line);
                let firing = Firing {
                    ts: event.ts,
                    first_ts: event.ts,
                    count: Some(1),
                    value: Some(describe(&local)),
                    ..Firing::default()
                };
                conclude(group, Some(firing), limits)
            }
            Detector::Profile { params, groups } => {
                let Mode::Profile(profile) = &params.mode else {
                    return Outcome::Quiet;
                };
                let local = local(params, event);
                let hour = local.weekday().num_days_from_monday() as usize * 24 + local.hour() as usize;
                let group = groups.entry(key, || Habits {
                    first_seen: event.ts,
                    last: event.ts,
                    total: 0,
                    hours: Box::new([0; HOURS_PER_WEEK]),
                });
                group.evidence.record(event.ts, event.line);
                let habits = &mut group.state;
                habits.first_seen = habits.first_seen.min(event.ts);
                let learned =
                    habits.total >= profile.min_events && event.ts.since(habits.first_seen) >= profile.learning;
                let (before, after) = (profile.tolerance as i64, profile.tolerance_after as i64);
                let days = profile.day_tolerance as i64;
                let mut nearby = 0u64;
                for day in -days..=days {
                    // Habitual hours up to `after` hours earlier, or up to
                    // `before` hours later, than this event.
                    for h in -after..=before {
                        let bucket = (hour as i64 + day * 24 + h).rem_euclid(HOURS_PER_WEEK as i64) as usize;
                        nearby += u64::from(habits.hours[bucket]);
                    }
                }
                let share = nearby as f64 / habits.total.max(1) as f64;
                habits.hours[hour] = habits.hours[hour].saturating_add(1);
                habits.total += 1;
                // Judged first, learned after: an unusual event does not
                // vouch for the hours before it.
                if let Some(gap) = profile.span_gap {
                    let since = event.ts.since(habits.last);
                    if since > Span::from_secs(3600) && since <= gap {
                        let hours_between = (since.0 / 3_600_000_000) as usize;
                        for back in 1..=hours_between {
                            let bucket = (hour + HOURS_PER_WEEK * 2 - back % HOURS_PER_WEEK) % HOURS_PER_WEEK;
                            habits.hours[bucket] = habits.hours[bucket].saturating_add(1);
                        }
                    }
                }
                habits.last = habits.last.max(event.ts);
                let eligible = profile.fires_on.as_ref().is_none_or(|f| f.matches(event));
                let firing = (learned && eligible && share <= profile.min_share).then(|| Firing {
                    ts: event.ts,
                    first_ts: event.ts,
                    count: Some(nearby),
                    score: Some(share),
                    value: Some(describe(&local)),
                    ..Firing::default()
                });
                conclude(group, firing, limits)
            }
        }
    }
}

/// A checkpoint of either mode's groups.
#[derive(serde::Serialize)]
pub enum SavedRef<'a> {
    Schedule(&'a GroupTable<()>),
    Profile(&'a GroupTable<Habits>),
}

/// Either mode's groups, read from a checkpoint.
#[derive(serde::Deserialize)]
pub enum Saved {
    Schedule(GroupTable<()>),
    Profile(GroupTable<Habits>),
}

impl Kind for Detector {
    const NAME: &'static str = "off_hours";
    type Params = Params;
    type Saved<'a> = SavedRef<'a>;
    type Restored = Saved;

    fn compile(reader: &mut ParamReader<'_>) -> Option<Params> {
        Params::compile(reader)
    }

    fn new(params: &Params, limits: &Limits) -> Detector {
        Detector::new(params.clone(), limits)
    }

    fn observe(&mut self, event: &EventRef<'_>, key: &str, _watermark: Timestamp, limits: &Limits) -> Outcome {
        Detector::observe(self, event, key, limits)
    }

    fn groups(&self) -> usize {
        match self {
            Detector::Schedule { groups, .. } => groups.len(),
            Detector::Profile { groups, .. } => groups.len(),
        }
    }

    fn evidence_bytes(&self) -> usize {
        match self {
            Detector::Schedule { groups, .. } => groups.evidence_bytes(),
            Detector::Profile { groups, .. } => groups.evidence_bytes(),
        }
    }

    fn evictions(&self) -> u64 {
        match self {
            Detector::Schedule { groups, .. } => groups.evictions(),
            Detector::Profile { groups, .. } => groups.evictions(),
        }
    }

    fn save(&self) -> SavedRef<'_> {
        match self {
            Detector::Schedule { groups, .. } => SavedRef::Schedule(groups),
            Detector::Profile { groups, .. } => SavedRef::Profile(groups),
        }
    }

    fn restore(&mut self, saved: Saved) -> bool {
        match (self, saved) {
            (Detector::Schedule { groups, .. }, Saved::Schedule(saved)) => groups.adopt(saved),
            (Detector::Profile { groups, .. }, Saved::Profile(saved)) => groups.adopt(saved),
            _ => return false,
        }
        true
    }

    /// An off-hours login is one alert an hour per group, not one per event.
    fn default_realert(_params: &Params) -> Span {
        Span::from_secs(3600)
    }
}

fn describe(local: &chrono::DateTime<Tz>) -> String {
    let day = match local.weekday() {
        Weekday::Mon => "Mon",
        Weekday::Tue => "Tue",
        Weekday::Wed => "Wed",
        Weekday::Thu => "Thu",
        Weekday::Fri => "Fri",
        Weekday::Sat => "Sat",
        Weekday::Sun => "Sun",
    };
    format!("{day} {} {}", local.format("%Y-%m-%d %H:%M"), local.timezone().name())
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::Detector as Any;
    use super::*;
    use crate::event::Schema;

    fn schedule_params(tz_field: Option<FieldId>) -> Params {
        let mut days = [false; 7];
        days[..5].fill(true);
        let holidays = [NaiveDate::from_ymd_opt(2025, 11, 25).unwrap()].into_iter().collect();
        Params {
            timezone: "Europe/Berlin".parse().unwrap(),
            timezone_field: tz_field.into_iter().collect(),
            mode: Mode::Schedule(Schedule { days, start: 8 * 60, end: 18 * 60, holidays }),
        }
    }

    /// A UTC profile learning for a week, one hour's tolerance either way.
    fn profile_params(min_events: u64, span_gap: Option<Span>) -> Params {
        Params {
            timezone: Tz::UTC,
            timezone_field: Vec::new(),
            mode: Mode::Profile(Profile {
                learning: Span::from_secs(7 * 86_400),
                min_events,
                min_share: 0.0,
                tolerance: 1,
                tolerance_after: 1,
                day_tolerance: 0,
                span_gap,
                fires_on: None,
            }),
        }
    }

    #[test]
    fn schedule_in_the_rules_time_zone_with_holidays() {
        let mut dec = decoder(Schema::new());
        let mut d = Any::OffHours(Detector::new(schedule_params(None), &limits()));
        // BASE is Sunday 10:00 UTC. Monday 2025-11-24 07:30 UTC = 08:30 Berlin.
        let monday_morning = 86_400 - 2 * 3600 - 1800;
        let monday_night = 86_400 + 12 * 3600; // 22:00 UTC = 23:00 Berlin
        let holiday_noon = 2 * 86_400;
        assert_eq!(
            run(&mut d, &mut dec, &limits(), &[(0, ""), (monday_morning, ""), (monday_night, ""), (holiday_noon, "")]),
            "F.FF"
        );
    }

    #[test]
    fn per_event_time_zone_field() {
        let mut schema = Schema::new();
        let tz = schema.intern("tz");
        let mut dec = decoder(schema);
        let mut d = Any::OffHours(Detector::new(schedule_params(Some(tz)), &limits()));
        // Monday 2025-11-24 15:00 UTC: business hours in Berlin, 00:00 in Tokyo.
        let monday_afternoon = 86_400 + 5 * 3600;
        let events = [(monday_afternoon, r#""tz":"Asia/Tokyo""#), (monday_afternoon, r#""tz":"bogus""#)];
        assert_eq!(run(&mut d, &mut dec, &limits(), &events), "F.");
    }

    #[test]
    fn parses_hours_and_day_ranges() {
        assert_eq!(parse_hours("08:00-18:30"), Some((480, 1110)));
        assert_eq!(parse_hours("22:00-06:00"), Some((1320, 360)));
        assert_eq!(parse_hours("8-18"), None);
        assert_eq!(parse_days("fri-mon"), Some(vec![4, 5, 6, 0]));
        assert_eq!(parse_days("Sunday"), Some(vec![6]));
        assert_eq!(parse_days("funday"), None);
    }

    #[test]
    fn night_shift_across_midnight() {
        let mut days = [false; 7];
        days[0] = true; // Monday night shift
        let s = Schedule { days, start: 22 * 60, end: 6 * 60, holidays: HashSet::new() };
        let tz: Tz = Tz::UTC;
        let at = |d: u32, h: u32| chrono::TimeZone::with_ymd_and_hms(&tz, 2025, 11, d, h, 0, 0).unwrap();
        assert!(s.is_business_time(&at(24, 23)));
        assert!(s.is_business_time(&at(25, 3)), "Tuesday 03:00 belongs to Monday's shift");
        assert!(!s.is_business_time(&at(25, 23)));
    }

    #[test]
    fn profile_learns_habits_then_flags_unusual_hours() {
        let mut dec = decoder(Schema::new());
        let mut d = Any::OffHours(Detector::new(profile_params(20, None), &limits()));
        // Every day at 10:00 and 14:00 UTC for two weeks.
        let mut events: Vec<(i64, &str)> = Vec::new();
        for day in 0..14 {
            events.push((day * 86_400, ""));
            events.push((day * 86_400 + 4 * 3600, ""));
        }
        let learning = run(&mut d, &mut dec, &limits(), &events);
        assert!(learning.chars().all(|c| c == '.'), "habitual hours never fire: {learning}");
        // Same hour a week later: fine. 03:00: unusual.
        let later = [(14 * 86_400, ""), (14 * 86_400 - 7 * 3600, "")];
        assert_eq!(run(&mut d, &mut dec, &limits(), &later), ".F");
    }

    #[test]
    fn the_hours_between_two_close_events_are_habitual_but_not_the_night() {
        let mut dec = decoder(Schema::new());
        // A week of days logging in at 10:00 (BASE) and renewing at 15:00.
        let mut week: Vec<(i64, &str)> = Vec::new();
        for day in 0..8 {
            week.push((day * 86_400, ""));
            week.push((day * 86_400 + 5 * 3600, ""));
        }
        // Then 12:30 (between the two) and 03:00 (after a night).
        let later = [(8 * 86_400 + 2 * 3600 + 1800, ""), (9 * 86_400 - 7 * 3600, "")];
        for (gap, expected) in [(None, "FF"), (Some(Span::from_secs(6 * 3600)), ".F")] {
            let mut d = Any::OffHours(Detector::new(profile_params(5, gap), &limits()));
            assert!(run(&mut d, &mut dec, &limits(), &week).chars().all(|c| c == '.'));
            assert_eq!(run(&mut d, &mut dec, &limits(), &later), expected, "span_gap {gap:?}");
        }
    }
}
