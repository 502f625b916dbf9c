//! Certificate generation and verification: a fresh single-use CA and one serving certificate.
//!
//! The CA's private key is never stored: it signs the serving certificate and is dropped, so
//! nobody can later mint other certificates that the webhook's `caBundle` would trust.

use std::net::IpAddr;
use std::sync::Arc;

use rcgen::{KeyPair, PublicKeyData};
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, DnsName, ServerName, UnixTime};
use time::{Duration, OffsetDateTime};

use crate::Error;

/// How far `notBefore` is set in the past, so that an API server whose clock lags ours a little
/// still accepts a certificate we just made.
pub const BACKDATE: Duration = Duration::hours(1);

/// Longest validity accepted, in days (100 years).
pub const MAX_DAYS: u32 = 36_500;

/// A name the serving certificate must be valid for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// A DNS name such as `svc.ns.svc` (lowercase).
    Dns(DnsName<'static>),
    /// An IP address such as `127.0.0.1`.
    Ip(IpAddr),
}

impl Host {
    /// Parses a DNS name or an IP address.
    pub fn parse(text: &str) -> Result<Host, Error> {
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Host::Ip(ip));
        }
        match DnsName::try_from(text.to_ascii_lowercase()) {
            Ok(name) if !text.ends_with('.') => Ok(Host::Dns(name)),
            _ => Err(Error::InvalidArgument(format!(
                "--host {text:?} is neither a DNS name (e.g. svc.ns.svc) nor an IP address"
            ))),
        }
    }

    /// The name as rustls verifies it.
    pub fn server_name(&self) -> ServerName<'static> {
        match self {
            Host::Ip(ip) => ServerName::IpAddress((*ip).into()),
            Host::Dns(name) => ServerName::DnsName(name.clone()),
        }
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Dns(name) => f.write_str(name.as_ref()),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// Parses `--host` values, dropping duplicates while keeping their order.
pub fn parse_hosts<S: AsRef<str>>(values: &[S]) -> Result<Vec<Host>, Error> {
    let mut hosts: Vec<Host> = Vec::new();
    for value in values {
        let host = Host::parse(value.as_ref().trim())?;
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    if hosts.is_empty() {
        return Err(Error::InvalidArgument(
            "at least one --host is required".into(),
        ));
    }
    Ok(hosts)
}

/// Checks `--days`.
pub fn check_days(days: u32) -> Result<(), Error> {
    if days == 0 || days > MAX_DAYS {
        return Err(Error::InvalidArgument(format!(
            "--days {days} is out of range: use 1..={MAX_DAYS}"
        )));
    }
    Ok(())
}

/// A freshly generated CA and serving certificate, all PEM.
#[derive(Clone, Debug)]
pub struct Bundle {
    /// The CA certificate (`ca.crt`).
    pub ca_pem: String,
    /// The serving certificate (`tls.crt`).
    pub cert_pem: String,
    /// The serving key, PKCS#8 (`tls.key`).
    pub key_pem: String,
    /// Start of validity of both certificates.
    pub not_before: OffsetDateTime,
    /// End of validity of both certificates.
    pub not_after: OffsetDateTime,
}

/// Generates an ECDSA P-256 CA and a serving certificate for `hosts`, valid from
/// `now - BACKDATE` until `now + days`.
pub fn generate(hosts: &[Host], days: u32, now: OffsetDateTime) -> Result<Bundle, Error> {
    check_days(days)?;
    if hosts.is_empty() {
        return Err(Error::InvalidArgument(
            "at least one --host is required".into(),
        ));
    }
    // Certificates carry whole seconds; truncating keeps the window exactly as requested.
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let not_before = now - BACKDATE;
    let not_after = now + Duration::days(i64::from(days));

    // The timestamp makes each generation's CA subject distinct, so a bundle holding the
    // previous CA too never has two issuers with one name.
    let sans: Vec<webhook_ca::San> = hosts
        .iter()
        .map(|host| match host {
            Host::Dns(dns) => webhook_ca::San::Dns(dns.as_ref().to_owned()),
            Host::Ip(ip) => webhook_ca::San::Ip(*ip),
        })
        .collect();
    let issued = webhook_ca::issue(&webhook_ca::Request {
        ca_common_name: &format!("certs-gen CA {}", now.unix_timestamp()),
        common_name: &common_name(hosts),
        sans: &sans,
        not_before,
        not_after,
    })?;

    Ok(Bundle {
        ca_pem: issued.ca_pem,
        cert_pem: issued.cert_pem,
        key_pem: issued.key_pem,
        not_before,
        not_after,
    })
}

/// The subject CN: informational only (clients match SANs), but it must fit the 64-character
/// X.509 bound, so prefer the shortest DNS name (usually the bare Service name).
fn common_name(hosts: &[Host]) -> String {
    hosts
        .iter()
        .filter_map(|h| match h {
            Host::Dns(name) if name.as_ref().len() <= 64 => Some(name.as_ref().to_owned()),
            _ => None,
        })
        .min_by_key(String::len)
        .unwrap_or_else(|| "certs-gen".to_owned())
}

/// Parses every certificate in a PEM text, failing on garbage or on none at all.
pub fn parse_pem_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM certificate found".into());
    }
    for cert in &certs {
        x509_parser::parse_x509_certificate(cert)
            .map_err(|e| format!("unparsable certificate: {e}"))?;
    }
    Ok(certs)
}

/// Verifies with rustls/webpki, at `now`, that the first certificate of `chain` is a serving
/// certificate for `host` issued by one of `roots` (later certificates of `chain` are
/// intermediates).
pub fn verify_for_host(
    roots: &[CertificateDer<'_>],
    chain: &[CertificateDer<'_>],
    host: &Host,
    now: OffsetDateTime,
) -> Result<(), String> {
    let (leaf, intermediates) = chain.split_first().ok_or("empty certificate chain")?;
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store
            .add(root.clone().into_owned())
            .map_err(|e| format!("CA certificate unusable as trust anchor: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
            .build()
            .map_err(|e| format!("cannot build verifier: {e}"))?;
    let seconds = u64::try_from(now.unix_timestamp()).map_err(|_| "time before 1970")?;
    let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds));
    verifier
        .verify_server_cert(leaf, intermediates, &host.server_name(), &[], now)
        .map(|_| ())
        .map_err(|e| format!("not valid for {host}: {e}"))
}

/// Whether the PEM private key `key_pem` is the key of certificate `cert`.
pub fn key_matches(key_pem: &[u8], cert: &CertificateDer<'_>) -> Result<(), String> {
    let text = std::str::from_utf8(key_pem).map_err(|_| "tls.key is not text")?;
    let key = KeyPair::from_pem(text).map_err(|e| format!("tls.key unusable: {e}"))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| format!("unparsable tls.crt: {e}"))?;
    if parsed.tbs_certificate.subject_pki.raw != key.subject_public_key_info().as_slice() {
        return Err("tls.key does not belong to tls.crt".into());
    }
    Ok(())
}

/// End of validity of a certificate.
pub fn not_after(cert: &CertificateDer<'_>) -> Result<OffsetDateTime, String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| format!("unparsable certificate: {e}"))?;
    Ok(parsed.validity().not_after.to_datetime())
}

/// Formats a time as RFC 3339 (UTC, seconds).
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}
