//! How an entry is stored in Redis: the product's JSON, or `null` for a known-absent id.

use std::sync::Arc;

use crate::cache::value::{CachedValue, EncodedProduct};

/// The JSON stored for a known-absent id.
pub(super) const ABSENT: &str = "null";

/// What Redis stores for `value`.
pub(super) fn stored_text(value: &CachedValue) -> &str {
    match value {
        CachedValue::Present(product) => &product.json,
        CachedValue::Absent => ABSENT,
    }
}

pub(super) fn decode(raw: String) -> Result<CachedValue, serde_json::Error> {
    if raw.trim() == ABSENT {
        return Ok(CachedValue::Absent);
    }
    Ok(CachedValue::Present(Arc::new(EncodedProduct::decode(raw)?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Product;

    #[test]
    fn absent_and_present_values_round_trip() {
        assert_eq!(decode(ABSENT.to_owned()).ok(), Some(CachedValue::Absent));
        let product = Product {
            id: 3,
            name: "n".into(),
            category: Some("c".into()),
            price: Some(rust_decimal::Decimal::new(1999, 2)),
            description: None,
            created_at: chrono::DateTime::UNIX_EPOCH,
            updated_at: chrono::DateTime::UNIX_EPOCH,
        };
        let value =
            CachedValue::Present(Arc::new(EncodedProduct::encode(&product).expect("encodes")));
        let json = stored_text(&value).to_owned();
        assert!(json.contains("\"price\":19.99"), "{json}");
        assert_eq!(decode(json).ok(), Some(value));
        assert_eq!(stored_text(&CachedValue::Absent), ABSENT);
        assert!(decode("{broken".to_owned()).is_err());
    }
}
