//! `spike`: a group's per-interval count (or sum of a field) departs from
//! its own learned baseline. Unusual message volume per account, API error
//! volume per token.
//!
//! Each group keeps the values of its last `history` closed intervals
//! (empty intervals count as 0). When an interval closes, the baseline and
//! the limits derived from it are recomputed, so checking an event is one
//! comparison. An upward spike fires as soon as the running interval
//! crosses the limit, not when it closes; a drop (`direction: down`) can
//! only be judged when its interval closes. One alert per excursion: after
//! firing, the group stays quiet until an interval closes back in range.
//!
//! Methods:
//! - `seasonal`: the calendar's baseline. Each group keeps, per hour of the
//!   week and per hour of the day, an exponentially weighted mean and mean
//!   absolute deviation of its closed intervals; an interval is compared
//!   with its hour of the week once two weeks taught it, else with its hour
//!   of the day (all days pooled), so a daytime peak is judged against
//!   other daytimes, not against the night. The scale is the group's own:
//!   the slot's deviation, floored at the group's typical relative error
//!   times the expected value (and at `√expected` for counts, `noise:
//!   poisson`) and at 5 % of it, never at an absolute number, so series far
//!   below 1 keep their resolution. The slots keep learning during an excursion, so a
//!   level shift is one alert and then the new normal. O(1) per event and
//!   per closed interval; about 3 KB per group.
//! - `mad`: robust z-score `(x − median) / (1.4826 · MAD)` over the last
//!   `history` intervals;
//! - `ewma`: z-score against an exponentially weighted mean and variance;
//! - `poisson`: tail probability `P(X ≥ x)` for a Poisson with the mean of
//!   the history (statrs), for event counts only.
//!
//! For `mad` and `ewma` the scale is floored at `√baseline` (the noise of
//! a count) and at 1, so a perfectly steady history does not turn every +1
//! into an infinite z-score.
//!
//! With `sum`, an interval in which the group reported nothing is missing,
//! not zero (`empty: missing`, the default with `sum`): a group that
//! reports every fifteen minutes does not look like it dropped to zero in
//! the five-minute intervals between its reports. Counting events, an empty
//! interval is a real zero (`empty: zero`).

use std::collections::VecDeque;

use statrs::distribution::{DiscreteCDF, Poisson};

