//! The product and its validated inputs: plain types every layer above shares.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub mod input;

pub use input::{ValidPatch, ValidProduct};

/// A product row, as stored in PostgreSQL and (as JSON) in the cache.
///
/// Field order is the original demo's wire order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
pub struct Product {
    #[schema(example = 1)]
    pub id: i32,
    #[schema(example = "MacBook Pro 16\"")]
    pub name: String,
    #[schema(example = "Laptops")]
    pub category: Option<String>,
    /// NUMERIC(10,2) in the database, a JSON number on the wire.
    #[serde(with = "rust_decimal::serde::float_option")]
    #[schema(value_type = Option<f64>, example = 2499.99)]
    pub price: Option<Decimal>,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
