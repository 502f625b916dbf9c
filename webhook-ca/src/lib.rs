//! The one generator of TLS material for the daemonset-guard webhook: a fresh ECDSA P-256 CA and
//! one serving certificate signed by it. `certs-gen` uses it for clusters, the server for its
//! development mode. The CA's private key is dropped once it has signed, so nobody can later mint
//! other certificates that a bundle holding this CA would trust.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256,
};
use time::OffsetDateTime;

pub use rcgen::Error;

/// A name the serving certificate is valid for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum San {
    /// A DNS name such as `svc.ns.svc`.
    Dns(String),
    /// An IP address such as `127.0.0.1`.
    Ip(IpAddr),
}

/// What to issue.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// Subject CN of the CA.
    pub ca_common_name: &'a str,
    /// Subject CN of the serving certificate (informational: clients match the SANs).
    pub common_name: &'a str,
    pub sans: &'a [San],
    /// Validity of both certificates.
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// A CA and its serving certificate, all PEM.
#[derive(Clone, Debug)]
pub struct Issued {
    pub ca_pem: String,
    pub cert_pem: String,
    /// PKCS#8.
    pub key_pem: String,
}

/// Generates a CA (path length 0) and a serving certificate (server auth only) for `req.sans`.
pub fn issue(req: &Request<'_>) -> Result<Issued, Error> {
    let mut ca_params = CertificateParams::default();
    let mut ca_name = DistinguishedName::new();
    ca_name.push(DnType::CommonName, req.ca_common_name);
    ca_params.distinguished_name = ca_name;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = req.not_before;
    ca_params.not_after = req.not_after;
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, req.common_name);
    params.distinguished_name = name;
    params.subject_alt_names = req
        .sans
        .iter()
        .map(|san| match san {
            San::Dns(dns) => Ok(SanType::DnsName(dns.as_str().try_into()?)),
            San::Ip(ip) => Ok(SanType::IpAddress(*ip)),
        })
        .collect::<Result<_, Error>>()?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = req.not_before;
    params.not_after = req.not_after;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Issued {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}
