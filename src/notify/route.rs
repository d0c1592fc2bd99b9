//! Which notifiers an alert goes to, and how often a route may speak.
//!
//! Routes are tried in order, like Alertmanager's: the first that matches
//! takes the alert, and the ones after it are tried only while each
//! matching route says `continue`. A route without `match` takes every
//! alert, so a last catch-all is the default route. Each notifier asks only
//! "which route brings me this alert?", which lets every notifier deliver
//! from the alert log on its own.

use std::time::{Duration, Instant};

use crate::alert::Alert;
use crate::config::{RateLimit, Route, RouteMatch};

pub struct Router {
    routes: Vec<Route>,
}

/// Index of a route, or [`ALL`] when no routes are configured.
pub type RouteId = usize;
/// The implicit route of a config without `routes`: every alert, every
/// notifier, no limit.
pub const ALL: RouteId = usize::MAX;

impl Router {
    pub fn new(routes: Vec<Route>) -> Router {
        Router { routes }
    }

    /// The route that brings `alert` to `notifier`, if any.
    pub fn route_for(&self, alert: &Alert, notifier: &str) -> Option<RouteId> {
        if self.routes.is_empty() {
            return Some(ALL);
        }
        for (id, route) in self.routes.iter().enumerate() {
            if !matches(&route.matcher, alert) {
                continue;
            }
            if route.notify.iter().any(|n| n == notifier) {
                return Some(id);
            }
            if !route.cont {
                return None;
            }
        }
        None
    }

    pub fn limit(&self, route: RouteId) -> Option<RateLimit> {
        self.routes.get(route).and_then(|r| r.limit)
    }

    /// How a route is named in messages and logs: its position, 1-based.
    pub fn describe(&self, route: RouteId) -> String {
        if route == ALL {
            "all alerts".into()
        } else {
            format!("route {}", route + 1)
        }
    }
}

fn matches(m: &RouteMatch, alert: &Alert) -> bool {
    (m.severity.is_empty() || m.severity.contains(&alert.severity))
        && (m.rules.is_empty() || m.rules.iter().any(|r| **r == *alert.rule))
        && (m.tags.is_empty() || m.tags.iter().any(|t| alert.tags.contains(t)))
        && m.group.iter().all(|(field, values)| alert.group_value(field).is_some_and(|v| values.iter().any(|x| x == v)))
}

/// A token bucket: `max` messages at once, refilled evenly over `per`.
#[derive(Debug)]
pub struct Bucket {
    limit: RateLimit,
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    pub fn new(limit: RateLimit, now: Instant) -> Bucket {
        Bucket { limit, tokens: f64::from(limit.max), updated: now }
    }

    fn refill(&mut self, now: Instant) {
        let rate = f64::from(self.limit.max) / self.limit.per.as_secs_f64();
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(self.limit.max));
        self.updated = now;
    }

    /// Takes a token, or says how long until one is free.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let rate = f64::from(self.limit.max) / self.limit.per.as_secs_f64();
        Err(Duration::from_secs_f64((1.0 - self.tokens) / rate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Severity;

    fn alert(rule: &str, severity: Severity, tags: &[&str], user: &str) -> Alert {
        let mut alert: Alert = serde_json::from_value(serde_json::json!({
            "id": "1", "rule": rule, "title": "t", "severity": severity, "group": {"user": user},
            "summary": "", "ts": "2026-11-23T10:00:00Z", "first_ts": "2026-11-23T10:00:00Z",
            "fingerprint": "f", "evidence": []
        }))
        .unwrap();
        alert.tags = tags.iter().map(|t| t.to_string()).collect::<Vec<_>>().into();
        alert
    }

    fn route(m: RouteMatch, notify: &[&str], cont: bool) -> Route {
        Route { matcher: m, notify: notify.iter().map(|n| n.to_string()).collect(), cont, limit: None }
    }

    #[test]
    fn first_match_wins_unless_it_continues_and_a_catch_all_is_the_default() {
        let critical = RouteMatch { severity: vec![Severity::Critical], ..RouteMatch::default() };
        let router = Router::new(vec![
            route(critical, &["email", "pager"], true),
            route(RouteMatch { tags: vec!["auth".into()], ..RouteMatch::default() }, &["slack"], false),
            route(RouteMatch::default(), &["siem"], false),
        ]);
        let page = alert("r", Severity::Critical, &["auth"], "alice");
        assert_eq!(router.route_for(&page, "email"), Some(0));
        assert_eq!(router.route_for(&page, "slack"), Some(1), "continued past the first route");
        assert_eq!(router.route_for(&page, "siem"), None, "the auth route does not continue");
        let quiet = alert("r", Severity::Warning, &[], "alice");
        assert_eq!(router.route_for(&quiet, "email"), None);
        assert_eq!(router.route_for(&quiet, "siem"), Some(2));
        assert_eq!(Router::new(Vec::new()).route_for(&quiet, "anything"), Some(ALL));
    }

    #[test]
    fn matches_rules_and_group_values() {
        let m = RouteMatch {
            rules: vec!["auth.a".into(), "auth.b".into()],
            group: vec![("user".into(), vec!["alice".into(), "bob".into()])],
            ..RouteMatch::default()
        };
        let router = Router::new(vec![route(m, &["n"], false)]);
        assert_eq!(router.route_for(&alert("auth.b", Severity::Warning, &[], "bob"), "n"), Some(0));
        assert_eq!(router.route_for(&alert("auth.b", Severity::Warning, &[], "carol"), "n"), None);
        assert_eq!(router.route_for(&alert("auth.c", Severity::Warning, &[], "bob"), "n"), None);
    }

    #[test]
    fn a_bucket_allows_max_at_once_then_one_per_interval() {
        let start = Instant::now();
        let mut bucket = Bucket::new(RateLimit { max: 3, per: Duration::from_secs(60) }, start);
        for _ in 0..3 {
            assert!(bucket.take(start).is_ok());
        }
        let wait = bucket.take(start).unwrap_err();
        assert!((wait.as_secs_f64() - 20.0).abs() < 0.01, "{wait:?}");
        assert!(bucket.take(start + Duration::from_secs(20)).is_ok());
        assert!(bucket.take(start + Duration::from_secs(21)).is_err());
    }
}
