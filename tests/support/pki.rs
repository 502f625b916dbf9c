//! A test CA (rcgen) and a directory laid out like a mounted Kubernetes Secret.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// A PEM certificate and its key.
#[derive(Clone, Debug)]
pub struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Pair {
    /// DER of the certificate.
    pub fn der(&self) -> Vec<u8> {
        der(&self.cert_pem).to_vec()
    }
}

/// DER of the first certificate in `cert_pem`.
pub fn der(cert_pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()
}

/// A test CA that signs serving and client certificates.
pub struct Ca {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// Process-wide, so that no two leaves of any CA in a test share a serial: every rotation then
/// serves a certificate that differs in its bytes.
static SERIAL: AtomicU64 = AtomicU64::new(1);

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    fn leaf(&self, cn: &str, sans: Vec<SanType>, usage: ExtendedKeyUsagePurpose) -> Pair {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        params.serial_number = Some(SERIAL.fetch_add(1, Ordering::Relaxed).into());
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Pair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A serving certificate for 127.0.0.1 and localhost.
    pub fn server(&self) -> Pair {
        self.leaf(
            "daemonset-guard",
            vec![
                SanType::IpAddress([127, 0, 0, 1].into()),
                SanType::DnsName("localhost".try_into().unwrap()),
            ],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate, as the API server presents for mutual TLS.
    pub fn client(&self, cn: &str) -> Pair {
        self.leaf(cn, vec![], ExtendedKeyUsagePurpose::ClientAuth)
    }
}

/// A directory laid out like a mounted Kubernetes Secret: `tls.crt -> ..data/tls.crt`,
/// `..data -> ..<timestamp>`. [`SecretDir::publish`] updates it as the kubelet's atomic writer
/// does: a new version directory, one rename of `..data`, then the old version removed.
pub struct SecretDir {
    dir: tempfile::TempDir,
    state: Mutex<Versions>,
}

struct Versions {
    count: u64,
    current: Option<PathBuf>,
}

impl SecretDir {
    /// A Secret with `files` (name, content).
    pub fn new(files: &[(&str, &str)]) -> SecretDir {
        let s = SecretDir {
            dir: tempfile::tempdir().unwrap(),
            state: Mutex::new(Versions {
                count: 0,
                current: None,
            }),
        };
        s.publish(files);
        for (name, _) in files {
            std::os::unix::fs::symlink(format!("..data/{name}"), s.path(name)).unwrap();
        }
        s
    }

    /// A `kubernetes.io/tls` Secret holding `pair`.
    pub fn tls(pair: &Pair) -> SecretDir {
        SecretDir::new(&tls_files(pair))
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root().join(name)
    }

    pub fn cert(&self) -> PathBuf {
        self.path("tls.crt")
    }

    pub fn key(&self) -> PathBuf {
        self.path("tls.key")
    }

    /// Publishes a new version of every file at once.
    pub fn publish(&self, files: &[(&str, &str)]) {
        let mut state = self.state.lock().unwrap();
        state.count += 1;
        let n = state.count;
        let name = format!("..2026_01_01_00_00_{:02}.{n}", n % 60);
        let dir = self.path(&name);
        std::fs::create_dir(&dir).unwrap();
        for (file, content) in files {
            std::fs::write(dir.join(file), content).unwrap();
        }
        let tmp = self.path("..data_tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&name, &tmp).unwrap();
        std::fs::rename(&tmp, self.path("..data")).unwrap();
        if let Some(old) = state.current.replace(dir) {
            std::fs::remove_dir_all(old).unwrap();
        }
    }

    /// Publishes a new `tls.crt` and `tls.key`.
    pub fn publish_tls(&self, pair: &Pair) {
        self.publish(&tls_files(pair));
    }
}

fn tls_files(pair: &Pair) -> [(&'static str, &str); 2] {
    [("tls.crt", &pair.cert_pem), ("tls.key", &pair.key_pem)]
}

/// Writes `text` to `path` atomically (write, then rename), so a poll never sees half a file.
pub fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
