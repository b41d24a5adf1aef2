"""The kind cluster configuration: kind's v1alpha4 fields only, and one ingress-ready node
mapping Traefik's node ports 30080 and 30443 (k8s/traefik.yaml)."""

import ipaddress

from .common import fail, load_stream, read_text

KIND_CLUSTER_FIELDS = {
    "kind",
    "apiVersion",
    "name",
    "nodes",
    "networking",
    "featureGates",
    "runtimeConfig",
    "kubeadmConfigPatches",
    "kubeadmConfigPatchesJSON6902",
    "containerdConfigPatches",
    "containerdConfigPatchesJSON6902",
}
KIND_NODE_FIELDS = {
    "role",
    "image",
    "labels",
    "extraMounts",
    "extraPortMappings",
    "gpus",
    "kubeadmConfigPatches",
    "kubeadmConfigPatchesJSON6902",
}
KIND_PORT_FIELDS = {"containerPort", "hostPort", "listenAddress", "protocol"}


def check_kind_config(path):
    docs = load_stream(read_text(path))
    if len(docs) != 1 or not isinstance(docs[0], dict):
        fail("%s: expected one kind Cluster document" % path)
    cfg, errors = docs[0], []
    if (cfg.get("apiVersion"), cfg.get("kind")) != ("kind.x-k8s.io/v1alpha4", "Cluster"):
        errors.append("apiVersion/kind must be kind.x-k8s.io/v1alpha4 Cluster")
    errors += ["unknown field %r" % k for k in sorted(set(cfg) - KIND_CLUSTER_FIELDS)]
    ingress = []
    for i, node in enumerate(cfg.get("nodes") or []):
        where = "nodes[%d]" % i
        errors += ["%s: unknown field %r" % (where, k) for k in sorted(set(node) - KIND_NODE_FIELDS)]
        if node.get("role") not in ("control-plane", "worker"):
            errors.append("%s: role must be control-plane or worker" % where)
        labels = node.get("labels") or {}
        errors += [
            "%s: label %s must be a string (quote it)" % (where, k) for k, v in labels.items() if not isinstance(v, str)
        ]
        mapped = set()
        for j, m in enumerate(node.get("extraPortMappings") or []):
            at = "%s.extraPortMappings[%d]" % (where, j)
            errors += ["%s: unknown field %r" % (at, k) for k in sorted(set(m) - KIND_PORT_FIELDS)]
            for key in ("containerPort", "hostPort"):
                if not isinstance(m.get(key), int) or not 0 < m[key] < 65536:
                    errors.append("%s: %s must be a port number" % (at, key))
            if m.get("protocol", "TCP") not in ("TCP", "UDP", "SCTP"):
                errors.append("%s: protocol must be TCP, UDP or SCTP" % at)
            if "listenAddress" in m:
                try:
                    ipaddress.ip_address(m["listenAddress"])
                except ValueError:
                    errors.append("%s: listenAddress must be an IP address" % at)
            if m.get("protocol", "TCP") == "TCP":
                mapped.add(m.get("containerPort"))
        if labels.get("ingress-ready") == "true":
            ingress.append((where, mapped))
    if len(ingress) != 1:
        errors.append('exactly one node must be labelled ingress-ready="true" (found %d)' % len(ingress))
    else:
        where, mapped = ingress[0]
        for port in (30080, 30443):
            if port not in mapped:
                errors.append("%s (ingress-ready) must map containerPort %d, Traefik's node port" % (where, port))
    if errors:
        fail("%s:\n%s" % (path, "\n".join(errors)))
    print("   %d node(s); ingress-ready node %s maps 30080 and 30443" % (len(cfg.get("nodes") or []), ingress[0][0]))
