//! Validation of a custom object against a CRD's `openAPIV3Schema`, as the API
//! server does it at creation: the structural checks (types, unknown fields,
//! required, enums, ranges, lengths, patterns) by hand, then defaulting and the
//! CEL rules (`x-kubernetes-validations`) with kube's CEL evaluator. The one
//! checker of the project: the operator's tests use it and `cargo xtask validate`
//! runs it through `cacheme-operator validate`.

use serde_json::{Map, Value};

/// Every violation found in `object`; empty when it is valid.
pub fn validate(schema: &Value, object: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    // apiVersion, kind and metadata are checked by the API server itself.
    let mut body = object.clone();
    if let Some(map) = body.as_object_mut() {
        for key in ["apiVersion", "kind", "metadata"] {
            map.remove(key);
        }
    }
    structural(schema, &body, "", &mut errors);
    if errors.is_empty()
        && let Err(cel) = kube::core::cel::Validator::new().validate(schema, object, None)
    {
        errors.extend(cel.iter().map(|e| format!("CEL: {e}")));
    }
    errors
}

fn is_integer(v: &Value) -> bool {
    v.as_i64().is_some() || v.as_u64().is_some()
}

fn structural(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let at = if path.is_empty() { "<root>" } else { path };
    let Some(s) = schema.as_object() else { return };
    if value.is_null() {
        if s.get("nullable") != Some(&Value::Bool(true)) {
            errors.push(format!("{at}: null is not allowed"));
        }
        return;
    }
    if s.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        if !(is_integer(value) || value.is_string()) {
            errors.push(format!("{at}: must be an integer or a string"));
        }
        return;
    }
    let type_ok = match s.get("type").and_then(Value::as_str) {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => is_integer(value),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    };
    if !type_ok {
        errors.push(format!(
            "{at}: expected {}, got {value}",
            s.get("type").and_then(Value::as_str).unwrap_or("?")
        ));
        return;
    }
    if let Some(allowed) = s.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        errors.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = s.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            errors.push(format!("{at}: {n} is below the minimum {min}"));
        }
        if let Some(max) = s.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            errors.push(format!("{at}: {n} is above the maximum {max}"));
        }
    }
    if let Some(text) = value.as_str() {
        let len = text.chars().count() as u64;
        if let Some(min) = s.get("minLength").and_then(Value::as_u64)
            && len < min
        {
            errors.push(format!("{at}: shorter than {min}"));
        }
        if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
            && len > max
        {
            errors.push(format!("{at}: longer than {max}"));
        }
        if let Some(pattern) = s.get("pattern").and_then(Value::as_str) {
            match regex::Regex::new(pattern) {
                Ok(re) if !re.is_match(text) => {
                    errors.push(format!("{at}: {text:?} does not match {pattern}"))
                }
                Ok(_) => {}
                Err(e) => errors.push(format!("{at}: bad pattern {pattern}: {e}")),
            }
        }
    }
    if let Some(items) = value.as_array() {
        if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
            && items.len() as u64 > max
        {
            errors.push(format!("{at}: more than {max} items"));
        }
        if let Some(min) = s.get("minItems").and_then(Value::as_u64)
            && (items.len() as u64) < min
        {
            errors.push(format!("{at}: fewer than {min} items"));
        }
        if let Some(item_schema) = s.get("items") {
            for (i, item) in items.iter().enumerate() {
                structural(item_schema, item, &format!("{path}[{i}]"), errors);
            }
        }
        // A list-map (seed products by id) refuses two items with the same keys.
        if s.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map") {
            let keys: Vec<&str> = s
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let mut seen = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let key: Vec<&Value> = keys.iter().map(|k| &item[*k]).collect();
                if seen.contains(&key) {
                    errors.push(format!("{path}[{i}]: Duplicate value of {keys:?}"));
                }
                seen.push(key);
            }
        }
    }
    if let Some(fields) = value.as_object() {
        object(s, fields, path, errors);
    }
}

fn object(
    s: &Map<String, Value>,
    fields: &Map<String, Value>,
    path: &str,
    errors: &mut Vec<String>,
) {
    let at = if path.is_empty() { "<root>" } else { path };
    let properties = s.get("properties").and_then(Value::as_object);
    let additional = s.get("additionalProperties");
    let preserve = s.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    for required in s
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !fields.contains_key(required) {
            errors.push(format!("{at}: missing required field {required:?}"));
        }
    }
    for (name, field) in fields {
        let child = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        match (properties.and_then(|p| p.get(name)), additional) {
            (Some(field_schema), _) => structural(field_schema, field, &child, errors),
            (None, Some(extra)) if extra.is_object() => structural(extra, field, &child, errors),
            (None, Some(Value::Bool(true))) => {}
            _ if preserve => {}
            _ => errors.push(format!("{child}: unknown field")),
        }
    }
}

/// `openAPIV3Schema`s by `(apiVersion, kind)`.
pub type Schemas = Vec<((String, String), Value)>;

/// The `openAPIV3Schema` of every served version of the CRDs in `crd_yaml`, by
/// `(apiVersion, kind)`.
pub fn crd_schemas(crd_yaml: &str) -> Result<Schemas, String> {
    let mut out = Vec::new();
    for doc in yaml_serde::Deserializer::from_str(crd_yaml) {
        let doc: Value = serde::Deserialize::deserialize(doc).map_err(|e| e.to_string())?;
        if doc["kind"] != "CustomResourceDefinition" {
            continue;
        }
        let spec = &doc["spec"];
        let (Some(group), Some(kind)) = (spec["group"].as_str(), spec["names"]["kind"].as_str())
        else {
            return Err("a CustomResourceDefinition without spec.group or spec.names.kind".into());
        };
        for version in spec["versions"].as_array().into_iter().flatten() {
            let name = version["name"].as_str().unwrap_or_default();
            out.push((
                (format!("{group}/{name}"), kind.to_owned()),
                version["schema"]["openAPIV3Schema"].clone(),
            ));
        }
    }
    Ok(out)
}

/// Every object of `docs` whose kind a CRD of `schemas` defines, validated:
/// `(objects checked, "<where>: <violation>" lines)`.
pub fn custom_objects(schemas: &Schemas, docs: &[Value], file: &str) -> (usize, Vec<String>) {
    let mut checked = 0;
    let mut errors = Vec::new();
    for doc in docs {
        let key = (
            doc["apiVersion"].as_str().unwrap_or_default().to_owned(),
            doc["kind"].as_str().unwrap_or_default().to_owned(),
        );
        let Some((_, schema)) = schemas.iter().find(|(k, _)| *k == key) else {
            continue;
        };
        checked += 1;
        let name = doc["metadata"]["name"].as_str().unwrap_or("<no name>");
        errors.extend(
            validate(schema, doc)
                .into_iter()
                .map(|e| format!("{file}: {} {name}: {e}", key.1)),
        );
    }
    (checked, errors)
}
