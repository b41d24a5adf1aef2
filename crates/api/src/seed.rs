//! `SEED_FILE`: products upserted at start (the operator mounts them from a ConfigMap).

use std::path::Path;

use anyhow::Context as _;
use serde::Deserialize;

use crate::model::input::{ProductInput, ValidProduct};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedProduct {
    id: i32,
    name: String,
    description: Option<String>,
    price: Option<serde_json::Number>,
    category: Option<String>,
}

/// Parses and validates a seed file's text; every problem names the entry's index and id.
pub fn parse_seed(text: &str) -> anyhow::Result<Vec<(i32, ValidProduct)>> {
    let entries: Vec<SeedProduct> =
        serde_json::from_str(text).context("expected a JSON array of products")?;
    let mut seen = std::collections::BTreeSet::new();
    let mut products = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        let id = entry.id;
        anyhow::ensure!(
            id >= 1,
            "entry {index}: id must be a positive integer, got {id}"
        );
        anyhow::ensure!(seen.insert(id), "entry {index}: id {id} appears twice");
        let valid = ProductInput {
            name: entry.name,
            description: entry.description,
            price: entry.price,
            category: entry.category,
        }
        .validate()
        .map_err(|e| anyhow::anyhow!("entry {index} (id {id}): {e}"))?;
        products.push((id, valid));
    }
    Ok(products)
}

/// The seed as one canonical text (its digest says whether it was applied before):
/// formatting and key order of the file do not matter, values and order of entries do.
pub fn canonical(products: &[(i32, ValidProduct)]) -> String {
    let entries: Vec<serde_json::Value> = products
        .iter()
        .map(|(id, p)| {
            serde_json::json!([
                id,
                p.name,
                p.description,
                p.price.map(|d| d.normalize().to_string()),
                p.category
            ])
        })
        .collect();
    serde_json::Value::Array(entries).to_string()
}

pub fn read_seed_file(path: &Path) -> anyhow::Result<Vec<(i32, ValidProduct)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read SEED_FILE {}", path.display()))?;
    parse_seed(&text).with_context(|| format!("SEED_FILE {} is invalid", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canonical_text_ignores_formatting_but_not_values() {
        let a = parse_seed(r#"[{"id":1,"name":"A","price":1.50}]"#).expect("valid");
        let b = parse_seed(r#"[ { "price": 1.5, "name": "A", "id": 1 } ]"#).expect("valid");
        let c = parse_seed(r#"[{"id":1,"name":"A","price":1.6}]"#).expect("valid");
        assert_eq!(canonical(&a), canonical(&b));
        assert_ne!(canonical(&a), canonical(&c));
    }

    #[test]
    fn a_valid_seed_parses() {
        let seed = parse_seed(r#"[{"id":1,"name":"A","price":1.5},{"id":2,"name":"B","description":"d","category":"c"}]"#)
            .expect("valid");
        assert_eq!(seed.len(), 2);
        assert_eq!(seed[1].1.category.as_deref(), Some("c"));
    }

    #[test]
    fn bad_entries_are_named() {
        for (text, needle) in [
            (r#"{"id":1}"#, "JSON array"),
            (r#"[{"id":0,"name":"A"}]"#, "entry 0"),
            (
                r#"[{"id":1,"name":"A"},{"id":1,"name":"B"}]"#,
                "appears twice",
            ),
            (r#"[{"id":3,"name":"A","price":-1}]"#, "id 3"),
        ] {
            let err = format!("{:#}", parse_seed(text).expect_err(text));
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
