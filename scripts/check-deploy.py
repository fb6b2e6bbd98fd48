"""What scripts/check-deploy checks beyond the schemas (run by it, in its venv).

  check-deploy.py k8s RENDERED.yaml...   rendered overlays
  check-deploy.py compose FILE           deploy/docker-compose.yml
Every finding is printed; any finding exits 1.
"""
import json
import sys

import yaml

ROLES = ("order-intake", "dispatcher", "nurse-tracking")
problems = []


def fail(where, message):
    problems.append(f"{where}: {message}")


def check_k8s(path):
    docs = [d for d in yaml.safe_load_all(open(path, encoding="utf-8")) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    where = path
    if "Secret" in by_kind:
        fail(where, f"Secrets rendered {sorted(by_kind['Secret'])}: reference them, never commit them")
    deployments = by_kind.get("Deployment", {})
    if sorted(deployments) != sorted(ROLES):
        fail(where, f"Deployments {sorted(deployments)}, expected {sorted(ROLES)}")
    for name, d in deployments.items():
        w = f"{where}: Deployment/{name}"
        spec = d["spec"]["template"]["spec"]
        psc = spec.get("securityContext", {})
        if not psc.get("runAsNonRoot") or not psc.get("runAsUser"):
            fail(w, "pod securityContext needs runAsNonRoot and runAsUser")
        if spec.get("automountServiceAccountToken") is not False:
            fail(w, "automountServiceAccountToken must be false")
        for c in spec["containers"]:
            if c.get("args", [None])[0] != name:
                fail(w, f"container args {c.get('args')} do not run the role `{name}`")
            if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
                fail(w, "livenessProbe must GET /healthz")
            if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
                fail(w, "readinessProbe must GET /readyz")
            res = c.get("resources", {})
            for k in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(res.get(k, {})):
                    fail(w, f"resources.{k} needs cpu and memory")
            csc = c.get("securityContext", {})
            if csc.get("allowPrivilegeEscalation") is not False or not csc.get("readOnlyRootFilesystem"):
                fail(w, "container securityContext: no privilege escalation, read-only root")
            if "ALL" not in csc.get("capabilities", {}).get("drop", []):
                fail(w, "container capabilities must drop ALL")
            env = {e["name"]: e for e in c.get("env", [])}
            for secret in ("DATABASE_URL", "REDIS_URL", "YIXIN_AUTH__JWT_SECRET"):
                if "secretKeyRef" not in env.get(secret, {}).get("valueFrom", {}):
                    fail(w, f"{secret} must come from a Secret (secretKeyRef)")
    configs = [c for n, c in by_kind.get("ConfigMap", {}).items() if n.startswith("yixin-config")]
    for c in configs:
        data = c.get("data", {})
        if data.get("YIXIN_AUTH__DEV_LOGIN") != "false":
            fail(where, "yixin-config must set YIXIN_AUTH__DEV_LOGIN=false")
        if data.get("YIXIN_DATABASE__MIGRATE_ON_START") != "false":
            fail(where, "yixin-config must set YIXIN_DATABASE__MIGRATE_ON_START=false (the Job migrates)")
    jobs = by_kind.get("Job", {})
    if not any(j["spec"]["template"]["spec"]["containers"][0].get("args", [None])[0] == "migrate" for j in jobs.values()):
        fail(where, "no Job runs `yixin migrate`")
    hpas = by_kind.get("HorizontalPodAutoscaler", {})
    for role in ("order-intake", "nurse-tracking"):
        if not any(h["spec"]["scaleTargetRef"]["name"] == role for h in hpas.values()):
            fail(where, f"no HorizontalPodAutoscaler for {role}")
    for n, h in hpas.items():
        if h["spec"]["scaleTargetRef"]["name"] not in deployments:
            fail(where, f"HPA/{n} targets a Deployment that is not rendered")
    pdbs = by_kind.get("PodDisruptionBudget", {})
    for role in ROLES:
        labels = deployments.get(role, {}).get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})
        if not any(set(p["spec"]["selector"]["matchLabels"].items()) <= set(labels.items()) for p in pdbs.values()):
            fail(where, f"no PodDisruptionBudget selects {role}")
    services = by_kind.get("Service", {})
    for n, s in services.items():
        sel = s["spec"].get("selector", {})
        if not any(set(sel.items()) <= set(d["spec"]["template"]["metadata"]["labels"].items()) for d in deployments.values()):
            fail(where, f"Service/{n} selects no Deployment's pods")
    ingresses = by_kind.get("Ingress", {})
    if not ingresses:
        fail(where, "no Ingress")
    ws_paths = {"/v1/nurse/ws": "nurse-tracking", "/v1/dispatch/live": "dispatcher"}
    seen_ws = set()
    for n, ing in ingresses.items():
        if not ing["spec"].get("tls"):
            fail(where, f"Ingress/{n} has no TLS")
        timeout = int(ing["metadata"].get("annotations", {}).get("nginx.ingress.kubernetes.io/proxy-read-timeout", "60"))
        for rule in ing["spec"]["rules"]:
            for p in rule["http"]["paths"]:
                svc = p["backend"]["service"]["name"]
                if svc not in services:
                    fail(where, f"Ingress/{n} path {p['path']} → Service {svc}, which is not rendered")
                if p["path"] in ws_paths:
                    seen_ws.add(p["path"])
                    if svc != ws_paths[p["path"]]:
                        fail(where, f"{p['path']} must go to {ws_paths[p['path']]}, not {svc}")
                    if timeout < 600:
                        fail(where, f"{p['path']} (a WebSocket) has a {timeout} s read timeout")
    for missing in sorted(set(ws_paths) - seen_ws):
        fail(where, f"no Ingress path for the WebSocket {missing}")
    if not by_kind.get("NetworkPolicy"):
        fail(where, "no NetworkPolicy")
    print(f"ok  {path}: {len(docs)} documents")


