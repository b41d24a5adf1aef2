//! What both cache tiers hold: a product's JSON, encoded once, or the knowledge that an
//! id does not exist.

use std::sync::Arc;

use crate::model::Product;

/// A product's JSON, encoded once when read from PostgreSQL (or taken as Redis returned
/// it) and shared by both tiers and every answer, so a hit neither decodes nor re-encodes.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedProduct {
    /// The product as a JSON object, exactly what Redis stores.
    pub json: Box<str>,
}

/// The fields a cached product must have; the others are checked for syntax only, so
/// validating an entry from Redis allocates nothing and parses no decimal or timestamp.
#[derive(serde::Deserialize)]
#[allow(dead_code)] // Read by serde: a missing field fails the check.
struct ProductShape {
    id: i32,
    name: serde::de::IgnoredAny,
    created_at: serde::de::IgnoredAny,
    updated_at: serde::de::IgnoredAny,
}

impl EncodedProduct {
    pub fn encode(product: &Product) -> Result<Self, serde_json::Error> {
        Ok(Self {
            json: serde_json::to_string(product)?.into_boxed_str(),
        })
    }

    /// Takes `json` (as Redis returned it) after checking that it is one JSON object with
    /// a product's fields: answers are built by splicing fields before its closing brace.
    pub fn decode(json: String) -> Result<Self, serde_json::Error> {
        let _: ProductShape = serde_json::from_str(&json)?;
        let trimmed = json.trim();
        if !(trimmed.starts_with('{') && trimmed.ends_with('}')) {
            return Err(serde::de::Error::custom(
                "a cached product must be a JSON object",
            ));
        }
        let json = if trimmed.len() == json.len() {
            json.into_boxed_str()
        } else {
            trimmed.into()
        };
        Ok(Self { json })
    }
}

/// A cached lookup result: the product, or the knowledge that the id does not exist.
#[derive(Debug, Clone, PartialEq)]
pub enum CachedValue {
    Present(Arc<EncodedProduct>),
    Absent,
}

impl CachedValue {
    /// Memory cost, for the byte bound: the text plus what moka, the `Arc` and the
    /// allocator keep per entry (key, value, timestamps, hash-table and deque nodes, and
    /// the allocator's rounding to its size classes). Measured: 274 bytes requested beside
    /// the text (`an_entry_weighs_at_least_the_memory_it_holds`), 358 resident in the API
    /// under mimalloc (100 000 entries of 256 bytes took 58.6 MiB); 256 was charged
    /// before, so 16 MiB of L1 took 20.5 MiB. An `Absent` entry is charged the same.
    pub(super) fn weight(&self) -> u32 {
        const OVERHEAD: usize = 360;
        let size = match self {
            Self::Present(p) => OVERHEAD + p.json.len(),
            Self::Absent => OVERHEAD,
        };
        u32::try_from(size).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn product(id: i32) -> CachedValue {
        CachedValue::Present(Arc::new(
            EncodedProduct::encode(&Product {
                id,
                name: "n".into(),
                category: None,
                price: None,
                description: None,
                created_at: chrono::DateTime::UNIX_EPOCH,
                updated_at: chrono::DateTime::UNIX_EPOCH,
            })
            .expect("encodes"),
        ))
    }

    #[test]
    fn decoding_keeps_the_stored_json_and_rejects_non_products() {
        let CachedValue::Present(original) = product(4) else {
            panic!("a product")
        };
        let decoded = EncodedProduct::decode(format!(" {} ", original.json)).expect("decodes");
        assert_eq!(decoded, *original);
        let exact = EncodedProduct::decode(original.json.to_string()).expect("decodes");
        assert_eq!(exact, *original);
        for bad in [
            "{\"id\":1}",
            "[]",
            "null",
            "{\"id\":1,\"name\":\"n\",\"created_at\":1,\"updated_at\":2} trailing",
            "{\"id\":\"one\",\"name\":\"n\",\"created_at\":1,\"updated_at\":2}",
            "{\"id\":1,\"name\":\"n\",\"created_at\":1,\"updated_at\":2",
        ] {
            assert!(EncodedProduct::decode(bad.to_owned()).is_err(), "{bad}");
        }
    }
}
