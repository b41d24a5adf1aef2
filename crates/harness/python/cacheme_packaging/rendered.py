"""A rendered chart: the references inside the render (selectors, probe ports,
ServiceAccounts, ServiceMonitors). Its custom objects are checked against the CRD by
`cacheme-operator validate`."""

from .common import fail, load_stream, read_text

WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}


def check_render(render_file, label):
    docs = load_stream(read_text(render_file))
    errors, kinds = [], {}
    seen = set()
    for doc in docs:
        kind, api = doc.get("kind"), doc.get("apiVersion")
        meta = doc.get("metadata") or {}
        where = "%s: %s %s" % (label, kind, meta.get("name"))
        key = (api, kind, meta.get("namespace"), meta.get("name"))
        if key in seen:
            errors.append("%s: rendered twice" % where)
        seen.add(key)
        kinds[kind] = kinds.get(kind, 0) + 1
        if kind == "ServiceMonitor":
            spec = doc.get("spec") or {}
            if not (spec.get("selector") or {}).get("matchLabels"):
                errors.append("%s: spec.selector.matchLabels is empty" % where)
            if not spec.get("endpoints"):
                errors.append("%s: spec.endpoints is empty" % where)
    # Cross-references inside the render.
    pods = []
    for doc in docs:
        if doc.get("kind") in WORKLOADS:
            tpl = doc["spec"]["template"]
            labels = (tpl.get("metadata") or {}).get("labels") or {}
            sel = ((doc["spec"].get("selector") or {}).get("matchLabels")) or {}
            name = doc["metadata"]["name"]
            if any(labels.get(k) != v for k, v in sel.items()):
                errors.append("%s: %s %s: selector %s does not match its pod labels" % (label, doc["kind"], name, sel))
            ports = {p.get("name") for c in tpl["spec"]["containers"] for p in c.get("ports") or []}
            for c in tpl["spec"]["containers"]:
                for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                    port = ((c.get(probe) or {}).get("httpGet") or {}).get("port")
                    if isinstance(port, str) and port not in ports:
                        errors.append("%s: %s %s: %s uses unknown port %s" % (label, doc["kind"], name, probe, port))
            pods.append((labels, ports, tpl["spec"].get("serviceAccountName")))
    services = {}
    for doc in docs:
        if doc.get("kind") == "Service":
            sel = doc["spec"].get("selector") or {}
            name = doc["metadata"]["name"]
            services[name] = doc
            match = [p for p in pods if all(p[0].get(k) == v for k, v in sel.items())]
            if sel and not match:
                errors.append("%s: Service %s selects no pod of the render (%s)" % (label, name, sel))
            for port in doc["spec"].get("ports") or []:
                target = port.get("targetPort")
                if isinstance(target, str) and match and not any(target in p[1] for p in match):
                    errors.append("%s: Service %s: targetPort %s is no container port" % (label, name, target))
    accounts = {d["metadata"]["name"] for d in docs if d.get("kind") == "ServiceAccount"}
    roles = {(d["kind"], d["metadata"]["name"]) for d in docs if d.get("kind") in ("Role", "ClusterRole")}
    for doc in docs:
        if doc.get("kind") in ("RoleBinding", "ClusterRoleBinding"):
            ref = doc["roleRef"]
            if (ref["kind"], ref["name"]) not in roles:
                errors.append(
                    "%s: %s %s refers to missing %s %s"
                    % (label, doc["kind"], doc["metadata"]["name"], ref["kind"], ref["name"])
                )
            for s in doc.get("subjects") or []:
                if s.get("kind") == "ServiceAccount" and s["name"] not in accounts:
                    errors.append(
                        "%s: %s %s binds missing ServiceAccount %s"
                        % (label, doc["kind"], doc["metadata"]["name"], s["name"])
                    )
    if accounts:
        for _labels, _ports, sa in pods:
            if sa and sa not in accounts:
                errors.append("%s: a pod runs as missing ServiceAccount %s" % (label, sa))
    for doc in docs:
        if doc.get("kind") == "ServiceMonitor":
            sel = doc["spec"]["selector"].get("matchLabels") or {}
            hits = [
                s
                for s in services.values()
                if all(((s["metadata"].get("labels") or {}).get(k) == v) for k, v in sel.items())
            ]
            if not hits:
                errors.append("%s: ServiceMonitor %s selects no Service" % (label, doc["metadata"]["name"]))
            for ep in doc["spec"]["endpoints"]:
                if hits and not any(ep.get("port") in {p.get("name") for p in s["spec"]["ports"]} for s in hits):
                    errors.append(
                        "%s: ServiceMonitor %s: port %s is on no selected Service"
                        % (label, doc["metadata"]["name"], ep.get("port"))
                    )
    if errors:
        fail("\n".join(errors))
    print("   %s: %s" % (label, ", ".join("%d %s" % (n, k) for k, n in sorted(kinds.items()))))
