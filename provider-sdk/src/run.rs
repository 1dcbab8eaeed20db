//! [`run`]: the life of a provider process, from host data on stdin to the
//! host's shutdown request.

use std::sync::Arc;

use trellis_interfaces::provider::HostData;
use trellis_wrpc::{Transport, TransportOptions};

use crate::connection::Connection;
use crate::control::{ControlPlane, SharedState};
use crate::error::RunError;
use crate::provider::{InitContext, Provider};

/// Runs a provider: reads host data from stdin, sets up logging, connects to
/// the lattice, calls [`Provider::init`], delivers the start links, then runs
/// `serve` next to the control loop until the host asks this provider to stop
/// (or SIGTERM/SIGINT arrives).
///
/// `serve` gets the [`Connection`] and the provider; it typically starts the
/// generated `serve` of the provider's exports and drives the invocations
/// with [`serve_exports`](crate::serve_exports). When it returns `Ok` early
/// (a provider that exports nothing) the provider keeps running until
/// shutdown; when it returns an error, `run` returns [`RunError::Serve`].
///
/// `name` is the provider's human name, used as the NATS connection name and
/// in logs.
pub async fn run<P, S>(provider: P, name: &str, serve: S) -> Result<(), RunError>
where
    P: Provider,
    S: AsyncFnOnce(Connection, Arc<P>) -> anyhow::Result<()>,
{
    let host_data = tokio::task::spawn_blocking(crate::host_data::read_host_data)
        .await
        .map_err(|e| RunError::Nats(format!("reading stdin failed: {e}")))??;
    run_with_host_data(provider, name, host_data, serve).await
}

/// [`run`] with host data from elsewhere (tests, or an application that
/// embeds a provider and builds host data itself).
pub async fn run_with_host_data<P, S>(
    provider: P,
    name: &str,
    host_data: HostData,
    serve: S,
) -> Result<(), RunError>
where
    P: Provider,
    S: AsyncFnOnce(Connection, Arc<P>) -> anyhow::Result<()>,
{
    // Flushes the provider's spans and logs when `run` returns.
    let _observability = crate::logging::init_observability(&host_data, name);
    tracing::info!(
        provider = name,
        provider_id = %host_data.provider_key,
        host_id = %host_data.host_id,
        lattice = %host_data.lattice_rpc_prefix,
        "provider starting"
    );
    let provider = Arc::new(provider);
    let nats = connect(&host_data, name).await?;
    let mut options = TransportOptions::default();
    if let Some(ms) = host_data.default_rpc_timeout_ms.filter(|ms| *ms > 0) {
        options.default_timeout = std::time::Duration::from_millis(ms);
    }
    let transport = Transport::new(nats.clone(), options)
        .await
        .map_err(|e| RunError::Transport(e.to_string()))?;
    let state = Arc::new(SharedState::new(
        &host_data.provider_key,
        host_data.config.clone(),
    ));
    let control = ControlPlane::new(
        Arc::clone(&provider),
        nats.clone(),
        &host_data,
        Arc::clone(&state),
    );
    let subscriptions = control.subscribe().await?;

    let init = InitContext {
        provider_id: host_data.provider_key.clone(),
        host_id: host_data.host_id.clone(),
        lattice: host_data.lattice_rpc_prefix.clone(),
        config: host_data.config.clone(),
        secrets: host_data.secrets.clone(),
    };
    provider.init(&init).await.map_err(RunError::Init)?;
    control
        .deliver_startup_links(&host_data.link_definitions)
        .await;

    let connection = Connection::new(host_data, nats, transport, state);
    let control = control.run(subscriptions);
    tokio::pin!(control);
    let serve = serve(connection, Arc::clone(&provider));
    tokio::pin!(serve);
    let end = tokio::select! {
        end = &mut control => end?,
        result = &mut serve => {
            result.map_err(RunError::Serve)?;
            tracing::debug!("serve returned; the control plane keeps running until shutdown");
            control.await?
        }
    };
    tracing::info!(?end, "provider stopped");
    Ok(())
}

/// Connects to `lattice_rpc_url`, with the JWT and seed from host data when
/// both are set.
async fn connect(host_data: &HostData, name: &str) -> Result<async_nats::Client, RunError> {
    let mut options = async_nats::ConnectOptions::new()
        .name(format!("{name} ({})", host_data.provider_key))
        .reconnect_delay_callback(trellis_interfaces::reconnect::reconnect_delay);
    let jwt = host_data.lattice_rpc_user_jwt.trim();
    let seed = host_data.lattice_rpc_user_seed.trim();
    match (jwt.is_empty(), seed.is_empty()) {
        (true, true) => {}
        (false, false) => {
            let key = Arc::new(
                nkeys::KeyPair::from_seed(seed)
                    .map_err(|e| RunError::Credentials(format!("lattice_rpc_user_seed: {e}")))?,
            );
            options = options.jwt(jwt.to_string(), move |nonce| {
                let key = Arc::clone(&key);
                async move { key.sign(&nonce).map_err(async_nats::AuthError::new) }
            });
        }
        (true, false) => options = options.nkey(seed.to_string()),
        (false, true) => {
            return Err(RunError::Credentials(
                "lattice_rpc_user_jwt is set but lattice_rpc_user_seed is empty".into(),
            ));
        }
    }
    let url = if host_data.lattice_rpc_url.trim().is_empty() {
        DEFAULT_NATS_URL.to_string()
    } else {
        host_data.lattice_rpc_url.clone()
    };
    options
        .connect(url.as_str())
        .await
        .map_err(|e| RunError::Connect {
            url,
            message: e.to_string(),
        })
}

/// NATS URL used when host data leaves `lattice_rpc_url` empty (wasmCloud's
/// default).
const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
