//! `wash get hosts|inventory|links|claims`: read-only queries of the lattice.

use std::fmt::Write as _;

use clap::Subcommand;
use trellis_interfaces::ctl::ClaimsMap;
use trellis_interfaces::inventory::{Host, HostInventory, human_uptime};
use trellis_interfaces::link::Link;

use crate::ctl::{Lattice, Target};
use crate::output::{Report, Table, labels};

/// What `wash get` can show.
#[derive(Subcommand, Debug, Clone)]
pub enum GetCommand {
    /// List the hosts of the lattice (ping)
    #[command(after_help = "Example:\n  wash get hosts\n  wash get hosts -x prod -o json")]
    Hosts,
    /// Show what runs on one host, or on every host
    #[command(
        after_help = "Example:\n  wash get inventory                 # every host\n  wash get inventory NBQ4…XYZ -o json"
    )]
    Inventory {
        /// Host id (`N…`); every host that answers a ping if omitted
        host_id: Option<String>,
    },
    /// List the links of the lattice
    #[command(after_help = "Example:\n  wash get links -o json")]
    Links,
    /// List the claims of signed components and providers
    #[command(after_help = "Example:\n  wash get claims")]
    Claims,
}

/// Runs a `wash get` command.
pub async fn run(lattice: &Lattice, command: GetCommand) -> anyhow::Result<Report> {
    match command {
        GetCommand::Hosts => {
            let hosts = lattice.hosts().await?;
            Report::data(hosts_table(&hosts), &hosts)
        }
        GetCommand::Inventory { host_id: Some(id) } => {
            let inventory = lattice.inventory(&id).await?;
            Report::data(inventory_text(&inventory), &inventory)
        }
        GetCommand::Inventory { host_id: None } => {
            let inventories = lattice.inventories().await?;
            let text = inventories
                .iter()
                .map(inventory_text)
                .collect::<Vec<_>>()
                .join("\n");
            Report::data(text, &inventories)
        }
        GetCommand::Links => links(lattice).await,
        GetCommand::Claims => {
            let claims = lattice
                .ctl
                .get_claims()
                .await
                .map_err(|e| lattice.explain(e, Target::Lattice))?;
            Report::data(claims_text(&claims, lattice.name()), &claims)
        }
    }
}

/// `wash get links` and `wash link query`.
pub async fn links(lattice: &Lattice) -> anyhow::Result<Report> {
    let mut links = lattice
        .ctl
        .get_links()
        .await
        .map_err(|e| lattice.explain(e, Target::Lattice))?;
    links.sort_by(|a, b| {
        (&a.source_id, &a.wit_namespace, &a.wit_package, &a.name).cmp(&(
            &b.source_id,
            &b.wit_namespace,
            &b.wit_package,
            &b.name,
        ))
    });
    Report::data(links_text(&links, lattice.name()), &links)
}

fn hosts_table(hosts: &[Host]) -> String {
    let mut table = Table::new(&["HOST ID", "FRIENDLY NAME", "UPTIME", "LABELS"]);
    for host in hosts {
        let uptime = host
            .uptime_human
            .clone()
            .unwrap_or_else(|| human_uptime(host.uptime_seconds));
        table.row(vec![
            host.id.clone(),
            host.friendly_name.clone(),
            uptime,
            labels(&host.labels),
        ]);
    }
    table.render()
}

fn inventory_text(inventory: &HostInventory) -> String {
    let mut out = String::new();
    let uptime = if inventory.uptime_human.is_empty() {
        human_uptime(inventory.uptime_seconds)
    } else {
        inventory.uptime_human.clone()
    };
    let _ = writeln!(
        out,
        "Host {} ({}), version {}, up {uptime}",
        inventory.host_id, inventory.friendly_name, inventory.version
    );
    let _ = writeln!(out, "Labels: {}\n", labels(&inventory.labels));
    if inventory.components.is_empty() {
        out.push_str("No components.\n");
    } else {
        let mut table = Table::new(&["COMPONENT ID", "NAME", "MAX INSTANCES", "IMAGE"]);
        for c in &inventory.components {
            table.row(vec![
                c.id.clone(),
                c.name.clone().unwrap_or_default(),
                c.max_instances.to_string(),
                c.image_ref.clone(),
            ]);
        }
        out.push_str(&table.render());
    }
    out.push('\n');
    if inventory.providers.is_empty() {
        out.push_str("No providers.\n");
    } else {
        let mut table = Table::new(&["PROVIDER ID", "NAME", "IMAGE"]);
        for p in &inventory.providers {
            table.row(vec![
                p.id.clone(),
                p.name.clone().unwrap_or_default(),
                p.image_ref.clone().unwrap_or_default(),
            ]);
        }
        out.push_str(&table.render());
    }
    out
}

