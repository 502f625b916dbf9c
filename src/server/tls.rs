//! TLS: certificate and key loading (PKCS#8, PKCS#1 and SEC1 keys), the rustls server config,
//! a certificate resolver that reload can swap without touching the config or open connections,
//! and the in-memory development certificate.

use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a certificate, key or CA bundle was rejected.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what}: no CERTIFICATE block found")]
    NoCertificate { what: &'static str },
    #[error("{what}: {err}")]
    Pem {
        what: &'static str,
        err: rustls_pki_types::pem::Error,
    },
    #[error(
        "the key file has no private key: expected a PEM block PRIVATE KEY (PKCS#8), \
         RSA PRIVATE KEY (PKCS#1) or EC PRIVATE KEY (SEC1)"
    )]
    NoKey,
    #[error("the private key cannot be used: {0}")]
    Key(rustls::Error),
    #[error("the private key does not belong to the certificate: {0}")]
    Mismatch(rustls::Error),
    #[error("the certificate cannot be parsed: {0}")]
    Parse(String),
    #[error("the client CA bundle is not usable: {0}")]
    ClientCa(String),
    #[error("cannot build the TLS configuration: {0}")]
    Config(rustls::Error),
    #[error("cannot generate the development certificate: {0}")]
    DevCert(#[from] rcgen::Error),
}

/// The crypto provider used everywhere: ring, as compiled in.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate chain with its key, ready to serve, and what operators want to know about it.
#[derive(Clone, Debug)]
pub struct ServingCert {
    pub key: Arc<CertifiedKey>,
    /// notAfter of the leaf, as a Unix timestamp.
    pub not_after: i64,
    /// Serial number of the leaf (hex), to tell certificates apart in logs.
    pub serial: String,
}

/// Parses a PEM certificate chain (leaf first) and its private key, and checks that they belong
/// together.
pub fn load_pair(
    cert_pem: &[u8],
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<ServingCert, TlsError> {
    let chain = parse_certs(cert_pem, "the certificate file")?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|err| match err {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoKey,
        err => TlsError::Pem {
            what: "the key file",
            err,
        },
    })?;
    let (not_after, serial) = {
        let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0])
            .map_err(|e| TlsError::Parse(e.to_string()))?;
        (
            leaf.validity().not_after.timestamp(),
            leaf.raw_serial_as_string(),
        )
    };
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(TlsError::Key)?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // Some key types cannot report their public key; rustls itself accepts them.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(e) => return Err(TlsError::Mismatch(e)),
    }
    Ok(ServingCert {
        key: Arc::new(certified),
        not_after,
        serial,
    })
}

fn parse_certs(pem: &[u8], what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| TlsError::Pem { what, err })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { what });
    }
    Ok(certs)
}

/// Serves whatever certificate was loaded last. Reload swaps the `Arc`; handshakes in progress
/// and established connections keep the one they started with.
#[derive(Debug)]
pub struct CertResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertResolver {
    pub fn new(key: Arc<CertifiedKey>) -> Self {
        CertResolver {
            current: RwLock::new(key),
        }
    }

    /// Serves `key` to every later handshake.
    pub fn swap(&self, key: Arc<CertifiedKey>) {
        // A poisoned lock still holds a valid Arc: nothing panics while holding it.
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = key;
    }

