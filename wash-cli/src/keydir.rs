//! Key files, as wash 1.x keeps them: one directory (`--directory`,
//! `$WASH_KEYS`, else `~/.wash/keys`), one file per key named
//! `{name}_{type}.nk` (`me_account.nk`, `app_module.nk`) holding the seed and
//! nothing else. Files are created 0600 and a directory wash creates 0700,
//! since a seed is the whole secret.
//!
//! [`signing_key`] is how `claims sign` and `par create` find their issuer and
//! subject: a seed or a key file given on the command line, else the default
//! key in the directory, generated and stored on first use (wash 1.x's
//! behaviour) unless `--disable-keygen`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use nkeys::{KeyPair, KeyPairType, XKey};

/// Environment variable naming the keys directory, as in wash 1.x.
pub const KEYS_DIR_ENV: &str = "WASH_KEYS";
/// Extension of key files.
pub const KEY_FILE_EXTENSION: &str = "nk";
/// Name of the default account key when `$USER` is unset (wash 1.x's fallback).
const DEFAULT_USER: &str = "user";

/// The kinds of nkeys, by the words wash 1.x uses for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// `A…`: issues claims.
    Account,
    /// `U…`: a NATS user.
    User,
    /// `M…`: a component (wascap "module").
    Module,
    /// `V…`: a capability provider (wascap "service").
    Service,
    /// `N…`: a host (NATS "server").
    Server,
    /// `O…`: an operator.
    Operator,
    /// `C…`: a cluster.
    Cluster,
    /// `X…`: an X25519 curve key (xkey), for sealing secrets.
    Curve,
}

/// Every kind, in the order `wash keys gen --help` lists them.
const ALL_KINDS: [KeyKind; 8] = [
    KeyKind::Account,
    KeyKind::User,
    KeyKind::Module,
    KeyKind::Service,
    KeyKind::Server,
    KeyKind::Operator,
    KeyKind::Cluster,
    KeyKind::Curve,
];

impl KeyKind {
    /// Parses a kind, case-insensitively, with wash 1.x's aliases
    /// (`component`, `provider`, `host`, `x25519`). A clap `value_parser`.
    pub fn parse(input: &str) -> Result<Self, String> {
        Ok(match input.to_ascii_lowercase().as_str() {
            "account" => Self::Account,
            "user" => Self::User,
            "module" | "component" => Self::Module,
            "service" | "provider" => Self::Service,
            "server" | "host" => Self::Server,
            "operator" => Self::Operator,
            "cluster" => Self::Cluster,
            "curve" | "x25519" | "xkey" => Self::Curve,
            _ => {
                return Err(format!(
                    "`{input}` is not a key type: use account, user, module (or component), \
                     service (or provider), server (or host), operator, cluster or curve"
                ));
            }
        })
    }

    /// The word in key file names (`{name}_{word}.nk`), wash 1.x's.
    pub fn file_word(self) -> &'static str {
        match self {
            Self::Account => "account",
            Self::User => "user",
            Self::Module => "module",
            Self::Service => "service",
            Self::Server => "server",
            Self::Operator => "operator",
            Self::Cluster => "cluster",
            Self::Curve => "curve",
        }
    }

    /// The kind in words with its public-key prefix, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Account => "an account key (A…)",
            Self::User => "a user key (U…)",
            Self::Module => "a module key (M…)",
            Self::Service => "a service key (V…)",
            Self::Server => "a server key (N…)",
            Self::Operator => "an operator key (O…)",
            Self::Cluster => "a cluster key (C…)",
            Self::Curve => "a curve key (X…)",
        }
    }

    fn pair_type(self) -> KeyPairType {
        match self {
            Self::Account => KeyPairType::Account,
            Self::User => KeyPairType::User,
            Self::Module => KeyPairType::Module,
            Self::Service => KeyPairType::Service,
            Self::Server => KeyPairType::Server,
            Self::Operator => KeyPairType::Operator,
            Self::Cluster => KeyPairType::Cluster,
            Self::Curve => KeyPairType::Curve,
        }
    }

    fn of(pair_type: &KeyPairType) -> Self {
        ALL_KINDS
            .into_iter()
            .find(|kind| kind.pair_type() == *pair_type)
            .unwrap_or(Self::Account)
    }

    /// The kind whose file word ends `stem` (`me_account` → account).
    fn of_file_stem(stem: &str) -> Option<Self> {
        let (_, word) = stem.rsplit_once('_')?;
        ALL_KINDS.into_iter().find(|kind| kind.file_word() == word)
    }
}

