//! NATS for a local stack: reuse one already listening, else run
//! `nats-server` with JetStream from a generated `nats.conf` (a leaf node of
//! a remote NATS when `--nats-remote-url` is given).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};

/// How long one TCP probe of the NATS port may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// What the generated `nats.conf` says.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// Address to listen on.
    pub host: String,
    /// Client port.
    pub port: u16,
    /// JetStream store directory.
    pub store_dir: PathBuf,
    /// JetStream domain (needed when a leaf node's JetStream must stay apart
    /// from the hub's).
    pub js_domain: Option<String>,
    /// Remote NATS to connect to as a leaf node.
    pub remote_url: Option<String>,
    /// Credentials file for the leaf connection.
    pub credsfile: Option<PathBuf>,
}

impl NatsConfig {
    /// The configuration file's text. Strings are JSON-quoted, which the NATS
    /// configuration format accepts.
    pub fn render(&self) -> String {
        let quote = |s: &str| serde_json::Value::String(s.to_string()).to_string();
        let mut conf = String::new();
        let _ = writeln!(conf, "# Written by `wash up`; regenerated on every start.");
        let _ = writeln!(conf, "host: {}", quote(&self.host));
        let _ = writeln!(conf, "port: {}", self.port);
        let _ = writeln!(conf, "jetstream {{");
        let _ = writeln!(
            conf,
            "  store_dir: {}",
            quote(&self.store_dir.to_string_lossy())
        );
        if let Some(domain) = &self.js_domain {
            let _ = writeln!(conf, "  domain: {}", quote(domain));
        }
        let _ = writeln!(conf, "}}");
        if let Some(url) = &self.remote_url {
            let _ = writeln!(conf, "leafnodes {{");
            let _ = writeln!(conf, "  remotes: [");
            let _ = write!(conf, "    {{ url: {}", quote(url));
            if let Some(creds) = &self.credsfile {
                let _ = write!(conf, ", credentials: {}", quote(&creds.to_string_lossy()));
            }
            let _ = writeln!(conf, " }}");
            let _ = writeln!(conf, "  ]");
            let _ = writeln!(conf, "}}");
        }
        conf
    }
}

/// Whether something accepts TCP connections on `host:port`.
pub async fn is_listening(host: &str, port: u16) -> bool {
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect((host, port))).await,
        Ok(Ok(_))
    )
}

/// Checks the leaf-node flags before anything starts: the remote URL must be
/// a NATS URL and the credentials file must exist.
pub fn check_remote(remote_url: Option<&str>, credsfile: Option<&Path>) -> anyhow::Result<()> {
    if let Some(url) = remote_url {
        let scheme = url.split_once("://").map(|(scheme, _)| scheme);
        if !matches!(
            scheme,
            Some("nats" | "tls" | "ws" | "wss" | "nats-leaf" | "leaf")
        ) {
            bail!(
                "--nats-remote-url `{url}` is not a NATS URL: write it as nats://HOST:7422 (the remote's leaf-node port), or tls://…"
            );
        }
    }
    if let Some(creds) = credsfile
        && !creds.is_file()
    {
        bail!(
            "--nats-credsfile {} does not exist: pass the .creds file of a user of the remote account",
            creds.display()
        );
    }
    Ok(())
}

/// Writes `nats.conf` into `dir` and returns its path.
pub fn write_config(dir: &Path, config: &NatsConfig) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(&config.store_dir).with_context(|| {
        format!(
            "cannot create the JetStream directory {}",
            config.store_dir.display()
        )
    })?;
    let path = dir.join("nats.conf");
    std::fs::write(&path, config.render())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Explains why a reused NATS cannot serve as a leaf node.
pub fn reused_with_remote(host: &str, port: u16) -> anyhow::Error {
    anyhow!(
        "something already listens on {host}:{port}, so wash cannot start a leaf-node NATS \
         there for --nats-remote-url: stop it, or choose a free port with --nats-port"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_jetstream_and_optional_leaf() {
        let mut config = NatsConfig {
            host: "127.0.0.1".into(),
            port: 4333,
            store_dir: "/tmp/js dir".into(),
            js_domain: None,
            remote_url: None,
            credsfile: None,
        };
        let plain = config.render();
        assert!(plain.contains("port: 4333"), "{plain}");
        assert!(plain.contains("store_dir: \"/tmp/js dir\""), "{plain}");
        assert!(!plain.contains("leafnodes"), "{plain}");
        config.js_domain = Some("leaf".into());
        config.remote_url = Some("nats://hub:7422".into());
        config.credsfile = Some("/k/user.creds".into());
        let leaf = config.render();
        assert!(leaf.contains("domain: \"leaf\""), "{leaf}");
        assert!(
            leaf.contains("{ url: \"nats://hub:7422\", credentials: \"/k/user.creds\" }"),
            "{leaf}"
        );
    }

    #[test]
    fn remote_flags_are_checked() {
        assert!(check_remote(Some("nats://hub:7422"), None).is_ok());
        let err = check_remote(Some("http://hub"), None).unwrap_err();
        assert!(err.to_string().contains("not a NATS URL"), "{err}");
        let err = check_remote(Some("nats://hub"), Some(Path::new("/no/such.creds"))).unwrap_err();
        assert!(err.to_string().contains("/no/such.creds"), "{err}");
    }
}
