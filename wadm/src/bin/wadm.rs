//! `wadm`: the Trellis application deployment manager, started like wadm 0.21
//! (`wadm --nats-server 127.0.0.1:4222`). Today it serves the manifest store and the
//! `wadm.api` subjects for every lattice on that NATS server; the reconcile loop is
//! wired in later.

use anyhow::Context;
use clap::Parser;
use trellis_wadm::api::DEFAULT_API_PREFIX;
use trellis_wadm::server::{DEFAULT_MANIFEST_BUCKET, Server, ServerConfig};

/// Command-line flags (names and environment variables as wadm 0.21).
#[derive(Debug, Parser)]
#[command(
    name = "wadm",
    version,
    about = "Trellis wadm: application manifests and the wadm.api"
)]
struct Args {
    /// NATS server to connect to.
    #[arg(
        long = "nats-server",
        env = "WADM_NATS_SERVER",
        default_value = "127.0.0.1:4222"
    )]
    nats_server: String,
    /// Subject prefix of the API.
    #[arg(long = "api-prefix", env = "WADM_API_PREFIX", default_value = DEFAULT_API_PREFIX)]
    api_prefix: String,
    /// JetStream KV bucket holding the manifests.
    #[arg(long = "manifest-bucket-name", env = "WADM_MANIFEST_BUCKET_NAME", default_value = DEFAULT_MANIFEST_BUCKET)]
    manifest_bucket: String,
    /// Log filter (`RUST_LOG` syntax).
    #[arg(long = "log-level", env = "RUST_LOG", default_value = "info")]
    log_level: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log_level))
        .with_writer(std::io::stderr)
        .init();
    let client = async_nats::connect(&args.nats_server)
        .await
        .with_context(|| {
            format!(
                "cannot connect to NATS at {}; is nats-server running (with -js)?",
                args.nats_server
            )
        })?;
    let config = ServerConfig {
        api_prefix: args.api_prefix,
        manifest_bucket: args.manifest_bucket,
    };
    let server = Server::start(client, config)
        .await
        .context("cannot start the wadm API (JetStream must be enabled on the NATS server)")?;
    tokio::select! {
        result = server.serve() => result.context("wadm API stopped"),
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("interrupted; stopping");
            Ok(())
        }
    }
}
