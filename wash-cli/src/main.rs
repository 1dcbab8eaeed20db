//! `wash`: the Trellis command line.
//!
//! Arguments and flags follow wasmCloud 1.x `wash` (PROTOCOL.md §7), so scripts
//! written for it work against a Trellis lattice (and this `wash` works against
//! wasmCloud hosts). Each topic lives in its own module. Lattice commands:
//! [`get`], [`start`], [`scale`], [`stop`], [`update`], [`link`], [`config`],
//! [`label`], [`app`] (through wadm; `app validate` is offline); [`ctl`] holds the connection and error explanations, [`wait`] the
//! event waits that confirm acknowledged requests. Offline commands, which need
//! no NATS: [`keys`] (with the key files in [`keydir`]), [`claims`], [`par`]
//! and [`inspect`] (with a component's world read by [`wit`]). [`output`]
//! renders text and JSON for all of them. [`up`] runs a local stack (NATS, wadm
//! and a host) for `wash up` and stops it for `wash down`, keeping its files in
//! the wash directory ([`washdir`]).

mod app;
mod call;
mod claims;
mod config;
mod context;
mod ctl;
mod get;
mod inspect;
mod keydir;
mod keys;
mod label;
mod link;
mod output;
mod par;
mod parse;
mod progress;
mod scale;
mod spy;
mod start;
mod stop;
mod up;
mod update;
mod wait;
mod washdir;
mod wit;
mod wrpc_value;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches as _, Parser, Subcommand};

use crate::ctl::{CONNECTION_ARG_IDS, ConnectionOpts, Lattice, OnLattice, OnLatticeArgs};
use crate::output::{OutputKind, Report};

const ABOUT: &str =
    "wash: manage a Trellis (wasmCloud 1.x compatible) lattice from the command line";

const EXAMPLES: &str = "Examples:
  wash up -d
  wash app deploy examples/apps/http-hello.yaml
  wash get hosts
  wash start component registry.example/acme/hello:0.1.0 hello
  wash start provider builtin://http-server web
  wash config put web-addr address=0.0.0.0:8080
  wash link put web hello wasi http --interface incoming-handler --source-config web-addr
  wash get inventory -o json
  wash keys gen account --name me
  wash claims sign build/app.wasm --name app --ver 1.2.0 --issuer ~/.wash/keys/me_account.nk
  wash inspect build/app_s.wasm
  wash down

