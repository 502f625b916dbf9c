//! Clients for the server: reqwest over HTTP/1.1 or HTTP/2, raw TLS and raw HTTP/1.1.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::{Pair, Server, PATIENCE};

/// HTTP version a client speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Http {
    H1,
    H2,
}

impl Http {
    /// The only ALPN protocol a client of this version offers.
    pub fn alpn(self) -> &'static [&'static [u8]] {
        match self {
            Http::H1 => &[b"http/1.1"],
            Http::H2 => &[b"h2"],
        }
    }
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls client config trusting `ca_pem`, offering `alpn`, with an optional client
/// certificate.
pub fn client_config(
    ca_pem: &str,
    identity: Option<&Pair>,
    alpn: &[&[u8]],
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(pair) => {
            let chain = CertificateDer::pem_slice_iter(pair.cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(pair.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// reqwest over `http` with `tls` (its ALPN set to match).
pub fn http_client(tls: rustls::ClientConfig, http: Http) -> reqwest::Client {
    client_builder(tls, http).build().unwrap()
}

fn client_builder(mut tls: rustls::ClientConfig, http: Http) -> reqwest::ClientBuilder {
    tls.alpn_protocols = http.alpn().iter().map(|p| p.to_vec()).collect();
    let builder = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .tls_info(true)
        .timeout(PATIENCE)
        .no_proxy();
    match http {
        Http::H1 => builder.http1_only(),
        Http::H2 => builder.http2_prior_knowledge(),
    }
}

/// An HTTPS client for `http`, trusting `ca_pem`.
pub fn client(ca_pem: &str, http: Http) -> reqwest::Client {
    client_with(ca_pem, http, None, true)
}

/// An HTTPS client; `keep_alive: false` makes every request use a new connection (and so show
/// the certificate served now).
pub fn client_with(
    ca_pem: &str,
    http: Http,
    identity: Option<&Pair>,
    keep_alive: bool,
) -> reqwest::Client {
    let mut builder = client_builder(client_config(ca_pem, identity, &[]), http);
    if !keep_alive {
        builder = builder.pool_max_idle_per_host(0);
    }
    builder.build().unwrap()
}

/// A plain GET (the metrics listener speaks plain HTTP).
pub async fn get(url: &str) -> reqwest::Result<reqwest::Response> {
    // reqwest's default client needs a process-wide rustls provider even for plain HTTP.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(PATIENCE)
        .no_proxy()
        .build()?
        .get(url)
        .send()
        .await
}

/// POSTs an AdmissionReview the way the API server does.
pub async fn post_review(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
) -> reqwest::Result<reqwest::Response> {
    client
        .post(format!("{url}?timeout=5s"))
        .header("content-type", "application/json")
        .header("accept-encoding", "gzip")
        .header("user-agent", "kube-apiserver-admission")
        .body(body)
        .send()
        .await
}

/// DER of the certificate the server presented for this response.
pub fn peer_certificate(resp: &reqwest::Response) -> Vec<u8> {
    resp.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .expect("TLS info")
        .to_vec()
}

pub async fn tls_connect(
    addr: SocketAddr,
    config: rustls::ClientConfig,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let connector = TlsConnector::from(Arc::new(config));
    connector
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
}

/// The certificate a fresh TLS connection is served.
pub async fn served_cert(
    addr: SocketAddr,
    ca_pem: &str,
) -> std::io::Result<CertificateDer<'static>> {
    let tls = tls_connect(addr, client_config(ca_pem, None, &[])).await?;
    let (_, conn) = tls.get_ref();
    Ok(conn
        .peer_certificates()
        .and_then(|c| c.first())
        .cloned()
        .expect("the server presents a certificate"))
}

/// A parsed HTTP/1.1 response read from a raw stream.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `message` of a Kubernetes Status body (or the whole body).
    pub fn message(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| self.text())
    }
}

/// Reads one HTTP/1.1 response with a Content-Length body (what the server sends).
pub async fn read_response<S: AsyncReadExt + Unpin>(s: &mut S) -> std::io::Result<RawResponse> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "closed before a full response head: {:?}",
                    String::from_utf8_lossy(&buf)
                ),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line: {head}")))?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(len);
    Ok(RawResponse { status, head, body })
}

/// A raw HTTP/1.1 POST head (Connection: close).
pub fn post_head(path: &str, len: usize) -> String {
    format!(
        "POST {path}?timeout=5s HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
         content-length: {len}\r\nconnection: close\r\n\r\n"
    )
}

/// POSTs `body` over a fresh raw TLS connection and reads the response.
pub async fn raw_post(server: &Server, path: &str, body: &[u8]) -> std::io::Result<RawResponse> {
    let mut tls = server.tls(Http::H1.alpn()).await?;
    tls.write_all(post_head(path, body.len()).as_bytes())
        .await?;
    tls.write_all(body).await?;
    tls.flush().await?;
    read_response(&mut tls).await
}

/// p50 and p99 of latencies.
pub fn percentiles(mut v: Vec<std::time::Duration>) -> (std::time::Duration, std::time::Duration) {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    (at(0.50), at(0.99))
}
