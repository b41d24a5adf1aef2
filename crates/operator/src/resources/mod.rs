//! Pure builders of every child object of a `CacheMe`.
//!
//! [`Stack::desired`] computes the whole desired state from the spec: the
//! objects to apply, the Secrets to create once, and the objects of switched-off
//! components to delete. Nothing here does IO, so every object is unit-tested
//! and snapshotted.
//!
//! `names` says what each child is called and labelled, `desired` lists them all,
//! `endpoints` gives the stack's URLs; one module per kind of object builds them.

mod autoscaling;
mod child;
mod config;
mod desired;
mod endpoints;
mod gateway;
mod names;
mod network;
mod workloads;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use sha2::{Digest, Sha256};

use kube::core::DynamicObject;

use crate::crd::{CacheMe, CloudNativePgSpec, Endpoints, ExternalSpec, RetainPolicy};
use crate::{Error, Result};

pub use child::{Absent, Child, ChildKind};
pub use config::SecretPlan;
pub use desired::{Desired, PASSWORD_PLACEHOLDER};
pub use gateway::{GATEWAY_API_VERSION, HTTPROUTES, httproute_resource};
pub use names::*;
pub use workloads::{CNPG_API_VERSION, CNPG_CLUSTERS, CNPG_URI_KEY, cloudnativepg_resource};

/// Who runs PostgreSQL for a `CacheMe`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PostgresMode<'a> {
    /// The operator: Deployment, Service, claim and generated password.
    Managed,
    /// Someone else, reached by the URL in a Secret.
    External(&'a ExternalSpec),
    /// CloudNativePG, from the `Cluster` the operator applies.
    CloudNativePg(&'a CloudNativePgSpec),
}

/// Seed data as the builders see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeedSource {
    /// No seed data: the API keeps the products of its migrations.
    None,
    /// Inline products, serialised to JSON for the operator's ConfigMap.
    Inline(String),
    /// A user ConfigMap key; `digest` is the hash of its current content.
    ConfigMap {
        name: String,
        key: String,
        digest: String,
    },
}

/// One `CacheMe` with what the builders need, checked once.
#[derive(Debug, Clone)]
pub struct Stack<'a> {
    pub cm: &'a CacheMe,
    pub name: String,
    pub namespace: String,
    pub owner: OwnerReference,
    pub seed: SeedSource,
}

impl<'a> Stack<'a> {
    /// Checks that the CacheMe can own objects. For a seed ConfigMap reference,
    /// `referenced_seed` is the content of the referenced key, read by the caller.
    pub fn new(cm: &'a CacheMe, referenced_seed: Option<&str>) -> Result<Self> {
        let namespace = cm.namespace().ok_or(Error::MissingNamespace)?;
        let owner = cm.controller_owner_ref(&()).ok_or(Error::MissingOwner)?;
        let seed = match &cm.spec.seed_data {
            None => SeedSource::None,
            Some(seed) => match (&seed.products, &seed.config_map_ref) {
                (Some(products), _) => SeedSource::Inline(serde_json::to_string_pretty(products)?),
                (None, Some(r)) => SeedSource::ConfigMap {
                    name: r.name.clone(),
                    key: r
                        .key
                        .clone()
                        .unwrap_or_else(|| crate::crd::DEFAULT_SEED_KEY.to_string()),
                    digest: short_hash(referenced_seed.unwrap_or_default().as_bytes()),
                },
                (None, None) => SeedSource::None,
            },
        };
        Ok(Self {
            cm,
            name: cm.name_any(),
            namespace,
            owner,
            seed,
        })
    }

    /// Who runs PostgreSQL (the CRD's rules allow at most one of `external` and
    /// `cloudNativePG`).
    pub fn postgres_mode(&self) -> PostgresMode<'_> {
        let postgres = &self.cm.spec.postgres;
        match (&postgres.external, &postgres.cloud_native_pg) {
            (Some(external), _) => PostgresMode::External(external),
            (None, Some(cnpg)) => PostgresMode::CloudNativePg(cnpg),
            (None, None) => PostgresMode::Managed,
        }
    }

    /// Whether PostgreSQL is run by the operator itself.
    pub fn postgres_managed(&self) -> bool {
        self.postgres_mode() == PostgresMode::Managed
    }

    /// Whether Redis is run by the operator.
    pub fn redis_managed(&self) -> bool {
        self.cm.spec.redis.external.is_none()
    }
}

/// First 16 hex digits of the SHA-256 of `bytes`.
pub fn short_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}