Connection flags go before the command or anywhere after a lattice command's name
(`wash -x prod get hosts`, `wash get hosts -x prod`); they can also be set as
WASMCLOUD_CTL_HOST, WASMCLOUD_CTL_PORT, WASMCLOUD_LATTICE and WASMCLOUD_CTL_TIMEOUT_MS,
or saved as a context (`wash ctx`) for the options given neither way.
The offline commands (keys, claims, par, inspect) have their own -x and -r (wash 1.x's).";

#[derive(Parser, Debug)]
#[command(name = "wash", version, about = ABOUT, after_help = EXAMPLES)]
struct Cli {
    /// Connection flags given before the command (see [`parse_cli`]).
    #[command(flatten)]
    leading: ConnectionOpts,

    /// Output format
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputKind::Text, global = true)]
    output: OutputKind,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start a local lattice: NATS (unless one runs), wadm and a host
    #[command(
        after_help = "Examples:\n  wash up\n  wash up -d --lattice dev -l zone=local --wadm-manifest examples/apps/http-hello.yaml\n  wash up -d --nats-port 4333 --wash-dir /tmp/stack2\n  wash up -d --nats-remote-url nats://hub.example:7422 --nats-credsfile user.creds --nats-js-domain leaf\n\nFiles (PID files, logs, nats.conf, JetStream data) live in $WASH_HOME, else ~/.wash."
    )]
    Up(up::UpArgs),
    /// Stop what `wash up` started
    #[command(after_help = "Examples:\n  wash down\n  wash down --purge-jetstream")]
    Down(up::down::DownArgs),
    /// Show hosts, inventories, links and claims
    #[command(after_help = "Example:\n  wash get inventory")]
    Get(OnLattice<get::GetCommand>),
    /// Start a component or provider
    #[command(after_help = "Example:\n  wash start component ./hello.wasm hello")]
    Start(OnLattice<start::StartCommand>),
    /// Scale a component on a host
    #[command(after_help = "Example:\n  wash scale component NBQ4…XYZ ./hello.wasm hello -c 8")]
    Scale(OnLattice<scale::ScaleCommand>),
    /// Stop a component, provider or host
    #[command(after_help = "Example:\n  wash stop component hello")]
    Stop(OnLattice<stop::StopCommand>),
    /// Update a running component to a new image
    #[command(
        after_help = "Example:\n  wash update component hello registry.example/acme/hello:0.2.0"
    )]
    Update(OnLattice<update::UpdateCommand>),
    /// Put, delete and list links
    #[command(
        after_help = "Example:\n  wash link put web hello wasi http --interface incoming-handler"
    )]
    Link(OnLattice<link::LinkCommand>),
    /// Put, get and delete named configs
    #[command(after_help = "Example:\n  wash config put web-addr address=0.0.0.0:8080")]
    Config(OnLattice<config::ConfigCommand>),
    /// Put, deploy and inspect applications (through wadm)
    #[command(
        after_help = "Examples:\n  wash app deploy wadm.yaml\n  wash app list\n  wash app status hello-world\n  wash app validate wadm.yaml"
    )]
    App(OnLattice<app::AppCommand>),
    /// Set or remove host labels
    #[command(
        after_help = "Example:\n  wash label NBQ4…XYZ zone=eu-west\n  wash label NBQ4…XYZ zone --delete"
    )]
    Label(OnLatticeArgs<label::LabelArgs>),
    /// Save, list and select contexts (named connection settings)
    #[command(
        after_help = "Examples:\n  wash ctx new prod --ctl-host 10.0.0.5 -x prod\n  wash ctx default prod\n  wash ctx list\n  wash get hosts --context prod"
    )]
    Ctx(OnLattice<context::CtxCommand>),
    /// Generate, list and show nkeys
    #[command(subcommand, after_help = "Example:\n  wash keys gen account --name me")]
    Keys(keys::KeysCommand),
    /// Sign components and inspect their claims
    #[command(
        subcommand,
        after_help = "Example:\n  wash claims sign build/app.wasm --name app --ver 1.2.0"
    )]
    Claims(claims::ClaimsCommand),
    /// Create and inspect provider archives
    #[command(
        subcommand,
        after_help = "Example:\n  wash par create --binary target/release/kv --name kv --vendor acme"
    )]
    Par(par::ParCommand),
    /// Show the claims of a component or provider archive, and a component's world
    #[command(
        after_help = "Examples:\n  wash inspect build/app_s.wasm\n  wash inspect build/app_s.wasm --wit\n  wash inspect my-provider.par.gz -o json"
    )]
    Inspect(inspect::InspectArgs),
    /// Invoke a component's exported function over the lattice and print the result
    #[command(
        after_help = "Examples:\n  wash call ponger example:pong/pingpong.ping\n  wash call ponger example:pong/pingpong.echo '{\"message\": \"hi\", \"times\": 2, \"tags\": [\"a\"]}'\n  wash call ponger example:pong/pingpong.work 50 --wit-from ./ponger.wasm -o json\n\nArguments are JSON values typed by the function's WIT signature, read from --wit-from\nor from the component's file:// image."
    )]
    Call(OnLatticeArgs<call::CallArgs>),
    /// Watch the wRPC calls to and from a component, live
    #[command(
        after_help = "Examples:\n  wash spy ponger\n  wash spy pinger -o json --count 10\n\nCalls a host keeps in-process (caller and target on the same host) do not cross NATS\nand are not shown; start hosts with --no-local-calls to see them."
    )]
    Spy(OnLatticeArgs<spy::SpyArgs>),
    /// Print a shell completion script
    #[command(
        after_help = "Example:\n  wash completions bash > /etc/bash_completion.d/wash\n  wash completions zsh > \"${fpath[1]}/_wash\""
    )]
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
        /// Accepted, and ignored, so that a shell alias carrying the
        /// connection flags works here too; completions never connect.
        #[command(flatten)]
        connection: ConnectionOpts,
    },
}

/// The clap command: the derived one, with the connection flags of the top
/// level made local to it. Declared global (as they are inside each lattice
/// command), they would reach `claims sign` and `par create`, whose wash 1.x
/// flags `-x` (expiry) and `-r` (revision) they would clash with.
fn cli_command() -> clap::Command {
    CONNECTION_ARG_IDS
        .iter()
        .fold(Cli::command(), |command, id| {
            command.mut_arg(*id, |arg| arg.global(false))
        })
}

