//! Scenario 3, admission: CacheMes the real API server must refuse at admission, by the
//! CRD's OpenAPI schema or its CEL rules, each with the message a user would read.

use anyhow::{bail, ensure};
use serde_json::{Value, json};

use super::kubectl::Kubectl;

pub const NAMESPACE: &str = "e2e-invalid";

/// One invalid CacheMe and words its refusal must contain.
struct Case {
    what: &'static str,
    name: String,
    spec: Value,
    expect: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            what: "PostgreSQL both external and managed",
            name: "both-stores".into(),
            spec: json!({"postgres": {
                "storage": {"size": "1Gi"},
                "external": {"urlSecretRef": {"name": "shop-database"}},
            }}),
            expect: &["postgres is either external or managed"],
        },
        Case {
            what: "Redis both external and managed",
            name: "both-caches".into(),
            spec: json!({"redis": {
                "image": "redis:8",
                "external": {"urlSecretRef": {"name": "shop-cache"}},
            }}),
            expect: &["redis is either external or managed"],
        },
        Case {
            what: "PostgreSQL both run by CloudNativePG and external",
            name: "cnpg-and-external".into(),
            spec: json!({"postgres": {
                "cloudNativePG": {},
                "external": {"urlSecretRef": {"name": "shop-database"}},
            }}),
            expect: &["postgres.cloudNativePG and postgres.external exclude each other"],
        },
        Case {
            what: "PostgreSQL run by CloudNativePG with the managed storage",
            name: "cnpg-and-storage".into(),
            spec: json!({"postgres": {
                "cloudNativePG": {"instances": 2},
                "storage": {"size": "1Gi"},
            }}),
            expect: &["postgres.cloudNativePG replaces the managed PostgreSQL"],
        },
        Case {
            what: "CloudNativePG with 10 instances",
            name: "cnpg-instances".into(),
            spec: json!({"postgres": {"cloudNativePG": {"instances": 10}}}),
            expect: &["spec.postgres.cloudNativePG.instances"],
        },
        Case {
            what: "a mode on the external PostgreSQL (Redis only)",
            name: "postgres-mode".into(),
            spec: json!({"postgres": {"external": {
                "urlSecretRef": {"name": "shop-database"},
                "mode": "cluster",
            }}}),
            expect: &["unknown field \"spec.postgres.external.mode\""],
        },
        Case {
            what: "an unknown Redis mode",
            name: "redis-mode".into(),
            spec: json!({"redis": {"external": {
                "urlSecretRef": {"name": "shop-cache"},
                "mode": "sentinel",
            }}}),
            expect: &["spec.redis.external.mode", "\"single\", \"cluster\""],
        },
        Case {
            what: "seed data both inline and a ConfigMap",
            name: "both-seeds".into(),
            spec: json!({"seedData": {
                "products": [{"id": 1, "name": "Pen", "price": 1.5}],
                "configMapRef": {"name": "my-products"},
            }}),
            expect: &["seedData needs exactly one"],
        },
        Case {
            what: "schema ranges",
            name: "out-of-range".into(),
            spec: json!({"ttlSeconds": 0, "telemetry": {"samplingRatio": 1.5}}),
            expect: &["spec.ttlSeconds", "spec.telemetry.samplingRatio"],
        },
        Case {
            what: "an unknown field",
            name: "unknown-field".into(),
            spec: json!({"cacheSize": 10}),
            expect: &["unknown field \"spec.cacheSize\""],
        },
        Case {
            what: "a seed id the API cannot store (above i32)",
            name: "big-seed-id".into(),
            spec: json!({"seedData": {"products": [{"id": 3_000_000_000_i64, "name": "Pen", "price": 1.5}]}}),
            expect: &["spec.seedData.products[0].id", "2147483647"],
        },
        Case {
            what: "two seed products with one id",
            name: "dup-seed-id".into(),
            spec: json!({"seedData": {"products": [
                {"id": 7, "name": "Pen", "price": 1.5},
                {"id": 7, "name": "Ink", "price": 2.5},
            ]}}),
            expect: &["Duplicate value", "spec.seedData.products[1]"],
        },
        Case {
            what: "a CORS origin with a path",
            name: "cors-path".into(),
            spec: json!({"api": {"corsAllowedOrigins": ["https://shop.example.com/app"]}}),
            expect: &["spec.api.corsAllowedOrigins[0]"],
        },
        Case {
            what: "CORS `*` together with origins",
            name: "cors-star-and-list".into(),
            spec: json!({"api": {"corsAllowedOrigins": ["*", "https://shop.example.com"]}}),
            expect: &["corsAllowedOrigins is either"],
        },
        Case {
            what: "autoscaling with minReplicas above maxReplicas",
            name: "hpa-bounds".into(),
            spec: json!({
                "autoscaling": {"minReplicas": 5, "maxReplicas": 2},
                "api": {"resources": {"requests": {"cpu": "100m"}}},
            }),
            expect: &["minReplicas must not exceed"],
        },
        Case {
            what: "autoscaling without a CPU request",
            name: "hpa-no-request".into(),
            spec: json!({"autoscaling": {"maxReplicas": 3}}),
            expect: &["autoscaling needs api.resources.requests.cpu"],
        },
        Case {
            what: "a name longer than 40 characters",
            name: "a".repeat(41),
            spec: json!({}),
            expect: &["at most 40 characters"],
        },
        Case {
            what: "a name starting with a digit (not DNS-1035)",
            name: "1shop".into(),
            spec: json!({}),
            expect: &["DNS-1035"],
        },
        Case {
            what: "a name with a dot (not DNS-1035)",
            name: "a.b".into(),
            spec: json!({}),
            expect: &["DNS-1035"],
        },
    ]
}

