//! The connection to a lattice: the global connection options, the NATS
//! connection, and the translation of control-interface failures into messages
//! that say what was wrong and what to do about it.
//!
//! Commands never show a bare `CtlClientError`: they go through
//! [`Lattice::explain`], which knows the lattice, the NATS URL and which host
//! was addressed.

use std::time::Duration;

use anyhow::anyhow;
use trellis_interfaces::client::{CtlClient, CtlClientError, CtlClientErrorKind};
use trellis_interfaces::inventory::{
    ComponentDescription, Host, HostInventory, ProviderDescription,
};

/// Default NATS host of the control connection, as in wash 1.x.
pub const DEFAULT_CTL_HOST: &str = "127.0.0.1";
/// Default NATS port of the control connection, as in wash 1.x.
pub const DEFAULT_CTL_PORT: u16 = 4222;
/// Default timeout of one control request, in ms: wash 1.x's `--timeout-ms`
/// default. Hosts acknowledge every request before doing slow work, so 2 s is
/// plenty on a local network; it is also how long `host.ping` collects replies.
pub const DEFAULT_TIMEOUT_MS: u64 = 2_000;

/// Connection options shared by every lattice command: global within each
/// lattice command's subtree (`wash get -x prod hosts`, `wash get hosts -x
/// prod`), as in wash 1.x, so that the offline commands (`keys`, `claims`,
/// `par`, `inspect`) keep wash 1.x's own short flags (`-x` expiry, `-r` revision).
#[derive(clap::Args, Clone, Debug)]
pub struct ConnectionOpts {
    /// NATS host of the lattice's control interface
    #[arg(short = 'r', long = "ctl-host", env = "WASMCLOUD_CTL_HOST", default_value = DEFAULT_CTL_HOST, global = true)]
    pub ctl_host: String,

    /// NATS port of the lattice's control interface
    #[arg(short = 'p', long = "ctl-port", env = "WASMCLOUD_CTL_PORT", default_value_t = DEFAULT_CTL_PORT, global = true)]
    pub ctl_port: u16,

    /// Full NATS URL (e.g. nats://10.0.0.5:4222); overrides --ctl-host and --ctl-port
    #[arg(long = "nats-url", global = true)]
    pub nats_url: Option<String>,

    /// Lattice to address
    #[arg(short = 'x', long = "lattice", env = "WASMCLOUD_LATTICE", default_value = trellis_interfaces::subject::DEFAULT_LATTICE, global = true)]
    pub lattice: String,

    /// Timeout of each control request, and how long host pings collect replies, in ms
    #[arg(long = "timeout-ms", env = "WASMCLOUD_CTL_TIMEOUT_MS", default_value_t = DEFAULT_TIMEOUT_MS, global = true)]
    pub timeout_ms: u64,

    /// NATS credentials file (`.creds`: user JWT and seed) for the control connection
    #[arg(long = "ctl-credsfile", env = "WASH_CTL_CREDS", global = true)]
    pub ctl_credsfile: Option<std::path::PathBuf>,

    /// Saved context to take unset connection options from [default: the one `wash ctx default` set]
    #[arg(long = "context", env = "WASH_CONTEXT", global = true)]
    pub context: Option<String>,

    /// Ids of the options set neither on the command line nor in the
    /// environment: the ones a context may fill in.
    #[arg(skip)]
    pub defaulted: Vec<&'static str>,
}

/// Ids of the [`ConnectionOpts`] arguments (their field names).
pub const CONNECTION_ARG_IDS: [&str; 7] = [
    "ctl_host",
    "ctl_port",
    "nats_url",
    "lattice",
    "timeout_ms",
    "ctl_credsfile",
    "context",
];

impl ConnectionOpts {
    /// Takes each option given on the command line before the command
    /// (`leading`, parsed into `top`) unless it was also given after it
    /// (parsed into `command`): the later one wins, env and defaults lose.
    /// Also records which options were left at their defaults, for a
    /// context to fill in.
    pub fn take_leading(
        &mut self,
        leading: &ConnectionOpts,
        top: &clap::ArgMatches,
        command: &clap::ArgMatches,
    ) {
        use clap::parser::ValueSource;
        let given = |matches: &clap::ArgMatches, id: &str| {
            matches.value_source(id) == Some(ValueSource::CommandLine)
        };
        for id in CONNECTION_ARG_IDS {
            if !given(top, id) || given(command, id) {
                continue;
            }
            match id {
                "ctl_host" => self.ctl_host.clone_from(&leading.ctl_host),
                "ctl_port" => self.ctl_port = leading.ctl_port,
                "nats_url" => self.nats_url.clone_from(&leading.nats_url),
                "lattice" => self.lattice.clone_from(&leading.lattice),
                "ctl_credsfile" => self.ctl_credsfile.clone_from(&leading.ctl_credsfile),
                "context" => self.context.clone_from(&leading.context),
                _ => self.timeout_ms = leading.timeout_ms,
            }
        }
        let set = |id: &str| {
            [top, command].iter().any(|m| {
                matches!(
                    m.value_source(id),
                    Some(ValueSource::CommandLine | ValueSource::EnvVariable)
                )
            })
        };
        self.defaulted = CONNECTION_ARG_IDS
            .into_iter()
            .filter(|id| !set(id))
            .collect();
    }
}

