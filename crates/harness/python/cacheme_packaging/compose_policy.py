"""docker-compose.yml, as `docker compose config --format json` resolves it: healthchecks,
healthy dependencies, the expected ports bound to 127.0.0.1, the named volumes, and a
cache Redis that keeps nothing on disk."""

import json

from .common import fail, read_text


def check_compose_policy(config_json, expect_ports):
    cfg = json.loads(read_text(config_json))
    services = cfg.get("services", {})
    errors = []
    published = {}
    for name, svc in services.items():
        hc = svc.get("healthcheck")
        if not hc or hc.get("disable") or not hc.get("test"):
            errors.append("service %s has no healthcheck" % name)
        for dep, spec in (svc.get("depends_on") or {}).items():
            optional = spec.get("required") is False
            if spec.get("condition") != "service_healthy" and not (
                optional and spec.get("condition") == "service_started"
            ):
                errors.append(
                    "service %s: depends_on %s must use condition: service_healthy "
                    "(or service_started with required: false for an optional service)" % (name, dep)
                )
        for p in svc.get("ports") or []:
            published[str(p.get("published"))] = (name, p.get("target"))
            if p.get("host_ip") != "127.0.0.1":
                errors.append(
                    "service %s: port %s must be published on 127.0.0.1 only, not %s "
                    "(the compose credentials are well known)"
                    % (name, p.get("published"), p.get("host_ip") or "every interface")
                )
    for want in expect_ports.split(","):
        host, _, rest = want.partition("=")
        svc_name, _, target = rest.partition(":")
        got = published.get(host)
        if got is None or got[0] != svc_name or str(got[1]) != target:
            errors.append("host port %s must map to %s:%s (found %s)" % (host, svc_name, target, got))
    vols = cfg.get("volumes", {})
    for v in ("cache-me-postgres-data", "cache-me-pgadmin-data"):
        if v not in vols or vols[v].get("name", v) != v:
            errors.append("named volume %s is missing" % v)
    # A cache: a Redis restarted from its own persistence brings back invalidated
    # entries (CacheMe refuses them, README "What is guaranteed"), and nothing in it is
    # worth keeping.
    redis = services.get("redis", {})
    command = redis.get("command") or []
    for flag, value in (("--appendonly", "no"), ("--save", "")):
        if flag not in command or command.index(flag) + 1 >= len(command) or command[command.index(flag) + 1] != value:
            errors.append("service redis must run with %s %r (a cache keeps nothing on disk)" % (flag, value))
    if redis.get("volumes"):
        errors.append("service redis must not mount a volume (a cache keeps nothing on disk)")
    if errors:
        fail("\n".join(errors))
    print("   %d services, each with a healthcheck; ports %s" % (len(services), ", ".join(sorted(published, key=int))))
