"""The image and the Kubernetes manifests: parsed, validated, and held to the seed.

* every manifest passes yamllint and ``kubernetes-validate --strict`` for 1.29, 1.31, 1.33;
* the StatefulSet's args are exactly the seed's, and ``muster``'s flag parser accepts them;
* the production choices (headless governing Service that publishes not-ready pods, Parallel,
  a PVC at /consul/data, PDB, anti-affinity, restricted security context, probes) are present;
* the Dockerfile builds from the context, runs as non-root, and has ENTRYPOINT ["muster"].
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

from muster.config import parse_agent_flags
from muster_testkit.k8ssim import SEED_ARGS

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "kubernetes" / "base"
OVERLAY = ROOT / "deploy" / "kubernetes" / "overlays" / "nodeport"
VERSIONS = ("1.29.0", "1.31.0", "1.33.0")


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def base_objects() -> dict[str, dict[str, Any]]:
    out = {}
    for f in sorted(BASE.glob("*.yaml")):
        if f.name == "kustomization.yaml":
            continue
        for d in docs(f):
            out[f"{d['kind']}/{d['metadata']['name']}"] = d
    return out


def overlay_objects() -> list[dict[str, Any]]:
    """The nodeport overlay applied by hand (a strategic merge of one Service patch)."""
    objs = copy.deepcopy(base_objects())
    for patch in docs(OVERLAY / "service-ui-nodeport.yaml"):
        target = objs[f"{patch['kind']}/{patch['metadata']['name']}"]
        target["spec"]["type"] = patch["spec"]["type"]
        by_name = {p["name"]: p for p in target["spec"]["ports"]}
        for p in patch["spec"]["ports"]:
            by_name.setdefault(p["name"], {}).update(p)
        target["spec"]["ports"] = list(by_name.values())
    return list(objs.values())


def test_yamllint() -> None:
    conf = YamlLintConfig(file=str(ROOT / "deploy" / "kubernetes" / "yamllint.yaml"))
    problems = []
    for f in sorted((ROOT / "deploy" / "kubernetes").rglob("*.yaml")):
        problems += [f"{f}:{p.line}: {p.desc}" for p in linter.run(f.read_text(), conf, str(f))]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("version", VERSIONS)
def test_kubernetes_validate_strict(version: str) -> None:
    for obj in overlay_objects():
        kubernetes_validate.validate(obj, version, strict=True)


def test_validation_catches_a_misspelled_field() -> None:
    bad = copy.deepcopy(base_objects()["Service/consul"])
    bad["spec"]["publishNotReadyAdresses"] = bad["spec"].pop("publishNotReadyAddresses")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSIONS[0], strict=True)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kustomize_builds_both_layers() -> None:
    for d in (BASE, OVERLAY):
        out = subprocess.run(["kubectl", "kustomize", str(d)], capture_output=True, timeout=60)
        assert out.returncode == 0, out.stderr
    built = list(yaml.safe_load_all(out.stdout))
    ui = next(o for o in built if o["kind"] == "Service" and o["metadata"]["name"] == "consul-ui")
    assert ui["spec"]["type"] == "NodePort" and {p["nodePort"] for p in ui["spec"]["ports"]} == {30850, 30851}


def test_statefulset_runs_the_seed_args_verbatim() -> None:
    sts = base_objects()["StatefulSet/consul"]
    c = sts["spec"]["template"]["spec"]["containers"][0]
    assert c["args"] == SEED_ARGS
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in c["env"]}
    assert env == {"PODIP": "status.podIP", "NAMESPACE": "metadata.namespace"}
    expanded = [a.replace("$(PODIP)", "10.1.2.3").replace("$(NAMESPACE)", "default") for a in c["args"]]
    cfg = parse_agent_flags(expanded[1:])
    assert cfg.server and cfg.bootstrap_expect == 3 and cfg.data_dir == "/consul/data"


def test_production_choices() -> None:
    objs = base_objects()
    svc = objs["Service/consul"]["spec"]
    sts = objs["StatefulSet/consul"]["spec"]
    assert svc["clusterIP"] == "None" and svc["publishNotReadyAddresses"] is True
    assert sts["serviceName"] == "consul" and sts["podManagementPolicy"] == "Parallel"
    assert sts["selector"]["matchLabels"] == sts["template"]["metadata"]["labels"] == svc["selector"]
    pod = sts["template"]["spec"]
    c = pod["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts["data"] == "/consul/data"
    assert sts["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert objs["PodDisruptionBudget/consul"]["spec"]["maxUnavailable"] == 1
    assert pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"] and sc["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    # readiness needs a leader; liveness never does
    assert "KnownLeader" in " ".join(c["readinessProbe"]["exec"]["command"])
    assert c["livenessProbe"]["httpGet"]["path"] == "/v1/status/leader"  # no token needed under default deny
    assert "startupProbe" in c
    cfg = json.loads(objs["ConfigMap/consul-config"]["data"]["server.json"])
    assert cfg["ports"]["https"] == 8443
    # Secure by default: ACLs on, default deny, script checks off; tokens from a Secret.
    assert cfg["acl"]["enabled"] is True and cfg["acl"]["default_policy"] == "deny"
    assert cfg["enable_script_checks"] is False
    vols = {v["name"]: v for v in pod["volumes"]}
    sources = vols["config"]["projected"]["sources"]
    assert {"configMap", "secret"} == {k for src in sources for k in src}  # config + gossip key + ACL tokens
    secrets = {src["secret"]["name"] for src in sources if "secret" in src}
    assert secrets == {"consul-gossip-key", "consul-acl-tokens"}
    assert vols["tls"]["secret"]["secretName"] == "consul-tls"


def test_dockerfile() -> None:
    lines = [ln.strip() for ln in (ROOT / "Dockerfile").read_text().splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert lines[0].startswith("FROM python:3.11-slim")
    entry = next(ln for ln in lines if ln.startswith("ENTRYPOINT"))
    assert json.loads(entry.split(" ", 1)[1]) == ["muster"]
    user = next(ln for ln in lines if ln.startswith("USER")).split()[1]
    assert user.split(":")[0] not in ("0", "root")
    assert any(ln.startswith("COPY src") for ln in lines)
    assert any("pip install" in ln and "'.[fast]'" in ln for ln in lines)
    assert any("MUSTER_CONFIG_DIR=/consul/config" in ln for ln in lines)
