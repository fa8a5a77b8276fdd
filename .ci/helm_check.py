"""Renders, lints and validates the Helm chart (helm/) and the kustomize
tree (k8s/) with Helm's own engine (helm-python-sdk, Helm v4's Go SDK) and
the Kubernetes API schemas (kubernetes-validate, strict). Called by
.ci/helm.sh, which installs both; `--write-base` regenerates k8s/base from
the chart's defaults (the base must equal the chart, and CI checks it).

Why Python and not the helm CLI: no helm binary can be installed on the CI
machines, the SDK is the same engine.
"""

import argparse
import copy
import os
import re
import subprocess
import sys
import tempfile

import helm_python as helm
import kubernetes_validate
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHART = os.path.join(ROOT, "helm")
BASE = os.path.join(ROOT, "k8s", "base")
KUBE = kubernetes_validate.latest_version()
# Kinds whose schema is a CRD (Prometheus operator): not in the Kubernetes
# schemas, checked for shape here instead.
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}
# Labels that name Helm; the kustomize base is the chart without them.
HELM_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")

failures = []


def fail(message):
    failures.append(message)
    print(f"FAIL: {message}")


def load_values(*files):
    values = {}
    for name in files:
        with open(os.path.join(CHART, name)) as f:
            merge(values, yaml.safe_load(f) or {})
    return values


def merge(into, new):
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value


def render(chart, values):
    manifests = chart.render(values, name="chat", namespace="chat", is_install=True)
    docs = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append(doc)
    return docs


def validate(docs, what):
    kinds = []
    for doc in docs:
        key = (doc.get("apiVersion"), doc.get("kind"))
        name = f"{what}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        kinds.append(doc.get("kind"))
        if key in CRD_KINDS:
            if not isinstance(doc.get("spec"), dict) or not doc["metadata"].get("name"):
                fail(f"{name}: no spec or name")
            continue
        try:
            kubernetes_validate.validate(doc, KUBE, strict=True)
        except kubernetes_validate.ValidationError as error:
            fail(f"{name}: {error.message} at {'.'.join(map(str, error.path))}")
        except Exception as error:  # a schema not found is a failure too
            fail(f"{name}: {error}")
    print(f"ok   {what}: {len(docs)} objects valid for Kubernetes {KUBE} (strict): {', '.join(sorted(set(kinds)))}")
    return docs


def lint(values, what):
    report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBE}")
    messages = report.get("messages") or []
    errors = report.get("errors") or []
    if messages or errors:
        fail(f"helm lint ({what}) reported: {messages} {errors}")
    else:
        print(f"ok   helm lint --strict ({what}): nothing reported")


def chatd_config(docs):
    """The chatd.toml the chart ships."""
    for doc in docs:
        if doc["kind"] == "ConfigMap" and "chatd.toml" in doc.get("data", {}):
            return doc["data"]["chatd.toml"]
    raise SystemExit("no ConfigMap with chatd.toml rendered")


def check_config(docs, what, chatd):
    """chatd validates its configuration at start: run its check on the file."""
    if not chatd:
        return
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(chatd_config(docs))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_")}
    env["CHAT_DATA_DIR"] = tempfile.mkdtemp()
    result = subprocess.run([chatd, "--config", f.name, "config"], capture_output=True, text=True, env=env)
    os.unlink(f.name)
    if result.returncode != 0:
        fail(f"{what}: chatd refuses the rendered chatd.toml: {result.stderr.strip()}")
    else:
        print(f"ok   {what}: chatd accepts the rendered chatd.toml (`chatd config`)")


def runtime_threads_env(docs):
    """Each Deployment's CHAT_RUNTIME_THREADS entry, by name (None: absent)."""
    found = {}
    for doc in docs:
        if doc["kind"] != "Deployment":
            continue
        env = doc["spec"]["template"]["spec"]["containers"][0].get("env", [])
        found[doc["metadata"]["name"]] = next((e for e in env if e["name"] == "CHAT_RUNTIME_THREADS"), None)
    return found


def check_runtime_threads(chart):
    """By default each role gets one runtime thread per requested core (the
    Downward API, rounded up); a runtime_threads in config wins."""
    by_default = runtime_threads_env(render(chart, {}))
    wrong = [name for name, entry in by_default.items()
             if not entry or entry.get("valueFrom", {}).get("resourceFieldRef", {}).get("resource") != "requests.cpu"]
    if not by_default or wrong:
        fail(f"CHAT_RUNTIME_THREADS not taken from requests.cpu in: {wrong or 'no Deployment'}")
    else:
        print(f"ok   runtime threads follow requests.cpu in {len(by_default)} Deployments")
    given = runtime_threads_env(render(chart, {"config": {"runtime_threads": 2}}))
    if any(given.values()):
        fail("config.runtime_threads is given, yet CHAT_RUNTIME_THREADS overrides it")
    else:
        print("ok   config.runtime_threads, when given, is not overridden")


def must_fail(chart, values, expect, what):
    try:
        chart.validate_schema(values)
        render(chart, values)
    except helm.HelmError as error:
        if re.search(expect, str(error)):
            print(f"ok   {what} is refused: {' '.join(str(error).split())[:200]}")
            return
        fail(f"{what}: refused, but not for the expected reason ({expect}): {error}")
        return
    fail(f"{what}: accepted, should be refused")


