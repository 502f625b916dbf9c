//! The cost floor of the webhook: the same TLS + HTTP + JSON stack as `daemonset-guard serve`,
//! with no policy. It parses each AdmissionReview body (every byte is scanned, as the real server
//! must) and answers with the request's uid in a minimal "allowed" reply.
//!
//! `examples/loadbench.rs` drives it next to the real server, so that the real server's numbers
//! read as a ratio to what the stack alone costs on the same machine, in the same run.
//!
//! ```text
//! cargo run --release --example baseline -- --listen 127.0.0.1:8443 --tls-cert tls.crt --tls-key tls.key
//! ```

use std::borrow::Cow;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use clap::Parser;
use daemonset_guard::server::tls;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Same as the admission server's limit: a little above the API server's 3 MiB object limit.
const BODY_LIMIT: usize = 3 * 1024 * 1024 + 512 * 1024;

#[derive(Parser, Debug)]
#[command(about = "Baseline admission server: TLS + HTTP + JSON, no policy")]
struct Args {
    /// Address to serve HTTPS on.
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// PEM certificate chain.
    #[arg(long)]
    tls_cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    #[arg(long)]
    tls_key: PathBuf,
}

#[derive(Deserialize)]
struct ReviewIn<'a> {
    #[serde(borrow)]
    request: RequestIn<'a>,
}

#[derive(Deserialize)]
struct RequestIn<'a> {
    #[serde(borrow)]
    uid: Cow<'a, str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewOut<'a> {
    api_version: &'static str,
    kind: &'static str,
    response: ResponseOut<'a>,
}

#[derive(Serialize)]
struct ResponseOut<'a> {
    uid: &'a str,
    allowed: bool,
}

/// The server's own TLS setup (same provider, versions, ALPN and certificate resolver).
fn tls_config(cert: &Path, key: &Path) -> anyhow::Result<rustls::ServerConfig> {
    let cert_pem = std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
    let key_pem = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
    let provider = tls::provider();
    let serving = tls::load_pair(&cert_pem, &key_pem, &provider)?;
    let resolver = Arc::new(tls::CertResolver::new(serving.key));
    Ok(tls::server_config(resolver, None, provider)?)
}

async fn admit(body: Bytes) -> Response {
    let review: ReviewIn<'_> = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let out = ReviewOut {
        api_version: "admission.k8s.io/v1",
        kind: "AdmissionReview",
        response: ResponseOut {
            uid: &review.request.uid,
            allowed: true,
        },
    };
    match serde_json::to_vec(&out) {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let acceptor = TlsAcceptor::from(Arc::new(tls_config(&args.tls_cert, &args.tls_key)?));
    let app = Router::new()
        .route("/validate", post(admit))
        .route("/mutate", post(admit))
        .route("/readyz", get(|| async { "ok" }))
        .route("/healthz", get(|| async { "ok" }))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT));
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    eprintln!("baseline listening on https://{}", listener.local_addr()?);
    // The server's connection settings (`serve` defaults), so both pay for the same timers.
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(20));
    let builder = Arc::new(builder);
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                eprintln!("accept: {e}");
                continue;
            }
        };
        // Without it, HTTP/2 replies wait for the peer's delayed ACK (Nagle): ~40 ms p99.
        if let Err(e) = tcp.set_nodelay(true) {
            eprintln!("TCP_NODELAY: {e}");
        }
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let _ = builder.serve_connection(TokioIo::new(tls), service).await;
        });
    }
}
