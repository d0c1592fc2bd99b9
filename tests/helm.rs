//! The Helm chart (`helm/vigil/`), rendered and linted by real Helm v4
//! (helm-python-sdk, offline) for the default values and for
//! `ci/all-features-values.yaml`, every manifest validated against the
//! Kubernetes 1.30 schemas (kubernetes-validate, strict) by
//! `tests/support/helm_chart.py`; then read here: the security settings,
//! probes, volumes, secrets, the rendered config and rules (`vigil check`),
//! the health rules (`promtool`) and the dashboards.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

struct Rendered {
    objects: Vec<Value>,
    notes: String,
    _dir: tempfile::TempDir,
}

impl Rendered {
    fn kind(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    fn one(&self, kind: &str) -> &Value {
        let found = self.kind(kind);
        assert_eq!(found.len(), 1, "one {kind}");
        found[0]
    }

    fn workload(&self) -> &Value {
        self.objects.iter().find(|o| o["kind"] == "Deployment" || o["kind"] == "StatefulSet").expect("a workload")
    }

    fn config_map(&self, suffix: &str) -> &Value {
        self.kind("ConfigMap")
            .into_iter()
            .find(|c| c["metadata"]["name"].as_str().unwrap().ends_with(suffix))
            .unwrap_or_else(|| panic!("a ConfigMap named *{suffix}"))
    }
}

fn chart() -> PathBuf {
    common::root().join("helm/vigil")
}

/// Lints, renders and validates; `Err` carries the helper's complaint.
fn try_render(values: Option<&Path>) -> Result<Rendered, String> {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new("python3");
    command.arg(common::root().join("tests/support/helm_chart.py")).arg(chart()).arg(dir.path());
    if let Some(values) = values {
        command.arg(values);
    }
    let out = command.output().expect("run python3");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let objects = serde_json::from_str(&std::fs::read_to_string(dir.path().join("manifests.json")).unwrap()).unwrap();
    let notes = std::fs::read_to_string(dir.path().join("NOTES.txt")).unwrap_or_default();
    Ok(Rendered { objects, notes, _dir: dir })
}

fn render(values: Option<&Path>) -> Rendered {
    try_render(values).unwrap_or_else(|problems| {
        panic!("the chart failed (pip install helm-python-sdk kubernetes-validate):\n{problems}")
    })
}

fn all_features() -> PathBuf {
    chart().join("ci/all-features-values.yaml")
}

fn values_file(text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

/// The hardening every rendering must keep.
fn assert_hardened(rendered: &Rendered) {
    let workload = rendered.workload();
    let pod = &workload["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert!(pod["securityContext"]["runAsUser"].as_u64().unwrap() > 0);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert!(pod["terminationGracePeriodSeconds"].as_u64().unwrap() >= 30, "time to drain");
    let containers = pod["containers"].as_array().unwrap();
    for container in containers {
        let security = &container["securityContext"];
        assert_eq!(security["allowPrivilegeEscalation"], false);
        assert_eq!(security["readOnlyRootFilesystem"], true);
        assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
        assert_ne!(security["privileged"], true);
        assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert!(container["resources"]["requests"]["memory"].is_string());
        assert!(container["resources"]["limits"]["memory"].is_string());
        let mounts = container["volumeMounts"].as_array().unwrap();
        let state = mounts.iter().find(|m| m["mountPath"] == "/var/lib/vigil").expect("a writable state volume");
        assert_ne!(state["readOnly"], true);
    }
    if let Some(account) = rendered.kind("ServiceAccount").first() {
        assert_eq!(account["automountServiceAccountToken"], false);
    }
    assert!(rendered.kind("Secret").is_empty(), "the chart creates no Secret: it references existing ones");
    let annotations = &workload["spec"]["template"]["metadata"]["annotations"];
    assert!(annotations["checksum/config"].as_str().is_some_and(|c| c.len() == 64), "config changes roll the pods");
}

/// Writes the rendered config and rule files and runs `vigil check` on them.
fn check_config_and_rules(rendered: &Rendered) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = rendered.config_map("-config")["data"]["vigil.yml"].as_str().unwrap().to_owned();
    assert!(config.contains("rules: /etc/vigil/rules") && config.contains("listen: 0.0.0.0:9464"), "{config}");
    std::fs::write(dir.path().join("vigil.yml"), &config).unwrap();
    let rules = rendered.config_map("-rules");
    let pod = &rendered.workload()["spec"]["template"]["spec"];
    let volume = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "rules").unwrap();
    let items = volume["configMap"]["items"].as_array().unwrap();
    assert_eq!(items.len(), rules["data"].as_object().unwrap().len(), "every rule file is mounted");
    for item in items {
        let path = dir.path().join("rules").join(item["path"].as_str().unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, rules["data"][item["key"].as_str().unwrap()].as_str().unwrap()).unwrap();
    }
    let out = common::vigil()
        .args(["check", "--config"])
        .arg(dir.path().join("vigil.yml"))
        .arg("--rules")
        .arg(dir.path().join("rules"))
        .output()
        .unwrap();
    let report = common::text(&[out.stdout, out.stderr].concat());
    assert!(out.status.success(), "vigil check refused the rendered config or rules:\n{report}\n{config}");
    report
}

#[test]
fn the_default_chart_lints_validates_and_is_hardened() {
    let rendered = render(None);
    assert_hardened(&rendered);
    let workload = rendered.workload();
    assert_eq!(workload["kind"], "Deployment", "no persistence: a Deployment with an emptyDir");
    assert_eq!(workload["spec"]["replicas"], 2);
    let pod = &workload["spec"]["template"]["spec"];
    let state = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "state").unwrap();
    assert!(state["emptyDir"]["sizeLimit"].is_string());
    for kind in ["ServiceMonitor", "PrometheusRule", "HorizontalPodAutoscaler", "NetworkPolicy"] {
        assert!(rendered.kind(kind).is_empty(), "{kind} is optional and off by default");
    }
    rendered.one("PodDisruptionBudget");
    assert_eq!(rendered.one("Service")["spec"]["ports"][0]["port"], 9464);
    let report = check_config_and_rules(&rendered);
    assert!(report.contains("ok: 22 rules, 4 lists, 2 tables"), "the shipped rules: {report}");
    assert!(rendered.notes.contains("port-forward") && rendered.notes.contains("No notifiers"), "{}", rendered.notes);
}

