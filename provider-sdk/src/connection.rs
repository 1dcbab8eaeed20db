//! [`Connection`]: what the serve closure of [`run`](crate::run) gets — the
//! wRPC server for this provider's exports, clients for calling linked
//! components, and the live link table.

use std::collections::HashMap;
use std::sync::Arc;

use async_nats::HeaderMap;
use bytes::Bytes;
use trellis_interfaces::provider::HostData;
use trellis_observability::propagation::W3cContext;
use trellis_wrpc::{ResultReader, TargetClient, Transport, headers};

use crate::context::Context;
use crate::control::SharedState;
use crate::links::LinkSnapshot;
use crate::trace::{ProviderServer, Traced};

/// A provider's connection to its lattice. Cheap to clone.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<ConnectionInner>,
}

struct ConnectionInner {
    host_data: HostData,
    nats: async_nats::Client,
    transport: Transport,
    server: ProviderServer,
    state: Arc<SharedState>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("provider_id", &self.provider_id())
            .field("lattice", &self.lattice())
            .field("host_id", &self.inner.host_data.host_id)
            .finish_non_exhaustive()
    }
}

impl Connection {
    pub(crate) fn new(
        host_data: HostData,
        nats: async_nats::Client,
        transport: Transport,
        state: Arc<SharedState>,
    ) -> Self {
        let prefix = wrpc_prefix(&host_data.lattice_rpc_prefix, &host_data.provider_key);
        let server = ProviderServer::new(
            transport.server(prefix.clone(), Some(prefix)),
            &host_data.provider_key,
        );
        Self {
            inner: Arc::new(ConnectionInner {
                host_data,
                nats,
                transport,
                server,
                state,
            }),
        }
    }

    /// The wRPC server for this provider's exports: subject prefix
    /// `{lattice}.{provider_id}`, queue group the same, so several instances
    /// of the provider share the calls. Pass it to the generated
    /// `serve(&conn.server(), handler)`. Each call served gets a
    /// `provider.serve` span when traces are on (see
    /// [`Context::trace`](crate::Context::trace)).
    pub fn server(&self) -> ProviderServer {
        self.inner.server.clone()
    }

    /// A client for calling the exports of `target` (a component or provider
    /// id), e.g. the source of a link on which this provider is the source.
    /// Pass it to generated client functions:
    /// `invoker::call(&conn.client_for("my-component"), None)`.
    ///
    /// Every call carries `source-id: {provider_id}` and `target-id: {target}`
    /// headers (as wasmCloud's provider clients do) unless the caller's own
    /// headers already set them, and W3C trace context: a call made while
    /// serving one should use [`ProviderClient::in_context`], so it joins the
    /// caller's trace.
    pub fn client_for(&self, target: &str) -> ProviderClient {
        let prefix = wrpc_prefix(self.lattice(), target);
        ProviderClient {
            inner: self.inner.transport.client().target(prefix),
            source_id: self.provider_id().to_string(),
            target_id: target.to_string(),
            parent: None,
        }
    }

    /// Host data as read at start.
    pub fn host_data(&self) -> &HostData {
        &self.inner.host_data
    }

    /// The links known now.
    pub fn links(&self) -> LinkSnapshot {
        self.inner.state.links()
    }

    /// The provider's merged named config now (start config, replaced by
    /// every config update).
    pub fn config(&self) -> HashMap<String, String> {
        self.inner.state.config()
    }

    /// This provider's id.
    pub fn provider_id(&self) -> &str {
        &self.inner.host_data.provider_key
    }

    /// The lattice name.
    pub fn lattice(&self) -> &str {
        &self.inner.host_data.lattice_rpc_prefix
    }

    /// Id of the host that started this process.
    pub fn host_id(&self) -> &str {
        &self.inner.host_data.host_id
    }

    /// The NATS connection, for anything beyond wRPC.
    pub fn nats(&self) -> &async_nats::Client {
        &self.inner.nats
    }

    /// The wRPC transport.
    pub fn transport(&self) -> &Transport {
        &self.inner.transport
    }
}

/// The wRPC subject prefix of `id`: `{lattice}.{id}` (PROTOCOL.md §3.1).
fn wrpc_prefix(lattice: &str, id: &str) -> String {
    format!("{lattice}.{id}")
}

/// A wRPC client for one target that adds `source-id` and `target-id`
/// headers to every call. Implements [`wrpc_transport::Invoke`], so it is
/// what generated client functions take.
#[derive(Clone)]
pub struct ProviderClient {
    inner: TargetClient,
    source_id: String,
    target_id: String,
    parent: Option<W3cContext>,
}

impl std::fmt::Debug for ProviderClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderClient")
            .field("prefix", &self.inner.prefix())
            .field("source_id", &self.source_id)
            .field("target_id", &self.target_id)
            .finish()
    }
}

impl ProviderClient {
    /// The underlying transport client, without the added headers.
    pub fn target_client(&self) -> &TargetClient {
        &self.inner
    }

    /// The id this client calls.
    pub fn target_id(&self) -> &str {
        &self.target_id
    }

    /// This client's calls continue the trace of the call `cx` describes
    /// (the provider's `provider.serve` span when traces are on, else the
    /// caller's `traceparent`, passed on unchanged).
    #[must_use]
    pub fn in_context(mut self, cx: &Context) -> Self {
        self.parent = cx.trace.clone();
        self
    }

    fn with_identity(&self, cx: Option<HeaderMap>) -> HeaderMap {
        let mut headers = cx.unwrap_or_default();
        if headers.get(headers::SOURCE_ID).is_none() {
            headers.insert(headers::SOURCE_ID, self.source_id.as_str());
        }
        if headers.get(headers::TARGET_ID).is_none() {
            headers.insert(headers::TARGET_ID, self.target_id.as_str());
        }
        headers
    }
}

impl wrpc_transport::Invoke for ProviderClient {
    type Context = Option<HeaderMap>;
    type Outgoing = <TargetClient as wrpc_transport::Invoke>::Outgoing;
    type Incoming = Traced<ResultReader>;

    fn invoke<P: AsRef<[Option<usize>]> + Send + Sync>(
        &self,
        cx: Self::Context,
        instance: &str,
        func: &str,
        params: Bytes,
        paths: impl AsRef<[P]> + Send,
    ) -> impl Future<Output = anyhow::Result<(Self::Outgoing, Self::Incoming)>> + Send {
        let mut headers = self.with_identity(cx);
        let span = crate::trace::call_span(
            &mut headers,
            self.parent.as_ref(),
            &self.source_id,
            &self.target_id,
            instance,
            func,
        );
        let call = self
            .inner
            .invoke(Some(headers), instance, func, params, paths);
        async move {
            match call.await {
                Ok((outgoing, incoming)) => Ok((outgoing, Traced::new(incoming, span))),
                Err(e) => {
                    crate::trace::fail(&span);
                    Err(e)
                }
            }
        }
    }
}
