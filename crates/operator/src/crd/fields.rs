//! The table of resource fields in crates/operator/README.md, generated from the CRD's
//! schema (its descriptions are the types' doc comments, which `kubectl explain` shows
//! too), so a field is documented in one place. A test fails when the README drifts;
//! `CACHEME_UPDATE_DOCS=1 cargo test -p cacheme-operator --lib fields` rewrites it.

use serde_json::Value;

use super::{
    DEFAULT_API_CLIENT_NAMESPACES, DEFAULT_API_IMAGE, DEFAULT_FRONTEND_IMAGE,
    DEFAULT_PGADMIN_IMAGE, DEFAULT_POSTGRES_IMAGE, DEFAULT_REDIS_COMMANDER_IMAGE,
    DEFAULT_REDIS_IMAGE, DEFAULT_SEED_KEY, DEFAULT_TOKEN_KEY, DEFAULT_URL_KEY,
};

/// Defaults the operator applies when a field is unset (not in the schema, which cannot
/// say "generated" or "derived from the name").
fn applied_default(path: &str) -> Option<String> {
    let code = |s: &str| format!("`{s}`");
    Some(match path {
        "api.image" => code(DEFAULT_API_IMAGE),
        "frontend.image" => code(DEFAULT_FRONTEND_IMAGE),
        "redis.image" => code(DEFAULT_REDIS_IMAGE),
        "postgres.image" => code(DEFAULT_POSTGRES_IMAGE),
        "pgAdmin.image" => code(DEFAULT_PGADMIN_IMAGE),
        "redisCommander.image" => code(DEFAULT_REDIS_COMMANDER_IMAGE),
        "api.adminTokenSecretRef" => "generated `<name>-api-credentials`".into(),
        "api.networkPolicy.allowedFrom[]" => format!(
            "pods of the namespaces {}",
            DEFAULT_API_CLIENT_NAMESPACES
                .iter()
                .map(|n| code(n))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        "redis.external.keyPrefix" => "`cacheme.<namespace>.<name>`".into(),
        "postgres.storage" | "postgres.cloudNativePG.storage" => {
            "1Gi on the default StorageClass".into()
        }
        "redis.storage" => "none: in memory only".into(),
        "api.adminTokenSecretRef.key" => code(DEFAULT_TOKEN_KEY),
        "postgres.external.urlSecretRef.key" | "redis.external.urlSecretRef.key" => {
            code(DEFAULT_URL_KEY)
        }
        "seedData.configMapRef.key" => code(DEFAULT_SEED_KEY),
        _ => return None,
    })
}

/// Fields whose schema is Kubernetes' own (described by `kubectl explain`), not ours.
const NOT_DESCENDED: &[&str] = &["resources", "allowedFrom"];

/// The Markdown table of every field under `spec`, in the schema's (alphabetical) order.
pub fn field_table() -> String {
    let crd = serde_json::to_value(super::crd()).unwrap_or_default();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let mut rows = Vec::new();
    walk(spec, "", &mut rows);
    let mut out = String::from("| field | default | meaning |\n|---|---|---|\n");
    for row in rows {
        out.push_str(&row);
        out.push('\n');
    }
    out
}

fn walk(schema: &Value, prefix: &str, rows: &mut Vec<String>) {
    let Some(properties) = schema["properties"].as_object() else {
        return;
    };
    for (name, field) in properties {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let (path, inner) = if field["type"] == "array" {
            (format!("{path}[]"), &field["items"])
        } else {
            (path, field)
        };
        rows.push(row(&path, field, inner));
        if !NOT_DESCENDED.contains(&name.as_str()) {
            walk(inner, &path, rows);
        }
    }
}

fn row(path: &str, field: &Value, inner: &Value) -> String {
    let default = match &field["default"] {
        Value::Null => applied_default(path).unwrap_or_else(|| "—".into()),
        // An object's default only says its fields' defaults again (their own rows).
        Value::Object(_) => applied_default(path).unwrap_or_else(|| "—".into()),
        Value::String(s) => format!("`{s}`"),
        other => format!("`{other}`"),
    };
    let mut meaning = field["description"]
        .as_str()
        .unwrap_or("")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let bounds = match (inner["minimum"].as_f64(), inner["maximum"].as_f64()) {
        (Some(lo), Some(hi)) => Some(format!("{lo}–{hi}")),
        (Some(lo), None) => Some(format!("at least {lo}")),
        (None, Some(hi)) => Some(format!("at most {hi}")),
        (None, None) => None,
    };
    if let Some(bounds) = bounds {
        meaning.push_str(&format!(" ({bounds})"));
    }
    if let Some(values) = inner["enum"].as_array() {
        let values: Vec<String> = values.iter().map(|v| format!("`{}`", plain(v))).collect();
        meaning.push_str(&format!(" (one of {})", values.join(", ")));
    }
    format!(
        "| `{path}` | {} | {} |",
        default.replace('|', "\\|"),
        meaning.replace('|', "\\|")
    )
}

fn plain(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_has_a_row_with_its_default_and_bounds() {
        let table = field_table();
        for expected in [
            "| `ttlSeconds` | `3600` | TTL of a cached product entry in seconds",
            "(1–604800)",
            "| `api.image` | `localhost/cacheme/api:0.1.0` |",
            "| `redis.external.mode` | `single` |",
            "| `seedData.products[].id` |",
            "| `postgres.retainPolicy` | `Retain` |",
            "| `api.resources` |",
        ] {
            assert!(table.contains(expected), "{expected} missing:\n{table}");
        }
        assert!(
            !table.contains("api.resources.limits"),
            "Kubernetes' own types are not expanded"
        );
        assert!(
            table.lines().skip(2).all(|l| !l.ends_with("|  |")),
            "every field has a meaning:\n{table}"
        );
    }

    /// The README's table is generated; `CACHEME_UPDATE_DOCS=1` rewrites it.
    #[test]
    fn the_readme_field_table_is_generated_from_the_crd() {
        cacheme_testsupport::generated_docs::check_generated_section(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"),
            "<!-- generated from the CRD: CACHEME_UPDATE_DOCS=1 cargo test -p cacheme-operator --lib fields -->",
            "<!-- end of the generated table -->",
            &field_table(),
            "CACHEME_UPDATE_DOCS=1 cargo test -p cacheme-operator --lib fields",
        );
    }
}
