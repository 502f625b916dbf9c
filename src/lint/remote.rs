//! `lint --remote`: posts each input to a running server's `/lint` (hyper over tokio-rustls) and
//! takes its report, so the CLI prints exactly what the server decides with its own policy.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{header, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

use super::report::{ErrorKind, FileReport, InputError, Report};
use super::LintQuery;

/// How long one request may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(60);
/// The largest report accepted back.
const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;
/// Waiting on `503` answers, in all, before the last one is reported: the server's `/lint`
/// runs one request at a time by default, so CI jobs sharing it take turns.
const BUSY_PATIENCE: Duration = Duration::from_secs(30);
/// The longest single wait, whatever `Retry-After` asks.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);
/// Where distributions keep the system CA bundle.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
];

/// A `/lint` endpoint and how to reach it.
pub(crate) struct Remote {
    host: String,
    port: u16,
    authority: String,
    path: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    runtime: tokio::runtime::Runtime,
}

fn load_roots(ca_cert: Option<&Path>) -> Result<rustls::RootCertStore, String> {
    let path = match ca_cert {
        Some(p) => p.to_path_buf(),
        None => std::env::var_os("SSL_CERT_FILE")
            .map(Into::into)
            .or_else(|| {
                SYSTEM_BUNDLES
                    .iter()
                    .map(Path::new)
                    .find(|p| p.is_file())
                    .map(Path::to_path_buf)
            })
            .ok_or("no system CA bundle found; pass --ca-cert with the server's CA")?,
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(roots)
}

impl Remote {
    /// Parses `url` (`https://host:port[/prefix]`; `/lint` is appended unless the path ends with
    /// it) and loads the trust roots.
    pub fn new(url: &str, ca_cert: Option<&Path>) -> Result<Remote, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("--remote {url:?} is not a URL: {e}"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("--remote {url:?}: use an https:// URL")),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("--remote {url:?} has no host"))?
            .clone();
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let base = uri.path().trim_end_matches('/');
        let path = if base.ends_with("/lint") {
            base.to_string()
        } else {
            format!("{base}/lint")
        };
        let tls = if https {
            let roots = load_roots(ca_cert)?;
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS setup: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Some(Arc::new(config))
        } else {
            None
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))?;
        Ok(Remote {
            host,
            port,
            authority: authority.to_string(),
            path,
            tls,
            runtime,
        })
    }

    fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}{}", self.authority, self.path)
    }

    /// Lints one input through the server. Errors carry `source` so they read like local ones.
    pub fn lint(
        &self,
        source: &str,
        body: &[u8],
        query: &LintQuery,
    ) -> Result<FileReport, Vec<InputError>> {
        let remote_error = |msg: String| vec![InputError::new(source, ErrorKind::Remote, msg)];
        let mut params = Vec::new();
        for (k, v) in [
            ("namespace", &query.namespace),
            ("operation", &query.operation),
            ("format", &query.format),
        ] {
            if let Some(v) = v {
                params.push(format!("{k}={}", encode(v)));
            }
        }
        let target = if params.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, params.join("&"))
        };
        let mut waited = Duration::ZERO;
        let (status, bytes) = loop {
            let (status, retry_after, bytes) = self
                .runtime
                .block_on(async {
                    tokio::time::timeout(TIMEOUT, self.send(&target, body.to_vec())).await
                })
                .map_err(|_| remote_error(format!("{}: no answer within {TIMEOUT:?}", self.url())))?
                .map_err(|e| remote_error(format!("{}: {e}", self.url())))?;
            // Busy: come back when the server says, within our patience.
            match retry_after {
                Some(wait) if status == StatusCode::SERVICE_UNAVAILABLE => {
                    let wait = wait.min(MAX_RETRY_AFTER);
                    if waited + wait > BUSY_PATIENCE {
                        break (status, bytes);
                    }
                    waited += wait;
                    std::thread::sleep(wait);
                }
                _ => break (status, bytes),
            }
        };
        let text = String::from_utf8_lossy(&bytes);
        if status == StatusCode::OK {
            let mut report: Report = serde_json::from_slice(&bytes).map_err(|e| {
                remote_error(format!(
                    "{}: the answer is not a lint report: {e}",
                    self.url()
                ))
            })?;
            if report.files.len() != 1 {
                return Err(remote_error(format!(
                    "{}: expected a report of one input, got {}",
                    self.url(),
                    report.files.len()
                )));
            }
            let mut file = report.files.remove(0);
            file.source = source.to_string();
            return Ok(file);
        }
        #[derive(serde::Deserialize)]
        struct ErrorBody {
            errors: Vec<InputError>,
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(b) if !b.errors.is_empty() => Err(b
                .errors
                .into_iter()
                .map(|e| InputError {
                    source: source.to_string(),
                    ..e
                })
                .collect()),
            _ => Err(remote_error(format!(
                "{} answered {status}: {}",
                self.url(),
                text.trim()
            ))),
        }
    }

    /// One request: the status, the `Retry-After` delay (in seconds form) and the body.
    async fn send(&self, target: &str, body: Vec<u8>) -> Result<Answer, String> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        // The request goes out in one write, the answer in one read: no Nagle delay wanted.
        let _ = tcp.set_nodelay(true);
        let request = Request::post(target)
            .header(header::HOST, &self.authority)
            .header(header::CONTENT_TYPE, "application/yaml")
            .header(header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        match &self.tls {
            None => exchange(TokioIo::new(tcp), request).await,
            Some(config) => {
                let name = ServerName::try_from(self.host.clone())
                    .map_err(|e| format!("invalid server name {:?}: {e}", self.host))?;
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS handshake failed: {e}"))?;
                exchange(TokioIo::new(tls), request).await
            }
        }
    }
}

type Answer = (StatusCode, Option<Duration>, Bytes);

async fn exchange<I>(io: I, request: Request<Full<Bytes>>) -> Result<Answer, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    let driver = tokio::spawn(conn);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map_err(|e| format!("cannot read the answer: {e}"))?
        .to_bytes();
    drop(sender);
    driver.abort();
    Ok((status, retry_after, body))
}

/// Percent-encodes a query value.
fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_get_the_lint_path() {
        let r = Remote::new("http://127.0.0.1:8080", None).unwrap();
        assert_eq!(r.url(), "http://127.0.0.1:8080/lint");
        let r = Remote::new("http://[::1]:9/x/lint/", None).unwrap();
        assert_eq!((r.host.as_str(), r.port), ("::1", 9));
        assert_eq!(r.url(), "http://[::1]:9/x/lint");
        assert!(Remote::new("ftp://x", None).is_err());
        assert!(
            Remote::new("https://x", Some(Path::new("/nonexistent.pem")))
                .is_err_and(|e| e.contains("/nonexistent.pem"))
        );
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode("a b&c"), "a%20b%26c");
    }
}
