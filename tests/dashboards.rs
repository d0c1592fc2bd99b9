//! The Grafana dashboards (`dashboards/`): generated from
//! `dashboards/generate.py` and up to date, valid against Grafana's own
//! schema, wired to the `${datasource}` variable, and every panel's query
//! answered with data by a real Prometheus (Debian's `prometheus`)
//! scraping two vigils: one on the demo stream with a notifier, one
//! consuming Kafka (tansu) with a dead-letter topic.

mod common;

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::daemon::{start, wait_metric};
use common::kafka::{free_port, Broker};

const DASHBOARDS: [&str; 2] = ["vigil-soc-overview.json", "vigil-pipeline-health.json"];

fn dashboard(name: &str) -> Value {
    let text = std::fs::read_to_string(common::root().join("dashboards").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every panel, rows' nested panels included.
fn panels(board: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for panel in board["panels"].as_array().unwrap() {
        all.push(panel);
        if let Some(nested) = panel["panels"].as_array() {
            all.extend(nested);
        }
    }
    all
}

/// Every query: (dashboard, panel title, expression).
fn queries() -> Vec<(String, String, String)> {
    let mut all = Vec::new();
    for name in DASHBOARDS {
        let board = dashboard(name);
        for panel in panels(&board) {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().expect("a Prometheus query").to_owned();
                all.push((name.to_owned(), panel["title"].as_str().unwrap().to_owned(), expr));
            }
        }
    }
    all
}

/// A dashboard's template variables as Grafana fills them with "All" and
/// a time range of an hour.
fn substitute(expr: &str) -> String {
    [
        ("$__rate_interval", "1m"),
        ("$__range", "1h"),
        ("$__interval", "15s"),
        ("$rule", ".*"),
        ("$severity", ".*"),
        ("$instance", ".*"),
    ]
    .iter()
    .fold(expr.to_owned(), |text, (name, value)| text.replace(name, value))
}

#[test]
fn the_dashboards_are_generated_and_up_to_date() {
    let out = Command::new("python3")
        .args(["dashboards/generate.py", "--check"])
        .current_dir(common::root())
        .output()
        .expect("run python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_dashboards_match_grafanas_schema() {
    let schema = common::root().join("dashboards/schema/dashboard.schema.json");
    let files: Vec<_> = DASHBOARDS.iter().map(|d| common::root().join("dashboards").join(d)).collect();
    let out = Command::new("check-jsonschema")
        .arg("--schemafile")
        .arg(&schema)
        .args(&files)
        .output()
        .expect("run check-jsonschema (pip install check-jsonschema)");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{report}");
}

#[test]
fn the_dashboards_use_the_datasource_variable_and_a_current_schema() {
    for name in DASHBOARDS {
        let board = dashboard(name);
        assert!(board["schemaVersion"].as_u64().unwrap() >= 39, "{name}: Grafana 10.4/11 schema");
        let variables: Vec<&str> =
            board["templating"]["list"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
        assert_eq!(variables[0], "datasource", "{name}");
        assert!(variables.contains(&"rule"), "{name}: a rule variable");
        let mut ids = BTreeSet::new();
        let mut cells = BTreeSet::new();
        for panel in panels(&board) {
            assert!(ids.insert(panel["id"].as_u64().unwrap()), "{name}: panel ids are unique");
            let pos = &panel["gridPos"];
            let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| pos[k].as_u64().unwrap());
            assert!(x + w <= 24, "{name}: {} fits the grid", panel["title"]);
            for cell in (x..x + w).flat_map(|cx| (y..y + h).map(move |cy| (cx, cy))) {
                assert!(cells.insert(cell), "{name}: {} overlaps another panel", panel["title"]);
            }
            if panel["type"] == "row" || panel["type"] == "text" {
                continue;
            }
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "{name}: {}", panel["title"]);
            assert!(
                !panel["description"].as_str().unwrap_or_default().is_empty(),
                "{name}: {} says what it shows",
                panel["title"]
            );
            for target in panel["targets"].as_array().unwrap() {
                assert_eq!(target["datasource"]["uid"], "${datasource}", "{name}: {}", panel["title"]);
            }
        }
    }
    let soc = serde_json::to_string(&dashboard(DASHBOARDS[0])).unwrap();
    for metric in ["vigil_logins_total", "vigil_messages_total", "vigil_api_calls_total", "off_hours", "new_value"] {
        assert!(soc.contains(metric), "the SOC overview charts {metric}");
    }
    let provisioning = common::root().join("dashboards/provisioning");
    let providers = std::fs::read_to_string(provisioning.join("dashboards/vigil.yaml")).unwrap();
    assert!(providers.contains("type: file") && providers.contains("path:"));
    let sources = std::fs::read_to_string(provisioning.join("datasources/vigil-prometheus.yaml")).unwrap();
    assert!(sources.contains("type: prometheus"));
}

/// Debian's Prometheus on loopback, scraping `targets` every second.
struct Prometheus {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(targets: &[&str]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        let list = targets.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ");
        std::fs::write(
            &config,
            format!(
                "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
                 scrape_configs:\n  - job_name: vigil\n    static_configs: [{{targets: [{list}]}}]\n"
            ),
        )
        .unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run prometheus (apt-get install prometheus)");
        let prometheus = Prometheus { child, addr, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        while common::daemon::http_get_status(&prometheus.addr, "/-/ready") != Some(200) {
            assert!(Instant::now() < deadline, "Prometheus did not become ready");
            std::thread::sleep(Duration::from_millis(200));
        }
        prometheus
    }

    /// The result of an instant query, or Prometheus' error.
    fn query(&self, runtime: &tokio::runtime::Runtime, expr: &str) -> Result<Vec<Value>, String> {
        let url = format!("http://{}/api/v1/query", self.addr);
        let body: Value = runtime
            .block_on(async {
                let response = reqwest::Client::new().post(url).form(&[("query", expr)]).send().await?;
                response.json().await
            })
            .map_err(|e| e.to_string())?;
        if body["status"] != "success" {
            return Err(format!("{}: {}", body["errorType"], body["error"]));
        }
        Ok(body["data"]["result"].as_array().cloned().unwrap_or_default())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn every_panel_query_returns_data_from_a_real_prometheus_scraping_vigil() {
    let state = tempfile::tempdir().unwrap();
    let demo_config = format!(
        "source: {{type: demo, speed: 3000}}\nmetrics: {{listen: 127.0.0.1:0}}\noutput: {{format: json}}\n\
         state: {{dir: {}}}\nnotifiers:\n  archive: {{type: file, path: {}}}\n",
        state.path().join("demo").display(),
        state.path().join("archive.jsonl").display()
    );
    let (_demo, _demo_lines, demo_addr, _demo_dir) = start(&demo_config, Stdio::null());

    let broker = Broker::start();
    broker.create_topic("events", 2);
    broker.create_topic("dead", 1);
    let kafka_config = format!(
        "source:\n  type: kafka\n  brokers: {}\n  group_id: vigil-dashboards\n  topics: [events]\n  \
         dead_letter_topic: dead\n  properties: {{session.timeout.ms: 6000, statistics.interval.ms: 500}}\n\
         state: {{dir: {}, checkpoint_interval: 1s}}\nmetrics: {{listen: 127.0.0.1:0}}\noutput: {{format: json}}\n",
        broker.addr,
        state.path().join("kafka").display()
    );
    let (_kafka, _kafka_lines, kafka_addr, _kafka_dir) = start(&kafka_config, Stdio::null());
    let generated = common::vigil().args(["generate", "--days", "1"]).output().unwrap();
    let events: Vec<(String, String)> = String::from_utf8(generated.stdout)
        .unwrap()
        .lines()
        .take(3000)
        .enumerate()
        .map(|(i, line)| (format!("k{}", i % 7), line.to_owned()))
        .chain([("bad".to_owned(), "not json".to_owned())])
        .collect();
    broker.produce("events", &events);
    wait_metric(&kafka_addr, "vigil_kafka_dead_lettered_total{reason=\"invalid_json\"} 1");
    wait_metric(&demo_addr, "vigil_notifications_total{notifier=\"archive\",result=\"sent\"}");

    let prometheus = Prometheus::start(&[&demo_addr, &kafka_addr]);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Both targets up, and a few scrapes in (rates need two samples).
    loop {
        let up = prometheus.query(&runtime, "count(count_over_time(up{job=\"vigil\"}[1m]) >= 5)");
        if matches!(up.as_deref(), Ok([sample]) if sample["value"][1] == "2") {
            break;
        }
        assert!(Instant::now() < deadline, "Prometheus did not scrape both vigils: {up:?}");
        std::thread::sleep(Duration::from_millis(500));
    }

    let queries = queries();
    assert!(queries.len() > 30, "{} queries", queries.len());
    let mut failures = Vec::new();
    for (board, panel, expr) in &queries {
        let query = substitute(expr);
        assert!(!query.contains('$'), "{board}: {panel}: a variable is left in {query}");
        match prometheus.query(&runtime, &query) {
            Ok(series) if series.is_empty() => failures.push(format!("{board}: {panel}: no series for {query}")),
            Ok(_) => {}
            Err(err) => failures.push(format!("{board}: {panel}: {err} in {query}")),
        }
    }
    assert!(failures.is_empty(), "{} of {} queries failed:\n{}", failures.len(), queries.len(), failures.join("\n"));
}
