//! `wash claims sign|inspect`: wascap claims in a component's `wasmcloud_jwt`
//! section (PROTOCOL.md §5.1), made and checked with
//! [`trellis_interfaces::claims`].
//!
//! `sign` finds its keys like wash 1.x (see [`crate::keydir`]); `inspect`
//! shows the claims even when they do not verify, says which check failed,
//! and exits non-zero then, so scripts can gate on it.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use trellis_interfaces::claims::{self, Claims, ClaimsError, Component, EmbeddedClaims};

use crate::inspect::{self, InspectArgs};
use crate::keydir::{self, KEYS_DIR_ENV, KeyDir, KeyKind};
use crate::output::{Report, fields, set};

/// Seconds in a day, for `--expires` and `--nbf` (days from now, as wash 1.x).
const SECS_PER_DAY: u64 = 86_400;

/// What `wash claims` can do.
#[derive(Subcommand, Debug, Clone)]
pub enum ClaimsCommand {
    /// Sign a component (or core module): embed claims in its `wasmcloud_jwt` section
    #[command(
        after_help = "Examples:\n  wash claims sign build/app.wasm --name app --ver 1.2.0 --issuer ~/.wash/keys/me_account.nk\n  wash claims sign app.wasm -x 30 -t web -t prod      # expires in 30 days, two tags"
    )]
    Sign(Box<SignArgs>),
    /// Show and verify the claims of a signed component (or provider archive)
    #[command(
        after_help = "Examples:\n  wash claims inspect build/app_s.wasm\n  wash claims inspect build/app_s.wasm -o json\n  wash claims inspect build/app_s.wasm --jwt-only"
    )]
    Inspect(InspectArgs),
}

/// Key directory, validity window and key generation, shared by the signing commands.
#[derive(Args, Debug, Clone)]
pub struct SigningOpts {
    /// Keys directory, for default keys [default: ~/.wash/keys]
    #[arg(long = "directory", env = KEYS_DIR_ENV, hide_env_values = true)]
    pub directory: Option<PathBuf>,
    /// The claims expire this many days from now (never, if left off)
    #[arg(short = 'x', long = "expires", value_name = "DAYS")]
    pub expires_in_days: Option<u64>,
    /// The claims are valid only this many days from now (at once, if left off)
    #[arg(short = 'b', long = "nbf", value_name = "DAYS")]
    pub not_before_days: Option<u64>,
    /// Fail instead of generating a missing default key
    #[arg(long = "disable-keygen")]
    pub disable_keygen: bool,
}

impl SigningOpts {
    /// `(nbf, exp)` in seconds since the epoch, from days after `now`.
    pub fn window(&self, now: u64) -> anyhow::Result<(Option<u64>, Option<u64>)> {
        let after = |days: Option<u64>, flag: &str| -> anyhow::Result<Option<u64>> {
            days.map(|days| {
                days.checked_mul(SECS_PER_DAY)
                    .and_then(|secs| secs.checked_add(now))
                    .ok_or_else(|| anyhow!("{flag} {days} days is too far in the future"))
            })
            .transpose()
        };
        Ok((
            after(self.not_before_days, "--nbf")?,
            after(self.expires_in_days, "--expires")?,
        ))
    }
}

/// `wash claims sign`.
#[derive(Args, Debug, Clone)]
pub struct SignArgs {
    /// The wasm file to sign
    pub source: PathBuf,
    /// Where to write the signed file [default: `{stem}_s.wasm` next to the source]
    #[arg(short = 'd', long = "destination")]
    pub destination: Option<PathBuf>,
    /// Name of the component [default: the file stem]
    #[arg(short = 'n', long = "name")]
    pub name: Option<String>,
    /// Tag to embed (repeatable)
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// Revision number
    #[arg(short = 'r', long = "rev")]
    pub rev: Option<i32>,
    /// Human-readable version
    #[arg(short = 'v', long = "ver")]
    pub ver: Option<String>,
    /// Call alias: lowercase letters, digits, `_` and `/`
    #[arg(short = 'a', long = "call-alias", value_parser = call_alias)]
    pub call_alias: Option<String>,
    /// Issuer: an account seed (SA…) or key file [default: `$USER_account.nk` in the keys directory]
    #[arg(
        short = 'i',
        long = "issuer",
        env = "WASH_ISSUER_KEY",
        hide_env_values = true
    )]
    pub issuer: Option<String>,
    /// Subject: a module seed (SM…), key file or public key [default: `{stem}_module.nk`]
    #[arg(
        short = 's',
        long = "subject",
        env = "WASH_SUBJECT_KEY",
        hide_env_values = true
    )]
    pub subject: Option<String>,
    #[command(flatten)]
    pub signing: SigningOpts,
}

