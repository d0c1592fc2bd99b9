#!/usr/bin/env python3
"""Writes vigil's Grafana dashboards (dashboards as code).

    python3 dashboards/generate.py          # rewrite the JSON files
    python3 dashboards/generate.py --check  # fail if they are out of date

Every panel queries the `${datasource}` variable (a Prometheus data source
chosen at import), never a fixed uid. Queries use only vigil's metrics
(docs/metrics.md); `tests/dashboards.rs` runs each of them against a real
Prometheus scraping vigil, and validates the files against Grafana's own
dashboard schema (dashboards/schema/).
"""

import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
SCHEMA_VERSION = 39  # Grafana 10.4 and 11; newer versions migrate on import
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

GREEN, AMBER, RED = "green", "#EAB839", "red"


def thresholds(*steps):
    """steps: (value, colour) after the base colour, which comes first."""
    base, *rest = steps
    return {
        "mode": "absolute",
        "steps": [{"color": base, "value": None}] + [{"color": c, "value": v} for v, c in rest],
    }


class Board:
    def __init__(self):
        self.panels = []
        self.y = 0
        self.x = 0
        self.row_height = 0
        self.next_id = 1

    def _id(self):
        self.next_id += 1
        return self.next_id - 1

    def row(self, title):
        self._newline()
        self.panels.append(
            {"type": "row", "id": self._id(), "title": title, "collapsed": False, "panels": [], "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}}
        )
        self.y += 1

    def _newline(self):
        if self.x:
            self.y += self.row_height
            self.x = 0
            self.row_height = 0

    def _place(self, w, h):
        if self.x + w > 24:
            self._newline()
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_height = max(self.row_height, h)
        return pos

    def panel(self, kind, title, description, targets, w=8, h=8, unit=None, steps=None, options=None, custom=None, minimum=None, maximum=None):
        defaults = {}
        if unit:
            defaults["unit"] = unit
        if steps:
            defaults["thresholds"] = thresholds(*steps)
            defaults["color"] = {"mode": "thresholds"}
        if custom:
            defaults["custom"] = custom
        if minimum is not None:
            defaults["min"] = minimum
        if maximum is not None:
            defaults["max"] = maximum
        panel = {
            "type": kind,
            "id": self._id(),
            "title": title,
            "description": description,
            "datasource": DATASOURCE,
            "gridPos": self._place(w, h),
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": options or {},
            "targets": [
                {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "range": kind != "stat" and kind != "bargauge", "instant": kind in ("stat", "bargauge")}
                for i, (expr, legend) in enumerate(targets)
            ],
        }
        self.panels.append(panel)

    def stat(self, title, description, expr, unit="short", steps=(GREEN,), w=4, h=4):
        self.panel("stat", title, description, [(expr, "")], w=w, h=h, unit=unit, steps=steps,
                   options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "background", "graphMode": "none", "textMode": "value"})

    def series(self, title, description, targets, unit="short", w=12, h=8, bars=False, stack=False, steps=None, minimum=0, maximum=None):
        custom = {"drawStyle": "bars" if bars else "line", "fillOpacity": 60 if bars else 10, "lineWidth": 1, "showPoints": "never", "spanNulls": True,
                  "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
        if steps:
            custom["thresholdsStyle"] = {"mode": "line"}
        self.panel("timeseries", title, description, targets, w=w, h=h, unit=unit, steps=steps, custom=custom, minimum=minimum, maximum=maximum,
                   options={"legend": {"displayMode": "table", "placement": "right", "showLegend": True, "calcs": ["lastNotNull", "max"]}, "tooltip": {"mode": "multi", "sort": "desc"}})

    def bars(self, title, description, expr, legend, w=12, h=8):
        self.panel("bargauge", title, description, [(expr, legend)], w=w, h=h, unit="short", steps=(GREEN,),
                   options={"displayMode": "basic", "orientation": "horizontal", "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "showUnfilled": True})

    def text(self, title, content, w=12, h=8):
        self.panels.append({"type": "text", "id": self._id(), "title": title, "gridPos": self._place(w, h), "options": {"mode": "markdown", "content": content}})


def datasource_variable():
    return {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus", "hide": 0, "refresh": 1, "regex": "", "options": []}


def query_variable(name, label, query, all_value=".*"):
    return {"name": name, "label": label, "type": "query", "datasource": DATASOURCE, "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
            "refresh": 2, "includeAll": True, "multi": True, "allValue": all_value, "current": {"text": "All", "value": "$__all"}, "options": [], "hide": 0, "regex": "", "sort": 1}


def severity_variable():
    options = [{"text": "All", "value": "$__all", "selected": True}] + [{"text": s, "value": s, "selected": False} for s in ("critical", "warning")]
    return {"name": "severity", "label": "Severity", "type": "custom", "query": "critical,warning", "includeAll": True, "multi": True, "allValue": ".*",
            "current": {"text": "All", "value": "$__all"}, "options": options, "hide": 0}


def dashboard(uid, title, description, board, variables, tags, refresh="30s", time_from="now-6h"):
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["vigil"] + tags,
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": refresh,
        "time": {"from": time_from, "to": "now"},
        "timezone": "browser",
        "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard"}]},
        "links": [{"title": "vigil dashboards", "type": "dashboards", "tags": ["vigil"], "asDropdown": True, "includeVars": False, "keepTime": True, "icon": "external link", "targetBlank": False, "tooltip": "", "url": ""}],
        "templating": {"list": variables},
        "panels": board.panels,
    }


