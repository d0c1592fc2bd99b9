//! The `spike` detector on labelled time series: precision, recall and time
//! to detect per class of series, for the shipped settings and for a
//! windowed Gaussian (the mean and standard deviation of the last week of
//! intervals, z ≥ 4 either way), the baseline any anomaly detector should
//! beat.
//!
//! The series are generated (seeded), hourly, four weeks each, 20 per
//! class, with anomalies only in the last two weeks:
//! - `seasonal`: a working day and a quieter weekend, with a 4× hour;
//! - `level_shift`: a lasting tripling (the alert belongs to its first six
//!   hours; later alerts are false);
//! - `drop`: three hours at a fifth of the usual;
//! - `spike`: a flat noisy series with a 5× hour;
//! - `tiny_scale`: values about 0.01 (±10 %), with a 0.05 hour;
//! - `irregular`: reports every 10 to 50 minutes, summed per hour (an hour
//!   without a report is missing, not zero), with a 4× hour.
//!
//! vigil reads each series as `message_volume` events through the real
//! pipeline with the rule below (`volume.message_spike`'s z of 7, and the
//! method's default 4); the Gaussian sees the same hourly sums
//! (zero for an hour without reports, as a naive reader of the stream
//! would). `cargo bench --bench spike`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use vigil::pipeline::Pipeline;
use vigil::ruleset::{RuleSet, RuleSources};
use vigil::time::{Span, Timestamp};

const HOUR: i64 = 3600;
const WEEKS: i64 = 4;
/// Monday 2026-11-02 00:00 UTC.
const START: i64 = 1_793_577_600;

/// The shipped `volume.message_spike` settings, both directions, real
/// values (no Poisson floor).
const SHIPPED: &str = "
id: bench.spike
title: t
severity: critical
filter: {kind: message_volume}
detect:
  type: spike
  group_by: [account]
  interval: 1h
  sum: count
  method: seasonal
  season: week
  noise: none
  direction: both
  threshold: 7
  min_history: 48
alert: {summary: x, realert: 0s}
";

struct Series {
    /// (second, value) reports.
    reports: Vec<(i64, f64)>,
    /// Anomalies: (start, end) seconds.
    anomalies: Vec<(i64, i64)>,
}

fn noise(rng: &mut ChaCha8Rng, level: f64, relative: f64) -> f64 {
    let (u, v): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
    let normal = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
    (level * (1.0 + relative * normal)).max(0.0)
}

fn working_day(hour: i64) -> f64 {
    let h = (hour % 24) as f64;
    let weekday = (hour / 24) % 7 < 5;
    let day = (-(h - 13.0).powi(2) / 12.0).exp();
    (50.0 + 950.0 * day) * if weekday { 1.0 } else { 0.35 }
}

fn generate(class: &str, seed: u64) -> Series {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let hours = WEEKS * 7 * 24;
    let mut anomalies = Vec::new();
    let mut picks = Vec::new();
    for _ in 0..3 {
        picks.push(rng.random_range(hours / 2 + 24..hours - 12));
    }
    picks.sort();
    picks.dedup_by(|a, b| *a - *b < 24);
    let mut reports = Vec::new();
    let shift = picks[0];
    for hour in 0..hours {
        let at = START + hour * HOUR;
        let in_pick = picks.contains(&hour);
        let value = match class {
            "seasonal" => noise(&mut rng, working_day(hour) * if in_pick { 4.0 } else { 1.0 }, 0.08),
            "level_shift" => noise(&mut rng, if hour >= shift { 300.0 } else { 100.0 }, 0.08),
            "drop" => {
                let dropped = picks.iter().any(|p| (*p..*p + 3).contains(&hour));
                noise(&mut rng, working_day(hour) * if dropped { 0.2 } else { 1.0 }, 0.08)
            }
            "spike" => noise(&mut rng, 200.0 * if in_pick { 5.0 } else { 1.0 }, 0.1),
            "tiny_scale" => {
                if in_pick {
                    0.05
                } else {
                    noise(&mut rng, 0.01, 0.1)
                }
            }
            _ => {
                // Irregular reports, each carrying what was sent since the last.
                let level = working_day(hour) * if in_pick { 4.0 } else { 1.0 };
                let mut t = 0;
                while t < HOUR {
                    let gap = rng.random_range(600..3000).min(HOUR - t);
                    if t + gap < HOUR || rng.random_bool(0.5) {
                        reports.push((at + t + gap - 1, noise(&mut rng, level * gap as f64 / HOUR as f64, 0.08)));
                    }
                    t += gap;
                }
                continue;
            }
        };
        reports.push((at + 30, value));
    }
    match class {
        "level_shift" => anomalies.push((START + shift * HOUR, START + (shift + 6) * HOUR)),
        "drop" => anomalies.extend(picks.iter().map(|p| (START + p * HOUR, START + (p + 4) * HOUR))),
        _ => anomalies.extend(picks.iter().map(|p| (START + p * HOUR, START + (p + 1) * HOUR + 600))),
    }
    Series { reports, anomalies }
}

