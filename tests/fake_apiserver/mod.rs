//! A stand-in for kube-apiserver on 127.0.0.1 (plain HTTP/1.1) that replays the byte-exact
//! answers of a real v1.36.2 in `../shared/fixtures/apiserver-api/`, so the real `kube` client
//! can be tested without a cluster. Each route answers from a queue of replies; the last reply
//! repeats. A request no route matches gets the API server's own plain-text 404.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// The fixtures folder.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/apiserver-api")
}

/// A fixture's bytes.
pub fn fixture(name: &str) -> Vec<u8> {
    let p = fixtures().join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// What the fake server answers.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A whole body with a status and Content-Type.
    Body {
        status: u16,
        content_type: &'static str,
        body: Vec<u8>,
    },
    /// A watch stream: 200, chunked, one chunk per line of the ndjson, then the end of the stream.
    Watch(Vec<u8>),
    /// A watch that stays open without events until the test ends.
    Hang,
    /// The request body back as JSON with this status (what a create answers, minus the fields
    /// the server adds).
    Echo(u16),
}

impl Reply {
    /// A JSON fixture served with `status`.
    pub fn json(status: u16, name: &str) -> Reply {
        Reply::Body {
            status,
            content_type: "application/json",
            body: fixture(name),
        }
    }
    /// A watch fixture (`.ndjson`).
    pub fn watch(name: &str) -> Reply {
        Reply::Watch(fixture(name))
    }
    /// The API server's plain-text 404 for a path it does not serve (08b).
    pub fn not_found() -> Reply {
        Reply::Body {
            status: 404,
            content_type: "text/plain; charset=utf-8",
            body: fixture("08b-discovery-wgpolicy-before-crd-404.txt"),
        }
    }
}

/// One route: a method, a path, a test on the raw query, and the replies in order.
struct Route {
    method: &'static str,
    path: String,
    query: Box<dyn Fn(&str) -> bool + Send + Sync>,
    replies: Vec<Reply>,
    served: usize,
}

/// A request as received: `METHOD path?query`, and its body.
#[derive(Clone, Debug)]
pub struct Received {
    pub line: String,
    pub body: Vec<u8>,
}

#[derive(Default)]
struct State {
    routes: Vec<Route>,
    log: Vec<Received>,
}

/// The running fake server; it stops with the test process.
pub struct FakeApi {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

/// Whether the raw query holds `key=value` exactly.
pub fn has(query: &str, pair: &str) -> bool {
    query.split('&').any(|p| p == pair)
}

/// Whether the raw query has the parameter `key` at all.
pub fn has_key(query: &str, key: &str) -> bool {
    query.split('&').any(|p| p.split('=').next() == Some(key))
}

/// The path of every namespace's DaemonSets.
pub const ALL: &str = "/apis/apps/v1/daemonsets";

/// Whether the query asks for a watch.
pub fn is_watch(query: &str) -> bool {
    has(query, "watch=true") || has(query, "watch=1")
}

impl FakeApi {
    /// Starts the server on its own thread and runtime.
    pub fn start() -> FakeApi {
        let state = Arc::new(Mutex::new(State::default()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let st = state.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let st = st.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let st = st.clone();
                            async move { Ok::<_, Infallible>(answer(&st, req).await) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        });
        FakeApi { addr, state }
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds a route; routes are tried in the order they were added, and one whose replies are
    /// all served repeats its last reply.
    pub fn route(
        &self,
        method: &'static str,
        path: &str,
        query: impl Fn(&str) -> bool + Send + Sync + 'static,
        replies: Vec<Reply>,
    ) -> &Self {
        self.state.lock().unwrap().routes.push(Route {
            method,
            path: path.to_string(),
            query: Box::new(query),
            replies,
            served: 0,
        });
        self
    }

    /// Lists of every namespace's DaemonSets (`GET ALL` without `watch`) answer `replies`.
    pub fn lists(&self, replies: Vec<Reply>) -> &Self {
        self.route("GET", ALL, |q| !is_watch(q), replies)
    }

    /// Every request so far, in order.
    pub fn log(&self) -> Vec<Received> {
        self.state.lock().unwrap().log.clone()
    }

    /// The request lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.log().into_iter().map(|r| r.line).collect()
    }

    /// A kubeconfig file naming this server, in `dir`.
    pub fn kubeconfig(&self, dir: &std::path::Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n\
                 users:\n- name: auditor\n  user:\n    token: test-token\ncontexts:\n- name: fake\n  \
                 context:\n    cluster: fake\n    user: auditor\ncurrent-context: fake\n",
                self.url()
            ),
        )
        .unwrap();
        path
    }

    /// A client of this server.
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url().parse().unwrap());
        kube::Client::try_from(config).unwrap()
    }
}

type Body = BoxBody<Bytes, Infallible>;

async fn answer(state: &Mutex<State>, req: Request<hyper::body::Incoming>) -> Response<Body> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let echo = body.clone();
    let reply = {
        let mut st = state.lock().unwrap();
        st.log.push(Received {
            line: if query.is_empty() {
                format!("{method} {path}")
            } else {
                format!("{method} {path}?{query}")
            },
            body,
        });
        st.routes
            .iter_mut()
            .find(|r| r.method == method && r.path == path && (r.query)(&query))
            .map(|r| {
                let i = r.served.min(r.replies.len() - 1);
                r.served += 1;
                r.replies[i].clone()
            })
            .unwrap_or_else(Reply::not_found)
    };
    match reply {
        Reply::Body {
            status,
            content_type,
            body,
        } => Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)).boxed())
            .unwrap(),
        Reply::Watch(ndjson) => {
            let chunks: Vec<Result<Frame<Bytes>, Infallible>> = ndjson
                .split_inclusive(|b| *b == b'\n')
                .map(|l| Ok(Frame::data(Bytes::copy_from_slice(l))))
                .collect();
            Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(StreamBody::new(futures_util::stream::iter(chunks)).boxed())
                .unwrap()
        }
        Reply::Echo(status) => Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(echo)).boxed())
            .unwrap(),
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Response::new(Full::new(Bytes::new()).boxed())
        }
    }
}
