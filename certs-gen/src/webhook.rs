//! `certs-gen patch`, pure part: the JSON Patch that injects `caBundle` (and optionally
//! `failurePolicy`) into a webhook configuration.

use base64::Engine as _;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use serde_json::{json, Value};

/// A webhook's `failurePolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Reject the request when the webhook cannot be called.
    Fail,
    /// Admit the request when the webhook cannot be called.
    Ignore,
}

impl FailurePolicy {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FailurePolicy::Fail => "Fail",
            FailurePolicy::Ignore => "Ignore",
        }
    }
}

impl std::str::FromStr for FailurePolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "Fail" => Ok(FailurePolicy::Fail),
            "Ignore" => Ok(FailurePolicy::Ignore),
            other => Err(format!(
                "failure policy {other:?} is neither Fail nor Ignore"
            )),
        }
    }
}

/// The fields of one webhook that `patch` may change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookState {
    /// `webhooks[].name`.
    pub name: String,
    /// Decoded `clientConfig.caBundle`.
    pub ca_bundle: Option<Vec<u8>>,
    /// `failurePolicy` (the API server defaults it to `Fail`).
    pub failure_policy: Option<String>,
}

/// A webhook configuration kind certs-gen can patch.
pub trait WebhookConfiguration {
    /// The kind, for messages.
    const KIND: &'static str;
    /// The resource (plural), for RBAC messages.
    const PLURAL: &'static str;
    /// The `certs-gen patch` option naming it.
    const FLAG: &'static str;
    /// Its webhooks, in order.
    fn webhook_states(&self) -> Vec<WebhookState>;
}

impl WebhookConfiguration for ValidatingWebhookConfiguration {
    const KIND: &'static str = "ValidatingWebhookConfiguration";
    const PLURAL: &'static str = "validatingwebhookconfigurations";
    const FLAG: &'static str = "--validating";

    fn webhook_states(&self) -> Vec<WebhookState> {
        self.webhooks
            .iter()
            .flatten()
            .map(|w| WebhookState {
                name: w.name.clone(),
                ca_bundle: w.client_config.ca_bundle.as_ref().map(|b| b.0.clone()),
                failure_policy: w.failure_policy.clone(),
            })
            .collect()
    }
}

impl WebhookConfiguration for MutatingWebhookConfiguration {
    const KIND: &'static str = "MutatingWebhookConfiguration";
    const PLURAL: &'static str = "mutatingwebhookconfigurations";
    const FLAG: &'static str = "--mutating";

    fn webhook_states(&self) -> Vec<WebhookState> {
        self.webhooks
            .iter()
            .flatten()
            .map(|w| WebhookState {
                name: w.name.clone(),
                ca_bundle: w.client_config.ca_bundle.as_ref().map(|b| b.0.clone()),
                failure_policy: w.failure_policy.clone(),
            })
            .collect()
    }
}

/// A JSON Patch and the webhooks it changes.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchPlan {
    /// RFC 6902 operations, ready to send as `application/json-patch+json`.
    pub ops: Value,
    /// Names of the webhooks that change.
    pub changed: Vec<String>,
}

