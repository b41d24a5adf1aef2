//! The Events the operator records on a `CacheMe`, one constructor per thing that
//! happens (kube's `Event` carries type, reason, action, note and the child concerned).

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType};

use crate::Error;
use crate::crd::Phase;
use crate::resources::Absent;

/// A generated Secret was created.
pub fn secret_created(namespace: &str, name: &str) -> Event {
    Event {
        type_: EventType::Normal,
        reason: "SecretCreated".into(),
        note: Some(format!("Created Secret {name} with generated credentials")),
        action: "Create".into(),
        secondary: Some(child_ref("v1", "Secret", namespace, name)),
    }
}

/// The child of a component switched off was deleted.
pub fn deleted(namespace: &str, absent: &Absent) -> Event {
    let kind = absent.kind.as_str();
    Event {
        type_: EventType::Normal,
        reason: "Deleted".into(),
        note: Some(format!(
            "Deleted {kind} {}: its component is off",
            absent.name
        )),
        action: "Delete".into(),
        secondary: Some(child_ref(
            absent.kind.api_version(),
            kind,
            namespace,
            &absent.name,
        )),
    }
}

/// The phase changed; `stuck` says why when it is `Degraded`.
pub fn phase_changed(phase: Phase, stuck: &[&str]) -> Event {
    let (type_, note) = match phase {
        Phase::Ready => (
            EventType::Normal,
            "Every component is available".to_string(),
        ),
        Phase::Degraded => (EventType::Warning, stuck.join("; ")),
        _ => (EventType::Normal, "Rolling out".to_string()),
    };
    Event {
        type_,
        reason: phase.as_str().into(),
        note: Some(note),
        action: "Reconcile".into(),
        secondary: None,
    }
}

/// A reconcile failed.
pub fn failed(error: &Error) -> Event {
    Event {
        type_: EventType::Warning,
        reason: error.reason().into(),
        note: Some(error.to_string()),
        action: "Reconcile".into(),
        secondary: None,
    }
}

fn child_ref(api_version: &str, kind: &str, namespace: &str, name: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some(api_version.to_string()),
        kind: Some(kind.to_string()),
        namespace: Some(namespace.to_string()),
        name: Some(name.to_string()),
        ..ObjectReference::default()
    }
}