/// Checks a call alias as wash 1.x does.
fn call_alias(input: &str) -> Result<String, String> {
    if input.is_empty() {
        return Err("the call alias must not be empty".into());
    }
    if input.len() == 56
        && input
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        return Err("a public key cannot be a call alias".into());
    }
    if let Some(bad) = input
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '/'))
    {
        return Err(format!(
            "`{input}` contains `{bad}`: call aliases are lowercase letters, digits, `_` and `/`"
        ));
    }
    Ok(input.to_string())
}

/// Runs a `wash claims` command.
pub fn run(command: ClaimsCommand) -> anyhow::Result<Report> {
    match command {
        ClaimsCommand::Sign(args) => sign(*args),
        ClaimsCommand::Inspect(args) => inspect::run(args, false),
    }
}

/// Seconds since the Unix epoch now.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn sign(args: SignArgs) -> anyhow::Result<Report> {
    let wasm = std::fs::read(&args.source)
        .with_context(|| format!("cannot read {}", args.source.display()))?;
    let dir = KeyDir::resolve(args.signing.directory.clone())?;
    let stem = keydir::default_subject_name(&args.source);
    let (issuer, subject) = keydir::issuer_and_subject(
        args.issuer.as_deref(),
        args.subject.as_deref(),
        &dir,
        &args.source,
        KeyKind::Module,
        !args.signing.disable_keygen,
    )?;
    let now = now_secs();
    let (not_before, expires) = args.signing.window(now)?;
    let mut claims = Claims::new(
        issuer.key.public_key(),
        subject.key.public_key(),
        now,
        Component {
            name: Some(args.name.clone().unwrap_or_else(|| stem.clone())),
            tags: (!args.tags.is_empty()).then(|| args.tags.clone()),
            rev: args.rev,
            ver: args.ver.clone(),
            call_alias: args.call_alias.clone(),
            ..Default::default()
        },
    );
    claims.not_before = not_before;
    claims.expires = expires;
    let signed = claims::embed_component_claims(&wasm, &claims, &issuer.key)
        .with_context(|| format!("cannot sign {}", args.source.display()))?;
    let destination = args
        .destination
        .clone()
        .unwrap_or_else(|| signed_path(&args.source, &stem));
    write_file(&destination, &signed)?;
    let hash = claims::module_hash(&signed)?;
    Ok(Report::action(
        format!("Successfully signed {}", destination.display()),
        json!({
            "destination": destination,
            "issuer": issuer.key.public_key(),
            "subject": subject.key.public_key(),
            "hash": hash,
        }),
    )
    .note_all(issuer.note("--issuer"))
    .note_all(subject.note("--subject")))
}

/// `{dir}/{stem}_s.wasm` beside `source`.
fn signed_path(source: &Path, stem: &str) -> PathBuf {
    source.with_file_name(format!("{stem}_s.wasm"))
}

/// Writes `bytes` to `path`, creating its directory.
pub fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create directory {}", parent.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// A short name for a failed check, for the `status` field and the table.
pub fn status_of(error: &ClaimsError) -> &'static str {
    match error {
        ClaimsError::HashMismatch { .. } => "hash mismatch",
        ClaimsError::Expired { .. } => "expired",
        ClaimsError::NotYetValid { .. } => "not yet valid",
        ClaimsError::BadSignature { .. } => "bad signature",
        ClaimsError::IssuerNotAccount { .. } | ClaimsError::InvalidIssuer { .. } => "bad issuer",
        ClaimsError::UnhashedRevision { .. } => "unhashed revision",
        ClaimsError::MalformedJwt(_)
        | ClaimsError::UnsupportedHeader { .. }
        | ClaimsError::MissingIssuer
        | ClaimsError::MissingSubject
        | ClaimsError::MissingMetadata { .. } => "malformed",
        _ => "invalid",
    }
}