/// A lattice command whose subcommands share the connection flags.
#[derive(clap::Args, Clone, Debug)]
pub struct OnLattice<C: clap::Subcommand> {
    /// How to reach the lattice.
    #[command(flatten)]
    pub connection: ConnectionOpts,
    /// What to do there.
    #[command(subcommand)]
    pub command: C,
}

/// A lattice command without subcommands, with the connection flags.
#[derive(clap::Args, Clone, Debug)]
pub struct OnLatticeArgs<A: clap::Args> {
    /// How to reach the lattice.
    #[command(flatten)]
    pub connection: ConnectionOpts,
    /// The command's own arguments.
    #[command(flatten)]
    pub args: A,
}

impl ConnectionOpts {
    /// The NATS URL to connect to: `--nats-url`, else `nats://{ctl-host}:{ctl-port}`.
    pub fn url(&self) -> String {
        match &self.nats_url {
            Some(url) => url.clone(),
            None => format!("nats://{}:{}", self.ctl_host, self.ctl_port),
        }
    }

    /// The request timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// Who a control request was addressed to, for error messages.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// Whichever host of the lattice answers (links, config, claims, ping).
    Lattice,
    /// One host, by id.
    Host(&'a str),
}

/// A connected lattice: control client plus what error messages need to say.
#[derive(Clone, Debug)]
pub struct Lattice {
    /// The control-interface client.
    pub ctl: CtlClient,
    /// The NATS URL connected to.
    pub url: String,
    /// The NATS connection itself, for the wadm API (`wash app`).
    pub nats: async_nats::Client,
    timeout: Duration,
}

impl Lattice {
    /// Connects to NATS; a failure says whether NATS is unreachable, refused
    /// the connection or the URL is wrong, and what to do.
    pub async fn connect(opts: &ConnectionOpts) -> anyhow::Result<Self> {
        let opts = &crate::context::apply(opts)?;
        let url = opts.url();
        let timeout = opts.timeout();
        let options = match &opts.ctl_credsfile {
            Some(creds) => async_nats::ConnectOptions::with_credentials_file(creds)
                .await
                .map_err(|e| {
                    anyhow!(
                        "cannot use the credentials file {} ({e}): pass the `.creds` file of a \
                         NATS user (--ctl-credsfile or $WASH_CTL_CREDS)",
                        creds.display()
                    )
                })?,
            None => async_nats::ConnectOptions::new(),
        };
        let nats = options
            .name("wash")
            .connection_timeout(timeout)
            .connect(url.as_str())
            .await
            .map_err(|e| connect_error(&url, &e))?;
        let ctl = CtlClient::new(nats.clone(), opts.lattice.clone())
            .with_timeout(timeout)
            .with_auction_timeout(timeout);
        Ok(Self {
            ctl,
            url,
            nats,
            timeout,
        })
    }

    /// The lattice name.
    pub fn name(&self) -> &str {
        self.ctl.lattice()
    }

    /// The client with a different auction (scatter-gather) window.
    pub fn with_auction_timeout(&self, timeout: Duration) -> CtlClient {
        self.ctl.clone().with_auction_timeout(timeout)
    }

    /// The error for "no host answered at all", with the command that starts one.
    pub fn no_host_error(&self) -> anyhow::Error {
        anyhow!(
            "no host answered on lattice `{lattice}` at {url} within {ms} ms: start one with \
             `trellis --nats-url {url} --lattice {lattice}`, or check --lattice and --nats-url",
            lattice = self.name(),
            url = self.url,
            ms = self.timeout.as_millis(),
        )
    }

