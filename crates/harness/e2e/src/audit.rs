//! The API server's audit log, read for the requests it refused a ServiceAccount: RBAC
//! denials (403) and invalid objects (422) show up here even when the operator only logs
//! them at debug level or retries until they happen to pass.

use std::{collections::BTreeMap, fs, path::Path};

use serde_json::Value;

/// One kind of refused request and how often it happened.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Refusal {
    pub code: u64,
    pub verb: String,
    pub resource: String,
    pub message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.code, self.verb, self.resource)?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

/// How many requests of `user` were answered, and those answered with a status in
/// 400..=599 other than 404 (the operator deletes children that may not exist, and reads
/// Secrets before creating them), counted.
pub fn refusals(log: &Path, user: &str) -> anyhow::Result<(usize, BTreeMap<Refusal, usize>)> {
    let text = fs::read_to_string(log)
        .map_err(|e| anyhow::anyhow!("cannot read the audit log {}: {e}", log.display()))?;
    Ok(refusals_in(&text, user))
}

fn refusals_in(text: &str, user: &str) -> (usize, BTreeMap<Refusal, usize>) {
    let mut found = BTreeMap::new();
    let mut requests = 0;
    for event in text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        if event["user"]["username"].as_str() != Some(user) {
            continue;
        }
        let Some(code) = event["responseStatus"]["code"].as_u64() else {
            continue;
        };
        requests += 1;
        if !(400..=599).contains(&code) || code == 404 {
            continue;
        }
        let object = &event["objectRef"];
        let mut resource = object["resource"].as_str().unwrap_or("?").to_owned();
        if let Some(group) = object["apiGroup"].as_str().filter(|g| !g.is_empty()) {
            resource = format!("{resource}.{group}");
        }
        if let Some(sub) = object["subresource"].as_str() {
            resource = format!("{resource}/{sub}");
        }
        if let Some(ns) = object["namespace"].as_str() {
            resource = format!("{resource} in {ns}");
        }
        let refusal = Refusal {
            code,
            verb: event["verb"].as_str().unwrap_or("?").to_owned(),
            resource,
            message: event["responseStatus"]["message"]
                .as_str()
                .unwrap_or("")
                .chars()
                .take(300)
                .collect(),
        };
        *found.entry(refusal).or_insert(0) += 1;
    }
    (requests, found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_refusals_of_one_user_and_ignores_not_found() {
        let log = [
            r#"{"verb":"list","user":{"username":"system:serviceaccount:cacheme:op"},"objectRef":{"resource":"cachemes","apiGroup":"cacheme.dev"},"responseStatus":{"code":403,"message":"forbidden"}}"#,
            r#"{"verb":"list","user":{"username":"system:serviceaccount:cacheme:op"},"objectRef":{"resource":"cachemes","apiGroup":"cacheme.dev"},"responseStatus":{"code":403,"message":"forbidden"}}"#,
            r#"{"verb":"patch","user":{"username":"system:serviceaccount:cacheme:op"},"objectRef":{"resource":"deployments","apiGroup":"apps","namespace":"demo"},"responseStatus":{"code":422,"message":"invalid"}}"#,
            r#"{"verb":"delete","user":{"username":"system:serviceaccount:cacheme:op"},"objectRef":{"resource":"ingresses"},"responseStatus":{"code":404}}"#,
            r#"{"verb":"get","user":{"username":"system:serviceaccount:cacheme:op"},"objectRef":{"resource":"leases"},"responseStatus":{"code":200}}"#,
            r#"{"verb":"list","user":{"username":"someone-else"},"objectRef":{"resource":"pods"},"responseStatus":{"code":403}}"#,
            "not json",
        ]
        .join("\n");
        let (requests, found) = refusals_in(&log, "system:serviceaccount:cacheme:op");
        assert_eq!(requests, 5);
        let listed: Vec<(String, usize)> = found.iter().map(|(r, n)| (r.to_string(), *n)).collect();
        assert_eq!(
            listed,
            vec![
                ("403 list cachemes.cacheme.dev: forbidden".to_owned(), 2),
                ("422 patch deployments.apps in demo: invalid".to_owned(), 1),
            ]
        );
    }
}