/// A key with its seed.
#[derive(Clone, Debug)]
pub struct SeedKey {
    /// What kind of key it is.
    pub kind: KeyKind,
    /// The seed (`S…`): the secret.
    pub seed: String,
    /// The public key.
    pub public_key: String,
}

impl SeedKey {
    /// A new random key.
    pub fn generate(kind: KeyKind) -> anyhow::Result<Self> {
        if kind == KeyKind::Curve {
            // A curve key's public half is X25519, not Ed25519: XKey derives it.
            let key = XKey::new();
            return Ok(Self {
                kind,
                seed: key
                    .seed()
                    .map_err(|e| anyhow!("cannot encode the seed: {e}"))?,
                public_key: key.public_key(),
            });
        }
        let key = KeyPair::new(kind.pair_type());
        Ok(Self {
            kind,
            seed: key
                .seed()
                .map_err(|e| anyhow!("cannot encode the seed: {e}"))?,
            public_key: key.public_key(),
        })
    }

    /// The key a seed stands for.
    pub fn from_seed(seed: &str) -> anyhow::Result<Self> {
        let seed = seed.trim();
        if seed.starts_with("SX") {
            let key = XKey::from_seed(seed).map_err(|e| anyhow!("not a valid seed: {e}"))?;
            return Ok(Self {
                kind: KeyKind::Curve,
                seed: seed.to_string(),
                public_key: key.public_key(),
            });
        }
        let key = KeyPair::from_seed(seed).map_err(|e| anyhow!("not a valid seed: {e}"))?;
        Ok(Self {
            kind: KeyKind::of(&key.key_pair_type()),
            seed: seed.to_string(),
            public_key: key.public_key(),
        })
    }
}