    /// Turns a control-client failure into a message that names what was
    /// addressed and says what to do.
    pub fn explain(&self, error: CtlClientError, target: Target<'_>) -> anyhow::Error {
        let lattice = self.name();
        let url = &self.url;
        match (error.kind(), target) {
            (CtlClientErrorKind::NoResponders, Target::Host(id)) => anyhow!(
                "no host `{id}` on lattice `{lattice}` at {url}: `wash get hosts` lists the hosts that answer"
            ),
            (CtlClientErrorKind::NoResponders, Target::Lattice) => self.no_host_error(),
            (CtlClientErrorKind::Timeout, Target::Host(id)) => anyhow!(
                "host `{id}` did not answer within {ms} ms ({error}): it may be overloaded or \
                 stopping; retry with a larger --timeout-ms",
                ms = self.timeout.as_millis()
            ),
            (CtlClientErrorKind::Timeout, Target::Lattice) => anyhow!(
                "no host of lattice `{lattice}` answered within {ms} ms ({error}): retry with a \
                 larger --timeout-ms",
                ms = self.timeout.as_millis()
            ),
            (CtlClientErrorKind::Rejected, Target::Host(id)) => match &error {
                CtlClientError::Rejected { op, message } => {
                    anyhow!("host `{id}` rejected {op}: {message}")
                }
                _ => anyhow!("{error}"),
            },
            (CtlClientErrorKind::Decode, _) => anyhow!(
                "{error}: the host may speak a different control-interface version than this wash"
            ),
            (CtlClientErrorKind::InvalidRequest, _) => anyhow!(
                "{error}: ids, host ids and config names must be single NATS subject tokens \
                 (no `.`, `*`, `>` or spaces)"
            ),
            (CtlClientErrorKind::Nats, _) => {
                anyhow!("{error}: check that NATS at {url} is still reachable")
            }
            _ => anyhow!("{error}"),
        }
    }

    /// The result of a request addressed to `host_id`, with a failure
    /// explained; when no such host answers, the error lists those that do.
    pub async fn on_host<T>(
        &self,
        host_id: &str,
        result: Result<T, CtlClientError>,
    ) -> anyhow::Result<T> {
        match result {
            Ok(value) => Ok(value),
            Err(error) if error.kind() == CtlClientErrorKind::NoResponders => {
                Err(self.unknown_host(host_id).await)
            }
            Err(error) => Err(self.explain(error, Target::Host(host_id))),
        }
    }

    /// "No host `id`", with the ids of the hosts that do answer.
    async fn unknown_host(&self, host_id: &str) -> anyhow::Error {
        let lattice = self.name();
        let url = &self.url;
        match self.ctl.ping_hosts().await {
            Ok(hosts) if !hosts.is_empty() => {
                let mut ids: Vec<String> = hosts
                    .iter()
                    .map(|h| format!("{} ({})", h.id, h.friendly_name))
                    .collect();
                ids.sort();
                anyhow!(
                    "no host `{host_id}` on lattice `{lattice}` at {url}; the hosts that answer are: {} \
                     (`wash get hosts` shows their labels)",
                    ids.join(", ")
                )
            }
            Ok(_) => anyhow!(
                "no host `{host_id}` on lattice `{lattice}` at {url}, and no other host answers either: \
                 start one with `wash up` or `trellis --nats-url {url} --lattice {lattice}`"
            ),
            Err(_) => anyhow!(
                "no host `{host_id}` on lattice `{lattice}` at {url}: `wash get hosts` lists the hosts that answer"
            ),
        }
    }

    /// Every host that answers a ping; none at all is an error.
    pub async fn hosts(&self) -> anyhow::Result<Vec<Host>> {
        let mut hosts = self
            .ctl
            .ping_hosts()
            .await
            .map_err(|e| self.explain(e, Target::Lattice))?;
        if hosts.is_empty() {
            return Err(self.no_host_error());
        }
        hosts.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(hosts)
    }

    /// One host's inventory.
    pub async fn inventory(&self, host_id: &str) -> anyhow::Result<HostInventory> {
        let inventory = self.ctl.get_host_inventory(host_id).await;
        self.on_host(host_id, inventory).await
    }

    /// The inventory of every host that answers a ping, in host-id order.
    pub async fn inventories(&self) -> anyhow::Result<Vec<HostInventory>> {
        let hosts = self.hosts().await?;
        let lookups = hosts.iter().map(|h| self.inventory(&h.id));
        futures::future::join_all(lookups)
            .await
            .into_iter()
            .collect()
    }

    /// The component `id` on `host_id`, or on every host running it if no host
    /// is given. Finding it nowhere is an error naming where it was looked for.
    pub async fn find_component(
        &self,
        id: &str,
        host_id: Option<&str>,
    ) -> anyhow::Result<Vec<(String, ComponentDescription)>> {
        let found = self
            .find(host_id, |inv| {
                inv.components.iter().find(|c| c.id == id).cloned()
            })
            .await?;
        if found.is_empty() {
            let running = self
                .find(host_id, |inv| {
                    Some(inv.components.iter().map(|c| c.id.clone()).collect())
                })
                .await?;
            return Err(not_running("component", id, self.name(), host_id, running));
        }
        Ok(found)
    }

