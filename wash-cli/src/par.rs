//! `wash par create|inspect`: provider archives. The format's logic (names,
//! hashes, claims, verification) is [`trellis_interfaces::claims::par`]; this
//! module reads and writes the tar (and gzip) around it.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Subcommand};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use trellis_interfaces::claims::par::{self, ArchiveEntries, GZIP_MAGIC};
use trellis_interfaces::claims::{self, CapabilityProvider, Claims};

use crate::claims::{now_secs, status_of, when, write_file};
use crate::inspect::InspectArgs;
use crate::keydir::{self, KEYS_DIR_ENV, KeyDir, KeyKind};
use crate::output::{Report, Table, fields, set};

/// Most bytes read out of one archive, all entries together, after
/// decompression: a bound on what a hostile `.par.gz` can make wash allocate.
/// Provider binaries are tens of MiB; 1 GiB leaves room for many targets.
pub const MAX_UNPACKED_BYTES: u64 = 1 << 30;

/// What `wash par` can do.
#[derive(Subcommand, Debug, Clone)]
pub enum ParCommand {
    /// Build a signed provider archive from a provider binary
    #[command(
        after_help = "Example:\n  wash par create --binary target/release/my-provider --name my-provider --vendor acme --compress"
    )]
    Create(Box<CreateArgs>),
    /// Show a provider archive's claims and verify each target's hash
    #[command(after_help = "Example:\n  wash par inspect my-provider.par.gz -o json")]
    Inspect(InspectArgs),
}

/// `wash par create`, with wash 1.x's flags.
#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    /// Path to the provider binary
    #[arg(short = 'b', long = "binary")]
    pub binary: PathBuf,
    /// Name of the provider
    #[arg(short = 'n', long = "name")]
    pub name: String,
    /// Who publishes it (e.g. acme); not unique
    #[arg(short = 'v', long = "vendor")]
    pub vendor: String,
    /// Target of the binary, `{arch}-{os}`
    #[arg(short = 'a', long = "arch", default_value_t = par::current_target(), value_parser = target)]
    pub arch: String,
    /// Human-friendly version
    #[arg(long = "version")]
    pub version: Option<String>,
    /// Monotonically increasing revision number
    #[arg(short = 'r', long = "revision")]
    pub revision: Option<i32>,
    /// JSON schema of the provider's link configuration, embedded in the claims
    #[arg(
        short = 'j',
        long = "schema",
        env = "WASH_JSON_SCHEMA",
        hide_env_values = true
    )]
    pub schema: Option<PathBuf>,
    /// Issuer: an account seed (SA…) or key file [default: `$USER_account.nk` in the keys directory]
    #[arg(
        short = 'i',
        long = "issuer",
        env = "WASH_ISSUER_KEY",
        hide_env_values = true
    )]
    pub issuer: Option<String>,
    /// Subject: a service seed (SV…), key file or public key [default: `{binary stem}_service.nk`]
    #[arg(
        short = 's',
        long = "subject",
        env = "WASH_SUBJECT_KEY",
        hide_env_values = true
    )]
    pub subject: Option<String>,
    /// Keys directory, for default keys [default: ~/.wash/keys]
    #[arg(short = 'd', long = "directory", env = KEYS_DIR_ENV, hide_env_values = true)]
    pub directory: Option<PathBuf>,
    /// Output file [default: `{binary stem}.par`, `.par.gz` with --compress]; gzip if it ends in `.gz`
    #[arg(long = "destination")]
    pub destination: Option<PathBuf>,
    /// Compress the archive with gzip (`.gz` is appended to the destination if missing)
    #[arg(long = "compress")]
    pub compress: bool,
    /// Fail instead of generating a missing default key
    #[arg(long = "disable-keygen")]
    pub disable_keygen: bool,
}

/// A target is `{arch}-{os}`: one file-name token.
fn target(input: &str) -> Result<String, String> {
    if input.is_empty()
        || input
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    {
        return Err(format!(
            "`{input}` is not a target: write it as {{arch}}-{{os}}, e.g. {}",
            par::current_target()
        ));
    }
    Ok(input.to_string())
}

/// Runs a `wash par` command.
pub fn run(command: ParCommand) -> anyhow::Result<Report> {
    match command {
        ParCommand::Create(args) => create(*args),
        ParCommand::Inspect(args) => crate::inspect::run(args, false),
    }
}

