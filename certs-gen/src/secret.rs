//! `certs-gen create`, pure part: whether an existing Secret can be kept, and the Secret to write.

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};

use crate::cert::{self, Bundle, Host};
use crate::files::{CA_CRT, TLS_CRT, TLS_KEY};

/// The Secret type certs-gen writes.
pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

/// What to do with an existing Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The certificate serves every host, chains to `ca.crt` and is not due for renewal.
    Keep {
        /// When the certificate (or its CA, whichever is first) expires.
        expires: OffsetDateTime,
    },
    /// Replace the contents; `reason` says why, for the log line.
    Rotate {
        /// Why the current contents are not good enough.
        reason: String,
    },
    /// The Secret is not ours to change (wrong type, immutable); `reason` tells the operator.
    Refuse {
        /// What is wrong and what to do.
        reason: String,
    },
}

/// Decides, at `now`, whether `secret` can be kept for `hosts`, or must be rotated because it
/// lacks a key, holds something unparsable, does not serve a host, does not chain to its own
/// `ca.crt`, or expires within `renew_before`.
pub fn decide(
    secret: &Secret,
    hosts: &[Host],
    renew_before: Duration,
    now: OffsetDateTime,
) -> Decision {
    let secret_type = secret.type_.as_deref().unwrap_or("Opaque");
    if secret_type != TLS_SECRET_TYPE {
        return Decision::Refuse {
            reason: format!(
                "has type {secret_type}, not {TLS_SECRET_TYPE}, and a Secret's type cannot change; \
                 delete it or choose another --secret-name"
            ),
        };
    }
    let reason = match check(secret.data.as_ref(), hosts, renew_before, now) {
        Ok(expires) => return Decision::Keep { expires },
        Err(reason) => reason,
    };
    if secret.immutable == Some(true) {
        return Decision::Refuse {
            reason: format!("needs rotation ({reason}) but is immutable; delete it and run certs-gen create again"),
        };
    }
    Decision::Rotate { reason }
}

fn check(
    data: Option<&BTreeMap<String, ByteString>>,
    hosts: &[Host],
    renew_before: Duration,
    now: OffsetDateTime,
) -> Result<OffsetDateTime, String> {
    let get = |key: &str| {
        data.and_then(|d| d.get(key))
            .map(|v| v.0.as_slice())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("{key} is missing"))
    };
    let (ca_pem, crt_pem, key_pem) = (get(CA_CRT)?, get(TLS_CRT)?, get(TLS_KEY)?);
    let roots = cert::parse_pem_certs(ca_pem).map_err(|e| format!("{CA_CRT}: {e}"))?;
    let chain = cert::parse_pem_certs(crt_pem).map_err(|e| format!("{TLS_CRT}: {e}"))?;
    let leaf = chain
        .first()
        .ok_or_else(|| format!("{TLS_CRT}: no certificate"))?;
    cert::key_matches(key_pem, leaf)?;

    let leaf_expiry = cert::not_after(leaf)?;
    if leaf_expiry <= now {
        return Err(format!(
            "certificate expired at {}",
            cert::rfc3339(leaf_expiry)
        ));
    }
    for host in hosts {
        cert::verify_for_host(&roots, &chain, host, now).map_err(|e| format!("certificate {e}"))?;
    }
    // The chain verified, so an issuer is among the roots; its expiry bounds the leaf's usefulness.
    let expires = issuers_of(leaf, &roots)
        .filter_map(|ca| cert::not_after(ca).ok())
        .fold(leaf_expiry, OffsetDateTime::min);
    if expires - now <= renew_before {
        return Err(format!(
            "certificate expires at {}, within the renewal threshold of {} days",
            cert::rfc3339(expires),
            renew_before.whole_days()
        ));
    }
    Ok(expires)
}

/// The certificates of `cas` whose subject is the issuer of `leaf`.
fn issuers_of<'a>(
    leaf: &CertificateDer<'_>,
    cas: &'a [CertificateDer<'static>],
) -> impl Iterator<Item = &'a CertificateDer<'static>> {
    let issuer = x509_parser::parse_x509_certificate(leaf)
        .map(|(_, c)| c.tbs_certificate.issuer.as_raw().to_vec())
        .ok();
    cas.iter().filter(move |ca| {
        let subject = x509_parser::parse_x509_certificate(ca)
            .map(|(_, c)| c.tbs_certificate.subject.as_raw().to_vec())
            .ok();
        subject.is_some() && subject == issuer
    })
}

