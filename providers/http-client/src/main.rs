//! `http-client-provider`: outgoing HTTP for components as a capability
//! provider, the contract of wasmCloud's http-client provider (PROTOCOL.md
//! §4.4). It serves `wrpc:http/outgoing-handler@0.1.0.handle`, which a host
//! calls when a component's `wasi:http/outgoing-handler` is linked to this
//! provider (link `wasi:http`, interface `outgoing-handler`, component →
//! provider), and sends the request with one connection pool (HTTP/1.1 and
//! HTTPS, no redirects followed, no proxy). Bodies stream both ways.
//!
//! Config keys of wasmCloud's http-client (`load_native_certs`,
//! `load_webpki_certs`, `ssl_certs_file`) are accepted and not yet honoured:
//! the platform's trust store is used, as by `builtin://http-client`.

mod client;

use trellis_provider_sdk::{Connection, Provider};

/// The provider has no per-link state: every linked component may send.
#[derive(Default)]
struct HttpClient;

impl Provider for HttpClient {}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    trellis_provider_sdk::run(
        HttpClient,
        "http-client",
        async |conn: Connection, _provider| {
            let handler = client::Outgoing::new()?;
            let exports =
                trellis_wrpc_http::bindings::exports::wrpc::http::outgoing_handler::serve_interface(
                    &conn.server(),
                    handler,
                )
                .await?;
            trellis_provider_sdk::serve_exports(exports).await
        },
    )
    .await?;
    Ok(())
}
