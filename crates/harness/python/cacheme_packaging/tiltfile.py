"""The Tiltfile, evaluated by starlark with stubs of Tilt's builtins (its `helm()` renders
the chart with the real Helm): every path it names exists, every image it builds is
deployed, every resource and object it configures exists."""

import os
import re
import subprocess

from .common import fail, load_stream, read_text


def check_tiltfile(tiltfile, base, helm_bin):
    import starlark as sl

    recorded = []  # (function, path)
    images = {}
    objects = []
    kinds = {}
    resources = {}
    resource_calls = []
    context_errors = []

    class Blob:
        def __init__(self, text):
            self.text = text

    def opaque(x):
        return sl.OpaquePythonObject(x)

    def unwrap(x):
        return x.text if isinstance(x, Blob) else x

    def path(fn, p):
        if isinstance(p, str):
            recorded.append((fn, p))
        return p

    def paths(fn, ps):
        if isinstance(ps, str):
            ps = [ps]
        for p in ps or []:
            path(fn, p)

    def add_yaml(text):
        for d in load_stream(text):
            objects.append(d)

    class Step:
        def __init__(self, kind, *a):
            self.kind, self.args = kind, a

    def docker_build(
        ref,
        context,
        build_args={},
        dockerfile="Dockerfile",
        dockerfile_contents="",
        live_update=[],
        match_in_env_vars=False,
        ignore=[],
        only=[],
        entrypoint=[],
        target="",
        ssh="",
        network="",
        secret="",
        extra_tag="",
        container_args=None,
        cache_from=[],
        pull=False,
        platform="",
        extra_hosts=[],
    ):
        path("docker_build context", context)
        if not dockerfile_contents:
            path("docker_build dockerfile", dockerfile)
        for o in [only] if isinstance(only, str) else only:
            path("docker_build only", os.path.join(context, o))
        for step in live_update or []:
            if step.kind == "sync":
                path("live_update sync", step.args[0])
        images[ref.split(":")[0]] = ref

    def k8s_yaml(yaml_, allow_duplicates=False):
        for y in yaml_ if isinstance(yaml_, list) else [yaml_]:
            if isinstance(y, Blob):
                add_yaml(y.text)
            else:
                path("k8s_yaml", y)
                full = os.path.join(base, y)
                if os.path.exists(full):
                    add_yaml(read_text(full))

    def helm(pathToChartDir, name="", namespace="", values=[], set=[], kube_version="", skip_crds=False):
        path("helm chart", pathToChartDir)
        values = [values] if isinstance(values, str) else values
        paths("helm values", values)
        sets = [set] if isinstance(set, str) else set
        cmd = [helm_bin, "template", name or "release", os.path.join(base, pathToChartDir)]
        if namespace:
            cmd += ["--namespace", namespace]
        if not skip_crds:
            cmd.append("--include-crds")
        for v in values:
            cmd += ["--values", os.path.join(base, v)]
        for s in sets:
            cmd += ["--set", s]
        if kube_version:
            cmd += ["--kube-version", kube_version]
        if all(os.path.exists(os.path.join(base, p)) for p in [pathToChartDir] + list(values)):
            r = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if r.returncode != 0:
                raise RuntimeError("helm template failed: " + r.stderr)
            return opaque(Blob(r.stdout))
        return opaque(Blob(""))

    def k8s_kind(kind, api_version=None, image_json_path=[], image_object_json_path=None, pod_readiness=""):
        jp = [image_json_path] if isinstance(image_json_path, str) else image_json_path
        kinds[kind.lower()] = jp

    def k8s_resource(
        workload="",
        new_name="",
        port_forwards=[],
        extra_pod_selectors=[],
        trigger_mode=None,
        resource_deps=[],
        objects=[],
        auto_init=True,
        pod_readiness="",
        links=[],
        labels=[],
        discovery_strategy="",
    ):
        resource_calls.append(
            dict(workload=workload, new_name=new_name, deps=list(resource_deps), objects=list(objects), labels=labels)
        )

    def local_resource(
        name,
        cmd="",
        deps=None,
        trigger_mode=None,
        resource_deps=[],
        ignore=[],
        auto_init=True,
        serve_cmd="",
        cmd_bat="",
        serve_cmd_bat="",
        allow_parallel=False,
        links=[],
        labels=[],
        env={},
        serve_env={},
        readiness_probe=None,
        dir="",
        serve_dir="",
    ):
        if not cmd and not serve_cmd:
            raise ValueError("local_resource %s has neither cmd nor serve_cmd" % name)
        for field, c in (("cmd", cmd), ("serve_cmd", serve_cmd)):
            # Tilt deploys to its own context (k8s_context()); kubectl's current one may differ.
            if isinstance(c, str) and re.search(r"\bkubectl\b(?!\s+--context\b)", c):
                context_errors.append(
                    "%s: local_resource %s: %s runs kubectl without --context (use k8s_context())"
                    % (tiltfile, name, field)
                )
        paths("local_resource deps", deps)
        if dir:
            path("local_resource dir", dir)
        if serve_dir:
            path("local_resource serve_dir", serve_dir)
        resources[name] = dict(deps=list(resource_deps), labels=labels)

    def read_file(file_path, default=None):
        if default is None:
            path("read_file", file_path)
        full = os.path.join(base, file_path)
        return opaque(Blob(read_text(full) if os.path.exists(full) else (default or "")))

    def blob(contents):
        return opaque(Blob(contents))

    def sync(local_path, remote_path):
        if not remote_path.startswith("/"):
            raise ValueError("sync remote path must be absolute: " + remote_path)
        return opaque(Step("sync", local_path, remote_path))

    def run(cmd, trigger=[], echo_off=False):
        paths("live_update run trigger", trigger)
        return opaque(Step("run", cmd))

    def fall_back_on(files):
        paths("fall_back_on", files)
        return opaque(Step("fall_back_on", files))

    def initial_sync():
        return opaque(Step("initial_sync"))

    def port_forward(local_port, container_port=None, name=None, link_path=None, host=None):
        return opaque(("port_forward", local_port))

    def link(url, name=None):
        return opaque(("link", url))

    def noop(*a, **kw):
        return None

    def watch_file(file_path):
        path("watch_file", file_path)

    def k8s_context():
        return "kind-kind"

    def k8s_namespace():
        return "default"

    module = sl.Module()
    for fn in (
        docker_build,
        k8s_yaml,
        helm,
        k8s_kind,
        k8s_resource,
        local_resource,
        read_file,
        blob,
        sync,
        run,
        fall_back_on,
        initial_sync,
        port_forward,
        link,
        watch_file,
        k8s_context,
        k8s_namespace,
    ):
        module.add_callable(fn.__name__, fn)
    for name in (
        "version_settings",
        "update_settings",
        "allow_k8s_contexts",
        "watch_settings",
        "docker_prune_settings",
        "analytics_settings",
        "ci_settings",
        "secret_settings",
        "default_registry",
        "trigger_mode",
        "warn",
        "enable_feature",
        "set_team",
    ):
        module.add_callable(name, noop)
    module["TRIGGER_MODE_AUTO"] = "auto"
    module["TRIGGER_MODE_MANUAL"] = "manual"
    module["__file__"] = tiltfile

    source = read_text(tiltfile)
    dialect = sl.Dialect.extended()
    dialect.enable_f_strings = True
    try:
        ast = sl.parse(os.path.basename(tiltfile), source, dialect)
        glb = sl.Globals.extended_by(
            [sl.LibraryExtension.Print, sl.LibraryExtension.StructType, sl.LibraryExtension.Json]
        )
        sl.eval(module, ast, glb)
    except Exception as e:  # noqa: BLE001 - starlark and stub errors alike
        fail("%s: %s" % (tiltfile, e))

    errors = list(context_errors)
    for fn, p in recorded:
        if not os.path.exists(os.path.join(base, p)):
            errors.append("%s: %s path %r does not exist" % (tiltfile, fn, p))
    # The images Tilt builds must be used by what it deploys.
    used = set()
    workloads = {}
    for d in objects:
        kind = (d.get("kind") or "").lower()
        meta = d.get("metadata") or {}
        if kind in ("deployment", "statefulset", "daemonset", "job", "pod") or kind in kinds:
            workloads[meta.get("name")] = d
        spec = d.get("spec") or {}
        tpl = (spec.get("template") or {}).get("spec") or spec
        for c in (tpl.get("containers") or []) + (tpl.get("initContainers") or []):
            if isinstance(c, dict) and c.get("image"):
                used.add(c["image"].split(":")[0])
        for jp in kinds.get(kind, []):
            node = d
            for part in jp.strip("{}").strip(".").split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, str):
                used.add(node.split(":")[0])
    for ref in images:
        if ref not in used:
            errors.append("%s: docker_build(%r) is used by no deployed object" % (tiltfile, ref))
    names = set(resources)
    selectors = set()
    for d in objects:
        meta = d.get("metadata") or {}
        n, k = meta.get("name"), (d.get("kind") or "").lower()
        selectors |= {n, "%s:%s" % (n, k), "%s:%s:%s" % (n, k, meta.get("namespace") or "default")}
    for call in resource_calls:
        if call["workload"]:
            if call["workload"] not in workloads:
                errors.append("%s: k8s_resource(%r): no such workload" % (tiltfile, call["workload"]))
            names.add(call["new_name"] or call["workload"])
        elif call["new_name"]:
            names.add(call["new_name"])
        for o in call["objects"]:
            if o.lower() not in {s.lower() for s in selectors if s}:
                errors.append("%s: k8s_resource object %r is not deployed" % (tiltfile, o))
    names |= set(workloads)
    for call in resource_calls:
        for dep in call["deps"]:
            if dep not in names:
                errors.append("%s: resource_deps %r names no resource" % (tiltfile, dep))
    for name, r in resources.items():
        for dep in r["deps"]:
            if dep not in names:
                errors.append("%s: local_resource %s: resource_deps %r names no resource" % (tiltfile, name, dep))
    if errors:
        fail("\n".join(errors))
    print(
        "   %d paths exist; images %s; %d objects, %d resources configured"
        % (len(recorded), ", ".join(sorted(images)), len(objects), len(resource_calls) + len(resources))
    )
