#!/usr/bin/env python3
"""Check deploy/kubernetes: every manifest parses, and the pieces agree with each
other and with omnimeter (probe paths, metrics port, config keys, KEDA cap).

    python3 tests/tools/check_manifests.py deploy/kubernetes
"""
import os
import sys
import tomllib

import yaml

d = sys.argv[1]
docs = {}
for name in sorted(os.listdir(d)):
    if name.endswith(".yaml"):
        for doc in yaml.safe_load_all(open(os.path.join(d, name))):
            if doc:
                docs[doc["kind"]] = doc
problems = []


def need(cond, what):
    print("%-4s %s" % ("ok" if cond else "FAIL", what))
    if not cond:
        problems.append(what)


for kind in ["ConfigMap", "Deployment", "Service", "ScaledObject", "PersistentVolumeClaim", "PodMonitor", "Kustomization"]:
    need(kind in docs, "has a %s" % kind)

cfg = tomllib.loads(docs["ConfigMap"]["data"]["omnimeter.toml"])
need(set(cfg) <= {"kafka", "output", "engine", "metrics"}, "config sections are omnimeter's")
port = int(cfg["metrics"]["addr"].rsplit(":", 1)[1])
need(cfg["metrics"]["addr"].startswith("0.0.0.0:"), "metrics listen on all pod interfaces")

pod = docs["Deployment"]["spec"]["template"]
c = pod["spec"]["containers"][0]
need(c["ports"][0]["containerPort"] == port, "container port = metrics.addr port")
need(pod["metadata"]["annotations"]["prometheus.io/port"] == str(port), "scrape annotation port = metrics port")
need(c["livenessProbe"]["httpGet"]["path"] == "/healthz", "liveness on /healthz")
need(c["readinessProbe"]["httpGet"]["path"] == "/readyz", "readiness on /readyz")
mounts = {m["mountPath"] for m in c["volumeMounts"]}
need(cfg["output"]["dir"] in mounts, "output dir is the mounted volume")
need(any(a.endswith(".toml") and os.path.dirname(a) in mounts for a in c["args"]), "config file comes from the ConfigMap mount")
need(pod["spec"]["terminationGracePeriodSeconds"] > 10, "grace period covers a drain")

so = docs["ScaledObject"]["spec"]
t = so["triggers"][0]
need(so["scaleTargetRef"]["name"] == docs["Deployment"]["metadata"]["name"], "KEDA scales the Deployment")
need(t["type"] == "kafka" and t["metadata"]["consumerGroup"] == cfg["kafka"]["group"], "KEDA watches omnimeter's group")
need(t["metadata"]["topic"] in cfg["kafka"]["topics"], "KEDA watches omnimeter's topic")
need(t["metadata"].get("allowIdleConsumers") == "false", "KEDA never exceeds the partition count")
need(so["maxReplicaCount"] >= so["minReplicaCount"] >= 1, "replica bounds are sane")

kustom = docs["Kustomization"]["resources"]
need(all(os.path.exists(os.path.join(d, r)) for r in kustom), "kustomization lists existing files")
if problems:
    sys.exit("%d problem(s)" % len(problems))
