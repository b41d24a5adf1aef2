//! Write bodies and their validation. Pure: the rules are unit-tested without a database.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;

pub const NAME_MAX_CHARS: usize = 255;
pub const CATEGORY_MAX_CHARS: usize = 100;
/// Longest description: a page of text. Unbounded, `GET /products?limit=100` could build
/// hundreds of megabytes.
pub const DESCRIPTION_MAX_CHARS: usize = 10_000;
/// The largest valid product body, with every character escaped as a surrogate pair
/// (`\ud83d\ude00`, 12 bytes), rounded up: a JSON body is refused (413) once it passes it.
pub const BODY_LIMIT_BYTES: usize = 128 * 1024;
/// NUMERIC(10,2): eight digits before the point, 99 999 999.99, i.e. 9 999 999 999 × 10⁻²
/// (the mantissa 9 999 999 999 = 2 × 2³² + 1 410 065 407, split into 32-bit parts).
pub const PRICE_MAX: Decimal = Decimal::from_parts(1_410_065_407, 2, 0, false, 2);

/// Body of `POST /products` and `PUT /products/{id}`: the whole product.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    /// 1 to 255 characters, not all spaces, no NUL.
    #[schema(
        example = "Steam Deck OLED",
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\u0000]*[^\u0000\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000]*$"
    )]
    pub name: String,
    /// At most 10 000 characters, no NUL.
    #[schema(
        example = "Handheld gaming PC with a 7.4-inch HDR OLED screen.",
        max_length = 10_000,
        pattern = r"^[^\u0000]*$"
    )]
    pub description: Option<String>,
    /// 0 to 99 999 999.99, at most two decimals.
    #[schema(value_type = Option<f64>, example = 549.0, minimum = 0.0, maximum = 99_999_999.99, multiple_of = 0.01)]
    pub price: Option<serde_json::Number>,
    /// At most 100 characters, no NUL.
    #[schema(example = "Gaming", max_length = 100, pattern = r"^[^\u0000]*$")]
    pub category: Option<String>,
}

// Patterns: no NUL anywhere (PostgreSQL cannot store it); a name also needs one
// character that is not white space as Rust's `trim` sees it (Unicode `White_Space`), so
// the schema and the check agree on "not all spaces".

/// Body of `PATCH /products/{id}`: only the fields to change; `null` clears an optional field.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct ProductPatch {
    /// 1 to 255 characters, not all spaces, no NUL; cannot be null.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, required = false, min_length = 1, max_length = 255, pattern = r"^[^\u0000]*[^\u0000\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000]*$")]
    pub name: Option<Option<String>>,
    /// At most 10 000 characters, no NUL; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 10_000, pattern = r"^[^\u0000]*$")]
    pub description: Option<Option<String>>,
    /// 0 to 99 999 999.99, at most two decimals; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<f64>, minimum = 0.0, maximum = 99_999_999.99, multiple_of = 0.01)]
    pub price: Option<Option<serde_json::Number>>,
    /// At most 100 characters, no NUL; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 100, pattern = r"^[^\u0000]*$")]
    pub category: Option<Option<String>>,
}

/// Tells a field sent as `null` (Some(None)) from a missing one (None, via `default`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A product that passed validation, ready for the database.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidProduct {
    pub name: String,
    pub description: Option<String>,
    pub price: Option<Decimal>,
    pub category: Option<String>,
}

/// Validated changes: `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ValidPatch {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub price: Option<Option<Decimal>>,
    pub category: Option<Option<String>>,
}

/// Every problem found, each naming its field.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FieldErrors(pub Vec<(&'static str, String)>);

impl FieldErrors {
    fn push(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.push((field, message.into()));
    }

    fn into_result<T>(self, value: T) -> Result<T, Self> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl std::fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(field, msg)| format!("{field}: {msg}"))
            .collect();
        f.write_str(&parts.join("; "))
    }
}

/// PostgreSQL cannot store NUL in text; refused here, it is a 422 naming the field
/// instead of a failed statement.
fn check_storable(field: &'static str, text: &str, errors: &mut FieldErrors) {
    if text.contains('\0') {
        errors.push(field, "must not contain the NUL character (U+0000)");
    }
}

fn check_name(name: &str, errors: &mut FieldErrors) -> String {
    check_storable("name", name, errors);
    let trimmed = name.trim();
    let chars = trimmed.chars().count();
    let raw_chars = name.chars().count();
    if chars == 0 || raw_chars > NAME_MAX_CHARS {
        errors.push(
            "name",
            format!("must be 1 to {NAME_MAX_CHARS} characters, not all spaces, got {raw_chars}"),
        );
    }
    trimmed.to_owned()
}

fn check_description(description: Option<String>, errors: &mut FieldErrors) -> Option<String> {
    if let Some(d) = &description {
        check_storable("description", d, errors);
        let chars = d.chars().count();
        if chars > DESCRIPTION_MAX_CHARS {
            errors.push(
                "description",
                format!("must be at most {DESCRIPTION_MAX_CHARS} characters, got {chars}"),
            );
        }
    }
    description
}

fn check_category(category: Option<String>, errors: &mut FieldErrors) -> Option<String> {
    if let Some(c) = &category {
        check_storable("category", c, errors);
        let chars = c.chars().count();
        if chars > CATEGORY_MAX_CHARS {
            errors.push(
                "category",
                format!("must be at most {CATEGORY_MAX_CHARS} characters, got {chars}"),
            );
        }
    }
    category.map(|c| c.trim().to_owned())
}