#[test]
fn the_chart_with_every_feature_on_lints_validates_and_is_hardened() {
    let rendered = render(Some(&all_features()));
    assert_hardened(&rendered);
    let workload = rendered.workload();
    assert_eq!(workload["kind"], "StatefulSet", "persistence: one volume per replica");
    assert!(workload["spec"]["replicas"].is_null(), "the autoscaler owns the replica count");
    assert_eq!(workload["spec"]["volumeClaimTemplates"][0]["metadata"]["name"], "state");
    let hpa = rendered.one("HorizontalPodAutoscaler");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["kind"], "StatefulSet");

    let container = &workload["spec"]["template"]["spec"]["containers"][0];
    let env: Vec<&Value> = container["env"].as_array().unwrap().iter().collect();
    let smtp = env.iter().find(|e| e["name"] == "VIGIL_SMTP_PASSWORD").unwrap();
    assert_eq!(smtp["valueFrom"]["secretKeyRef"]["name"], "vigil-smtp");
    let mounts = container["volumeMounts"].as_array().unwrap();
    assert!(mounts.iter().any(|m| m["mountPath"] == "/etc/vigil/kafka-tls" && m["readOnly"] == true));
    assert!(mounts.iter().any(|m| m["mountPath"] == "/var/lib/vigil-checkpoints"));

    let policy = rendered.one("NetworkPolicy");
    assert_eq!(policy["spec"]["policyTypes"], serde_json::json!(["Ingress", "Egress"]));
    let ingress = &policy["spec"]["ingress"][0];
    assert_eq!(ingress["ports"], serde_json::json!([{"port": "metrics", "protocol": "TCP"}]));
    assert_eq!(ingress["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"], "monitoring");
    let egress_ports: Vec<u64> = policy["spec"]["egress"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|rule| rule["ports"].as_array().unwrap().iter().map(|p| p["port"].as_u64().unwrap()))
        .collect();
    for port in [53, 9093, 587, 443] {
        assert!(egress_ports.contains(&port), "egress to port {port}: {egress_ports:?}");
    }

    let monitor = rendered.one("ServiceMonitor");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(monitor["metadata"]["labels"]["release"], "kube-prometheus-stack");

    let dashboards = rendered
        .kind("ConfigMap")
        .into_iter()
        .filter(|c| c["metadata"]["name"].as_str().unwrap().ends_with("-dashboard"));
    let mut shipped = 0;
    for map in dashboards {
        assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "1", "found by Grafana's sidecar");
        for (name, text) in map["data"].as_object().unwrap() {
            let file = std::fs::read_to_string(common::root().join("dashboards").join(name)).unwrap();
            assert_eq!(text.as_str().unwrap(), file, "{name} as shipped");
            shipped += 1;
        }
    }
    assert_eq!(shipped, 2);

    let report = check_config_and_rules(&rendered);
    assert!(report.contains("ok: 23 rules, 5 lists, 2 tables"), "the shipped rules and the custom one: {report}");
    assert!(
        !report.contains("admin.off_hours_change is inert") && report.contains("auth.offboarded_user is inert"),
        "the directory given as JSON lines replaces the shipped empty one: {report}"
    );
    assert!(rendered.notes.contains("oncall-email (email)"), "{}", rendered.notes);
}

