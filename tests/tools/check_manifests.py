#!/usr/bin/env python3
"""Check deploy/kubernetes: every manifest parses, and the pieces agree with each
other and with omnimeter (probe paths, metrics port, config keys, KEDA cap, the
output bucket and its credentials, the shared-volume alternative).

    python3 tests/tools/check_manifests.py deploy/kubernetes
"""
import os
import sys
import tomllib

import yaml

d = sys.argv[1]


def load(folder):
    found = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".yaml"):
            for doc in yaml.safe_load_all(open(os.path.join(folder, name))):
                if doc:
                    found[doc.get("kind", name)] = doc
    return found


docs = load(d)
problems = []


def need(cond, what):
    print("%-4s %s" % ("ok" if cond else "FAIL", what))
    if not cond:
        problems.append(what)


for kind in ["ConfigMap", "Secret", "Deployment", "Service", "ScaledObject", "PodMonitor", "Kustomization"]:
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
out = cfg["output"]
need(set(out) <= {"url", "file_period", "file_rows", "s3"}, "output keys are omnimeter's")
need(out["url"].startswith("s3://") and len(out["url"]) > len("s3://"), "output goes to a bucket by default")
need(set(out.get("s3", {})) <= {"endpoint", "region", "access_key_id", "allow_http"}, "no secret in the ConfigMap")
secret = docs["Secret"]
keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
need({"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= keys, "the Secret holds the bucket's key pair as AWS_* variables")
refs = [e["secretRef"]["name"] for e in c.get("envFrom", []) if "secretRef" in e]
need(secret["metadata"]["name"] in refs, "the container reads the Secret as environment variables")
need(not any(m.startswith("/var/lib") for m in mounts), "no data volume: workers keep nothing on their node")
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

# The alternative: a ReadWriteMany volume, mounted where OMNIMETER_OUTPUT_URL points,
# as a kustomize Component that kustomization.yaml names (commented out by default).
alt_dir = os.path.join(d, "shared-volume")
alt = load(alt_dir)
for kind in ["Component", "PersistentVolumeClaim", "Deployment"]:
    need(kind in alt, "shared-volume/ has a %s" % kind)
ak = alt["Component"]
need(all(os.path.exists(os.path.join(alt_dir, r)) for r in ak["resources"]), "shared-volume/ lists existing files")
need(all(os.path.exists(os.path.join(alt_dir, p["path"])) for p in ak.get("patches", [])), "shared-volume/ patches exist")
kustom_text = open(os.path.join(d, "kustomization.yaml")).read()
need("- shared-volume" in kustom_text, "kustomization.yaml says how to switch to the shared volume")
pvc = alt["PersistentVolumeClaim"]
need(pvc["spec"]["accessModes"] == ["ReadWriteMany"], "the shared volume is ReadWriteMany")
apod = alt["Deployment"]["spec"]["template"]["spec"]
ac = apod["containers"][0]
need(ac["name"] == c["name"] and alt["Deployment"]["metadata"]["name"] == docs["Deployment"]["metadata"]["name"],
     "the patch targets the worker container")
claims = {v["name"] for v in apod["volumes"] if v.get("persistentVolumeClaim", {}).get("claimName") == pvc["metadata"]["name"]}
alt_url = [e["value"] for e in ac["env"] if e["name"] == "OMNIMETER_OUTPUT_URL"]
alt_mounts = {m["mountPath"] for m in ac["volumeMounts"] if m["name"] in claims}
need(len(alt_url) == 1 and alt_url[0] in alt_mounts, "OMNIMETER_OUTPUT_URL is the mounted claim")
# The identity stage (SPEC §6): resolvers in front of the workers, as a component.
id_dir = os.path.join(d, "identity")
idc = {}
for name in sorted(os.listdir(id_dir)):
    if name.endswith(".yaml"):
        for doc in yaml.safe_load_all(open(os.path.join(id_dir, name))):
            if doc:
                idc[(doc.get("kind"), (doc.get("metadata") or {}).get("name"), name)] = doc
def one(kind, name):
    found = [v for (k, n, _), v in idc.items() if k == kind and n == name]
    need(len(found) == 1, "identity/ has %s %s" % (kind, name))
    return found[0] if found else {}
comp = one("Component", None)
need(all(os.path.exists(os.path.join(id_dir, r)) for r in comp.get("resources", [])), "identity/ lists existing files")
need(all(os.path.exists(os.path.join(id_dir, p["path"])) for p in comp.get("patches", [])), "identity/ patches exist")
need("- identity" in kustom_text, "kustomization.yaml says how to turn the identity stage on")
rcfg = tomllib.loads(one("ConfigMap", "omnimeter-resolve")["data"]["omnimeter.toml"])
need(set(rcfg) <= {"kafka", "output", "engine", "metrics", "resolve"}, "resolver config sections are omnimeter's")
rdep = one("Deployment", "omnimeter-resolve")
rpod = rdep["spec"]["template"]
rc = rpod["spec"]["containers"][0]
need(rc["args"][0] == "resolve", "the resolver Deployment runs `omnimeter resolve`")
need(any(v.get("configMap", {}).get("name") == "omnimeter-resolve" for v in rpod["spec"]["volumes"]),
     "resolvers mount their own config")
need(rc["readinessProbe"]["httpGet"]["path"] == "/readyz", "resolver readiness on /readyz")
rso = one("ScaledObject", "omnimeter-resolve")["spec"]
rt = rso["triggers"][0]["metadata"]
need(rso["scaleTargetRef"]["name"] == rdep["metadata"]["name"], "KEDA scales the resolvers")
need(rt["consumerGroup"] == rcfg["resolve"]["group"], "KEDA watches the resolvers' group")
need(rt["topic"] in rcfg["kafka"]["topics"], "KEDA watches the raw topic for resolvers")
need(rt.get("allowIdleConsumers") == "false", "KEDA never exceeds the raw partition count")
runcfg = tomllib.loads(one("ConfigMap", "omnimeter")["data"]["omnimeter.toml"])
need(runcfg["kafka"]["topics"] == [rcfg["resolve"]["output_topic"]], "run workers read the resolvers' output topic")
need(runcfg["kafka"].get("input") == "resolved", "run workers take it as resolved input")
need(runcfg["kafka"]["group"] != rcfg["resolve"]["group"], "resolvers and workers are different groups")
runso = one("ScaledObject", "omnimeter")["spec"]["triggers"][0]["metadata"]
need(runso["topic"] == rcfg["resolve"]["output_topic"], "the workers' KEDA trigger follows them to the resolved topic")
need(rcfg["output"]["url"] == runcfg["output"]["url"], "resolvers keep checkpoints in the same bucket")

if problems:
    sys.exit("%d problem(s)" % len(problems))