/// A JSON number as an exact decimal: ≥ 0, at most two decimals, fits NUMERIC(10,2).
pub fn parse_price(number: &serde_json::Number) -> Result<Decimal, String> {
    // serde_json prints the shortest form that reads back as the same f64 ("19.99"),
    // so parsing that text gives the decimal the client wrote.
    let text = number.to_string();
    let price = Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .map_err(|_| format!("{text} is not a number this service can store"))?
        .normalize();
    if price.is_sign_negative() && !price.is_zero() {
        return Err(format!("must be 0 or more, got {text}"));
    }
    if price.scale() > 2 {
        return Err(format!("must have at most 2 decimals, got {text}"));
    }
    if price > PRICE_MAX {
        return Err(format!("must be at most {PRICE_MAX}, got {text}"));
    }
    Ok(price.abs())
}

fn check_price(price: Option<serde_json::Number>, errors: &mut FieldErrors) -> Option<Decimal> {
    price.and_then(|n| match parse_price(&n) {
        Ok(p) => Some(p),
        Err(msg) => {
            errors.push("price", msg);
            None
        }
    })
}

impl ProductInput {
    pub fn validate(self) -> Result<ValidProduct, FieldErrors> {
        let mut errors = FieldErrors::default();
        let name = check_name(&self.name, &mut errors);
        let price = check_price(self.price, &mut errors);
        let category = check_category(self.category, &mut errors);
        let description = check_description(self.description, &mut errors);
        errors.into_result(ValidProduct {
            name,
            description,
            price,
            category,
        })
    }
}

impl ProductPatch {
    pub fn validate(self) -> Result<ValidPatch, FieldErrors> {
        let mut errors = FieldErrors::default();
        let name = match self.name {
            None => None,
            Some(None) => {
                errors.push("name", "cannot be null");
                None
            }
            Some(Some(name)) => Some(check_name(&name, &mut errors)),
        };
        let price = self.price.map(|p| check_price(p, &mut errors));
        let category = self.category.map(|c| check_category(c, &mut errors));
        let description = self.description.map(|d| check_description(d, &mut errors));
        let patch = ValidPatch {
            name,
            description,
            price,
            category,
        };
        if patch == ValidPatch::default() && errors.0.is_empty() {
            errors.push(
                "body",
                "names no field to change (name, description, price, category)",
            );
        }
        errors.into_result(patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: &str) -> Result<ValidProduct, String> {
        let input: ProductInput = serde_json::from_str(json).map_err(|e| e.to_string())?;
        input.validate().map_err(|e| e.to_string())
    }

    #[test]
    fn a_good_product_is_accepted_and_trimmed() {
        let p =
            input(r#"{"name":"  Deck ","price":549.99,"category":"Gaming","description":null}"#)
                .expect("valid");
        assert_eq!(p.name, "Deck");
        assert_eq!(p.price, Some(Decimal::new(54999, 2)));
        assert_eq!(p.category.as_deref(), Some("Gaming"));
    }

    #[test]
    fn each_bad_field_is_named() {
        for (json, field) in [
            (r#"{"name":""}"#, "name:"),
            (r#"{"name":"   "}"#, "name:"),
            (&format!(r#"{{"name":"{}"}}"#, "x".repeat(256)), "name:"),
            (r#"{"name":"a","price":-1}"#, "price:"),
            (r#"{"name":"a","price":1.999}"#, "price:"),
            (r#"{"name":"a","price":100000000}"#, "price:"),
            (
                &format!(r#"{{"name":"a","category":"{}"}}"#, "c".repeat(101)),
                "category:",
            ),
        ] {
            let err = input(json).expect_err(json);
            assert!(err.starts_with(field), "{json}: {err}");
        }
        let both = input(r#"{"name":"","price":-5}"#).expect_err("two errors");
        assert!(both.contains("name:") && both.contains("price:"), "{both}");
    }

    #[test]
    fn unknown_fields_and_wrong_types_are_rejected() {
        assert!(input(r#"{"name":"a","colour":"red"}"#).is_err());
        assert!(input(r#"{"name":"a","price":"12"}"#).is_err());
        assert!(input(r#"{"price":12}"#).is_err());
    }

    #[test]
    fn prices_are_exact_decimals() {
        let n = |s: &str| serde_json::from_str::<serde_json::Number>(s).expect("number");
        assert_eq!(parse_price(&n("0")), Ok(Decimal::ZERO));
        assert_eq!(parse_price(&n("19.99")), Ok(Decimal::new(1999, 2)));
        assert_eq!(parse_price(&n("0.1")), Ok(Decimal::new(1, 1)));
        assert_eq!(parse_price(&n("1e2")), Ok(Decimal::new(100, 0)));
        assert_eq!(parse_price(&n("99999999.99")), Ok(PRICE_MAX));
        assert!(parse_price(&n("0.001")).is_err());
    }

    #[test]
    fn patches_tell_null_from_missing() {
        let patch: ProductPatch =
            serde_json::from_str(r#"{"description":null,"price":5}"#).expect("json");
        let valid = patch.validate().expect("valid");
        assert_eq!(valid.name, None);
        assert_eq!(valid.description, Some(None));
        assert_eq!(valid.price, Some(Some(Decimal::new(5, 0))));
        assert_eq!(valid.category, None);

        let null_name: ProductPatch = serde_json::from_str(r#"{"name":null}"#).expect("json");
        assert!(null_name.validate().is_err());
        let empty: ProductPatch = serde_json::from_str("{}").expect("json");
        assert!(
            empty
                .validate()
                .expect_err("empty")
                .to_string()
                .starts_with("body:")
        );
    }
}