def interpolate(text):
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR:?message}` with every
    variable unset but the required ones (given a placeholder)."""
    import re

    def value(m):
        op, arg = m.group(2), m.group(3)
        if op in (":-", "-"):
            return arg
        if op in (":?", "?"):
            return "check-deploy-placeholder"
        return ""

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}", value, text)


def check_compose(path):
    import compose_spec

    # yaml resolves the `<<:` merges compose-spec does not read.
    raw = yaml.safe_load(interpolate(open(path, encoding="utf-8").read()))
    try:
        compose_spec.PyCompose.from_json(json.dumps(raw))
    except Exception as e:  # noqa: BLE001 - the parser's message is the finding
        fail(path, f"not a valid Compose file: {e}")
        return
    services = raw.get("services", {})
    for role in (*ROLES, "migrate", "postgres", "redis", "proxy"):
        if role not in services:
            fail(path, f"no service `{role}`")
    for name, svc in services.items():
        hc = svc.get("healthcheck", {})
        if name != "migrate" and (hc.get("disable") or not hc.get("test")):
            fail(path, f"service `{name}` has no health check")
        for dep in svc.get("depends_on", {}) or {}:
            if dep not in services:
                fail(path, f"service `{name}` depends on unknown `{dep}`")
        for vol in svc.get("volumes", []) or []:
            src = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
            if src and not src.startswith((".", "/")) and src not in (raw.get("volumes") or {}):
                fail(path, f"service `{name}` uses undeclared volume `{src}`")
        if name in ROLES and svc.get("ports"):
            fail(path, f"service `{name}` publishes ports: only the proxy should")
        if name in ROLES or name == "migrate":
            env = svc.get("environment", {})
            if env.get("YIXIN_AUTH__DEV_LOGIN") != "false":
                fail(path, f"service `{name}` must set YIXIN_AUTH__DEV_LOGIN=false")
    text = open(path, encoding="utf-8").read()
    for var in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "YIXIN_AUTH__JWT_SECRET"):
        if "${" + var + ":?" not in text:
            fail(path, f"{var} must be required (${{{var}:?…}})")
        if "${" + var + ":-" in text:
            fail(path, f"{var} must have no default")
    if "--requirepass" not in str(services.get("redis", {}).get("command", "")):
        fail(path, "Redis must require a password (--requirepass)")
    if not services.get("proxy", {}).get("ports"):
        fail(path, "the proxy publishes no port")
    print(f"ok  {path}: {len(services)} services")


def main():
    mode, *paths = sys.argv[1:]
    for p in paths:
        {"k8s": check_k8s, "compose": check_compose}[mode](p)
    for p in problems:
        print(f"FAIL {p}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
