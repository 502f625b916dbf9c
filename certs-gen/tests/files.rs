//! `certs-gen files`: the written chain verifies with rustls/webpki for exactly the requested
//! names, the key belongs to the certificate and serves TLS, the validity window is as asked,
//! and files are written safely.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use certs_gen::cert::{self, BACKDATE};
use certs_gen::{files, Error, Outcome};
use rcgen::{KeyPair, PublicKeyData};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use time::{Duration, OffsetDateTime};

const HOSTS: &[&str] = &[
    "guard",
    "guard.guard-system",
    "guard.guard-system.svc",
    "guard.guard-system.svc.cluster.local",
    "127.0.0.1",
    "::1",
];

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_780_000_000).unwrap()
}

fn at(t: OffsetDateTime) -> UnixTime {
    UnixTime::since_unix_epoch(std::time::Duration::from_secs(t.unix_timestamp() as u64))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn write(dir: &Path, days: u32) {
    let hosts = cert::parse_hosts(HOSTS).unwrap();
    let bundle = cert::generate(&hosts, days, now()).unwrap();
    files::write_bundle(dir, &bundle, false).unwrap();
}

fn certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A verifier trusting only the generated `ca.crt`, built here rather than through the crate.
fn verifier(dir: &Path) -> Arc<WebPkiServerVerifier> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in certs(&dir.join("ca.crt")) {
        roots.add(ca).unwrap();
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .unwrap()
}

fn verify(dir: &Path, name: &str, time: OffsetDateTime) -> Result<(), rustls::Error> {
    let chain = certs(&dir.join("tls.crt"));
    let server_name = ServerName::try_from(name.to_owned()).unwrap();
    verifier(dir)
        .verify_server_cert(&chain[0], &chain[1..], &server_name, &[], at(time))
        .map(|_| ())
}

#[test]
fn chain_verifies_for_each_requested_name_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 30);
    for name in HOSTS {
        verify(dir.path(), name, now()).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for name in [
        "other.guard-system.svc",
        "guard.other",
        "guard.guard-system.svc.cluster",
        "127.0.0.2",
        "::2",
        "localhost",
    ] {
        let err = verify(dir.path(), name, now()).unwrap_err();
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForNameContext { .. }
                )
            ),
            "{name}: {err:?}"
        );
    }
}

#[test]
fn validity_window_is_as_requested() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 30);
    let leaf = &certs(&dir.path().join("tls.crt"))[0];
    let ca = &certs(&dir.path().join("ca.crt"))[0];
    for der in [leaf, ca] {
        let (_, parsed) = x509_parser::parse_x509_certificate(der).unwrap();
        assert_eq!(parsed.validity().not_before.to_datetime(), now() - BACKDATE);
        assert_eq!(
            parsed.validity().not_after.to_datetime(),
            now() + Duration::days(30)
        );
    }
    let (_, parsed) = x509_parser::parse_x509_certificate(ca).unwrap();
    assert!(parsed.is_ca());
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf).unwrap();
    assert!(!parsed.is_ca());

    verify(
        dir.path(),
        "guard",
        now() + Duration::days(30) - Duration::seconds(1),
    )
    .unwrap();
    let expired = verify(
        dir.path(),
        "guard",
        now() + Duration::days(30) + Duration::seconds(1),
    )
    .unwrap_err();
    assert!(format!("{expired:?}").contains("Expired"), "{expired:?}");
    let early = verify(dir.path(), "guard", now() - BACKDATE - Duration::seconds(1)).unwrap_err();
    assert!(format!("{early:?}").contains("NotValidYet"), "{early:?}");
}

#[test]
fn key_matches_certificate_and_serves_tls_with_rustls() {
    let dir = tempfile::tempdir().unwrap();
    // Real time here: the handshake checks validity against the clock.
    let hosts = cert::parse_hosts(HOSTS).unwrap();
    let bundle = cert::generate(&hosts, 1, OffsetDateTime::now_utc()).unwrap();
    files::write_bundle(dir.path(), &bundle, false).unwrap();

    let key_pem = std::fs::read_to_string(dir.path().join("tls.key")).unwrap();
    assert!(
        key_pem.starts_with("-----BEGIN PRIVATE KEY-----"),
        "PKCS#8 expected"
    );
    let key = PrivateKeyDer::from_pem_file(dir.path().join("tls.key")).unwrap();
    assert!(matches!(key, PrivateKeyDer::Pkcs8(_)));
    let chain = certs(&dir.path().join("tls.crt"));
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    let spki = KeyPair::from_pem(&key_pem)
        .unwrap()
        .subject_public_key_info();
    assert_eq!(leaf.tbs_certificate.subject_pki.raw, spki.as_slice());
    assert_eq!(
        leaf.tbs_certificate
            .subject_pki
            .algorithm
            .algorithm
            .to_id_string(),
        "1.2.840.10045.2.1",
        "ECDSA"
    );

    // An in-memory TLS handshake: the server proves possession of tls.key for tls.crt, and the
    // client trusts nothing but ca.crt.
    let server_config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(certs(&dir.path().join("ca.crt")));
    let client_config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut server = rustls::ServerConnection::new(Arc::new(server_config)).unwrap();
    let name = ServerName::try_from("guard.guard-system.svc").unwrap();
    let mut client = rustls::ClientConnection::new(Arc::new(client_config), name).unwrap();
    client.writer().write_all(b"ping").unwrap();
    for _ in 0..10 {
        let mut buf = Vec::new();
        client.write_tls(&mut buf).unwrap();
        server.read_tls(&mut buf.as_slice()).unwrap();
        server.process_new_packets().unwrap();
        let mut buf = Vec::new();
        server.write_tls(&mut buf).unwrap();
        client.read_tls(&mut buf.as_slice()).unwrap();
        client.process_new_packets().unwrap();
    }
    assert!(!client.is_handshaking() && !server.is_handshaking());
    let mut received = [0u8; 4];
    server.reader().read_exact(&mut received).unwrap();
    assert_eq!(&received, b"ping");
}