use super::groups::{GroupTable, Heat};
use super::{conclude, weight, Firing, Limits, Outcome, ParamReader, Kind};
use crate::event::{EventRef, FieldId};
use crate::time::{Span, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    Seasonal { alpha: f64, week: bool },
    Mad,
    Ewma { alpha: f64 },
    Poisson { p_value: f64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
    Both,
}

#[derive(Debug, Clone)]
pub struct Params {
    pub interval: Span,
    pub sum: Option<FieldId>,
    pub method: Method,
    /// The z-score at which `mad` and `ewma` fire.
    pub threshold: f64,
    pub min_history: usize,
    pub history: usize,
    /// An interval below this value never fires upward (0 → 3 is no spike).
    pub min_value: f64,
    pub direction: Direction,
    /// Empty intervals are missing rather than zero.
    pub skip_empty: bool,
    /// The values are counts: the scale is at least `√expected`.
    pub counts: bool,
}

impl Params {
    pub fn compile(r: &mut ParamReader<'_>) -> Option<Params> {
        let interval = r.duration("interval");
        let sum = r.optional_field("sum");
        let method = match r.choice("method", &["mad", "ewma", "poisson", "seasonal"]) {
            None | Some("mad") => Method::Mad,
            Some("seasonal") => {
                let alpha = r.positive_or("alpha", 0.3)?;
                if alpha >= 1.0 {
                    r.error_at(r.given("alpha")?, "`alpha` must be between 0 and 1");
                }
                let week = !matches!(r.choice("season", &["week", "day"]), Some("day"));
                Method::Seasonal { alpha, week }
            }
            Some("ewma") => {
                let alpha = r.positive_or("alpha", 0.1)?;
                if alpha >= 1.0 {
                    r.error_at(r.given("alpha")?, "`alpha` must be between 0 and 1");
                }
                Method::Ewma { alpha }
            }
            Some(_) => {
                let p_value = r.positive_or("p_value", 1e-6)?;
                if let Some(at) = r.given("sum") {
                    r.error_at(at, "`method: poisson` models event counts; it cannot be used with `sum`");
                }
                Method::Poisson { p_value }
            }
        };
        let threshold = r.positive_or("threshold", 4.0);
        let history = match r.optional::<u32>("history") {
            None => 168,
            Some(h) if h.value as usize > MAX_HISTORY => {
                r.error(&h, format!("`history` is capped at {MAX_HISTORY} intervals (a year of hours)"));
                MAX_HISTORY
            }
            Some(h) => h.value.max(2) as usize,
        };
        let min_history = r.optional::<u32>("min_history").map_or(24.min(history), |m| m.value as usize);
        if min_history > history {
            if let Some(at) = r.given("min_history") {
                r.error_at(at, format!("`min_history` ({min_history}) cannot exceed `history` ({history})"));
            }
        }
        let min_value = r.optional::<f64>("min_value").map_or(0.0, |m| m.value);
        let direction = match r.choice("direction", &["up", "down", "both"]) {
            None | Some("up") => Direction::Up,
            Some("down") => Direction::Down,
            Some(_) => Direction::Both,
        };
        let skip_empty = match r.choice("empty", &["zero", "missing"]) {
            None => sum.is_some(),
            Some(choice) => choice == "missing",
        };
        let counts = match r.choice("noise", &["poisson", "none"]) {
            None => sum.is_none(),
            Some(choice) => choice == "poisson",
        };
        Some(Params {
            interval: interval?,
            sum,
            method,
            threshold: threshold?,
            min_history: min_history.max(2),
            history,
            min_value,
            direction,
            skip_empty,
            counts,
        })
    }
}

/// The most intervals a group remembers: 8 bytes each, per group.
pub const MAX_HISTORY: usize = 10_000;

/// Limits derived from the history when an interval closes.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
struct Bounds {
    center: f64,
    scale: f64,
    upper: f64,
    lower: f64,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Baseline {
    start: Timestamp,
    current: f64,
    events: u64,
    history: VecDeque<f64>,
    ewma: Option<(f64, f64)>,
    bounds: Option<Bounds>,
    in_excursion: bool,
    /// `seasonal`: hour-of-week then hour-of-day slots (empty otherwise).
    slots: Vec<Slot>,
    /// `seasonal`: the group's typical relative error, and how many
    /// intervals taught it.
    relative_error: f64,
    closed: u32,
    /// `seasonal`: the recent level against the slots' (a level shift moves
    /// it at once, the slots follow over weeks).
    level: f64,
}

impl Heat for Baseline {
    /// The intervals learned: a baseline of weeks outweighs a new key.
    fn heat(&self) -> usize {
        self.history.len().max(self.closed as usize)
    }
}

/// What one hour of the week (or of the day) usually holds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
struct Slot {
    mean: f64,
    deviation: f64,
    seen: u32,
}

const WEEK_SLOTS: usize = 168;
/// The least relative error a group is credited with: a perfectly steady
/// history does not make a 20 % busier hour a spike.
const MIN_RELATIVE_ERROR: f64 = 0.05;

impl Slot {
    /// A running average for the first observations, then exponentially
    /// weighted with `alpha`.
    fn learn(&mut self, value: f64, alpha: f64) {
        self.seen = self.seen.saturating_add(1);
        let rate = alpha.max(1.0 / f64::from(self.seen));
        if self.seen == 1 {
            self.mean = value;
        } else {
            self.deviation += rate * ((value - self.mean).abs() - self.deviation);
            self.mean += rate * (value - self.mean);
        }
    }
}

#[derive(Debug)]
pub struct Detector {
    params: Params,
    pub(crate) groups: GroupTable<Baseline>,
}

impl Detector {
    pub fn new(params: Params, limits: &Limits) -> Detector {
        Detector { params, groups: GroupTable::new(limits) }
    }

    pub fn observe(&mut self, event: &EventRef<'_>, key: &str, limits: &Limits) -> Outcome {
        let Some(weight) = weight(self.params.sum, event) else { return Outcome::Quiet };
        let params = &self.params;
        let start = event.ts.floor_to(params.interval);
        let group = self.groups.entry(key, || Baseline {
            start,
            current: 0.0,
            events: 0,
            history: VecDeque::new(),
            ewma: None,
            bounds: None,
            in_excursion: false,
            slots: Vec::new(),
            relative_error: 0.0,
            closed: 0,
            level: 1.0,
        });
        group.evidence.record(event.ts, event.line);
        let state = &mut group.state;
        let mut firing = None;
        if start > state.start {
            firing = close_intervals(state, params, start, event.ts);
        } else if start < state.start {
            // Late, but within the allowed lateness: fold it into the closed
            // interval it belongs to if that is the last one; the baseline
            // is recomputed at the next close.
            if start.saturating_add(params.interval) == state.start {
                if let Some(last) = state.history.back_mut() {
                    *last += weight;
                }
            }
            return conclude(group, None, limits);
        }
        state.current += weight;
        state.events += 1;
        if firing.is_none() && params.direction != Direction::Down && !state.in_excursion {
            if let Some(bounds) = state.bounds {
                if state.current >= bounds.upper && state.current >= params.min_value {
                    state.in_excursion = true;
                    firing = Some(Firing {
                        ts: event.ts,
                        first_ts: state.start,
                        count: Some(state.events),
                        score: Some(score(params, &bounds, state.current)),
                        observed: Some(state.current),
                        baseline: Some(bounds.center),
                        ..Firing::default()
                    });
                }
            }
        }
        conclude(group, firing, limits)
    }
}

/// Closes the running interval (and any empty ones after it) and moves to
/// the interval starting at `start`. Returns a drop alert if one is due.
fn close_intervals(state: &mut Baseline, params: &Params, start: Timestamp, now: Timestamp) -> Option<Firing> {
    if let Method::Seasonal { .. } = params.method {
        return close_seasonal(state, params, start, now);
    }
    let closed = state.current;
    let firing = state.bounds.and_then(|bounds| judge_closed(state, params, &bounds, closed <= bounds.lower, now));
    push(state, params, closed);
    let skipped = (start.0 - state.start.0) / params.interval.0.max(1) - 1;
    for _ in 0..skipped.clamp(0, params.history as i64) {
        push(state, params, 0.0);
    }
    if skipped > 0 && params.direction == Direction::Up {
        state.in_excursion = false;
    }
    state.start = start;
    state.current = 0.0;
    state.events = 0;
    state.bounds = bounds(state, params);
    firing
}

/// Judges the interval closing with `state.current`: a drop alert if one is
/// due, and the end of an excursion once the value is back in range.
fn judge_closed(
    state: &mut Baseline,
    params: &Params,
    bounds: &Bounds,
    dropped: bool,
    now: Timestamp,
) -> Option<Firing> {
    let closed = state.current;
    let spiked = closed >= bounds.upper && closed >= params.min_value;
    if params.direction != Direction::Up && dropped && !state.in_excursion {
        state.in_excursion = true;
        return Some(Firing {
            ts: now,
            first_ts: state.start,
            count: Some(state.events),
            score: Some(score(params, bounds, closed)),
            observed: Some(closed),
            baseline: Some(bounds.center),
            ..Firing::default()
        });
    }
    if !spiked && !dropped {
        state.in_excursion = false;
    }
    None
}

/// `seasonal`: judges the closed interval (a drop), teaches its slots, and
/// sets the bounds for the interval starting at `start`.
fn close_seasonal(state: &mut Baseline, params: &Params, start: Timestamp, now: Timestamp) -> Option<Firing> {
    let Method::Seasonal { alpha, week } = params.method else { return None };
    let missing = params.skip_empty && state.events == 0;
    let closed = state.current;
    let mut firing = None;
    if !missing {
        if let Some(bounds) = state.bounds {
            firing = judge_closed(state, params, &bounds, closed < bounds.lower, now);
            // Like the level, the error is learned against the hour of the
            // week once it judges: a weekend measured against pooled days is
            // no error of the group's.
            let hour = hour_of_week(state.start);
            let by_week = state.slots.get(hour).is_some_and(|s| s.seen >= 2);
            let error = (closed - bounds.center).abs() / bounds.center.abs().max(f64::MIN_POSITIVE);
            if error.is_finite() && !state.in_excursion && (by_week || !week) {
                let rate = 0.05f64.max(1.0 / f64::from(state.closed.max(1)));
                state.relative_error += rate * (error.min(1.0) - state.relative_error);
            }
        }
        if state.slots.is_empty() {
            state.slots = vec![Slot::default(); WEEK_SLOTS + 24];
        }
        let hour = hour_of_week(state.start);
        // The level follows what the hour of the week says once it can: an
        // hour-of-day mean pools weekdays and weekends, and a quiet Sunday
        // measured against it would lower the level for Monday.
        let by_week = state.slots[hour];
        let judged_by_week = week && by_week.seen >= 2;
        let usual = if judged_by_week || !week { slot_for(state, hour, week).map(|s| s.mean) } else { None };
        if let Some(usual) = usual.filter(|m| m.abs() > f64::MIN_POSITIVE) {
            let ratio = (closed / usual).clamp(1.0 / 3.0, 3.0);
            state.level += 0.2 * (ratio - state.level);
        }
        state.slots[hour].learn(closed, alpha);
        state.slots[WEEK_SLOTS + hour % 24].learn(closed, alpha);
        state.closed = state.closed.saturating_add(1);
    }
    // Empty intervals in between: zeros when counting events, else missing.
    let skipped = (start.0 - state.start.0) / params.interval.0.max(1) - 1;
    if !params.skip_empty && skipped > 0 && !state.slots.is_empty() {
        for i in 1..=skipped.min(WEEK_SLOTS as i64) {
            let at = Timestamp(state.start.0 + i * params.interval.0);
            let hour = hour_of_week(at);
            state.slots[hour].learn(0.0, alpha);
            state.slots[WEEK_SLOTS + hour % 24].learn(0.0, alpha);
        }
    }
    state.start = start;
    state.current = 0.0;
    state.events = 0;
    state.bounds = seasonal_bounds(state, params, week);
    firing
}

/// The hour of the week (Monday 00:00 UTC = 0) an interval starts in.
fn hour_of_week(start: Timestamp) -> usize {
    // 1970-01-01 was a Thursday: shift so that Monday is 0.
    let hours = start.0.div_euclid(3_600_000_000) + 72;
    hours.rem_euclid(WEEK_SLOTS as i64) as usize
}

/// The slot an interval starting at `hour` of the week is judged by: its
/// hour of the week once seen twice, else its hour of the day.
fn slot_for(state: &Baseline, hour: usize, week: bool) -> Option<Slot> {
    let by_week = *state.slots.get(hour)?;
    let by_day = *state.slots.get(WEEK_SLOTS + hour % 24)?;
    if week && by_week.seen >= 2 {
        Some(by_week)
    } else if by_day.seen >= 2 {
        Some(by_day)
    } else {
        None
    }
}

fn seasonal_bounds(state: &Baseline, params: &Params, week: bool) -> Option<Bounds> {
    if (state.closed as usize) < params.min_history || state.slots.is_empty() {
        return None;
    }
    let hour = hour_of_week(state.start);
    let slot = slot_for(state, hour, week)?;
    let mut bounds = slot_bounds(state, params, slot)?;
    // An hour of the week seen once (last week's campaign) widens the
    // hour of the day's bounds towards it until it has been seen twice.
    let by_week = state.slots[hour];
    if week && by_week.seen == 1 {
        if let Some(once) = slot_bounds(state, params, by_week) {
            bounds.upper = bounds.upper.max(once.upper);
            bounds.lower = bounds.lower.min(once.lower);
        }
    }
    Some(bounds)
}

/// The bounds one slot gives, at the group's level.
fn slot_bounds(state: &Baseline, params: &Params, slot: Slot) -> Option<Bounds> {
    let center = slot.mean * state.level;
    // The scale: the slot's own spread, floored at the group's typical
    // relative error at this level (and at Poisson noise for counts),
    // widened while the slot has seen little.
    let young = 1.0 + 1.0 / f64::from(slot.seen.max(1));
    let relative = state.relative_error.max(MIN_RELATIVE_ERROR);
    let mut scale = (1.25 * slot.deviation * state.level).max(1.25 * relative * center.abs());
    if params.counts {
        scale = scale.max(center.abs().sqrt());
    }
    scale *= young;
    if scale <= 0.0 || !scale.is_finite() {
        // Nothing has ever varied here: a tenth of the group's typical
        // level, so a jump from a flat zero scores "ten times the usual
        // level", not an astronomic z.
        let (sum, n) = state.slots[..WEEK_SLOTS]
            .iter()
            .filter(|s| s.seen > 0)
            .fold((0.0, 0u32), |(sum, n), s| (sum + s.mean.abs(), n + 1));
        let typical = if n > 0 { sum / f64::from(n) } else { 0.0 };
        scale = if typical > 0.0 {
            0.1 * typical
        } else if params.counts {
            1.0
        } else {
            1e-9
        };
    }
    let mut bounds = z_bounds(center, scale, params.threshold);
    if params.counts && center < 1_000.0 {
        // Few counts are not Gaussian: no lower than the Poisson tail as
        // rare as the threshold's z (1e-9 for z = 6).
        let p = 0.5 * statrs::function::erf::erfc(params.threshold / std::f64::consts::SQRT_2);
        // A night of zeros is not a rate of zero: at least a tenth of the
        // group's typical hourly level.
        let day = &state.slots[WEEK_SLOTS..];
        let typical = day.iter().map(|s| s.mean.abs()).sum::<f64>() / day.len().max(1) as f64;
        let lambda = center.max(0.1 * typical).max(1e-3);
        if let Ok(poisson) = Poisson::new(lambda) {
            let (upper, _) = poisson_limits(&poisson, lambda, p);
            bounds.upper = bounds.upper.max(upper as f64);
        }
    }
    Some(bounds)
}

fn push(state: &mut Baseline, params: &Params, value: f64) {
    if state.history.len() == params.history {
        state.history.pop_front();
    }
    state.history.push_back(value);
    if let Method::Ewma { alpha } = params.method {
        state.ewma = Some(match state.ewma {
            None => (value, 0.0),
            Some((mean, var)) => {
                let diff = value - mean;
                let incr = alpha * diff;
                (mean + incr, (1.0 - alpha) * (var + diff * incr))
            }
        });
    }
}

fn bounds(state: &Baseline, params: &Params) -> Option<Bounds> {
    if state.history.len() < params.min_history {
        return None;
    }
    let floor = |center: f64| center.abs().sqrt().max(1.0);
    match params.method {
        Method::Seasonal { week, .. } => seasonal_bounds(state, params, week),
        Method::Mad => {
            let mut values: Vec<f64> = state.history.iter().copied().collect();
            let center = median(&mut values);
            let mut deviations: Vec<f64> = values.iter().map(|v| (v - center).abs()).collect();
            let scale = (1.4826 * median(&mut deviations)).max(floor(center));
            Some(z_bounds(center, scale, params.threshold))
        }
        Method::Ewma { .. } => {
            let (mean, var) = state.ewma?;
            Some(z_bounds(mean, var.sqrt().max(floor(mean)), params.threshold))
        }
        Method::Poisson { p_value } => {
            // The alert reports the measured rate (0 for a quiet token);
            // the tests need a positive one.
            let mean = state.history.iter().sum::<f64>() / state.history.len() as f64;
            let lambda = mean.max(MIN_POISSON_RATE);
            let poisson = Poisson::new(lambda).ok()?;
            let (upper, lower) = poisson_limits(&poisson, lambda, p_value);
            Some(Bounds {
                center: mean,
                scale: lambda.sqrt(),
                upper: upper as f64,
                lower: lower.map_or(-1.0, |k| k as f64),
            })
        }
    }
}

/// The rate a `poisson` test assumes for a group that has had no events.
const MIN_POISSON_RATE: f64 = 0.01;

/// The smallest count `k` with `P(X ≥ k) ≤ p`, and the largest with
/// `P(X ≤ k) ≤ p` (none when even 0 is likely). Both tails are monotone in
/// `k`, so each is a binary search: a few dozen CDF evaluations per closed
/// interval, whatever the rate.
fn poisson_limits(poisson: &Poisson, lambda: f64, p: f64) -> (u64, Option<u64>) {
    let rare_high = |k: u64| poisson.sf(k.saturating_sub(1)) <= p;
    let mut hi = (lambda.ceil() as u64).max(1);
    while !rare_high(hi) && hi < u64::MAX / 4 {
        hi *= 2;
    }
    let upper = first_true(lambda.floor() as u64, hi, rare_high);
    let rare_low = |k: u64| poisson.cdf(k) > p;
    let lower = if rare_low(0) { None } else { Some(first_true(0, lambda.ceil() as u64, rare_low) - 1) };
    (upper, lower)
}

/// The first `k` in `lo..=hi` for which the monotone `pred` holds (`hi` if
/// none before it).
fn first_true(mut lo: u64, mut hi: u64, pred: impl Fn(u64) -> bool) -> u64 {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

fn z_bounds(center: f64, scale: f64, z: f64) -> Bounds {
    Bounds { center, scale, upper: center + z * scale, lower: center - z * scale }
}

/// The alert's score: a z-score, or for `poisson` the tail probability.
fn score(params: &Params, bounds: &Bounds, value: f64) -> f64 {
    match params.method {
        Method::Poisson { .. } => match Poisson::new(bounds.center.max(MIN_POISSON_RATE)) {
            Ok(p) if value >= bounds.center => p.sf((value as u64).saturating_sub(1)),
            Ok(p) => p.cdf(value as u64),
            Err(_) => 0.0,
        },
        // Capped: beyond a z of 1,000 the number says nothing more.
        _ => ((value - bounds.center) / bounds.scale).clamp(-1000.0, 1000.0),
    }
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

impl Kind for Detector {
    const NAME: &'static str = "spike";
    const COUNTS_EVENTS: bool = false;
    type Params = Params;

    fn compile(reader: &mut ParamReader<'_>) -> Option<Params> {
        Params::compile(reader)
    }

    fn new(params: &Params, limits: &Limits) -> Detector {
        Detector::new(params.clone(), limits)
    }

    fn observe(&mut self, event: &EventRef<'_>, key: &str, _watermark: Timestamp, limits: &Limits) -> Outcome {
        Detector::observe(self, event, key, limits)
    }

    state_in_one_table!(Baseline);

    fn window(params: &Params) -> Option<Span> {
        Some(params.interval)
    }

    fn threshold(params: &Params) -> Option<f64> {
        Some(params.threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::Detector as Any;
    use super::*;
    use crate::event::Schema;

    const HOUR: i64 = 3600;

    fn params(method: Method, sum: Option<FieldId>) -> Params {
        Params {
            interval: Span::from_secs(HOUR),
            sum,
            method,
            threshold: 4.0,
            min_history: 6,
            history: 24,
            min_value: 0.0,
            direction: Direction::Up,
            skip_empty: false,
            counts: false,
        }
    }

    /// Hourly volumes via a `count` field: `hours[i]` in hour `i`.
    fn trace(p: Params, hours: &[f64]) -> String {
        let mut schema = Schema::new();
        let count = schema.intern("count");
        let p = Params { sum: p.sum.map(|_| count), ..p };
        let mut dec = decoder(schema);
        let mut d = Any::Spike(Detector::new(p, &limits()));
        let lines: Vec<String> = hours.iter().map(|v| format!(r#""count":{v}"#)).collect();
        let events: Vec<(i64, &str)> = lines.iter().enumerate().map(|(i, l)| (i as i64 * HOUR, l.as_str())).collect();
        run(&mut d, &mut dec, &limits(), &events)
    }

    #[test]
    fn needs_min_history_before_firing() {
        let p = params(Method::Mad, Some(FieldId(0)));
        assert_eq!(trace(p, &[100.0, 5000.0, 100.0]), "...");
    }

    #[test]
    fn robust_z_fires_once_per_excursion() {
        let p = params(Method::Mad, Some(FieldId(0)));
        let mut hours = vec![100.0, 110.0, 95.0, 105.0, 98.0, 102.0, 101.0, 99.0];
        hours.extend([900.0, 950.0, 100.0, 104.0, 1000.0]);
        assert_eq!(trace(p, &hours), "........F...F");
    }

    #[test]
    fn normal_variation_does_not_fire() {
        let p = params(Method::Mad, Some(FieldId(0)));
        let hours: Vec<f64> = (0..48).map(|i| 100.0 + ((i * 37) % 21) as f64 - 10.0).collect();
        assert!(trace(p, &hours).chars().all(|c| c == '.'));
    }

    #[test]
    fn ewma_fires_on_a_jump() {
        let p = params(Method::Ewma { alpha: 0.2 }, Some(FieldId(0)));
        let mut hours = vec![50.0; 10];
        hours.push(400.0);
        assert_eq!(trace(p, &hours), format!("{}F", ".".repeat(10)));
    }

    #[test]
    fn poisson_counts_fire_mid_interval() {
        let mut schema = Schema::new();
        schema.intern("x");
        let mut dec = decoder(schema);
        let p = Params { min_history: 4, ..params(Method::Poisson { p_value: 1e-6 }, None) };
        let mut d = Any::Spike(Detector::new(p, &limits()));
        let mut events = Vec::new();
        for hour in 0..6 {
            for i in 0..10 {
                events.push((hour * HOUR + i * 60, ""));
            }
        }
        for i in 0..60 {
            events.push((6 * HOUR + i * 10, ""));
        }
        let out = run(&mut d, &mut dec, &limits(), &events);
        let fired_at = out.find('F').expect("poisson fires");
        assert!(fired_at > 60 && fired_at < 60 + 40, "fires within the spiking hour: {out}");
        assert_eq!(out.matches('F').count(), 1);
    }

    #[test]
    fn drops_fire_when_the_interval_closes() {
        let p = Params { direction: Direction::Down, ..params(Method::Mad, Some(FieldId(0))) };
        let mut hours = vec![1000.0, 1010.0, 990.0, 1005.0, 995.0, 1000.0, 1002.0];
        hours.extend([10.0, 1000.0]);
        assert_eq!(trace(p, &hours), "........F");
    }

    #[test]
    fn poisson_limits_are_exact_at_any_rate() {
        let p = 1e-6;
        for lambda in [0.05, 3.0, 50.0, 1_000.0, 20_000.0] {
            let poisson = Poisson::new(lambda).unwrap();
            let (upper, lower) = poisson_limits(&poisson, lambda, p);
            assert!(poisson.sf(upper - 1) <= p, "λ={lambda}: {upper} is rare enough");
            assert!(upper <= 1 || poisson.sf(upper - 2) > p, "λ={lambda}: {upper} is the smallest");
            match lower {
                None => assert!(poisson.cdf(0) > p, "λ={lambda}: even 0 is likely"),
                Some(k) => {
                    assert!(poisson.cdf(k) <= p, "λ={lambda}: {k} is rare enough");
                    assert!(poisson.cdf(k + 1) > p, "λ={lambda}: {k} is the largest");
                }
            }
        }
    }

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    fn seasonal(week: bool) -> Params {
        Params {
            min_history: 24,
            history: 168,
            threshold: 6.0,
            skip_empty: true,
            ..params(Method::Seasonal { alpha: 0.3, week }, Some(FieldId(0)))
        }
    }

    /// A working day's volume: 10 at night, 1,000 from 08:00 to 18:00 UTC.
    fn day(hour: i64) -> f64 {
        let h = hour.rem_euclid(24);
        if (8..18).contains(&h) {
            1000.0 + ((hour * 37) % 50) as f64
        } else {
            10.0 + (hour % 3) as f64
        }
    }

    #[test]
    fn seasonal_judges_a_daytime_peak_against_other_daytimes() {
        // Three days of history, then a normal fourth day: no alert, where
        // a median of all hours (nights included) calls every morning a spike.
        let hours: Vec<f64> = (0..96).map(day).collect();
        assert!(trace(seasonal(true), &hours).chars().all(|c| c == '.'), "{}", trace(seasonal(true), &hours));
        let mad = Params { min_history: 24, history: 168, threshold: 6.0, ..params(Method::Mad, Some(FieldId(0))) };
        assert!(trace(mad, &hours).contains('F'), "the old baseline pages for the daytime");
        // 600 at 03:00 on day four is a spike.
        let mut night = hours.clone();
        night[3 * 24 + 3] = 600.0;
        assert_eq!(trace(seasonal(true), &night).find('F'), Some(3 * 24 + 3));
    }

    #[test]
    fn seasonal_keeps_resolution_far_below_one_and_scores_a_zero_baseline_sanely() {
        let tiny: Vec<f64> = (0..96).map(|h| 0.01 + 0.001 * ((h * 7) % 5) as f64).collect();
        let mut spiked = tiny.clone();
        spiked[80] = 0.05;
        let out = trace(seasonal(false), &spiked);
        assert_eq!(out.find('F'), Some(80), "{out}");
        // A flat zero, then 5.
        let mut schema = Schema::new();
        let count = schema.intern("count");
        let mut dec = decoder(schema);
        let p = Params { sum: Some(count), skip_empty: false, ..seasonal(false) };
        let mut d = Detector::new(p, &limits());
        let mut fired = None;
        for hour in 0..80i64 {
            let value = if hour == 79 { 5 } else { 0 };
            let text = line(hour * HOUR, &format!(r#""count":{value}"#));
            let ev = dec.decode(&text).unwrap();
            if let Outcome::Fired(f) = d.observe(&ev, "g", &limits()) {
                fired = Some(f);
            }
        }
        let score = fired.and_then(|f| f.score).expect("fires");
        assert!(score.is_finite() && score < 1e6, "a meaningful score, not {score}");
    }

    #[test]
    fn seasonal_takes_a_gap_in_reports_as_missing_not_as_a_drop() {
        // Reports every third hour (a 3-hour cadence read in 1-hour
        // intervals): the hours between are not zeros, so nothing drops.
        let p = Params { direction: Direction::Both, ..seasonal(false) };
        let mut schema = Schema::new();
        let count = schema.intern("count");
        let mut dec = decoder(schema);
        let p = Params { sum: Some(count), ..p };
        let mut d = Any::Spike(Detector::new(p, &limits()));
        let lines: Vec<String> = (0..40).map(|i| format!(r#""count":{}"#, 300 + i % 7)).collect();
        let events: Vec<(i64, &str)> =
            lines.iter().enumerate().map(|(i, l)| (i as i64 * 3 * HOUR, l.as_str())).collect();
        assert!(run(&mut d, &mut dec, &limits(), &events).chars().all(|c| c == '.'));
    }

    #[test]
    fn seasonal_turns_a_level_shift_into_one_alert_then_the_new_normal() {
        let mut hours: Vec<f64> = (0..72).map(|h| 100.0 + (h % 5) as f64).collect();
        hours.extend((0..96).map(|h| 400.0 + (h % 5) as f64));
        let out = trace(seasonal(false), &hours);
        assert_eq!(out.matches('F').count(), 1, "{out}");
    }

    #[test]
    fn seasonal_drops_fire_when_the_interval_closes() {
        let mut hours: Vec<f64> = (0..72).map(|h| 1000.0 + ((h * 13) % 20) as f64).collect();
        hours.extend([200.0, 210.0, 1000.0, 1005.0]);
        let p = Params { direction: Direction::Both, ..seasonal(false) };
        assert_eq!(trace(p, &hours).find('F'), Some(73));
    }
}
