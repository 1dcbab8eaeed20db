//! The `info` export: what a linked component can ask.

use trellis_provider_sdk::trellis_wrpc::ServeContext;
use trellis_provider_sdk::{Connection, Context, LinkRole};

use crate::bindings::exports::trellis::system_info::info::{self, Kind};
use crate::bindings::trellis::system_info::invoker;

/// Serves `trellis:system-info/info`; one clone per call.
#[derive(Clone)]
pub struct Handler {
    conn: Connection,
}

impl Handler {
    pub fn new(conn: Connection) -> Self {
        Self { conn }
    }

    /// The component to call back: the caller, when a link from this
    /// provider to it covers `invoker`; else the only such link's target.
    fn callback_target(&self, caller: Option<&str>) -> Result<String, String> {
        let links = self.conn.links();
        let targets: Vec<&str> = links
            .iter()
            .filter(|(role, link)| {
                *role == LinkRole::Source && link.covers("trellis", "system-info", "invoker")
            })
            .map(|(_, link)| link.target_id.as_str())
            .collect();
        match caller {
            Some(caller) if targets.contains(&caller) => Ok(caller.to_string()),
            _ => match targets.as_slice() {
                [only] => Ok((*only).to_string()),
                [] => Err(format!(
                    "no link from provider {provider} to {who} for trellis:system-info/invoker; \
                     add one: wash link put {provider} {who} trellis system-info --interface invoker",
                    provider = self.conn.provider_id(),
                    who = caller.unwrap_or("<component-id>"),
                )),
                _ => Err(format!(
                    "caller {} is not among the components linked for invoker ({}); \
                     link the caller or call from a linked component",
                    caller.unwrap_or("<unknown>"),
                    targets.join(", ")
                )),
            },
        }
    }
}

impl info::Handler<ServeContext> for Handler {
    async fn request_info(&self, cx: ServeContext, kind: Kind) -> anyhow::Result<String> {
        let caller = Context::from(&cx);
        tracing::debug!(source_id = ?caller.source_id(), link_name = caller.link_name(), ?kind, "request-info");
        Ok(fact(kind))
    }

    async fn call_back(&self, cx: ServeContext) -> anyhow::Result<Result<String, String>> {
        let caller = Context::from(&cx);
        let target = match self.callback_target(caller.source_id()) {
            Ok(target) => target,
            Err(message) => return Ok(Err(message)),
        };
        // `in_context`: the call back continues the caller's trace.
        let client = self.conn.client_for(&target).in_context(&caller);
        match invoker::call(&client, None).await {
            Ok(answer) => Ok(Ok(answer)),
            Err(error) => Ok(Err(format!("calling {target} failed: {error:#}"))),
        }
    }
}

/// One fact about this machine.
pub fn fact(kind: Kind) -> String {
    match kind {
        Kind::Os => std::env::consts::OS.to_string(),
        Kind::Arch => std::env::consts::ARCH.to_string(),
        Kind::Family => std::env::consts::FAMILY.to_string(),
        Kind::Hostname => hostname(),
        Kind::Uptime => uptime_seconds()
            .map(|s| s.to_string())
            .unwrap_or_else(|| "unknown".to_string()),
        Kind::Cpus => std::thread::available_parallelism()
            .map(|n| n.get().to_string())
            .unwrap_or_else(|_| "unknown".to_string()),
    }
}

fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Whole seconds since boot, from `/proc/uptime` (Linux).
fn uptime_seconds() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/uptime").ok()?;
    let first = text.split_whitespace().next()?;
    let whole = first.split('.').next()?;
    whole.parse().ok()
}