fn create(args: CreateArgs) -> anyhow::Result<Report> {
    let binary = std::fs::read(&args.binary)
        .with_context(|| format!("cannot read provider binary {}", args.binary.display()))?;
    let config_schema = args.schema.as_deref().map(read_schema).transpose()?;
    let dir = KeyDir::resolve(args.directory.clone())?;
    let stem = keydir::default_subject_name(&args.binary);
    let (issuer, subject) = keydir::issuer_and_subject(
        args.issuer.as_deref(),
        args.subject.as_deref(),
        &dir,
        &args.binary,
        KeyKind::Service,
        !args.disable_keygen,
    )?;
    let binaries = std::collections::BTreeMap::from([(args.arch.clone(), binary)]);
    let claims = par::provider_claims(
        issuer.key.public_key(),
        subject.key.public_key(),
        now_secs(),
        CapabilityProvider {
            name: Some(args.name.clone()),
            vendor: args.vendor.clone(),
            rev: args.revision,
            ver: args.version.clone(),
            config_schema,
            ..Default::default()
        },
        &binaries,
    );
    let jwt = claims::sign(&claims, &issuer.key)?;
    let (destination, compress) = destination(&args, &stem);
    let bytes = write_archive(&par::archive_layout(&jwt, &binaries), compress)?;
    write_file(&destination, &bytes)?;
    Ok(Report::action(
        format!("Successfully created archive {}", destination.display()),
        json!({
            "file": destination,
            "issuer": issuer.key.public_key(),
            "subject": subject.key.public_key(),
            "targets": [args.arch],
            "compressed": compress,
        }),
    )
    .note_all(issuer.note("--issuer"))
    .note_all(subject.note("--subject")))
}

fn read_schema(path: &Path) -> anyhow::Result<Value> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read schema {}", path.display()))?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("schema {} is not valid JSON", path.display()))
}

/// The output file and whether it is gzip-compressed (wash 1.x's rules).
fn destination(args: &CreateArgs, stem: &str) -> (PathBuf, bool) {
    let ends_gz = |p: &Path| p.extension().is_some_and(|e| e == "gz");
    match &args.destination {
        Some(path) if args.compress && !ends_gz(path) => {
            let mut name = path.as_os_str().to_owned();
            name.push(".gz");
            (PathBuf::from(name), true)
        }
        Some(path) => (path.clone(), args.compress || ends_gz(path)),
        None if args.compress => (PathBuf::from(format!("{stem}.par.gz")), true),
        None => (PathBuf::from(format!("{stem}.par")), false),
    }
}

/// The archive bytes: a tar of `entries`, gzip-compressed (best) if asked.
fn write_archive(entries: &[(String, &[u8])], compress: bool) -> anyhow::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, bytes) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(if name == par::CLAIMS_FILE {
            0o644
        } else {
            0o755
        });
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, name, *bytes)
            .with_context(|| format!("cannot add {name} to the archive"))?;
    }
    let tar = builder.into_inner().context("cannot finish the archive")?;
    if !compress {
        return Ok(tar);
    }
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    std::io::Write::write_all(&mut encoder, &tar).context("cannot compress the archive")?;
    encoder.finish().context("cannot compress the archive")
}

/// Reads the entries of an archive (gzip-compressed or not).
pub fn read_archive(bytes: &[u8]) -> anyhow::Result<ArchiveEntries> {
    let compressed = bytes.starts_with(&GZIP_MAGIC);
    let reader: Box<dyn std::io::Read + '_> = if compressed {
        Box::new(GzDecoder::new(bytes))
    } else {
        Box::new(bytes)
    };
    let mut archive = tar::Archive::new(reader.take(MAX_UNPACKED_BYTES + 1));
    let mut entries = ArchiveEntries::default();
    let mut total: u64 = 0;
    for entry in archive.entries().context("not a tar archive")? {
        let mut entry = entry.context("cannot read an archive entry")?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry
            .path()
            .context("archive entry has an unreadable name")?
            .to_string_lossy()
            .into_owned();
        let mut content = Vec::new();
        entry
            .read_to_end(&mut content)
            .with_context(|| format!("cannot read archive entry {path}"))?;
        total = total.saturating_add(content.len() as u64);
        if total > MAX_UNPACKED_BYTES {
            bail!("archive unpacks to more than {MAX_UNPACKED_BYTES} bytes");
        }
        entries.add(&path, content)?;
    }
    Ok(entries)
}

/// Inspects an archive at `path`: claims, targets and hashes; a failure if it
/// does not verify.
pub fn inspect(path: &Path, bytes: &[u8], jwt_only: bool) -> anyhow::Result<Report> {
    let entries = read_archive(bytes).map_err(|e| {
        anyhow!(
            "{} is neither a wasm component nor a provider archive: {e:#}",
            path.display()
        )
    })?;
    let jwt = entries
        .claims_jwt
        .as_deref()
        .ok_or(par::ParError::MissingClaims)
        .with_context(|| path.display().to_string())?;
    if jwt_only {
        return Report::data(jwt.to_string(), &json!({"token": jwt}));
    }
    let claims = claims::decode_unverified::<CapabilityProvider>(jwt)
        .with_context(|| format!("{}: `{}`", path.display(), par::CLAIMS_FILE))?;
    let verdict = par::verify_archive(&entries, SystemTime::now()).map(|_| ());
    let status = match &verdict {
        Ok(()) => "valid",
        Err(par::ParError::Claims(e)) => status_of(e),
        Err(par::ParError::HashMismatch { .. }) => "hash mismatch",
        Err(_) => "invalid",
    };
    let error = verdict.err().map(|e| e.to_string());
    let (text, mut json) = provider_report(&claims, &entries, status);
    if let Some(error) = &error {
        set(&mut json, "error", json!(error));
    }
    let mut report = Report::data(text, &json)?;
    if let Err(missing) = par::select_binary(&entries, &par::current_target()) {
        report = report.warn(format!("{missing}: a host on this machine cannot run it"));
    }
    Ok(match error {
        Some(error) => report.fail(format!("{}: {error}", path.display())),
        None => report,
    })
}