/// "never" / "immediately" for an absent bound, else the date and how far it is from `now`.
pub fn when(secs: Option<u64>, absent: &str, now: u64) -> String {
    let Some(secs) = secs else {
        return absent.to_string();
    };
    let date = claims::human_time(secs);
    let (distance, future) = if secs >= now {
        (secs - now, true)
    } else {
        (now - secs, false)
    };
    let amount = match distance {
        0..=119 => format!("{distance} seconds"),
        120..=7_199 => format!("{} minutes", distance / 60),
        7_200..=172_799 => format!("{} hours", distance / 3_600),
        _ => format!("{} days", distance / SECS_PER_DAY),
    };
    if future {
        format!("{date} (in {amount})")
    } else {
        format!("{date} ({amount} ago)")
    }
}

/// The claims of a component, verified at `now`: text, JSON, and the failure
/// if they do not verify.
pub fn component_report(
    embedded: &EmbeddedClaims,
    verdict: Result<(), ClaimsError>,
    now: u64,
) -> (String, Value, Option<String>) {
    let c = &embedded.claims;
    let meta = c.metadata.clone().unwrap_or_default();
    let name = meta.name.clone().unwrap_or_default();
    let status = verdict.as_ref().err().map_or("valid", status_of);
    let error = verdict.err().map(|e| e.to_string());
    let tags = meta.tags.clone().unwrap_or_default();
    let text = format!(
        "{name} - Component\n{}",
        fields(&[
            ("Account", c.issuer.clone()),
            ("Component", c.subject.clone()),
            ("Expires", when(c.expires, "never", now)),
            ("Can Be Used", when(c.not_before, "immediately", now)),
            (
                "Version",
                format!(
                    "{} ({})",
                    meta.ver.as_deref().unwrap_or("None"),
                    meta.rev.unwrap_or(0)
                )
            ),
            (
                "Tags",
                if tags.is_empty() {
                    "None".into()
                } else {
                    tags.join(", ")
                }
            ),
            (
                "Call Alias",
                meta.call_alias.clone().unwrap_or_else(|| "None".into())
            ),
            ("Hash", meta.hash.clone()),
            ("Status", status.to_string()),
        ])
    );
    let mut json = json!({
        "signed": true,
        "name": name,
        "account": c.issuer,
        "component": c.subject,
        "issuer": c.issuer,
        "subject": c.subject,
        "issued_at": c.issued_at,
        "expires": when(c.expires, "never", now),
        "expires_at": c.expires,
        "can_be_used": when(c.not_before, "immediately", now),
        "not_before": c.not_before,
        "version": meta.ver,
        "revision": meta.rev.unwrap_or(0),
        "tags": tags,
        "call_alias": meta.call_alias,
        "hash": meta.hash,
        "computed_hash": embedded.computed_hash,
        "section": embedded.section,
        "jti": c.id,
        "wascap_revision": c.wascap_revision,
        "valid": error.is_none(),
        "status": status,
    });
    if let Some(error) = &error {
        set(&mut json, "error", json!(error));
    }
    (text, json, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_aliases_follow_wash_rules() {
        assert_eq!(call_alias("acme/hello_1").unwrap(), "acme/hello_1");
        assert!(call_alias("Hello").unwrap_err().contains("`H`"));
        assert!(call_alias("").is_err());
        let key = nkeys::KeyPair::new_module().public_key();
        assert!(call_alias(&key).unwrap_err().contains("public key"));
    }

    #[test]
    fn window_is_days_from_now() {
        let opts = SigningOpts {
            directory: None,
            expires_in_days: Some(2),
            not_before_days: Some(0),
            disable_keygen: false,
        };
        assert_eq!(
            opts.window(100).unwrap(),
            (Some(100), Some(100 + 2 * 86_400))
        );
        let huge = SigningOpts {
            expires_in_days: Some(u64::MAX),
            ..opts
        };
        assert!(
            huge.window(1)
                .unwrap_err()
                .to_string()
                .contains("--expires")
        );
    }

    #[test]
    fn times_read_naturally() {
        assert_eq!(when(None, "never", 0), "never");
        assert_eq!(
            when(Some(86_400 * 3), "never", 0),
            "1970-01-04T00:00:00Z (in 3 days)"
        );
        assert_eq!(
            when(Some(0), "never", 60),
            "1970-01-01T00:00:00Z (60 seconds ago)"
        );
    }

    #[test]
    fn signed_files_sit_next_to_the_source() {
        assert_eq!(
            signed_path(Path::new("build/app.wasm"), "app"),
            PathBuf::from("build/app_s.wasm")
        );
        assert_eq!(
            signed_path(Path::new("app.wasm"), "app"),
            PathBuf::from("app_s.wasm")
        );
    }
}
