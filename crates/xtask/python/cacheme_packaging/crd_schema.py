"""Custom objects against their CRD: the structural schema as strict JSON Schema, then
defaults applied and the CEL rules (`x-kubernetes-validations`) evaluated, as the API
server does on create."""

import copy
import os
import re

from .common import fail, load_stream, read_text


def structural_to_jsonschema(node, root=False):
    """The CRD's openAPIV3Schema as JSON Schema, strict like `kubectl --validate=strict`:
    unknown fields are errors (the API server would prune them silently)."""
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        if k in ("properties", "patternProperties"):
            out[k] = {pk: structural_to_jsonschema(pv) for pk, pv in v.items()}
        elif k in ("items", "additionalProperties", "not"):
            out[k] = structural_to_jsonschema(v) if isinstance(v, dict) else v
        elif k in ("allOf", "anyOf", "oneOf"):
            out[k] = [structural_to_jsonschema(x) for x in v]
        elif k.startswith("x-kubernetes-") or k in ("nullable", "default", "format", "description", "example"):
            continue
        else:
            out[k] = v
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if root:
        out.setdefault("properties", {})
        out["properties"]["apiVersion"] = {"type": "string"}
        out["properties"]["kind"] = {"type": "string"}
        out["properties"]["metadata"] = {"type": "object"}
    if (
        "properties" in out
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def apply_defaults(schema, obj):
    if not isinstance(obj, dict):
        return obj
    for k, sub in (schema.get("properties") or {}).items():
        if k not in obj and "default" in sub:
            obj[k] = copy.deepcopy(sub["default"])
        if k in obj:
            if isinstance(obj[k], dict):
                apply_defaults(sub, obj[k])
            elif isinstance(obj[k], list) and isinstance(sub.get("items"), dict):
                for item in obj[k]:
                    apply_defaults(sub["items"], item)
    return obj


def cel_rules(schema, obj, path, out):
    """Collects (path, rule, message, value) for every x-kubernetes-validations rule that applies."""
    if obj is None:
        return
    for v in schema.get("x-kubernetes-validations") or []:
        out.append((path or ".", v["rule"], v.get("message", v["rule"]), obj))
    if isinstance(obj, dict):
        for k, sub in (schema.get("properties") or {}).items():
            if k in obj:
                cel_rules(sub, obj[k], path + "." + k, out)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(obj):
            cel_rules(schema["items"], item, "%s[%d]" % (path, i), out)


def crd_versions(crd_file):
    crds = {}
    for doc in load_stream(read_text(crd_file)):
        if doc.get("kind") != "CustomResourceDefinition":
            continue
        spec = doc["spec"]
        for ver in spec["versions"]:
            crds[(spec["group"] + "/" + ver["name"], spec["names"]["kind"])] = ver["schema"]["openAPIV3Schema"]
    return crds


def validate_custom(doc, schema, where):
    import celpy
    import jsonschema

    errors = []
    validator = jsonschema.Draft7Validator(structural_to_jsonschema(schema, root=True))
    for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        errors.append("%s: %s: %s" % (where, "/".join(str(p) for p in e.absolute_path) or ".", e.message))
    name = (doc.get("metadata") or {}).get("name", "")
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name or "") or len(name) > 253:
        errors.append("%s: metadata.name %r is not a DNS-1123 name" % (where, name))
    if errors:
        return errors
    defaulted = apply_defaults(schema, copy.deepcopy(doc))
    rules = []
    cel_rules(schema, defaulted, "", rules)
    env = celpy.Environment()
    for path, rule, message, value in rules:
        # Transition rules (oldSelf) run on updates only; these objects are created.
        if re.search(r"\boldSelf\b", rule):
            continue
        try:
            program = env.program(env.compile(rule))
            result = program.evaluate({"self": celpy.json_to_cel(value)})
        except Exception as e:  # noqa: BLE001 - report the rule that could not run
            errors.append("%s: %s: cannot evaluate CEL rule %r: %s" % (where, path, rule, e))
            continue
        if not bool(result):
            errors.append("%s: %s: %s (rule: %s)" % (where, path, message, rule))
    return errors


def check_custom_files(crd_file, files):
    crds = crd_versions(crd_file)
    errors, count = [], 0
    for f in files:
        for doc in load_stream(read_text(f)):
            key = (doc.get("apiVersion"), doc.get("kind"))
            if key in crds:
                count += 1
                errors += validate_custom(doc, crds[key], os.path.relpath(f))
    if errors:
        fail("\n".join(errors))
    print("   %d custom objects match the CRD schema and its CEL rules" % count)
