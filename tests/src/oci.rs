//! A minimal OCI distribution registry on loopback, serving one component in
//! the CNCF Wasm artifact format (manifest `application/vnd.oci.image.manifest.v1+json`,
//! config `application/vnd.wasm.config.v0+json`, layer `application/wasm`).
//! Enough of the distribution API for a real client: `GET /v2/`, manifests
//! by tag or digest, blobs by digest. It counts requests so tests can check
//! caching.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};

/// The registry; stops when dropped.
pub struct OciRegistry {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    manifest_digest: String,
    task: tokio::task::JoinHandle<()>,
}

fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

impl OciRegistry {
    /// Serves `wasm` as `{repo}:{tag}`.
    pub async fn start(repo: &str, tag: &str, wasm: Vec<u8>) -> anyhow::Result<OciRegistry> {
        OciRegistry::start_with_layer_type(repo, tag, wasm, "application/wasm").await
    }

    /// Serves `layer` as `{repo}:{tag}` with layer media type `layer_type`
    /// (e.g. a provider archive,
    /// `application/vnd.wasmcloud.provider.archive.layer.v1+par`).
    pub async fn start_with_layer_type(
        repo: &str,
        tag: &str,
        wasm: Vec<u8>,
        layer_type: &str,
    ) -> anyhow::Result<OciRegistry> {
        let config = br#"{"architecture":"wasm","os":"wasip2","layerDigests":[]}"#.to_vec();
        let layer_digest = digest(&wasm);
        let config_digest = digest(&config);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/wasm",
            "config": {"mediaType": "application/vnd.wasm.config.v0+json", "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": layer_type, "digest": layer_digest, "size": wasm.len()}]
        });
        let manifest = serde_json::to_vec(&manifest)?;
        let manifest_digest = digest(&manifest);
        let mut routes: HashMap<String, (&'static str, Bytes, String)> = HashMap::new();
        let manifest = Bytes::from(manifest);
        let m_type = "application/vnd.oci.image.manifest.v1+json";
        routes.insert(
            format!("/v2/{repo}/manifests/{tag}"),
            (m_type, manifest.clone(), manifest_digest.clone()),
        );
        routes.insert(
            format!("/v2/{repo}/manifests/{manifest_digest}"),
            (m_type, manifest, manifest_digest.clone()),
        );
        routes.insert(
            format!("/v2/{repo}/blobs/{config_digest}"),
            (
                "application/vnd.wasm.config.v0+json",
                config.into(),
                config_digest.clone(),
            ),
        );
        routes.insert(
            format!("/v2/{repo}/blobs/{layer_digest}"),
            ("application/wasm", wasm.into(), layer_digest.clone()),
        );
        routes.insert(
            "/v2/".to_string(),
            ("application/json", Bytes::from_static(b"{}"), String::new()),
        );
        let routes = Arc::new(routes);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let routes = routes.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let found = routes.get(req.uri().path()).cloned();
                        let head = req.method() == hyper::Method::HEAD;
                        async move {
                            match found {
                                Some((ty, body, body_digest)) => {
                                    let len = body.len();
                                    let body = if head { Bytes::new() } else { body };
                                    hyper::Response::builder()
                                        .header("content-type", ty)
                                        .header("content-length", len)
                                        .header("docker-content-digest", body_digest)
                                        .body(Full::new(body))
                                }
                                None => hyper::Response::builder().status(404).body(Full::new(Bytes::from_static(
                                    br#"{"errors":[{"code":"NAME_UNKNOWN","message":"not found"}]}"#,
                                ))),
                            }
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(OciRegistry {
            addr,
            requests,
            manifest_digest,
            task,
        })
    }

    /// `127.0.0.1:PORT`, the registry part of a reference.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Digest of the served manifest, for digest-pinned references.
    pub fn manifest_digest(&self) -> &str {
        &self.manifest_digest
    }

    /// Requests served so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for OciRegistry {
    fn drop(&mut self) {
        self.task.abort();
    }
}