/// Text and JSON for an archive's claims and targets; `status` is the verdict.
fn provider_report(
    claims: &Claims<CapabilityProvider>,
    entries: &ArchiveEntries,
    status: &str,
) -> (String, Value) {
    let now = now_secs();
    let meta = claims.metadata.clone().unwrap_or_default();
    let name = meta.name.clone().unwrap_or_else(|| "None".into());
    let (table, checks) = target_checks(&par::check_targets(&meta, &entries.binaries));
    let text = format!(
        "{name} - Capability Provider\n{}\n{table}",
        fields(&[
            ("Account", claims.issuer.clone()),
            ("Service", claims.subject.clone()),
            ("Vendor", meta.vendor.clone()),
            ("Version", meta.ver.clone().unwrap_or_else(|| "None".into())),
            (
                "Revision",
                meta.rev.map_or("None".into(), |r| r.to_string())
            ),
            ("Expires", when(claims.expires, "never", now)),
            ("Can Be Used", when(claims.not_before, "immediately", now)),
            ("Status", status.to_string()),
        ]),
    );
    let mut json = json!({
        "signed": true,
        "name": name,
        "issuer": claims.issuer,
        "account": claims.issuer,
        "subject": claims.subject,
        "service": claims.subject,
        "vendor": meta.vendor,
        "version": meta.ver,
        "revision": meta.rev,
        "expires": when(claims.expires, "never", now),
        "can_be_used": when(claims.not_before, "immediately", now),
        "targets": entries.targets(),
        "target_hashes": meta.target_hashes,
        "checks": checks,
        "current_target": par::current_target(),
        "valid": status == "valid",
        "status": status,
    });
    if let Some(schema) = &meta.config_schema {
        set(&mut json, "schema", schema.clone());
    }
    if !entries.ignored.is_empty() {
        set(&mut json, "ignored_entries", json!(entries.ignored));
    }
    (text, json)
}

/// The per-target table and its JSON rows.
fn target_checks(checks: &[par::TargetCheck]) -> (String, Vec<Value>) {
    let mut table = Table::new(&["TARGET", "HASH", "STATUS"]);
    let mut rows = Vec::new();
    for check in checks {
        let state = match (&check.signed, &check.actual, check.verdict()) {
            (_, _, Err(par::ParError::HashMismatch { .. })) => "hash mismatch",
            (_, _, Err(_)) => "not covered by the claims",
            (Some(_), None, _) => "not in the archive",
            _ => "ok",
        };
        let hash = check
            .actual
            .clone()
            .or(check.signed.clone())
            .unwrap_or_default();
        table.row(vec![check.target.clone(), hash, state.to_string()]);
        rows.push(json!({
            "target": check.target,
            "signed_hash": check.signed,
            "actual_hash": check.actual,
            "status": state,
        }));
    }
    (table.render(), rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(destination: Option<&str>, compress: bool) -> CreateArgs {
        CreateArgs {
            binary: "target/release/kv".into(),
            name: "kv".into(),
            vendor: "acme".into(),
            arch: "x86_64-linux".into(),
            version: None,
            revision: None,
            schema: None,
            issuer: None,
            subject: None,
            directory: None,
            destination: destination.map(PathBuf::from),
            compress,
            disable_keygen: false,
        }
    }

    #[test]
    fn destinations_follow_wash_rules() {
        let d = |dest, compress| destination(&args(dest, compress), "kv");
        assert_eq!(d(None, false), (PathBuf::from("kv.par"), false));
        assert_eq!(d(None, true), (PathBuf::from("kv.par.gz"), true));
        assert_eq!(
            d(Some("out/x.par"), true),
            (PathBuf::from("out/x.par.gz"), true)
        );
        assert_eq!(
            d(Some("x.par.gz"), false),
            (PathBuf::from("x.par.gz"), true)
        );
        assert_eq!(d(Some("x.par"), false), (PathBuf::from("x.par"), false));
    }

    #[test]
    fn archives_round_trip_compressed_or_not() {
        let binaries =
            std::collections::BTreeMap::from([("x86_64-linux".to_string(), b"bin".to_vec())]);
        for compress in [false, true] {
            let bytes = write_archive(&par::archive_layout("a.b.c", &binaries), compress).unwrap();
            assert_eq!(bytes.starts_with(&GZIP_MAGIC), compress);
            let entries = read_archive(&bytes).unwrap();
            assert_eq!(entries.claims_jwt.as_deref(), Some("a.b.c"));
            assert_eq!(entries.binaries, binaries);
        }
        assert!(read_archive(b"\x1f\x8bgarbage").is_err());
    }

    #[test]
    fn targets_are_single_tokens() {
        assert!(target("x86_64-linux").is_ok());
        assert!(target("../etc").unwrap_err().contains("not a target"));
        assert!(target("").is_err());
    }
}