ALERTS = 'vigil_alerts_total{rule=~"$rule", severity=~"$severity"}'

TOP_GROUPS = """Group values (users, addresses, tokens, accounts) never become Prometheus
labels: they are unbounded and personal. vigil logs one line per alert at INFO
with `rule`, `severity` and `group`; with `log: {format: json}` and the logs in
Loki, the top groups of the last day are:

```logql
topk(10, sum by (fields_rule, fields_group) (
  count_over_time({app="vigil"} | json | fields_message="Alert" [24h])))
```

See docs/dashboards.md."""


def soc_overview():
    b = Board()
    b.row("Now")
    b.stat("Critical alerts, last hour", "Critical alerts raised in the last hour (rules and severities selected above).",
           'sum(increase(vigil_alerts_total{rule=~"$rule", severity="critical"}[1h]))', steps=(GREEN, (1, RED)))
    b.stat("Warnings, last hour", "Warning alerts raised in the last hour.",
           'sum(increase(vigil_alerts_total{rule=~"$rule", severity="warning"}[1h]))', steps=(GREEN, (1, AMBER)))
    b.stat("New-device and new-value alerts", "Alerts of new_value rules (new device, new country, token from a new address) in the time range.",
           f'sum(increase(vigil_alerts_total{{rule=~"$rule", severity=~"$severity", detector="new_value"}}[$__range]))', steps=(GREEN, (1, AMBER)))
    b.stat("Off-hours alerts", "Alerts of off_hours rules (activity outside business hours or the user's own profile) in the time range.",
           f'sum(increase(vigil_alerts_total{{rule=~"$rule", severity=~"$severity", detector="off_hours"}}[$__range]))', steps=(GREEN, (1, AMBER)))
    b.stat("Failed logins", "Share of login events that failed, over the last 5 minutes.",
           'sum(rate(vigil_logins_total{outcome="failure"}[5m])) / sum(rate(vigil_logins_total[5m]))', unit="percentunit", steps=(GREEN, (0.2, AMBER), (0.5, RED)))
    b.stat("API errors (5xx)", "Share of API calls answered with a 5xx status, over the last 5 minutes.",
           'sum(rate(vigil_api_calls_total{status_class="5xx"}[5m])) / sum(rate(vigil_api_calls_total[5m]))', unit="percentunit", steps=(GREEN, (0.02, AMBER), (0.1, RED)))
    b.row("Alerts over time")
    b.series("Alerts by severity", "Alerts raised per interval, by severity.",
             [(f"sum by (severity) (increase({ALERTS}[$__rate_interval]))", "{{severity}}")], bars=True, stack=True)
    b.series("Alerts by rule", "Alerts raised per interval, by rule.",
             [(f"sum by (rule) (increase({ALERTS}[$__rate_interval]))", "{{rule}}")], bars=True, stack=True)
    b.bars("Top rules by alerts", "The ten rules that raised the most alerts in the time range.",
           f"topk(10, sum by (rule) (increase({ALERTS}[$__range])))", "{{rule}}")
    b.text("Top groups by alerts", TOP_GROUPS)
    b.row("Activity")
    b.series("Logins by outcome", "Login events per second, by outcome.",
             [('sum by (outcome) (rate(vigil_logins_total[$__rate_interval]))', "{{outcome}}")], unit="ops", w=8, stack=True)
    b.series("Failed-login rate", "Failed logins per second, and their share of all logins.",
             [('sum(rate(vigil_logins_total{outcome="failure"}[$__rate_interval]))', "failed logins/s")], unit="ops", w=8)
    b.series("Message volume", "Messages sent per minute, summed from message_volume events.",
             [("sum(rate(vigil_messages_total[$__rate_interval])) * 60", "messages/min")], unit="short", w=8)
    b.series("API calls by status class", "API calls per second, by status class.",
             [("sum by (status_class) (rate(vigil_api_calls_total[$__rate_interval]))", "{{status_class}}")], unit="ops", stack=True)
    b.series("API error rate", "Share of API calls answered with a 4xx or 5xx status.",
             [('sum by (status_class) (rate(vigil_api_calls_total{status_class=~"4xx|5xx"}[$__rate_interval])) '
               '/ ignoring(status_class) group_left sum(rate(vigil_api_calls_total[$__rate_interval]))', "{{status_class}}")],
             unit="percentunit", steps=(GREEN, (0.05, AMBER), (0.2, RED)), maximum=1)
    variables = [datasource_variable(), query_variable("rule", "Rule", "label_values(vigil_rule_info, rule)"), severity_variable()]
    return dashboard("vigil-soc-overview", "vigil / SOC overview",
                     "What vigil detects: alerts by severity and rule, and the login, message and API activity behind them.",
                     b, variables, ["security"], time_from="now-24h")


