import unittest

from cacheme_packaging.crd_schema import apply_defaults, cel_rules, structural_to_jsonschema, validate_custom

SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.replicas <= self.maxReplicas", "message": "replicas above maxReplicas"},
                {"rule": "self.replicas == oldSelf.replicas", "message": "immutable"},
            ],
            "properties": {
                "replicas": {"type": "integer", "default": 1},
                "maxReplicas": {"type": "integer", "default": 3},
                "port": {"x-kubernetes-int-or-string": True},
                "note": {"type": "string", "nullable": True, "description": "free text"},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {}},
                "volumes": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "x-kubernetes-validations": [{"rule": "self.size > 0"}],
                        "properties": {"size": {"type": "integer", "default": 1}},
                    },
                },
            },
        }
    },
}


def cacheme(spec, name="demo"):
    return {"apiVersion": "cacheme.dev/v1alpha1", "kind": "CacheMe", "metadata": {"name": name}, "spec": spec}


class Structural(unittest.TestCase):
    def test_unknown_fields_are_refused_unless_preserved(self):
        js = structural_to_jsonschema(SCHEMA, root=True)
        spec = js["properties"]["spec"]
        self.assertIs(js["additionalProperties"], False)
        self.assertIs(spec["additionalProperties"], False)
        self.assertNotIn("additionalProperties", spec["properties"]["extra"])

    def test_kubernetes_extensions_become_json_schema(self):
        props = structural_to_jsonschema(SCHEMA)["properties"]["spec"]["properties"]
        self.assertEqual(props["port"], {"anyOf": [{"type": "integer"}, {"type": "string"}]})
        self.assertEqual(props["note"], {"type": ["string", "null"]})
        self.assertEqual(props["replicas"], {"type": "integer"})
        self.assertNotIn("x-kubernetes-validations", structural_to_jsonschema(SCHEMA)["properties"]["spec"])

    def test_the_root_accepts_the_object_envelope(self):
        props = structural_to_jsonschema(SCHEMA, root=True)["properties"]
        self.assertEqual({"apiVersion", "kind", "metadata"} - set(props), set())


class Defaults(unittest.TestCase):
    def test_missing_fields_get_defaults_nested_and_in_lists(self):
        obj = apply_defaults(SCHEMA, {"spec": {"replicas": 2, "volumes": [{}, {"size": 5}]}})
        self.assertEqual(obj["spec"]["replicas"], 2)
        self.assertEqual(obj["spec"]["maxReplicas"], 3)
        self.assertEqual(obj["spec"]["volumes"], [{"size": 1}, {"size": 5}])


class Rules(unittest.TestCase):
    def test_rules_are_collected_where_values_exist(self):
        out = []
        cel_rules(SCHEMA, {"spec": {"replicas": 1, "volumes": [{"size": 1}]}}, "", out)
        self.assertEqual([(path, rule) for path, rule, _, _ in out][-1], (".spec.volumes[0]", "self.size > 0"))
        self.assertEqual(out[0][2], "replicas above maxReplicas")
        # A rule without a message reports the rule itself.
        self.assertEqual(out[-1][2], "self.size > 0")

    def test_absent_objects_have_no_rules(self):
        out = []
        cel_rules(SCHEMA, {}, "", out)
        self.assertEqual(out, [])


class Validate(unittest.TestCase):
    def test_a_valid_object_passes_with_defaults_and_transition_rules_skipped(self):
        self.assertEqual(validate_custom(cacheme({"replicas": 2}), SCHEMA, "demo"), [])

    def test_a_broken_cel_rule_is_reported_with_its_message(self):
        errors = validate_custom(cacheme({"replicas": 5}), SCHEMA, "demo")
        self.assertEqual(errors, ["demo: .spec: replicas above maxReplicas (rule: self.replicas <= self.maxReplicas)"])

    def test_unknown_fields_and_bad_names_are_reported(self):
        errors = validate_custom(cacheme({"replica": 2}, name="Demo"), SCHEMA, "demo")
        self.assertEqual(len(errors), 2, errors)
        self.assertIn("demo: spec: Additional properties are not allowed ('replica' was unexpected)", errors)
        self.assertIn("demo: metadata.name 'Demo' is not a DNS-1123 name", errors)


if __name__ == "__main__":
    unittest.main()
