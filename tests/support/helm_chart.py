#!/usr/bin/env python3
"""Lints and renders the Helm chart with real Helm (helm-python-sdk embeds
Helm v4; offline) and validates every manifest against the Kubernetes
schemas (kubernetes-validate, strict). Used by tests/helm.rs.

    helm_chart.py CHART OUTDIR [VALUES.yaml]

Writes OUTDIR/manifests.json (every rendered object) and OUTDIR/NOTES.txt.
Exits 1 with the problems on stderr if Helm refuses the values, lint finds
a warning or an error, or a manifest does not validate.
"""

import json
import pathlib
import sys

import helm_python
import kubernetes_validate
import yaml

KUBERNETES = "1.30.0"
# Custom resources of the Prometheus Operator: not in the Kubernetes
# schemas; tests/helm.rs checks them (promtool for the rules).
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule"}


def main():
    chart, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    values = yaml.safe_load(pathlib.Path(sys.argv[3]).read_text()) if len(sys.argv) > 3 else {}
    problems = []

    helm_python.disable_logging()
    lint = helm_python.lint(chart, values, strict=True, kube_version=f"v{KUBERNETES}", namespace="security")
    problems += [f"lint: {m['path']}: {m['error']}" for m in lint["messages"] if m["severity"] >= 2]
    problems += [f"lint: {e}" for e in lint["errors"]]

    try:
        rendered = helm_python.Chart.load(chart).render(values, name="vigil", namespace="security", is_install=True)
    except helm_python.HelmError as err:
        sys.exit(f"helm refused the values: {err}")

    objects = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            (out / "NOTES.txt").write_text(text)
            continue
        for doc in yaml.safe_load_all(text):
            if not doc:
                continue
            objects.append(doc)
            if doc.get("kind") in CUSTOM_KINDS:
                continue
            try:
                kubernetes_validate.validate(doc, KUBERNETES, strict=True)
            except kubernetes_validate.ValidationError as err:
                problems.append(f"{path}: {doc.get('kind')}/{doc['metadata'].get('name')}: {err.message} at {list(err.path)}")
            except kubernetes_validate.SchemaNotFoundError as err:
                problems.append(f"{path}: {doc.get('kind')}: no Kubernetes {KUBERNETES} schema: {err}")

    (out / "manifests.json").write_text(json.dumps(objects, indent=1))
    if problems:
        sys.exit("\n".join(problems))
    print(f"{len(objects)} objects valid against Kubernetes {KUBERNETES}")


if __name__ == "__main__":
    main()