def pipeline_health():
    b = Board()
    inst = 'instance=~"$instance"'
    b.row("Status")
    b.stat("Instances", "vigil instances scraped.", f"count(vigil_build_info{{{inst}}})", steps=(RED, (1, GREEN)))
    b.stat("Kafka reachable", "Instances with no Kafka broker reachable (0 when all are connected; empty without a Kafka source).",
           f"count(vigil_kafka_connected{{{inst}}} == 0) or vector(0)", steps=(GREEN, (1, RED)))
    b.stat("Last reload", "1: the running rules are the files' rules. 0: the last reload was refused (see the log); the previous rules run.",
           f"min(vigil_rules_last_reload_successful{{{inst}}})", steps=(RED, (1, GREEN)))
    b.stat("Rules loaded", "Rules running (the fewest over the instances).", f"min(vigil_rules_loaded{{{inst}}})")
    b.stat("Rules age", "Time since the running rules were loaded.",
           f"time() - max(vigil_rules_last_reload_success_timestamp_seconds{{{inst}}})", unit="s")
    b.stat("Undelivered alerts", "Alerts in the outbox not yet delivered, over all notifiers.",
           f"sum(vigil_outbox_pending_alerts{{{inst}}}) or vector(0)", steps=(GREEN, (1, AMBER), (100, RED)))
    b.row("Events")
    b.series("Events by kind", "Events processed per second, by kind.",
             [(f"sum by (kind) (rate(vigil_events_total{{{inst}}}[$__rate_interval]))", "{{kind}}")], unit="ops", stack=True)
    b.series("Rejected events by reason", "Malformed events set aside per second, by reason (late events: arrived behind the watermark).",
             [(f"sum by (reason) (rate(vigil_events_rejected_total{{{inst}}}[$__rate_interval]))", "{{reason}}"),
              (f"sum(rate(vigil_events_late_total{{{inst}}}[$__rate_interval]))", "late")], unit="ops")
    b.series("Event-time lag", "Wall clock minus event time after each batch: how far behind the events vigil is.",
             [(f"histogram_quantile({q}, sum by (le) (rate(vigil_event_lag_seconds_bucket{{{inst}}}[$__rate_interval])))", f"p{int(q * 100)}")
              for q in (0.5, 0.99)], unit="s", steps=(GREEN, (60, AMBER), (300, RED)))
    b.series("Source lag", "Per source (a file, stdin, a Kafka partition): wall clock minus the newest event time it delivered. A source whose producers or delivery fall behind shows here; events more than `lateness` behind their own source are late.",
             [(f"max by (source) (vigil_source_lag_seconds{{{inst}}})", "{{source}}")], unit="s", steps=(GREEN, (60, AMBER), (300, RED)))
    b.series("Late events by rule", "Late events each rule's filter matched, per second: what its windows no longer took.",
             [(f"sum by (rule) (rate(vigil_rule_late_events_total{{{inst}}}[$__rate_interval]))", "{{rule}}")], unit="ops")
    b.series("Batch processing latency", "Time to process one batch of up to 1,024 events.",
             [(f"histogram_quantile({q}, sum by (le) (rate(vigil_batch_processing_seconds_bucket{{{inst}}}[$__rate_interval])))", f"p{int(q * 100)}")
              for q in (0.5, 0.9, 0.99)], unit="s")
    b.row("Kafka")
    b.series("Consumer lag", "Messages between vigil's position and the end of each partition.",
             [(f"sum by (topic, partition) (vigil_kafka_consumer_lag_messages{{{inst}}})", "{{topic}}/{{partition}}")], steps=(GREEN, (10000, AMBER)), w=8)
    b.series("Dead letters", "Malformed messages sent to the dead-letter topic per second, by reason.",
             [(f"sum by (reason) (rate(vigil_kafka_dead_lettered_total{{{inst}}}[$__rate_interval]))", "{{reason}}")], unit="ops", w=8)
    b.series("Offset commit latency", "Offset commit round trip to the broker.",
             [(f"histogram_quantile(0.99, sum by (le) (rate(vigil_kafka_commit_seconds_bucket{{{inst}}}[$__rate_interval])))", "p99")], unit="s", w=8)
    b.row("Delivery")
    b.series("Notifications by result", "Notification attempts per second: sent, retried (failed, will be tried again), failed (refused, not retried).",
             [(f"sum by (notifier, result) (rate(vigil_notifications_total{{{inst}}}[$__rate_interval]))", "{{notifier}} {{result}}")], unit="ops", w=8)
    b.series("Notifier failures", "Failed attempts per interval, by notifier: retried and refused.",
             [(f'sum by (notifier) (increase(vigil_notifications_total{{{inst}, result=~"retried|failed"}}[$__rate_interval]))', "{{notifier}}")],
             bars=True, steps=(GREEN, (1, RED)), w=8)
    b.series("Notification latency", "From an alert being raised to its receiver accepting it (p99), by notifier.",
             [(f"histogram_quantile(0.99, sum by (notifier, le) (rate(vigil_notification_latency_seconds_bucket{{{inst}}}[$__rate_interval])))", "{{notifier}}")],
             unit="s", w=8)
    b.series("Outbox depth", "Alerts waiting in the outbox, by notifier.",
             [(f"sum by (notifier) (vigil_outbox_pending_alerts{{{inst}}})", "{{notifier}}")], steps=(GREEN, (100, AMBER)), w=8)
    b.series("Oldest undelivered alert", "Age of the oldest alert a notifier has yet to deliver.",
             [(f"max by (notifier) (vigil_outbox_oldest_age_seconds{{{inst}}})", "{{notifier}}")], unit="s", steps=(GREEN, (300, AMBER), (1800, RED)), w=8)
    b.series("Alerts lost to the outbox bound", "Undelivered alerts dropped because the alert log reached its size limit.",
             [(f"sum by (notifier) (increase(vigil_outbox_dropped_alerts_total{{{inst}}}[$__rate_interval]))", "{{notifier}}")], bars=True, steps=(GREEN, (1, RED)), w=8)
    b.row("Detectors")
    rule = f'{inst}, rule=~"$rule"'
    b.series("Tracked groups", "Groups each rule keeps state for (bounded by its max_groups).",
             [(f"sum by (rule) (vigil_detector_groups{{{rule}}})", "{{rule}}")], w=8)
    b.series("Evictions", "Groups or values evicted per second to stay within each rule's limits.",
             [(f"sum by (rule) (rate(vigil_detector_evictions_total{{{rule}}}[$__rate_interval]))", "{{rule}}")], unit="ops", w=8)
    b.series("Alerts held back by realert", "Alerts per second that realert folded into an earlier one.",
             [(f"sum by (rule) (rate(vigil_alerts_suppressed_total{{{rule}}}[$__rate_interval]))", "{{rule}}")], unit="ops", w=8)
    b.series("Rule evaluation time", "Mean time of one rule's look at one event (filter, group key, detector), from one event in 64.",
             [(f"sum by (rule) (rate(vigil_rule_evaluation_sampled_seconds_total{{{rule}}}[$__rate_interval])) "
               f"/ sum by (rule) (rate(vigil_rule_evaluations_sampled_total{{{rule}}}[$__rate_interval]))", "{{rule}}")], unit="s")
    b.series("Rule reloads", "Rule reloads per interval, by result.",
             [(f"sum by (result) (increase(vigil_rules_reloads_total{{{inst}}}[$__rate_interval]))", "{{result}}")], bars=True)
    variables = [datasource_variable(), query_variable("instance", "Instance", "label_values(vigil_build_info, instance)"),
                 query_variable("rule", "Rule", "label_values(vigil_rule_info, rule)")]
    return dashboard("vigil-pipeline-health", "vigil / pipeline health",
                     "Is vigil keeping up and delivering: event rates and rejections, lag and latency, Kafka, notifiers and the outbox, detector state, rule reloads.",
                     b, variables, ["operations"], refresh="30s", time_from="now-3h")


FILES = {"vigil-soc-overview.json": soc_overview, "vigil-pipeline-health.json": pipeline_health}


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for name, build in FILES.items():
        text = json.dumps(build(), indent=2) + "\n"
        path = HERE / name
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        sys.exit(f"out of date: {', '.join(stale)}; run python3 dashboards/generate.py")


if __name__ == "__main__":
    main()