#[test]
fn the_prometheus_rule_carries_the_health_alerts_promtool_accepts() {
    let rendered = render(Some(&all_features()));
    let rule = rendered.one("PrometheusRule");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yaml");
    // JSON is YAML: promtool reads the spec as a rule file.
    std::fs::write(&file, serde_json::to_string(&rule["spec"]).unwrap()).unwrap();
    let out = Command::new("promtool").args(["check", "rules"]).arg(&file).output().expect("run promtool");
    let report = common::text(&[out.stdout, out.stderr].concat());
    assert!(
        out.status.success() && report.contains(&format!("SUCCESS: {} rules found", common::health_rule_count())),
        "{report}"
    );
}

#[test]
fn a_misspelt_value_or_an_inline_mistake_fails_at_install_time() {
    let typo = values_file("replicas: 3\n");
    let err = try_render(Some(typo.path())).err().expect("a misspelt key is refused");
    assert!(err.contains("additional properties 'replicas' not allowed"), "{err}");
    let wrong_type = values_file("persistence: {enabled: \"yes\"}\n");
    let err = try_render(Some(wrong_type.path())).err().expect("a wrong type is refused");
    assert!(err.contains("persistence"), "{err}");
    let rules_path = values_file("config: {source: {type: demo}, rules: /elsewhere}\n");
    assert!(try_render(Some(rules_path.path())).is_err(), "the chart owns config.rules");
}

#[test]
fn a_config_change_rolls_the_pods_and_a_rule_change_does_not() {
    let checksum = |rendered: &Rendered| {
        rendered.workload()["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let base = checksum(&render(None));
    let config = values_file("config: {source: {type: demo}, lateness: 5m}\n");
    assert_ne!(checksum(&render(Some(config.path()))), base);
    let rules = values_file("rules: {custom: {x.yml: \"id: x\"}}\n");
    assert_eq!(checksum(&render(Some(rules.path()))), base, "rules reload in place");
}

/// Values whose children are free-form (Kubernetes objects, vigil's config).
const FREE_FORM: &[&str] = &[
    "config",
    "resources",
    "podSecurityContext",
    "securityContext",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "podAnnotations",
    "podLabels",
    "nodeSelector",
    "affinity",
];

#[test]
fn the_chart_readme_describes_every_value() {
    let values: Value = serde_saphyr::from_str(&std::fs::read_to_string(chart().join("values.yaml")).unwrap()).unwrap();
    let readme = std::fs::read_to_string(chart().join("README.md")).unwrap();
    let mut missing = Vec::new();
    let mut checked = 0;
    for (key, value) in values.as_object().unwrap() {
        let paths: Vec<String> = match value.as_object() {
            Some(children) if !FREE_FORM.contains(&key.as_str()) => {
                children.keys().map(|child| format!("{key}.{child}")).collect()
            }
            _ => vec![key.clone()],
        };
        checked += paths.len();
        missing.extend(paths.into_iter().filter(|path| !readme.contains(&format!("`{path}`"))));
    }
    assert!(checked > 50, "{checked} values checked");
    assert!(missing.is_empty(), "values the chart README does not describe: {missing:?}");
}

#[test]
fn the_image_runs_as_a_non_root_user_with_the_rules_and_a_config_baked_in() {
    let dockerfile = std::fs::read_to_string(common::root().join("Dockerfile")).unwrap();
    let stages = dockerfile.lines().filter(|l| l.starts_with("FROM ")).count();
    assert_eq!(stages, 2, "a build stage and a slim runtime stage");
    let user = dockerfile.lines().rev().find_map(|l| l.strip_prefix("USER ")).expect("a USER line");
    assert!(user.split(':').all(|id| id.parse::<u32>().is_ok_and(|id| id > 0)), "numeric, non-root: {user}");
    assert!(dockerfile.contains("cargo build --release --locked"));
    // What the image copies exists and is not excluded from the context.
    let ignored = std::fs::read_to_string(common::root().join(".dockerignore")).unwrap();
    for source in dockerfile.lines().filter_map(|l| l.strip_prefix("COPY ")).filter(|l| !l.starts_with("--from")) {
        let from = source.split_whitespace().next().unwrap();
        if from != "." {
            assert!(common::root().join(from).exists(), "{from} exists");
            assert!(!ignored.lines().any(|l| l.trim() == from), "{from} is in the build context");
        }
    }
    // The baked-in config is valid with the baked-in rules.
    let out = common::vigil()
        .args(["check", "--config"])
        .arg(common::root().join("docker/vigil.yml"))
        .arg("--rules")
        .arg(common::root().join("rules"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::text(&out.stderr));
    let config = std::fs::read_to_string(common::root().join("docker/vigil.yml")).unwrap();
    assert!(config.contains("rules: /etc/vigil/rules") && dockerfile.contains("COPY rules /etc/vigil/rules"));
    assert!(config.contains("0.0.0.0:9464") && dockerfile.contains("EXPOSE 9464"));
}
