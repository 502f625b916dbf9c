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
pub fn decide(secret: &Secret, hosts: &[Host], renew_before: Duration, now: OffsetDateTime) -> Decision {
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
    let leaf = &chain[0];
    cert::key_matches(key_pem, leaf)?;

    let leaf_expiry = cert::not_after(leaf)?;
    if leaf_expiry <= now {
        return Err(format!("certificate expired at {}", cert::rfc3339(leaf_expiry)));
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

/// A new `kubernetes.io/tls` Secret holding `bundle`.
pub fn new_secret(namespace: &str, name: &str, bundle: &Bundle) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            ..ObjectMeta::default()
        },
        type_: Some(TLS_SECRET_TYPE.to_owned()),
        data: Some(bundle_data(bundle, None)),
        ..Secret::default()
    }
}

/// `existing` with its data replaced by `bundle`, metadata (labels, owners, resourceVersion for
/// optimistic concurrency) kept.
///
/// The CA that issued the certificate being replaced stays in `ca.crt` after the new CA while it
/// is unexpired: pods still serving the old certificate remain trusted by a `caBundle` patched
/// from this Secret until they pick up the new one, so rotation has no outage window.
pub fn rotated_secret(existing: &Secret, bundle: &Bundle, now: OffsetDateTime) -> Secret {
    let previous_ca = previous_issuer_pem(existing.data.as_ref(), now);
    Secret {
        metadata: existing.metadata.clone(),
        type_: Some(TLS_SECRET_TYPE.to_owned()),
        data: Some(bundle_data(bundle, previous_ca)),
        immutable: existing.immutable,
        string_data: None,
    }
}

fn bundle_data(bundle: &Bundle, previous_ca: Option<String>) -> BTreeMap<String, ByteString> {
    let mut ca = bundle.ca_pem.clone();
    if let Some(previous) = previous_ca {
        ca.push_str(&previous);
    }
    BTreeMap::from([
        (CA_CRT.to_owned(), ByteString(ca.into_bytes())),
        (TLS_CRT.to_owned(), ByteString(bundle.cert_pem.clone().into_bytes())),
        (TLS_KEY.to_owned(), ByteString(bundle.key_pem.clone().into_bytes())),
    ])
}

fn previous_issuer_pem(data: Option<&BTreeMap<String, ByteString>>, now: OffsetDateTime) -> Option<String> {
    let data = data?;
    let roots = cert::parse_pem_certs(&data.get(CA_CRT)?.0).ok()?;
    let chain = cert::parse_pem_certs(&data.get(TLS_CRT)?.0).ok()?;
    let issuer = issuers_of(&chain[0], &roots)
        .find(|ca| cert::not_after(ca).is_ok_and(|t| t > now))?;
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
