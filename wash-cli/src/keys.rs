//! `wash keys gen|list|get`: nkeys in the keys directory (see [`crate::keydir`]).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use crate::keydir::{KEYS_DIR_ENV, KeyDir, KeyKind, SeedKey};
use crate::output::{Report, Table, fields, set};

/// What `wash keys` can do.
#[derive(Subcommand, Debug, Clone)]
pub enum KeysCommand {
    /// Generate a key pair and print its public key and seed (stored with --name)
    #[command(
        after_help = "Examples:\n  wash keys gen account\n  wash keys gen account --name me      # stores ~/.wash/keys/me_account.nk\n  wash keys gen component --name app -o json"
    )]
    Gen(GenArgs),
    /// List the keys in the keys directory
    #[command(after_help = "Example:\n  wash keys list")]
    List(KeysDirArgs),
    /// Print the seed of a stored key
    #[command(after_help = "Example:\n  wash keys get me_account")]
    Get(GetArgs),
}

/// Where keys are stored.
#[derive(Args, Debug, Clone)]
pub struct KeysDirArgs {
    /// Keys directory [default: ~/.wash/keys]
    #[arg(short = 'd', long = "directory", env = KEYS_DIR_ENV, hide_env_values = true)]
    pub directory: Option<PathBuf>,
}

/// `wash keys gen`.
#[derive(Args, Debug, Clone)]
pub struct GenArgs {
    /// Key type: account, user, module (or component), service (or provider),
    /// server (or host), operator, cluster, curve (or x25519)
    #[arg(value_parser = KeyKind::parse)]
    pub kind: KeyKind,
    /// Store the key as `{name}_{type}.nk` in the keys directory (otherwise it is only printed)
    #[arg(short = 'n', long = "name", value_parser = key_name)]
    pub name: Option<String>,
    #[command(flatten)]
    pub dir: KeysDirArgs,
}

/// `wash keys get`.
#[derive(Args, Debug, Clone)]
pub struct GetArgs {
    /// Key name, as `wash keys list` shows it (e.g. `me_account`; `.nk` may be added)
    pub name: String,
    #[command(flatten)]
    pub dir: KeysDirArgs,
}

/// A key name is one file name: no path separators, not empty.
fn key_name(input: &str) -> Result<String, String> {
    if input.is_empty() || input.contains(['/', '\\']) || input.starts_with('.') {
        return Err(format!(
            "`{input}` cannot name a key file: use letters, digits, `-` and `_`"
        ));
    }
    Ok(input.to_string())
}

/// Runs a `wash keys` command.
pub fn run(command: KeysCommand) -> anyhow::Result<Report> {
    match command {
        KeysCommand::Gen(args) => generate(args),
        KeysCommand::List(args) => list(args),
        KeysCommand::Get(args) => get(args),
    }
}

fn generate(args: GenArgs) -> anyhow::Result<Report> {
    let key = SeedKey::generate(args.kind)?;
    let mut text = fields(&[
        ("Public Key:", key.public_key.clone()),
        ("Seed:", key.seed.clone()),
    ]);
    let mut json = json!({
        "public_key": key.public_key,
        "seed": key.seed,
        "type": args.kind.file_word(),
    });
    if let Some(name) = args.name {
        let dir = KeyDir::resolve(args.dir.directory)?;
        let path = dir.save(&format!("{name}_{}", args.kind.file_word()), &key)?;
        text.push_str(&format!("Stored in {}\n", path.display()));
        set(&mut json, "path", json!(path));
    }
    text.push_str("\nRemember that the seed is private: treat it as a secret.");
    Report::data(text, &json)
}

fn list(args: KeysDirArgs) -> anyhow::Result<Report> {
    let dir = KeyDir::resolve(args.directory)?;
    let keys = dir.list()?;
    let text = if keys.is_empty() {
        format!(
            "No keys in {}: create one with `wash keys gen account --name NAME`",
            dir.path().display()
        )
    } else {
        let mut table = Table::new(&["NAME", "TYPE", "PUBLIC KEY"]);
        for key in &keys {
            let public = match (&key.public_key, &key.error) {
                (Some(public), _) => public.clone(),
                (None, Some(error)) => format!("unreadable: {error}"),
                (None, None) => String::new(),
            };
            table.row(vec![
                key.name.clone(),
                key.kind.unwrap_or("?").to_string(),
                public,
            ]);
        }
        format!("Keys in {}\n\n{}", dir.path().display(), table.render())
    };
    let names: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
    Report::data(
        text,
        &json!({"directory": dir.path(), "keys": names, "details": keys}),
    )
}

fn get(args: GetArgs) -> anyhow::Result<Report> {
    let dir = KeyDir::resolve(args.dir.directory)?;
    let key = dir.read(&args.name)?.ok_or_else(|| {
        anyhow::anyhow!(
            "no key `{name}` in {dir}: `wash keys list` shows the keys there",
            name = args.name,
            dir = dir.path().display()
        )
    })?;
    Report::data(
        key.seed.clone(),
        &json!({"seed": key.seed, "public_key": key.public_key, "type": key.kind.file_word()}),
    )
}