def base_docs(chart):
    """The chart's defaults as plain manifests: no Helm labels, no Secret
    (the operator creates it, see docs/deploy.md), stable order."""
    docs = []
    for doc in render(chart, {}):
        if doc["kind"] == "Secret":
            continue
        doc = copy.deepcopy(doc)
        strip(doc)
        docs.append(doc)
    return docs


def strip(node):
    if isinstance(node, dict):
        labels = node.get("labels")
        if isinstance(labels, dict):
            for label in HELM_LABELS:
                labels.pop(label, None)
        for value in node.values():
            strip(value)
    elif isinstance(node, list):
        for value in node:
            strip(value)


def base_files(docs):
    files = {}
    for doc in docs:
        name = f"{doc['kind'].lower()}-{doc['metadata']['name']}.yaml"
        files[name] = "# Generated from helm/ (chart defaults) by .ci/helm_check.py --write-base; do not edit.\n" + yaml.safe_dump(doc, sort_keys=False)
    files["kustomization.yaml"] = (
        "# The chart's defaults (roles mode) as plain manifests; see docs/deploy.md.\n"
        "# Generated by .ci/helm_check.py --write-base; CI fails when it drifts from helm/.\n"
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n"
        + "".join(f"  - {name}\n" for name in sorted(files))
    )
    return files


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--write-base", action="store_true")
    parser.add_argument("--chatd", help="chatd binary to check the rendered configuration with")
    args = parser.parse_args()
    chart = helm.Chart.load(CHART)

    if args.write_base:
        os.makedirs(BASE, exist_ok=True)
        for old in os.listdir(BASE):
            os.unlink(os.path.join(BASE, old))
        for name, text in base_files(base_docs(chart)).items():
            with open(os.path.join(BASE, name), "w") as f:
                f.write(text)
        print(f"wrote {BASE}")
        return

    cases = [
        ("default values", {}),
        ("production values", load_values("values-production.yaml")),
        ("all-in-one values", load_values("values-all-in-one.yaml")),
    ]
    monitoring = all(os.path.exists(os.path.join(CHART, "files", f)) for f in ("alerts.yml", "chat-dashboard.json"))
    if monitoring:
        values = load_values("values-production.yaml")
        merge(values, {"metrics": {"prometheusRule": {"enabled": True}, "dashboard": {"enabled": True}}})
        cases.append(("production values + alert rules + dashboard", values))
    else:
        print("note helm/files/alerts.yml and chat-dashboard.json are absent: PrometheusRule and dashboard not rendered")

    for what, values in cases:
        chart.validate_schema(values)
        docs = validate(render(chart, values), what)
        lint(values, what)
        check_config(docs, what, args.chatd)
        if what.startswith("production values +"):
            rule = next(d for d in docs if d["kind"] == "PrometheusRule")
            alerts = [r["alert"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
            print(f"ok   {what}: PrometheusRule carries {len(alerts)} alerts")

    # Wrong values must fail at install (schema) or render (chart checks).
    must_fail(chart, {"mode": "cluster"}, "mode", "mode: cluster")
    must_fail(chart, {"gateway": {"replicas": "two"}}, "replicas", "gateway.replicas: \"two\"")
    must_fail(chart, {"config": {"realtime": {"partitions": 5000}}}, "partitions", "config.realtime.partitions: 5000")
    must_fail(chart, {"gateway": {"replicsa": 3}}, "replicsa", "a misspelt key (gateway.replicsa)")
    must_fail(chart, {"config": {"realtime": {"outbound_queue": 10}}}, "outbound_queue", "outbound_queue below persist_batch")
    must_fail(chart, {"scylla": {"nodes": []}}, "ScyllaDB", "roles mode without ScyllaDB")
    must_fail(chart, {"config": {"runtime_threads": -1}}, "runtime_threads", "config.runtime_threads: -1")
    check_runtime_threads(chart)

    # k8s/base must be the chart's defaults.
    expected = base_files(base_docs(chart))
    actual = {name: open(os.path.join(BASE, name)).read() for name in os.listdir(BASE)}
    if expected != actual:
        drift = sorted(set(expected) ^ set(actual) | {n for n in expected if n in actual and expected[n] != actual[n]})
        fail(f"k8s/base differs from the chart's defaults ({', '.join(drift)}); run .ci/helm_check.py --write-base")
    else:
        print("ok   k8s/base equals the chart's default render")

    # The production overlay, as kubectl builds it.
    built = subprocess.run(["kubectl", "kustomize", os.path.join(ROOT, "k8s", "overlays", "production")],
                           capture_output=True, text=True)
    if built.returncode != 0:
        fail(f"kubectl kustomize k8s/overlays/production: {built.stderr.strip()}")
    else:
        docs = [d for d in yaml.safe_load_all(built.stdout) if d]
        validate(docs, "kubectl kustomize k8s/overlays/production")
        check_config(docs, "k8s/overlays/production", args.chatd)

    if failures:
        print(f"\n{len(failures)} failure(s)")
        sys.exit(1)
    print("\nhelm stage: all checks passed")


if __name__ == "__main__":
    main()