/// Parses the command line. Connection flags may come before the command
/// (`wash --nats-url … get hosts`) or after a lattice command's name; given
/// both ways, the later one wins.
fn parse_cli<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = cli_command().try_get_matches_from(args)?;
    let mut cli = Cli::from_arg_matches(&matches)?;
    if let Some((_, command_matches)) = matches.subcommand() {
        let leading = cli.leading.clone();
        if let Some(connection) = cli.command.connection_mut() {
            connection.take_leading(&leading, &matches, command_matches);
        }
    }
    Ok(cli)
}

impl Command {
    /// The connection options of a lattice command.
    fn connection_mut(&mut self) -> Option<&mut ConnectionOpts> {
        Some(match self {
            Command::Get(c) => &mut c.connection,
            Command::Start(c) => &mut c.connection,
            Command::Scale(c) => &mut c.connection,
            Command::Stop(c) => &mut c.connection,
            Command::Update(c) => &mut c.connection,
            Command::Link(c) => &mut c.connection,
            Command::Config(c) => &mut c.connection,
            Command::Label(c) => &mut c.connection,
            Command::Call(c) => &mut c.connection,
            Command::Spy(c) => &mut c.connection,
            Command::App(c) => &mut c.connection,
            Command::Ctx(c) => &mut c.connection,
            Command::Completions { connection, .. } => connection,
            Command::Keys(_)
            | Command::Claims(_)
            | Command::Par(_)
            | Command::Inspect(_)
            | Command::Up(_)
            | Command::Down(_) => {
                return None;
            }
        })
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = match parse_cli(std::env::args_os()) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let output = cli.output;
    match run(cli.command, output).await {
        Ok(report) => {
            let Some(report) = report else {
                return ExitCode::SUCCESS;
            };
            report.print(output);
            if report.failure().is_some() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(error) => {
            output::print_error(output, &error);
            ExitCode::FAILURE
        }
    }
}

/// Runs the command; `None` for commands that print on their own (completions).
async fn run(command: Command, output: OutputKind) -> anyhow::Result<Option<Report>> {
    let report = match command {
        Command::Up(args) => return up::run(args, output).await,
        Command::Down(args) => up::down::run(args).await,
        Command::Completions { shell, .. } => {
            // Generated into memory: clap_complete panics on write errors, and a
            // closed pipe (`wash completions bash | head`) is not worth one.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cli_command(), "wash", &mut script);
            let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), &script);
            return Ok(None);
        }
        Command::Spy(c) => {
            spy::run(&connect(&c.connection).await?, c.args, output).await?;
            return Ok(None);
        }
        Command::Ctx(c) => context::run(&c.connection, c.command),
        Command::Keys(command) => keys::run(command),
        Command::Claims(command) => claims::run(command),
        Command::Par(command) => par::run(command),
        Command::Inspect(args) => inspect::run(args, true),
        Command::Get(c) => get::run(&connect(&c.connection).await?, c.command).await,
        Command::Start(c) => {
            let lattice = connect(&c.connection).await?;
            start::run(&lattice, c.command, c.connection.timeout_ms).await
        }
        Command::Scale(c) => scale::run(&connect(&c.connection).await?, c.command).await,
        Command::Stop(c) => stop::run(&connect(&c.connection).await?, c.command).await,
        Command::Update(c) => update::run(&connect(&c.connection).await?, c.command).await,
        Command::Link(c) => link::run(&connect(&c.connection).await?, c.command).await,
        Command::Config(c) => config::run(&connect(&c.connection).await?, c.command).await,
        Command::Label(c) => label::run(&connect(&c.connection).await?, c.args).await,
        Command::Call(c) => call::run(&connect(&c.connection).await?, c.args).await,
        Command::App(c) => match c.command {
            app::AppCommand::Validate(args) => app::validate_file(&args),
            command => {
                let lattice = connect(&c.connection).await?;
                app::run(&lattice, c.connection.timeout(), command, output).await
            }
        },
    };
    report.map(Some)
}