/// Alert times from vigil's pipeline with `rule`.
fn vigil_alerts(rules: &RuleSet, series: &Series) -> Vec<i64> {
    let mut pipeline = Pipeline::new(rules, Span::from_secs(60), 1 << 20);
    let mut alerts = Vec::new();
    for (at, value) in &series.reports {
        let line = format!(
            r#"{{"ts":"{}","kind":"message_volume","account":"a","count":{value}}}"#,
            Timestamp::from_secs(*at)
        );
        let _ = pipeline.feed(line.as_bytes());
        alerts.extend(pipeline.drain_alerts().map(|a| a.ts.0 / 1_000_000));
    }
    alerts
}

/// The windowed Gaussian on hourly sums: z ≥ 4 against the last 168 hours.
fn gaussian_alerts(series: &Series) -> Vec<i64> {
    let hours = (WEEKS * 7 * 24) as usize;
    let mut sums = vec![0.0; hours];
    for (at, value) in &series.reports {
        let hour = ((at - START) / HOUR) as usize;
        if hour < hours {
            sums[hour] += value;
        }
    }
    let mut alerts = Vec::new();
    for hour in 48..hours {
        let window = &sums[hour.saturating_sub(168)..hour];
        let mean = window.iter().sum::<f64>() / window.len() as f64;
        let var = window.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / window.len() as f64;
        let z = (sums[hour] - mean) / var.sqrt().max(1e-12);
        if z.abs() >= 4.0 {
            alerts.push(START + (hour as i64 + 1) * HOUR);
        }
    }
    alerts
}

#[derive(Default)]
struct Score {
    true_alerts: usize,
    false_alerts: usize,
    anomalies: usize,
    found: usize,
    delays: Vec<i64>,
}

fn score(score: &mut Score, series: &Series, alerts: &[i64]) {
    let evaluated_from = START + WEEKS * 7 * 24 * HOUR / 2;
    for &at in alerts.iter().filter(|&&a| a >= evaluated_from) {
        if series.anomalies.iter().any(|(s, e)| at >= *s && at <= *e) {
            score.true_alerts += 1;
        } else {
            score.false_alerts += 1;
        }
    }
    for (start, end) in &series.anomalies {
        score.anomalies += 1;
        if let Some(first) = alerts.iter().find(|&&a| a >= *start && a <= *end) {
            score.found += 1;
            score.delays.push(first - start);
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let compile = |text: &str| {
        RuleSet::compile(&RuleSources { files: vec![("b.yml".into(), text.into())], ..RuleSources::default() })
            .expect("the bench rule compiles")
    };
    let shipped = compile(SHIPPED);
    let default_z = compile(&SHIPPED.replace("threshold: 7", "threshold: 4"));
    println!("spike on labelled series: 20 series per class, 4 weeks hourly, anomalies in the last two");
    println!(
        "{:<12} {:<24} {:>9} {:>7} {:>6} {:>16}",
        "class", "method", "precision", "recall", "F1", "median to detect"
    );
    for class in ["seasonal", "level_shift", "drop", "spike", "tiny_scale", "irregular"] {
        let (mut at_7, mut at_4, mut gaussian) = (Score::default(), Score::default(), Score::default());
        for seed in 0..20 {
            let series = generate(class, seed * 31 + class.len() as u64);
            score(&mut at_7, &series, &vigil_alerts(&shipped, &series));
            score(&mut at_4, &series, &vigil_alerts(&default_z, &series));
            score(&mut gaussian, &series, &gaussian_alerts(&series));
        }
        let rows = [
            ("seasonal z 7 (shipped)", &mut at_7),
            ("seasonal z 4 (default)", &mut at_4),
            ("windowed Gaussian z 4", &mut gaussian),
        ];
        for (name, s) in rows {
            let alerts = s.true_alerts + s.false_alerts;
            let precision = if alerts == 0 { 0.0 } else { s.true_alerts as f64 / alerts as f64 };
            let recall = s.found as f64 / s.anomalies.max(1) as f64;
            let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
            s.delays.sort();
            let median = s.delays.get(s.delays.len() / 2).map_or("-".into(), |d| format!("{}m", d / 60));
            println!("{class:<12} {name:<24} {precision:>9.2} {recall:>7.2} {f1:>6.2} {median:>16}");
        }
    }
}
