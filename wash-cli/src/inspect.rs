//! `wash inspect` (and `claims inspect`, `par inspect`): what a signed
//! component or provider archive claims, whether that verifies, and for a
//! component its world (imports and exports).
//!
//! A file starting with the wasm preamble is a component (or core module);
//! anything else is read as a provider archive. Invalid claims are shown, with
//! the failed check, and make wash exit non-zero.

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{Context as _, anyhow};
use clap::Args;
use serde_json::json;
use trellis_interfaces::claims;

use crate::claims::{component_report, now_secs};
use crate::output::{Report, set};
use crate::wit;

/// The four bytes every wasm binary starts with.
const WASM_MAGIC: &[u8; 4] = b"\0asm";

/// `wash inspect`, `wash claims inspect`, `wash par inspect`.
#[derive(Args, Debug, Clone)]
pub struct InspectArgs {
    /// Path to a signed component or a provider archive (.par, .par.gz)
    pub target: PathBuf,
    /// Print only the raw JWT, unverified
    #[arg(long = "jwt-only", conflicts_with = "wit")]
    pub jwt_only: bool,
    /// Print only the component's world (imports and exports)
    #[arg(long = "wit", alias = "world")]
    pub wit: bool,
}

/// Inspects `args.target`; `with_world` adds a component's world to its
/// claims (`wash inspect`), and lets an unsigned component through.
pub fn run(args: InspectArgs, with_world: bool) -> anyhow::Result<Report> {
    let path = &args.target;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !bytes.starts_with(WASM_MAGIC) {
        anyhow::ensure!(
            !args.wit,
            "{} is a provider archive: only components have a world to show",
            path.display()
        );
        return crate::par::inspect(path, &bytes, args.jwt_only);
    }
    let embedded = claims::extract_component_claims(&bytes)
        .with_context(|| format!("{} refused", path.display()))?;
    if args.jwt_only {
        let embedded = embedded.ok_or_else(|| unsigned(path))?;
        return Report::data(embedded.jwt.clone(), &json!({"token": embedded.jwt}));
    }
    let world = if with_world || args.wit {
        wit::world(&bytes)?
    } else {
        None
    };
    if args.wit {
        let world = world.ok_or_else(|| {
            anyhow!(
                "{} is a core module, not a component: it has no WIT world (a WASI preview 1 module?)",
                path.display()
            )
        })?;
        return Report::data(world.render(), &world);
    }
    let world_text = world
        .as_ref()
        .map(|w| format!("\n{}", w.render()))
        .unwrap_or_default();
    let Some(embedded) = embedded else {
        if !with_world {
            return Err(unsigned(path));
        }
        return Report::data(
            format!(
                "{} is not signed (no `{}` section){world_text}",
                path.display(),
                claims::SIGNATURE_SECTION
            ),
            &json!({"signed": false, "world": world}),
        );
    };
    let verdict = claims::verify_component(&bytes, SystemTime::now()).map(|_| ());
    let (text, mut json, failure) = component_report(&embedded, verdict, now_secs());
    if let Some(world) = &world {
        set(&mut json, "world", json!(world));
    }
    let report = Report::data(format!("{text}{world_text}"), &json)?;
    Ok(match failure {
        Some(failure) => report.fail(format!("{}: {failure}", path.display())),
        None => report,
    })
}

fn unsigned(path: &std::path::Path) -> anyhow::Error {
    anyhow!(
        "{} is not signed: it has no `{}` section; sign it with `wash claims sign {}`",
        path.display(),
        claims::SIGNATURE_SECTION,
        path.display()
    )
}