/// Applies each invalid CacheMe (as the admin) and requires the API server to refuse it
/// with its message; a valid control case must still be accepted (dry run).
pub fn rejections(kubectl: &Kubectl) -> anyhow::Result<()> {
    kubectl.run(&["create", "namespace", NAMESPACE])?;
    let manifest = |name: &str, spec: &Value| {
        json!({
            "apiVersion": "cacheme.dev/v1alpha1",
            "kind": "CacheMe",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": spec,
        })
        .to_string()
    };
    let mut failures = Vec::new();
    for case in cases() {
        match kubectl.apply(&manifest(&case.name, &case.spec), None) {
            Ok(out) => failures.push(format!("{}: accepted ({})", case.what, out.trim())),
            Err(e) => {
                let text = format!("{e:#}");
                let missing: Vec<&str> = case
                    .expect
                    .iter()
                    .copied()
                    .filter(|w| !text.contains(w))
                    .collect();
                if missing.is_empty() {
                    eprintln!("    refused: {}", case.what);
                } else {
                    failures.push(format!(
                        "{}: refused, but without {missing:?}: {text}",
                        case.what
                    ));
                }
            }
        }
    }
    // The rules must not refuse what is valid: a 40-character DNS-1035 name.
    let valid = format!("x{}", "-a".repeat(19)) + "9";
    ensure!(valid.len() == 40, "control name length {}", valid.len());
    let dry_run = kubectl.run(&["get", "namespace", NAMESPACE]).and_then(|_| {
        let mut file = std::env::temp_dir();
        file.push(format!("cacheme-e2e-valid-{}.json", std::process::id()));
        std::fs::write(&file, manifest(&valid, &json!({})))?;
        let out = kubectl.run(&[
            "apply",
            "--dry-run=server",
            "-f",
            &file.display().to_string(),
        ]);
        let _ = std::fs::remove_file(&file);
        out
    });
    if let Err(e) = dry_run {
        failures.push(format!("a valid 40-character name was refused: {e:#}"));
    }
    if !failures.is_empty() {
        bail!(
            "admission of invalid CacheMes:\n  {}",
            failures.join("\n  ")
        );
    }
    Ok(())
}