    /// The provider `id` on `host_id`, or on every host running it.
    pub async fn find_provider(
        &self,
        id: &str,
        host_id: Option<&str>,
    ) -> anyhow::Result<Vec<(String, ProviderDescription)>> {
        let found = self
            .find(host_id, |inv| {
                inv.providers.iter().find(|p| p.id == id).cloned()
            })
            .await?;
        if found.is_empty() {
            let running = self
                .find(host_id, |inv| {
                    Some(inv.providers.iter().map(|p| p.id.clone()).collect())
                })
                .await?;
            return Err(not_running("provider", id, self.name(), host_id, running));
        }
        Ok(found)
    }

    async fn find<T>(
        &self,
        host_id: Option<&str>,
        pick: impl Fn(&HostInventory) -> Option<T>,
    ) -> anyhow::Result<Vec<(String, T)>> {
        let inventories = match host_id {
            Some(id) => vec![self.inventory(id).await?],
            None => self.inventories().await?,
        };
        Ok(inventories
            .iter()
            .filter_map(|inv| pick(inv).map(|found| (inv.host_id.clone(), found)))
            .collect())
    }
}

fn not_running(
    kind: &str,
    id: &str,
    lattice: &str,
    host_id: Option<&str>,
    running: Vec<(String, Vec<String>)>,
) -> anyhow::Error {
    let mut ids: Vec<String> = running.into_iter().flat_map(|(_, ids)| ids).collect();
    ids.sort();
    ids.dedup();
    let running = if ids.is_empty() {
        format!("no {kind} runs there")
    } else {
        format!("the {kind}s running there are: {}", ids.join(", "))
    };
    match host_id {
        Some(host) => anyhow!(
            "{kind} `{id}` is not running on host `{host}` ({running}): `wash get inventory {host}` shows what runs there"
        ),
        None => anyhow!(
            "{kind} `{id}` is not running on any host of lattice `{lattice}` ({running}): `wash get inventory` shows what runs where"
        ),
    }
}

/// Explains a failed NATS connection.
fn connect_error(url: &str, error: &async_nats::ConnectError) -> anyhow::Error {
    use async_nats::ConnectErrorKind as Kind;
    match error.kind() {
        Kind::Io | Kind::TimedOut | Kind::Dns | Kind::MaxReconnects => {
            let start = match port_of(url) {
                Some(port) => format!("`nats-server -js -p {port}`"),
                None => "`nats-server -js`".to_string(),
            };
            anyhow!(
                "cannot reach NATS at {url} ({error}): run `wash up` for a local lattice, start a \
                 server with {start}, or point wash \
                 at a running one with --nats-url (or --ctl-host/--ctl-port)"
            )
        }
        Kind::Authentication | Kind::AuthorizationViolation => anyhow!(
            "NATS at {url} refused the connection ({error}): pass the credentials of a user \
             allowed on the lattice with --ctl-credsfile FILE.creds (or $WASH_CTL_CREDS)"
        ),
        Kind::ServerParse => {
            anyhow!("`{url}` is not a valid NATS URL ({error}): write it as nats://HOST:PORT")
        }
        Kind::Tls => {
            anyhow!("TLS with NATS at {url} failed ({error}): check the server's TLS setup")
        }
    }
}

/// The port of `nats://host:port`, if there is one.
fn port_of(url: &str) -> Option<u16> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    authority.rsplit_once(':')?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_prefers_nats_url() {
        let mut opts = ConnectionOpts {
            ctl_host: "10.0.0.5".into(),
            ctl_port: 4333,
            nats_url: None,
            lattice: "default".into(),
            timeout_ms: DEFAULT_TIMEOUT_MS,
            ctl_credsfile: None,
            context: None,
            defaulted: Vec::new(),
        };
        assert_eq!(opts.url(), "nats://10.0.0.5:4333");
        opts.nats_url = Some("nats://example:1".into());
        assert_eq!(opts.url(), "nats://example:1");
    }

    #[test]
    fn port_is_read_from_urls() {
        assert_eq!(port_of("nats://127.0.0.1:4222"), Some(4222));
        assert_eq!(port_of("127.0.0.1:5000"), Some(5000));
        assert_eq!(port_of("nats://localhost"), None);
    }

    #[test]
    fn not_running_says_where_it_looked() {
        let e = not_running("component", "hello", "default", Some("NH"), vec![]);
        assert!(e.to_string().contains("host `NH`"), "{e}");
        assert!(e.to_string().contains("no component runs there"), "{e}");
        let running = vec![
            ("NA".to_string(), vec!["b".to_string(), "a".to_string()]),
            ("NB".to_string(), vec!["a".to_string()]),
        ];
        let e = not_running("provider", "web", "prod", None, running);
        assert!(e.to_string().contains("lattice `prod`"), "{e}");
        assert!(e.to_string().contains("running there are: a, b"), "{e}");
    }
}