fn links_text(links: &[Link], lattice: &str) -> String {
    if links.is_empty() {
        return format!(
            "No links on lattice `{lattice}`. Add one with `wash link put SOURCE TARGET NS PKG --interface I`."
        );
    }
    let mut table = Table::new(&[
        "SOURCE",
        "TARGET",
        "INTERFACES",
        "NAME",
        "SOURCE CONFIG",
        "TARGET CONFIG",
    ]);
    for link in links {
        table.row(vec![
            link.source_id.clone(),
            link.target.clone(),
            format!(
                "{}:{}/{}",
                link.wit_namespace,
                link.wit_package,
                link.interfaces.join(",")
            ),
            link.name.clone(),
            link.source_config.join(","),
            link.target_config.join(","),
        ]);
    }
    table.render()
}

fn claims_text(claims: &[ClaimsMap], lattice: &str) -> String {
    if claims.is_empty() {
        return format!(
            "No claims on lattice `{lattice}` (only signed components and providers carry claims)."
        );
    }
    let field = |map: &ClaimsMap, keys: &[&str]| -> String {
        keys.iter()
            .find_map(|k| map.get(*k).filter(|v| !v.is_empty()).cloned())
            .unwrap_or_default()
    };
    let mut table = Table::new(&["SUBJECT", "NAME", "ISSUER", "VERSION", "REVISION", "TAGS"]);
    let mut rows: Vec<Vec<String>> = claims
        .iter()
        .map(|c| {
            vec![
                field(c, &["subject", "sub"]),
                field(c, &["name"]),
                field(c, &["issuer", "iss"]),
                field(c, &["version"]),
                field(c, &["revision", "rev"]),
                field(c, &["tags"]),
            ]
        })
        .collect();
    rows.sort();
    for row in rows {
        table.row(row);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_interfaces::inventory::ComponentDescription;

    #[test]
    fn inventory_text_lists_components_and_providers() {
        let inventory = HostInventory {
            host_id: "NHOST".into(),
            friendly_name: "brave-otter-1".into(),
            version: "0.1.0".into(),
            uptime_seconds: 65,
            components: vec![ComponentDescription {
                id: "hello".into(),
                image_ref: "file:///x.wasm".into(),
                max_instances: 4,
                ..Default::default()
            }],
            ..Default::default()
        };
        let text = inventory_text(&inventory);
        assert!(
            text.starts_with("Host NHOST (brave-otter-1), version 0.1.0, up 1m 5s"),
            "{text}"
        );
        let row = text.lines().find(|l| l.starts_with("hello")).unwrap();
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>(),
            ["hello", "4", "file:///x.wasm"]
        );
        assert!(text.contains("No providers."), "{text}");
    }

    #[test]
    fn links_text_shows_interfaces_and_configs() {
        let link = Link {
            source_id: "web".into(),
            target: "hello".into(),
            name: "default".into(),
            wit_namespace: "wasi".into(),
            wit_package: "http".into(),
            interfaces: vec!["incoming-handler".into()],
            source_config: vec!["web-addr".into()],
            target_config: vec![],
        };
        let text = links_text(&[link], "default");
        assert!(text.contains("wasi:http/incoming-handler"), "{text}");
        assert!(text.contains("web-addr"), "{text}");
        assert!(links_text(&[], "dev").contains("No links on lattice `dev`"));
    }

    #[test]
    fn claims_text_prefers_long_keys() {
        let claims = ClaimsMap::from([
            ("sub".to_string(), "MABC".to_string()),
            ("name".to_string(), "hello".to_string()),
            ("iss".to_string(), "AXYZ".to_string()),
        ]);
        let text = claims_text(&[claims], "default");
        assert!(text.contains("MABC"), "{text}");
        assert!(text.contains("AXYZ"), "{text}");
    }
}