#[cfg(unix)]
#[test]
fn key_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 30);
    let mode = |name: &str| {
        std::fs::metadata(dir.path().join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("tls.key"), 0o600);
    for name in ["tls.crt", "ca.crt"] {
        assert_eq!(
            mode(name) & 0o022,
            0,
            "{name} must not be writable by others"
        );
    }
    // No temporary files are left behind.
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["ca.crt", "tls.crt", "tls.key"]);
}

#[test]
fn refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = cert::parse_hosts(&["guard"]).unwrap();
    let first = cert::generate(&hosts, 30, now()).unwrap();
    let second = cert::generate(&hosts, 30, now()).unwrap();
    let written = files::write_bundle(dir.path(), &first, false).unwrap();
    assert!(written
        .iter()
        .all(|(outcome, _)| *outcome == Outcome::Created));

    // Even one existing file blocks the whole write, before anything is written.
    std::fs::remove_file(dir.path().join("ca.crt")).unwrap();
    match files::write_bundle(dir.path(), &second, false) {
        Err(Error::FilesExist(paths)) => assert_eq!(
            paths,
            [dir.path().join("tls.crt"), dir.path().join("tls.key")]
        ),
        other => panic!("expected FilesExist, got {other:?}"),
    }
    assert!(!dir.path().join("ca.crt").exists());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("tls.key")).unwrap(),
        first.key_pem
    );

    let written = files::write_bundle(dir.path(), &second, true).unwrap();
    let outcomes: Vec<_> = written.iter().map(|(o, _)| *o).collect();
    assert_eq!(
        outcomes,
        [Outcome::Created, Outcome::Rotated, Outcome::Rotated]
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("tls.key")).unwrap(),
        second.key_pem
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("ca.crt")).unwrap(),
        second.ca_pem
    );
}

#[test]
fn rejects_bad_arguments() {
    assert!(matches!(
        cert::parse_hosts::<&str>(&[]),
        Err(Error::InvalidArgument(_))
    ));
    for bad in ["", "-leading.example", "trailing.dot.", "spa ce", "a..b"] {
        let err = cert::parse_hosts(&[bad]).unwrap_err();
        assert!(
            err.to_string().contains("neither a DNS name"),
            "{bad:?}: {err}"
        );
    }
    assert_eq!(
        cert::parse_hosts(&["Guard.NS", "guard.ns", "::1"])
            .unwrap()
            .len(),
        2
    );
    let hosts = cert::parse_hosts(&["guard"]).unwrap();
    assert!(cert::generate(&hosts, 0, now()).is_err());
    assert!(cert::generate(&hosts, cert::MAX_DAYS + 1, now()).is_err());
}

fn certs_gen(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_certs-gen"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn cli_reports_each_file_and_refuses_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");
    let out_string = out.display().to_string();
    let out_arg = out_string.as_str();
    let args = [
        "files",
        "--out",
        out_arg,
        "--host",
        "guard.ns.svc",
        "--host",
        "127.0.0.1",
        "--days",
        "7",
    ];

    let first = certs_gen(&args);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let expected: String = ["ca.crt", "tls.crt", "tls.key"]
        .iter()
        .map(|f| format!("created {}\n", out.join(f).display()))
        .collect();
    assert_eq!(String::from_utf8_lossy(&first.stdout), expected);
    let leaf_der = certs(&out.join("tls.crt")).remove(0);
    let (_, leaf) = x509_parser::parse_x509_certificate(&leaf_der).unwrap();
    let validity = leaf.validity();
    assert_eq!(
        validity.not_after.to_datetime() - validity.not_before.to_datetime(),
        Duration::days(7) + BACKDATE
    );

    let second = certs_gen(&args);
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("refusing to overwrite existing") && stderr.contains("--force"),
        "{stderr}"
    );

    let mut forced = args.to_vec();
    forced.push("--force");
    let third = certs_gen(&forced);
    assert!(third.status.success());
    assert_eq!(
        String::from_utf8_lossy(&third.stdout),
        expected.replace("created", "rotated")
    );

    let bad = certs_gen(&["files", "--out", out_arg, "--host", "not a host", "--force"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("\"not a host\" is neither a DNS name"));
}

#[test]
fn cli_patch_requires_a_configuration() {
    let out = certs_gen(&["patch", "--secret-namespace", "ns", "--secret-name", "tls"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--validating"));
}