    /// The certificate served now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The rustls config, built once: TLS 1.3 and 1.2 only, ALPN h2 then http/1.1, and client
/// certificates required when a client CA bundle is given.
pub fn server_config(
    resolver: Arc<CertResolver>,
    client_ca_pem: Option<&[u8]>,
    provider: Arc<CryptoProvider>,
) -> Result<ServerConfig, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?;
    let builder = match client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in parse_certs(pem, "the client CA file")? {
                roots
                    .add(cert)
                    .map_err(|e| TlsError::ClientCa(e.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::ClientCa(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// A throwaway CA and a leaf for `localhost`, `127.0.0.1` and `::1`, for development mode.
#[derive(Debug)]
pub struct DevCert {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// Generates a [`DevCert`] valid from an hour ago for two years, with the generator certs-gen
/// uses for clusters.
pub fn generate_dev_cert() -> Result<DevCert, TlsError> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use webhook_ca::San;
    let now = time::OffsetDateTime::now_utc();
    let issued = webhook_ca::issue(&webhook_ca::Request {
        ca_common_name: "daemonset-guard development CA",
        common_name: "daemonset-guard (development)",
        sans: &[
            San::Dns("localhost".into()),
            San::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            San::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        ],
        not_before: now - time::Duration::hours(1),
        not_after: now + time::Duration::days(2 * 365),
    })?;
    Ok(DevCert {
        ca_pem: issued.ca_pem,
        cert_pem: issued.cert_pem,
        key_pem: issued.key_pem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier as _;

    // Test-only keys, generated with `openssl genrsa -traditional 2048` and
    // `openssl ecparam -name prime256v1 -genkey`, plus their PKCS#8 forms (which rcgen needs to
    // sign a certificate for them).
    const RSA_PKCS1: &str = include_str!("testdata/rsa-pkcs1.pem");
    const RSA_PKCS8: &str = include_str!("testdata/rsa-pkcs8.pem");
    const EC_SEC1: &str = include_str!("testdata/ec-sec1.pem");
    const EC_PKCS8: &str = include_str!("testdata/ec-pkcs8.pem");

    fn cert_for(pkcs8_pem: &str) -> String {
        let key = rcgen::KeyPair::from_pem(pkcs8_pem).unwrap();
        rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem()
    }

    #[test]
    fn loads_pkcs8_pkcs1_and_sec1_keys() {
        let p = provider();
        for (pkcs8, other) in [(RSA_PKCS8, RSA_PKCS1), (EC_PKCS8, EC_SEC1)] {
            let cert = cert_for(pkcs8);
            for key in [pkcs8, other] {
                let loaded = load_pair(cert.as_bytes(), key.as_bytes(), &p)
                    .unwrap_or_else(|e| panic!("{e}: {}", key.lines().next().unwrap()));
                assert_eq!(loaded.key.cert.len(), 1);
                assert!(loaded.not_after > 0);
            }
        }
        assert!(EC_SEC1.contains("BEGIN EC PARAMETERS"));
        assert!(RSA_PKCS1.contains("BEGIN RSA PRIVATE KEY"));
    }

    #[test]
    fn rejects_broken_pairs_with_specific_errors() {
        let p = provider();
        let rsa_cert = cert_for(RSA_PKCS8);
        let cases: Vec<(Vec<u8>, Vec<u8>, &str)> = vec![
            (
                rsa_cert.clone().into(),
                EC_SEC1.into(),
                "does not belong to the certificate",
            ),
            (rsa_cert.clone().into(), b"".to_vec(), "no private key"),
            (
                rsa_cert.clone().into(),
                rsa_cert.clone().into(),
                "no private key",
            ),
            (b"".to_vec(), RSA_PKCS1.into(), "no CERTIFICATE block"),
            (
                b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n".to_vec(),
                RSA_PKCS1.into(),
                "the certificate file",
            ),
            (
                b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec(),
                RSA_PKCS1.into(),
                "cannot be parsed",
            ),
        ];
        for (cert, key, want) in cases {
            let err = load_pair(&cert, &key, &p).expect_err(want).to_string();
            assert!(err.contains(want), "{err:?} does not contain {want:?}");
        }
    }

    #[test]
    fn dev_cert_chains_to_its_ca_and_names_localhost() {
        let dev = generate_dev_cert().unwrap();
        let p = provider();
        let serving = load_pair(dev.cert_pem.as_bytes(), dev.key_pem.as_bytes(), &p).unwrap();
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(dev.ca_pem.as_bytes()).unwrap())
            .unwrap();
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), p)
                .build()
                .unwrap();
        for name in ["localhost", "127.0.0.1", "::1"] {
            let server_name = rustls_pki_types::ServerName::try_from(name).unwrap();
            verifier
                .verify_server_cert(
                    &serving.key.cert[0],
                    &[],
                    &server_name,
                    &[],
                    rustls_pki_types::UnixTime::now(),
                )
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn resolver_swaps_the_served_certificate() {
        let p = provider();
        let a = load_pair(cert_for(EC_PKCS8).as_bytes(), EC_PKCS8.as_bytes(), &p).unwrap();
        let b = load_pair(cert_for(RSA_PKCS8).as_bytes(), RSA_PKCS8.as_bytes(), &p).unwrap();
        let r = CertResolver::new(a.key.clone());
        assert!(Arc::ptr_eq(&r.current(), &a.key));
        r.swap(b.key.clone());
        assert!(Arc::ptr_eq(&r.current(), &b.key));
    }

    #[test]
    fn config_offers_h2_and_http11_and_accepts_a_client_ca() {
        let p = provider();
        let a = load_pair(cert_for(EC_PKCS8).as_bytes(), EC_PKCS8.as_bytes(), &p).unwrap();
        let r = Arc::new(CertResolver::new(a.key));
        let c = server_config(r.clone(), None, p.clone()).unwrap();
        assert_eq!(c.alpn_protocols, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
        let dev = generate_dev_cert().unwrap();
        server_config(r.clone(), Some(dev.ca_pem.as_bytes()), p.clone()).unwrap();
        let err = server_config(r, Some(b"nothing"), p)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("the client CA file: no CERTIFICATE block"),
            "{err}"
        );
    }
}
