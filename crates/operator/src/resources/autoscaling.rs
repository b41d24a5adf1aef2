//! The API's HorizontalPodAutoscaler (only with `spec.autoscaling`).

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};

use super::{Component, Stack};

impl Stack<'_> {
    /// Scales the API Deployment on CPU between the CacheMe's bounds. While it
    /// exists the operator leaves the Deployment's `replicas` alone.
    pub fn api_hpa(&self) -> Option<HorizontalPodAutoscaler> {
        let autoscaling = self.cm.spec.autoscaling.as_ref()?;
        Some(HorizontalPodAutoscaler {
            metadata: self.meta(self.child_name(Component::Api), Component::Api),
            spec: HorizontalPodAutoscalerSpec {
                scale_target_ref: CrossVersionObjectReference {
                    api_version: Some("apps/v1".to_string()),
                    kind: "Deployment".to_string(),
                    name: self.child_name(Component::Api),
                },
                min_replicas: Some(autoscaling.min_replicas),
                max_replicas: autoscaling.max_replicas,
                metrics: Some(vec![MetricSpec {
                    type_: "Resource".to_string(),
                    resource: Some(ResourceMetricSource {
                        name: "cpu".to_string(),
                        target: MetricTarget {
                            type_: "Utilization".to_string(),
                            average_utilization: Some(
                                autoscaling.target_cpu_utilization_percentage,
                            ),
                            ..MetricTarget::default()
                        },
                    }),
                    ..MetricSpec::default()
                }]),
                ..HorizontalPodAutoscalerSpec::default()
            },
            ..HorizontalPodAutoscaler::default()
        })
    }

    /// The most API replicas there can be: the autoscaler's maximum, else `replicas`.
    pub fn max_api_replicas(&self) -> i32 {
        match &self.cm.spec.autoscaling {
            Some(autoscaling) => autoscaling.max_replicas,
            None => self.cm.spec.replicas,
        }
    }

    /// Label selector of the API pods, as the scale subresource reports it.
    pub fn api_selector(&self) -> String {
        self.selector_labels(Component::Api)
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}