/// A new `kubernetes.io/tls` Secret holding `bundle`, carrying `labels` (the chart passes its
/// standard labels, so the Secret still names its release after an uninstall leaves it behind).
pub fn new_secret(
    namespace: &str,
    name: &str,
    bundle: &Bundle,
    labels: &BTreeMap<String, String>,
) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: (!labels.is_empty()).then(|| labels.clone()),
            ..ObjectMeta::default()
        },
        type_: Some(TLS_SECRET_TYPE.to_owned()),
        data: Some(bundle_data(bundle, None)),
        ..Secret::default()
    }
}

/// `existing` with its data replaced by `bundle`, metadata (labels, owners, resourceVersion for
/// optimistic concurrency) kept, and `labels` set over its labels.
///
/// The CA that issued the certificate being replaced stays in `ca.crt` after the new CA while it
/// is unexpired: pods still serving the old certificate remain trusted by a `caBundle` patched
/// from this Secret until they pick up the new one, so rotation has no outage window.
pub fn rotated_secret(
    existing: &Secret,
    bundle: &Bundle,
    labels: &BTreeMap<String, String>,
    now: OffsetDateTime,
) -> Secret {
    let previous_ca = previous_issuer_pem(existing.data.as_ref(), now);
    let mut metadata = existing.metadata.clone();
    merge_labels(&mut metadata, labels);
    Secret {
        metadata,
        type_: Some(TLS_SECRET_TYPE.to_owned()),
        data: Some(bundle_data(bundle, previous_ca)),
        immutable: existing.immutable,
        string_data: None,
    }
}

/// Parses `--label KEY=VALUE` arguments. The API server validates the syntax of keys and values;
/// this only rejects what cannot be a label at all.
pub fn parse_labels(args: &[String]) -> Result<BTreeMap<String, String>, crate::Error> {
    args.iter()
        .map(|arg| match arg.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
            _ => Err(crate::Error::InvalidArgument(format!(
                "--label {arg:?} is not KEY=VALUE (for example app.kubernetes.io/instance=guard)"
            ))),
        })
        .collect()
}

/// `existing` with `labels` set over its labels, or `None` when it already carries them all (a
/// Secret created before the chart passed labels gets them on the next upgrade).
pub fn relabeled_secret(existing: &Secret, labels: &BTreeMap<String, String>) -> Option<Secret> {
    let current = existing.metadata.labels.as_ref();
    let missing = labels
        .iter()
        .any(|(k, v)| current.and_then(|c| c.get(k)) != Some(v));
    if !missing {
        return None;
    }
    let mut relabeled = existing.clone();
    merge_labels(&mut relabeled.metadata, labels);
    Some(relabeled)
}

fn merge_labels(metadata: &mut ObjectMeta, labels: &BTreeMap<String, String>) {
    if labels.is_empty() {
        return;
    }
    let merged = metadata.labels.get_or_insert_with(BTreeMap::new);
    for (k, v) in labels {
        merged.insert(k.clone(), v.clone());
    }
}

fn bundle_data(bundle: &Bundle, previous_ca: Option<String>) -> BTreeMap<String, ByteString> {
    let mut ca = bundle.ca_pem.clone();
    if let Some(previous) = previous_ca {
        ca.push_str(&previous);
    }
    BTreeMap::from([
        (CA_CRT.to_owned(), ByteString(ca.into_bytes())),
        (
            TLS_CRT.to_owned(),
            ByteString(bundle.cert_pem.clone().into_bytes()),
        ),
        (
            TLS_KEY.to_owned(),
            ByteString(bundle.key_pem.clone().into_bytes()),
        ),
    ])
}

fn previous_issuer_pem(
    data: Option<&BTreeMap<String, ByteString>>,
    now: OffsetDateTime,
) -> Option<String> {
    let data = data?;
    let roots = cert::parse_pem_certs(&data.get(CA_CRT)?.0).ok()?;
    let chain = cert::parse_pem_certs(&data.get(TLS_CRT)?.0).ok()?;
    let issuer =
        issuers_of(chain.first()?, &roots).find(|ca| cert::not_after(ca).is_ok_and(|t| t > now))?;
    Some(to_pem(issuer))
}

