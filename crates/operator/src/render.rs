//! Offline rendering of a `CacheMe` file into the objects the operator would apply.

use kube::core::ObjectMeta;

use crate::crd::CacheMe;
use crate::resources::Stack;
use crate::{Error, Result};

/// Uid given to a CacheMe read from a file, so owner references can be built.
pub const OFFLINE_UID: &str = "00000000-0000-0000-0000-000000000000";

/// Reads a `CacheMe` from YAML and gives it a namespace (when it has none)
/// and a placeholder uid, as the API server would.
pub fn cacheme_from_yaml(yaml: &str, namespace: &str) -> Result<CacheMe> {
    let mut cm: CacheMe =
        yaml_serde::from_str(yaml).map_err(|e| Error::Render(format!("invalid CacheMe: {e}")))?;
    let meta: &mut ObjectMeta = &mut cm.metadata;
    if meta.namespace.is_none() {
        meta.namespace = Some(namespace.to_string());
    }
    meta.uid.get_or_insert_with(|| OFFLINE_UID.to_string());
    Ok(cm)
}

/// Every child object of `cm` as a YAML stream of JSON documents (Secrets with
/// a placeholder password; a seed ConfigMap reference is hashed as empty).
///
/// JSON, not block YAML: a YAML 1.1 reader (kubectl, PyYAML) would read an
/// unquoted `no` (e.g. in Redis' `--appendonly no`) as a boolean.
pub fn render_yaml(cm: &CacheMe) -> Result<String> {
    let stack = Stack::new(cm, None)?;
    let mut out = String::new();
    for object in stack.desired()?.manifests()? {
        out.push_str("---\n");
        out.push_str(&serde_json::to_string_pretty(&object)?);
        out.push('\n');
    }
    Ok(out)
}