/// One entry of [`KeyDir::list`].
#[derive(Clone, Debug, serde::Serialize)]
pub struct ListedKey {
    /// The name `wash keys get` takes (the file name without `.nk`).
    pub name: String,
    /// The key's kind from its seed, or from the file name if unreadable.
    #[serde(rename = "type")]
    pub kind: Option<&'static str>,
    /// The public key, if the file holds a valid seed.
    pub public_key: Option<String>,
    /// Why the file could not be read, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The keys directory.
#[derive(Clone, Debug)]
pub struct KeyDir {
    path: PathBuf,
}

impl KeyDir {
    /// `directory` (from `--directory` or `$WASH_KEYS`), else `keys` in the
    /// wash directory (`$WASH_HOME`, else `~/.wash`).
    pub fn resolve(directory: Option<PathBuf>) -> anyhow::Result<Self> {
        let path = match directory {
            Some(path) => path,
            None => crate::washdir::resolve(None)
                .map(|dir| dir.join("keys"))
                .map_err(|e| anyhow!("{e}; or pass --directory or set ${KEYS_DIR_ENV}"))?,
        };
        Ok(Self { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file of key `name` (given with or without `.nk`).
    pub fn file(&self, name: &str) -> PathBuf {
        let name = name
            .strip_suffix(&format!(".{KEY_FILE_EXTENSION}"))
            .unwrap_or(name);
        self.path.join(format!("{name}.{KEY_FILE_EXTENSION}"))
    }

    /// Reads key `name`; `None` if there is no such file.
    pub fn read(&self, name: &str) -> anyhow::Result<Option<SeedKey>> {
        let path = self.file(name);
        match std::fs::read_to_string(&path) {
            Ok(seed) => SeedKey::from_seed(&seed)
                .map(Some)
                .with_context(|| format!("key file {} does not hold a seed", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow!("cannot read key file {}: {e}", path.display())),
        }
    }

    /// Stores `key` as `{name}.nk`, creating the directory (0700) if needed.
    /// An existing file is never overwritten.
    pub fn save(&self, name: &str, key: &SeedKey) -> anyhow::Result<PathBuf> {
        self.create()?;
        let path = self.file(name);
        let mut file = new_private_file(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                anyhow!(
                    "key file {} already exists; wash never overwrites a key: choose another --name or remove the file",
                    path.display()
                )
            } else {
                anyhow!("cannot create key file {}: {e}", path.display())
            }
        })?;
        file.write_all(key.seed.as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write key file {}", path.display()))?;
        Ok(path)
    }

    /// Every `.nk` file in the directory, by name; empty if there is no directory.
    pub fn list(&self) -> anyhow::Result<Vec<ListedKey>> {
        let entries = match std::fs::read_dir(&self.path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => bail!("cannot read keys directory {}: {e}", self.path.display()),
        };
        let mut keys = Vec::new();
        for entry in entries {
            let path = entry
                .with_context(|| format!("cannot read keys directory {}", self.path.display()))?
                .path();
            if path.extension().and_then(|e| e.to_str()) != Some(KEY_FILE_EXTENSION) {
                continue;
            }
            let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            keys.push(match self.read(name) {
                Ok(Some(key)) => ListedKey {
                    name: name.to_string(),
                    kind: Some(key.kind.file_word()),
                    public_key: Some(key.public_key),
                    error: None,
                },
                Ok(None) => continue,
                Err(e) => ListedKey {
                    name: name.to_string(),
                    kind: KeyKind::of_file_stem(name).map(KeyKind::file_word),
                    public_key: None,
                    error: Some(format!("{e:#}")),
                },
            });
        }
        keys.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(keys)
    }

    fn create(&self) -> anyhow::Result<()> {
        if self.path.is_dir() {
            return Ok(());
        }
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&self.path)
            .with_context(|| format!("cannot create keys directory {}", self.path.display()))
    }
}

/// Opens a new file readable and writable by its owner only.
fn new_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Where a signing key came from, for the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyOrigin {
    /// A seed or key file on the command line.
    Given,
    /// The default key file, which existed.
    Stored(PathBuf),
    /// The default key file, generated now.
    Generated(PathBuf),
}

/// A key to sign with, or to sign about.
#[derive(Debug)]
pub struct ResolvedKey {
    /// The key; public-only for a subject given as a public key.
    pub key: KeyPair,
    /// Where it came from.
    pub origin: KeyOrigin,
}

impl ResolvedKey {
    /// The note to print when the key was generated, if it was.
    pub fn note(&self, flag: &str) -> Option<String> {
        match &self.origin {
            KeyOrigin::Generated(path) => Some(format!(
                "no key at {path}: generated {kind} and stored it there; pass {flag} to use another",
                path = path.display(),
                kind = KeyKind::of(&self.key.key_pair_type()).describe(),
            )),
            _ => None,
        }
    }
}

/// What [`signing_key`] looks for.
#[derive(Clone, Copy, Debug)]
pub struct KeyRequest<'a> {
    /// The flag that names it, for messages (`--issuer`).
    pub flag: &'a str,
    /// The kind it must be.
    pub kind: KeyKind,
    /// Whether a public key is enough (a subject: the claims only name it).
    pub public_ok: bool,
    /// Name of the default key, without the type suffix (`app` → `app_module.nk`).
    pub default_name: &'a str,
    /// Whether a missing default key may be generated.
    pub keygen: bool,
}

/// Resolves `input` (a seed, a key file, or for a subject a public key), else
/// the default key of `request` in `dir`, generating it if allowed.
pub fn signing_key(
    input: Option<&str>,
    dir: &KeyDir,
    request: KeyRequest<'_>,
) -> anyhow::Result<ResolvedKey> {
    let resolved = match input {
        Some(input) => ResolvedKey {
            key: key_from_input(input, dir, request)?,
            origin: KeyOrigin::Given,
        },
        None => default_key(dir, request)?,
    };
    let kind = KeyKind::of(&resolved.key.key_pair_type());
    if kind != request.kind {
        bail!(
            "{flag} is {found}, but it must be {wanted}",
            flag = request.flag,
            found = kind.describe(),
            wanted = request.kind.describe(),
        );
    }
    Ok(resolved)
}

/// The issuer (an account key, `--issuer`) and subject (`--subject`, of
/// `subject_kind`) to sign claims about `artifact` with; the defaults are
/// `$USER_account` and `{artifact stem}_{kind}` in `dir`, generated when
/// missing if `keygen`.
pub fn issuer_and_subject(
    issuer: Option<&str>,
    subject: Option<&str>,
    dir: &KeyDir,
    artifact: &Path,
    subject_kind: KeyKind,
    keygen: bool,
) -> anyhow::Result<(ResolvedKey, ResolvedKey)> {
    let account_name = default_account_name();
    let issuer = signing_key(
        issuer,
        dir,
        KeyRequest {
            flag: "--issuer",
            kind: KeyKind::Account,
            public_ok: false,
            default_name: &account_name,
            keygen,
        },
    )?;
    let stem = default_subject_name(artifact);
    let subject = signing_key(
        subject,
        dir,
        KeyRequest {
            flag: "--subject",
            kind: subject_kind,
            public_ok: true,
            default_name: &stem,
            keygen,
        },
    )?;
    Ok((issuer, subject))
}

/// `input` as a key file (a path, or the name of a key in `dir`, with or
/// without `.nk`: `me_account`, `me_account.nk`), else as a seed or public key.
fn key_from_input(input: &str, dir: &KeyDir, request: KeyRequest<'_>) -> anyhow::Result<KeyPair> {
    let flag = request.flag;
    let in_dir = dir.file(input.strip_suffix(".nk").unwrap_or(input));
    let path = if Path::new(input).is_file() || input.contains(std::path::MAIN_SEPARATOR) {
        Path::new(input)
    } else if in_dir.is_file() {
        in_dir.as_path()
    } else {
        Path::new(input)
    };
    let text = if path.is_file() {
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {flag} key file {input}"))?
    } else {
        input.to_string()
    };
    let text = text.trim();
    if let Ok(key) = KeyPair::from_seed(text) {
        return Ok(key);
    }
    if let Ok(key) = KeyPair::from_public_key(text) {
        if request.public_ok {
            return Ok(key);
        }
        bail!("{flag} is a public key; signing needs the seed (S…) or a key file holding it");
    }
    if path.is_file() {
        bail!("{flag} key file {input} does not hold an nkey seed (S…)");
    }
    if input.contains(std::path::MAIN_SEPARATOR) || input.ends_with(".nk") {
        bail!(
            "{flag}: no key file at {input} nor {}: `wash keys list` shows the keys there",
            in_dir.display()
        );
    }
    bail!("{flag} is neither a key file nor an nkey seed (S…)")
}

fn default_key(dir: &KeyDir, request: KeyRequest<'_>) -> anyhow::Result<ResolvedKey> {
    let name = format!("{}_{}", request.default_name, request.kind.file_word());
    let path = dir.file(&name);
    if let Some(stored) = dir.read(&name)? {
        let key = KeyPair::from_seed(&stored.seed)
            .map_err(|e| anyhow!("key file {} is unusable: {e}", path.display()))?;
        return Ok(ResolvedKey {
            key,
            origin: KeyOrigin::Stored(path),
        });
    }
    if !request.keygen {
        bail!(
            "no {flag} given and no key at {path} (--disable-keygen): create one with \
             `wash keys gen {word} --name {default}`, or pass {flag}",
            flag = request.flag,
            path = path.display(),
            word = request.kind.file_word(),
            default = request.default_name,
        );
    }
    let generated = SeedKey::generate(request.kind)?;
    let path = dir.save(&name, &generated)?;
    let key = KeyPair::from_seed(&generated.seed)
        .map_err(|e| anyhow!("generated key is unusable: {e}"))?;
    Ok(ResolvedKey {
        key,
        origin: KeyOrigin::Generated(path),
    })
}

/// The default account key's name: `$USER`, as wash 1.x, so one account
/// signs everything a person builds (what `--allowed-issuers` wants).
pub fn default_account_name() -> String {
    std::env::var("USER")
        .ok()
        .filter(|user| !user.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_USER.to_string())
}

/// The default subject key's name for an artifact: its file stem (wash 1.x).
pub fn default_subject_name(artifact: &Path) -> String {
    artifact
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty())
        .unwrap_or("artifact")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(kind: KeyKind, keygen: bool) -> KeyRequest<'static> {
        KeyRequest {
            flag: "--issuer",
            kind,
            public_ok: false,
            default_name: "app",
            keygen,
        }
    }