fn to_pem(cert: &CertificateDer<'_>) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::{generate, parse_hosts};

    const THIRTY_DAYS: Duration = Duration::days(30);

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_780_000_000).unwrap()
    }

    fn hosts(names: &[&str]) -> Vec<Host> {
        parse_hosts(names).unwrap()
    }

    fn tls_secret(bundle: &Bundle) -> Secret {
        let mut secret = new_secret("guard", "guard-tls", bundle, &BTreeMap::new());
        secret.metadata.resource_version = Some("17".into());
        secret
    }

    fn with_data(mut secret: Secret, key: &str, value: Option<&[u8]>) -> Secret {
        let data = secret.data.get_or_insert_with(BTreeMap::new);
        match value {
            Some(v) => data.insert(key.into(), ByteString(v.to_vec())),
            None => data.remove(key),
        };
        secret
    }

    fn rotate_reason(decision: Decision) -> String {
        match decision {
            Decision::Rotate { reason } => reason,
            other => panic!("expected rotation, got {other:?}"),
        }
    }

    #[test]
    fn keeps_a_valid_secret() {
        let names = hosts(&["svc", "svc.ns.svc", "10.0.0.7"]);
        let bundle = generate(&names, 365, now() - Duration::days(10)).unwrap();
        assert_eq!(
            decide(&tls_secret(&bundle), &names, THIRTY_DAYS, now()),
            Decision::Keep {
                expires: bundle.not_after
            }
        );
        // A subset of the certificate's names is still served.
        assert!(matches!(
            decide(
                &tls_secret(&bundle),
                &hosts(&["svc.ns.svc"]),
                THIRTY_DAYS,
                now()
            ),
            Decision::Keep { .. }
        ));
    }

    #[test]
    fn rotates_when_a_key_is_missing_or_empty() {
        let names = hosts(&["svc.ns.svc"]);
        let bundle = generate(&names, 365, now()).unwrap();
        for key in [CA_CRT, TLS_CRT, TLS_KEY] {
            let secret = with_data(tls_secret(&bundle), key, None);
            assert_eq!(
                rotate_reason(decide(&secret, &names, THIRTY_DAYS, now())),
                format!("{key} is missing")
            );
            let secret = with_data(tls_secret(&bundle), key, Some(b""));
            assert_eq!(
                rotate_reason(decide(&secret, &names, THIRTY_DAYS, now())),
                format!("{key} is missing")
            );
        }
        let mut no_data = tls_secret(&bundle);
        no_data.data = None;
        assert_eq!(
            rotate_reason(decide(&no_data, &names, THIRTY_DAYS, now())),
            "ca.crt is missing"
        );
    }

    #[test]
    fn rotates_garbage() {
        let names = hosts(&["svc.ns.svc"]);
        let bundle = generate(&names, 365, now()).unwrap();
        let garbage =
            b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
        let reason = rotate_reason(decide(
            &with_data(tls_secret(&bundle), CA_CRT, Some(garbage)),
            &names,
            THIRTY_DAYS,
            now(),
        ));
        assert!(
            reason.starts_with("ca.crt: unparsable certificate"),
            "{reason}"
        );
        let reason = rotate_reason(decide(
            &with_data(tls_secret(&bundle), TLS_CRT, Some(b"hello")),
            &names,
            THIRTY_DAYS,
            now(),
        ));
        assert_eq!(reason, "tls.crt: no PEM certificate found");
        let reason = rotate_reason(decide(
            &with_data(tls_secret(&bundle), TLS_KEY, Some(b"hello")),
            &names,
            THIRTY_DAYS,
            now(),
        ));
        assert!(reason.starts_with("tls.key unusable"), "{reason}");
    }

    #[test]
    fn rotates_when_parts_do_not_belong_together() {
        let names = hosts(&["svc.ns.svc"]);
        let bundle = generate(&names, 365, now()).unwrap();
        let other = generate(&names, 365, now()).unwrap();
        let foreign_key = with_data(tls_secret(&bundle), TLS_KEY, Some(other.key_pem.as_bytes()));
        assert_eq!(
            rotate_reason(decide(&foreign_key, &names, THIRTY_DAYS, now())),
            "tls.key does not belong to tls.crt"
        );
        let foreign_ca = with_data(tls_secret(&bundle), CA_CRT, Some(other.ca_pem.as_bytes()));
        let reason = rotate_reason(decide(&foreign_ca, &names, THIRTY_DAYS, now()));
        assert!(
            reason.starts_with("certificate not valid for svc.ns.svc"),
            "{reason}"
        );
    }

    #[test]
    fn rotates_for_wrong_hosts() {
        let bundle = generate(&hosts(&["svc.ns.svc"]), 365, now()).unwrap();
        for wanted in [
            &["other.ns.svc"][..],
            &["svc.ns.svc", "svc.ns.svc.cluster.local"],
            &["127.0.0.1"],
        ] {
            let reason = rotate_reason(decide(
                &tls_secret(&bundle),
                &hosts(wanted),
                THIRTY_DAYS,
                now(),
            ));
            assert!(reason.starts_with("certificate not valid for"), "{reason}");
        }
    }

    #[test]
    fn rotates_expired_and_nearly_expired() {
        let names = hosts(&["svc.ns.svc"]);
        let bundle = generate(&names, 10, now() - Duration::days(11)).unwrap();
        let reason = rotate_reason(decide(&tls_secret(&bundle), &names, THIRTY_DAYS, now()));
        assert_eq!(
            reason,
            format!("certificate expired at {}", cert::rfc3339(bundle.not_after))
        );

        let bundle = generate(&names, 365, now() - Duration::days(340)).unwrap();
        let reason = rotate_reason(decide(&tls_secret(&bundle), &names, THIRTY_DAYS, now()));
        assert_eq!(
            reason,
            format!(
                "certificate expires at {}, within the renewal threshold of 30 days",
                cert::rfc3339(bundle.not_after)
            )
        );
        // The same certificate is fine with a shorter threshold.
        assert!(matches!(
            decide(&tls_secret(&bundle), &names, Duration::days(7), now()),
            Decision::Keep { .. }
        ));
    }

    #[test]
    fn refuses_foreign_secret_types_and_immutable_secrets_that_need_rotation() {
        let names = hosts(&["svc.ns.svc"]);
        let bundle = generate(&names, 365, now()).unwrap();
        let mut opaque = tls_secret(&bundle);
        opaque.type_ = None;
        assert!(
            matches!(decide(&opaque, &names, THIRTY_DAYS, now()), Decision::Refuse { reason } if reason.starts_with("has type Opaque"))
        );

        let mut immutable = tls_secret(&bundle);
        immutable.immutable = Some(true);
        assert!(matches!(
            decide(&immutable, &names, THIRTY_DAYS, now()),
            Decision::Keep { .. }
        ));
        let immutable = with_data(immutable, TLS_CRT, None);
        assert!(
            matches!(decide(&immutable, &names, THIRTY_DAYS, now()), Decision::Refuse { reason } if reason.contains("immutable"))
        );
    }

    #[test]
    fn new_secret_is_a_tls_secret() {
        let bundle = generate(&hosts(&["svc"]), 30, now()).unwrap();
        let secret = new_secret("guard", "guard-tls", &bundle, &BTreeMap::new());
        assert_eq!(secret.type_.as_deref(), Some(TLS_SECRET_TYPE));
        assert_eq!(secret.metadata.labels, None);
        assert_eq!(secret.metadata.namespace.as_deref(), Some("guard"));
        let data = secret.data.unwrap();
        assert_eq!(data[CA_CRT].0, bundle.ca_pem.as_bytes());
        assert_eq!(data[TLS_CRT].0, bundle.cert_pem.as_bytes());
        assert_eq!(data[TLS_KEY].0, bundle.key_pem.as_bytes());
    }

    #[test]
    fn rotation_keeps_metadata_and_the_previous_issuer_while_it_is_valid() {
        let names = hosts(&["svc.ns.svc"]);
        let old = generate(&names, 365, now() - Duration::days(340)).unwrap();
        let mut existing = tls_secret(&old);
        existing.metadata.labels = Some(BTreeMap::from([("app".into(), "guard".into())]));
        let new = generate(&names, 365, now()).unwrap();

        let rotated = rotated_secret(&existing, &new, &BTreeMap::new(), now());
        assert_eq!(rotated.metadata, existing.metadata);
        let data = rotated.data.unwrap();
        assert_eq!(
            String::from_utf8(data[CA_CRT].0.clone()).unwrap(),
            format!("{}{}", new.ca_pem, old.ca_pem)
        );
        assert_eq!(data[TLS_CRT].0, new.cert_pem.as_bytes());
        let roots = cert::parse_pem_certs(&data[CA_CRT].0).unwrap();
        // Both the old and the new serving certificates verify against the rotated bundle.
        for pem in [&old.cert_pem, &new.cert_pem] {
            let chain = cert::parse_pem_certs(pem.as_bytes()).unwrap();
            cert::verify_for_host(&roots, &chain, &names[0], now()).unwrap();
        }

        // An expired previous CA is dropped, and so is one that did not issue the old certificate.
        let expired = generate(&names, 10, now() - Duration::days(20)).unwrap();
        let data = rotated_secret(&tls_secret(&expired), &new, &BTreeMap::new(), now())
            .data
            .unwrap();
        assert_eq!(data[CA_CRT].0, new.ca_pem.as_bytes());
        let mismatched = with_data(tls_secret(&old), CA_CRT, Some(new.ca_pem.as_bytes()));
        let data = rotated_secret(
            &mismatched,
            &generate(&names, 365, now()).unwrap(),
            &BTreeMap::new(),
            now(),
        )
        .data
        .unwrap();
        assert_eq!(cert::parse_pem_certs(&data[CA_CRT].0).unwrap().len(), 1);
    }

    fn chart_labels() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".into(), "daemonset-guard".into()),
            ("app.kubernetes.io/instance".into(), "guard".into()),
            ("app.kubernetes.io/managed-by".into(), "Helm".into()),
            ("helm.sh/chart".into(), "daemonset-guard-0.1.0".into()),
        ])
    }

    #[test]
    fn labels_reach_new_rotated_and_kept_secrets() {
        let names = hosts(&["svc.ns.svc"]);
        let bundle = generate(&names, 365, now()).unwrap();
        let labels = chart_labels();

        let created = new_secret("guard", "guard-tls", &bundle, &labels);
        assert_eq!(created.metadata.labels.as_ref(), Some(&labels));

        // Rotation keeps a label someone else set and sets ours over stale values.
        let mut existing = tls_secret(&bundle);
        existing.metadata.labels = Some(BTreeMap::from([
            ("team".into(), "platform".into()),
            ("helm.sh/chart".into(), "daemonset-guard-0.0.9".into()),
        ]));
        let rotated = rotated_secret(&existing, &bundle, &labels, now());
        let got = rotated.metadata.labels.unwrap();
        assert_eq!(got["team"], "platform");
        assert_eq!(got["helm.sh/chart"], "daemonset-guard-0.1.0");
        assert_eq!(got["app.kubernetes.io/instance"], "guard");
        assert_eq!(got.len(), 5);

        // A kept Secret without the labels gets them once; then there is nothing to do.
        let relabeled = relabeled_secret(&existing, &labels).unwrap();
        assert_eq!(relabeled.data, existing.data);
        assert_eq!(relabeled.metadata.labels.as_ref().unwrap().len(), 5);
        assert_eq!(relabeled_secret(&relabeled, &labels), None);
        assert_eq!(relabeled_secret(&existing, &BTreeMap::new()), None);
    }

    #[test]
    fn label_arguments_parse() {
        let args = [
            "helm.sh/chart=daemonset-guard-0.1.0".to_string(),
            "empty=".into(),
        ];
        let labels = parse_labels(&args).unwrap();
        assert_eq!(labels["helm.sh/chart"], "daemonset-guard-0.1.0");
        assert_eq!(labels["empty"], "");
        for bad in ["novalue", "=x", ""] {
            let err = parse_labels(&[bad.to_string()]).unwrap_err().to_string();
            assert!(err.contains("KEY=VALUE"), "{bad}: {err}");
        }
    }
}