/// Builds the patch setting `caBundle` to `ca_pem` (and `failurePolicy`, when given) on every
/// webhook, or `None` when all already have those values.
///
/// Webhooks are addressed by index, so the patch first sets `metadata.resourceVersion` to the
/// version it was computed from: the API server then rejects it with 409 Conflict if the object
/// changed meanwhile (a JSON Patch `test` would fail with an indistinct 422 instead).
pub fn build_patch(
    resource_version: &str,
    webhooks: &[WebhookState],
    ca_pem: &[u8],
    failure_policy: Option<FailurePolicy>,
) -> Option<PatchPlan> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let mut ops = vec![json!({
        "op": "replace",
        "path": "/metadata/resourceVersion",
        "value": resource_version,
    })];
    let mut changed = Vec::new();
    for (index, webhook) in webhooks.iter().enumerate() {
        let before = ops.len();
        if webhook.ca_bundle.as_deref() != Some(ca_pem) {
            ops.push(json!({
                "op": "add",
                "path": format!("/webhooks/{index}/clientConfig/caBundle"),
                "value": encoded,
            }));
        }
        if let Some(policy) = failure_policy {
            if webhook.failure_policy.as_deref() != Some(policy.as_str()) {
                ops.push(json!({
                    "op": "add",
                    "path": format!("/webhooks/{index}/failurePolicy"),
                    "value": policy.as_str(),
                }));
            }
        }
        if ops.len() > before {
            changed.push(webhook.name.clone());
        }
    }
    if changed.is_empty() {
        return None;
    }
    Some(PatchPlan {
        ops: Value::Array(ops),
        changed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &[u8] = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    fn state(name: &str, ca: Option<&[u8]>, policy: Option<&str>) -> WebhookState {
        WebhookState {
            name: name.into(),
            ca_bundle: ca.map(<[u8]>::to_vec),
            failure_policy: policy.map(str::to_owned),
        }
    }

    fn encoded() -> String {
        base64::engine::general_purpose::STANDARD.encode(CA)
    }

    #[test]
    fn sets_ca_bundle_on_every_webhook_after_pinning_the_resource_version() {
        let hooks = [
            state("a.example.com", None, Some("Fail")),
            state("b.example.com", Some(b"old"), None),
        ];
        let plan = build_patch("4711", &hooks, CA, None).unwrap();
        assert_eq!(
            plan.ops,
            json!([
                {"op": "replace", "path": "/metadata/resourceVersion", "value": "4711"},
                {"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": encoded()},
                {"op": "add", "path": "/webhooks/1/clientConfig/caBundle", "value": encoded()},
            ])
        );
        assert_eq!(plan.changed, ["a.example.com", "b.example.com"]);
    }

    #[test]
    fn nothing_to_do_when_every_webhook_has_the_bundle() {
        let hooks = [
            state("a", Some(CA), Some("Fail")),
            state("b", Some(CA), Some("Ignore")),
        ];
        assert_eq!(build_patch("1", &hooks, CA, None), None);
        assert_eq!(build_patch("1", &[], CA, Some(FailurePolicy::Fail)), None);
    }

    #[test]
    fn only_webhooks_that_differ_are_patched() {
        let hooks = [
            state("a", Some(CA), Some("Fail")),
            state("b", None, Some("Fail")),
        ];
        let plan = build_patch("9", &hooks, CA, Some(FailurePolicy::Fail)).unwrap();
        assert_eq!(
            plan.ops,
            json!([
                {"op": "replace", "path": "/metadata/resourceVersion", "value": "9"},
                {"op": "add", "path": "/webhooks/1/clientConfig/caBundle", "value": encoded()},
            ])
        );
        assert_eq!(plan.changed, ["b"]);
    }

    #[test]
    fn failure_policy_is_set_when_it_differs() {
        let hooks = [
            state("a", Some(CA), Some("Fail")),
            state("b", Some(CA), None),
        ];
        let plan = build_patch("9", &hooks, CA, Some(FailurePolicy::Ignore)).unwrap();
        assert_eq!(
            plan.ops,
            json!([
                {"op": "replace", "path": "/metadata/resourceVersion", "value": "9"},
                {"op": "add", "path": "/webhooks/0/failurePolicy", "value": "Ignore"},
                {"op": "add", "path": "/webhooks/1/failurePolicy", "value": "Ignore"},
            ])
        );
        let both = build_patch(
            "9",
            &[state("c", None, Some("Fail"))],
            CA,
            Some(FailurePolicy::Ignore),
        )
        .unwrap();
        assert_eq!(both.ops.as_array().unwrap().len(), 3);
        assert_eq!(both.changed, ["c"]);
    }

    #[test]
    fn failure_policy_parses_only_api_spellings() {
        assert_eq!("Fail".parse(), Ok(FailurePolicy::Fail));
        assert_eq!("Ignore".parse(), Ok(FailurePolicy::Ignore));
        assert!("fail".parse::<FailurePolicy>().is_err());
    }

    #[test]
    fn states_come_from_typed_configurations() {
        let config: ValidatingWebhookConfiguration = serde_json::from_value(json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "guard", "resourceVersion": "5"},
            "webhooks": [
                {"name": "a", "clientConfig": {"service": {"name": "s", "namespace": "n"}, "caBundle": encoded()},
                 "failurePolicy": "Ignore", "sideEffects": "None", "admissionReviewVersions": ["v1"]},
                {"name": "b", "clientConfig": {"url": "https://x"}, "sideEffects": "None", "admissionReviewVersions": ["v1"]}
            ]
        }))
        .unwrap();
        assert_eq!(
            config.webhook_states(),
            [state("a", Some(CA), Some("Ignore")), state("b", None, None)]
        );
    }
}