async fn connect(connection: &ConnectionOpts) -> anyhow::Result<Lattice> {
    Lattice::connect(connection).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        cli_command().debug_assert();
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = parse_cli([
            "wash",
            "get",
            "hosts",
            "-x",
            "prod",
            "-o",
            "json",
            "--timeout-ms",
            "500",
        ])
        .unwrap();
        assert_eq!(cli.output, OutputKind::Json);
        let Command::Get(get) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(get.connection.lattice, "prod");
        assert_eq!(get.connection.timeout_ms, 500);
    }

    #[test]
    fn connection_flags_work_before_the_command_and_later_ones_win() {
        let cli = parse_cli([
            "wash",
            "--nats-url",
            "nats://a:1",
            "-x",
            "prod",
            "get",
            "hosts",
        ])
        .unwrap();
        let Command::Get(get) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(get.connection.url(), "nats://a:1");
        assert_eq!(get.connection.lattice, "prod");
        let cli = parse_cli(["wash", "-x", "prod", "get", "hosts", "-x", "dev"]).unwrap();
        let Command::Get(get) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(get.connection.lattice, "dev");
        // Offline commands keep their own -x and -r.
        let cli = parse_cli([
            "wash", "-x", "prod", "claims", "sign", "a.wasm", "-x", "3", "-r", "2",
        ])
        .unwrap();
        let Command::Claims(claims::ClaimsCommand::Sign(args)) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(args.signing.expires_in_days, Some(3));
        assert_eq!(args.rev, Some(2));
    }

    #[test]
    fn credentials_file_is_a_connection_flag() {
        let cli = parse_cli(["wash", "--ctl-credsfile", "a.creds", "get", "hosts"]).unwrap();
        let Command::Get(get) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(get.connection.ctl_credsfile, Some("a.creds".into()));
        let cli = parse_cli(["wash", "get", "links", "--ctl-credsfile", "b.creds"]).unwrap();
        let Command::Get(get) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(get.connection.ctl_credsfile, Some("b.creds".into()));
    }

    #[test]
    fn options_left_at_their_defaults_are_recorded_for_contexts() {
        let cli = parse_cli(["wash", "-p", "4333", "get", "hosts", "--context", "lab"]).unwrap();
        let Command::Get(get) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(get.connection.context.as_deref(), Some("lab"));
        assert!(!get.connection.defaulted.contains(&"ctl_port"));
        assert!(!get.connection.defaulted.contains(&"context"));
        if std::env::var_os("WASMCLOUD_CTL_HOST").is_none() {
            assert!(get.connection.defaulted.contains(&"ctl_host"));
        }
    }

    #[test]
    fn up_takes_wash_1x_flags() {
        let cli = parse_cli([
            "wash",
            "up",
            "-d",
            "--nats-port",
            "4333",
            "-x",
            "dev",
            "-l",
            "zone=eu",
            "-l",
            "team=web",
            "--wadm-manifest",
            "app.yaml",
            "--allow-file-load=false",
        ])
        .unwrap();
        let Command::Up(args) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert!(args.detached);
        assert_eq!(args.nats_port, 4333);
        assert_eq!(args.lattice, "dev");
        assert_eq!(args.labels.len(), 2);
        assert!(!args.allow_file_load);
        let cli = parse_cli(["wash", "up"]).unwrap();
        let Command::Up(args) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert!(args.allow_file_load && !args.detached);
        // A credentials file only makes sense with a remote to connect to.
        assert!(parse_cli(["wash", "up", "--nats-credsfile", "x.creds"]).is_err());
    }

    #[test]
    fn connection_flags_also_work_after_the_command_name() {
        let cli = parse_cli(["wash", "get", "-x", "prod", "hosts"]).unwrap();
        let Command::Get(get) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(get.connection.lattice, "prod");
    }

    #[test]
    fn claims_sign_takes_wash_1x_flags() {
        let cli = parse_cli([
            "wash",
            "claims",
            "sign",
            "./app.wasm",
            "-n",
            "app",
            "-v",
            "1.2.0",
            "-r",
            "3",
            "-t",
            "web",
            "-t",
            "prod",
            "-a",
            "acme/app",
            "-i",
            "SA…",
            "-s",
            "SM…",
            "-d",
            "./out.wasm",
            "-x",
            "30",
            "-b",
            "1",
            "--directory",
            "./keys",
            "--disable-keygen",
            "-o",
            "json",
        ])
        .unwrap();
        assert_eq!(cli.output, OutputKind::Json);
        let Command::Claims(claims::ClaimsCommand::Sign(args)) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(args.name.as_deref(), Some("app"));
        assert_eq!(args.ver.as_deref(), Some("1.2.0"));
        assert_eq!(args.rev, Some(3));
        assert_eq!(args.tags, ["web", "prod"]);
        assert_eq!(args.destination, Some("./out.wasm".into()));
        assert_eq!(args.signing.expires_in_days, Some(30));
        assert_eq!(args.signing.not_before_days, Some(1));
        assert!(args.signing.disable_keygen);
    }

    #[test]
    fn par_create_takes_wash_1x_flags() {
        let cli = parse_cli([
            "wash",
            "par",
            "create",
            "-b",
            "./kv",
            "-n",
            "kv",
            "-v",
            "acme",
            "-a",
            "aarch64-linux",
            "-r",
            "2",
            "--version",
            "1.0.0",
            "-d",
            "./keys",
            "--destination",
            "kv.par.gz",
            "--compress",
        ])
        .unwrap();
        let Command::Par(par::ParCommand::Create(args)) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(args.vendor, "acme");
        assert_eq!(args.arch, "aarch64-linux");
        assert_eq!(args.directory, Some("./keys".into()));
        assert!(args.compress);
        let cli = parse_cli(["wash", "par", "create", "-b", "kv", "-n", "kv", "-v", "a"]).unwrap();
        let Command::Par(par::ParCommand::Create(args)) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(args.arch, trellis_interfaces::claims::par::current_target());
    }

    #[test]
    fn keys_gen_takes_wash_aliases() {
        let cli = parse_cli(["wash", "keys", "gen", "provider", "--name", "kv"]).unwrap();
        let Command::Keys(keys::KeysCommand::Gen(args)) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(args.kind, keydir::KeyKind::Service);
        assert!(parse_cli(["wash", "keys", "gen", "actor"]).is_err());
        assert!(parse_cli(["wash", "keys", "gen", "account", "--name", "../x"]).is_err());
    }

    #[test]
    fn start_component_follows_wash_argument_order() {
        let cli = parse_cli([
            "wash",
            "start",
            "component",
            "file:///x.wasm",
            "hello",
            "--max-instances",
            "3",
            "-c",
            "zone=eu",
            "--config",
            "a",
            "--config",
            "b",
        ])
        .unwrap();
        let Command::Start(OnLattice {
            command: start::StartCommand::Component(args),
            ..
        }) = cli.command
        else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(args.component_ref, "file:///x.wasm");
        assert_eq!(args.component_id, "hello");
        assert_eq!(args.max_instances, 3);
        assert_eq!(args.constraints, [("zone".to_string(), "eu".to_string())]);
        assert_eq!(args.config, ["a", "b"]);
        assert_eq!(args.wait_timeout_ms, start::DEFAULT_COMPONENT_WAIT_MS);
    }

    #[test]
    fn scale_component_uses_short_flags_of_wash() {
        let cli = parse_cli([
            "wash",
            "scale",
            "component",
            "NHOST",
            "file:///x.wasm",
            "hello",
            "-c",
            "0",
            "-a",
            "team=web",
            "--allow-update",
        ])
        .unwrap();
        let Command::Scale(OnLattice {
            command: scale::ScaleCommand::Component(args),
            ..
        }) = cli.command
        else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(args.host_id, "NHOST");
        assert_eq!(args.max_instances, 0);
        assert!(args.allow_update);
    }

    #[test]
    fn link_put_requires_an_interface() {
        let err = parse_cli(["wash", "link", "put", "web", "hello", "wasi", "http"]).unwrap_err();
        assert!(err.to_string().contains("--interface"), "{err}");
        let cli = parse_cli([
            "wash",
            "link",
            "put",
            "web",
            "hello",
            "wasi",
            "http",
            "--interface",
            "incoming-handler",
            "--source-config",
            "web-addr",
            "-l",
            "admin",
        ])
        .unwrap();
        let Command::Link(OnLattice {
            command: link::LinkCommand::Put(args),
            ..
        }) = cli.command
        else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(args.link_name, "admin");
        assert_eq!(args.source_config, ["web-addr"]);
    }

    #[test]
    fn bad_ids_and_pairs_are_usage_errors() {
        assert!(parse_cli(["wash", "stop", "component", "a.b"]).is_err());
        assert!(parse_cli(["wash", "config", "put", "c", "novalue"]).is_err());
    }
}