    #[test]
    fn kinds_parse_with_wash_aliases() {
        for (word, kind) in [
            ("ACCOUNT", KeyKind::Account),
            ("component", KeyKind::Module),
            ("provider", KeyKind::Service),
            ("host", KeyKind::Server),
            ("x25519", KeyKind::Curve),
        ] {
            assert_eq!(KeyKind::parse(word).unwrap(), kind);
        }
        assert!(
            KeyKind::parse("actor")
                .unwrap_err()
                .contains("not a key type")
        );
    }

    #[test]
    fn generated_keys_have_their_prefix() {
        for kind in ALL_KINDS {
            let key = SeedKey::generate(kind).unwrap();
            let prefix = kind
                .describe()
                .split('(')
                .nth(1)
                .unwrap()
                .chars()
                .next()
                .unwrap();
            assert!(
                key.public_key.starts_with(prefix),
                "{kind:?} {}",
                key.public_key
            );
            assert!(key.seed.starts_with(&format!("S{prefix}")), "{kind:?}");
            let back = SeedKey::from_seed(&key.seed).unwrap();
            assert_eq!(back.public_key, key.public_key);
            assert_eq!(back.kind, kind);
        }
    }

    #[cfg(unix)]
    #[test]
    fn saved_keys_are_private_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt as _;
        let tmp = tempfile::tempdir().unwrap();
        let dir = KeyDir::resolve(Some(tmp.path().join("keys"))).unwrap();
        let key = SeedKey::generate(KeyKind::Account).unwrap();
        let path = dir.save("me_account", &key).unwrap();
        assert_eq!(path, tmp.path().join("keys/me_account.nk"));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(dir.path()), 0o700);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), key.seed);
        let err = dir.save("me_account", &key).unwrap_err();
        assert!(err.to_string().contains("never overwrites"), "{err}");
        let listed = dir.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            listed[0].public_key.as_deref(),
            Some(key.public_key.as_str())
        );
        assert_eq!(dir.read("me_account.nk").unwrap().unwrap().seed, key.seed);
    }

    #[test]
    fn default_keys_are_generated_once_then_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = KeyDir::resolve(Some(tmp.path().to_path_buf())).unwrap();
        let err = signing_key(None, &dir, request(KeyKind::Account, false)).unwrap_err();
        assert!(err.to_string().contains("--disable-keygen"), "{err}");
        let first = signing_key(None, &dir, request(KeyKind::Account, true)).unwrap();
        assert!(matches!(first.origin, KeyOrigin::Generated(_)));
        assert!(first.note("--issuer").unwrap().contains("app_account.nk"));
        let second = signing_key(None, &dir, request(KeyKind::Account, true)).unwrap();
        assert_eq!(
            second.origin,
            KeyOrigin::Stored(tmp.path().join("app_account.nk"))
        );
        assert_eq!(first.key.public_key(), second.key.public_key());
    }

    #[test]
    fn inputs_are_seeds_files_or_for_subjects_public_keys() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = KeyDir::resolve(Some(tmp.path().to_path_buf())).unwrap();
        let account = KeyPair::new_account();
        let seed = account.seed().unwrap();
        let by_seed = signing_key(Some(&seed), &dir, request(KeyKind::Account, false)).unwrap();
        assert_eq!(by_seed.key.public_key(), account.public_key());
        let file = tmp.path().join("x.nk");
        std::fs::write(&file, format!("{seed}\n")).unwrap();
        let by_file = signing_key(file.to_str(), &dir, request(KeyKind::Account, false)).unwrap();
        assert_eq!(by_file.key.public_key(), account.public_key());

        let public = account.public_key();
        let err = signing_key(Some(&public), &dir, request(KeyKind::Account, false)).unwrap_err();
        assert!(err.to_string().contains("needs the seed"), "{err}");
        let module = KeyPair::new_module();
        let subject = KeyRequest {
            flag: "--subject",
            kind: KeyKind::Module,
            public_ok: true,
            ..request(KeyKind::Module, false)
        };
        let by_public = signing_key(Some(&module.public_key()), &dir, subject).unwrap();
        assert_eq!(by_public.key.public_key(), module.public_key());

        let server = KeyPair::new_server().seed().unwrap();
        let err = signing_key(Some(&server), &dir, request(KeyKind::Account, false)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--issuer is a server key (N…), but it must be an account key (A…)"
        );
        let err =
            signing_key(Some("./nope.nk"), &dir, request(KeyKind::Account, false)).unwrap_err();
        assert!(
            err.to_string().contains("no key file at ./nope.nk"),
            "{err}"
        );
        let err = signing_key(Some("garbage"), &dir, request(KeyKind::Account, false)).unwrap_err();
        assert!(err.to_string().contains("neither a key file nor"), "{err}");
    }

    #[test]
    fn a_key_is_found_by_its_name_in_the_key_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = KeyDir::resolve(Some(tmp.path().to_path_buf())).unwrap();
        let account = SeedKey::generate(KeyKind::Account).unwrap();
        dir.save("me_account", &account).unwrap();
        for name in ["me_account", "me_account.nk"] {
            let key = signing_key(Some(name), &dir, request(KeyKind::Account, false)).unwrap();
            assert_eq!(key.key.public_key(), account.public_key, "{name}");
        }
        let err = signing_key(
            Some("you_account.nk"),
            &dir,
            request(KeyKind::Account, false),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("wash keys list"), "{err}");
    }
}
