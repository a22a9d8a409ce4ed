//! The command line: argument parsing, password and environment handling,
//! output formats and progress display. The only part of cairn that prints,
//! reads the environment or prompts. One file per subcommand.

mod browse;
mod cat;
mod env;
mod forget;
mod key;
pub mod open_files;
mod output;
mod profile;
mod progress_bar;
mod prune;
mod repair;
mod restore;
mod snapshot;
mod snapshots;
mod sync;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use cairn::crypto::KdfParams;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Exit codes, as documented in README.md.
pub mod exit {
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const PARTIAL: u8 = 3;
    pub const DAMAGED: u8 = 4;
    pub const NO_REPOSITORY: u8 = 10;
    pub const WRONG_PASSWORD: u8 = 12;
}

#[derive(Parser, Debug)]
#[command(
    name = "cairn",
    version,
    about = "Deduplicating, encrypted backups to local disk, Mega and S3",
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Repository location: a path, local:PATH or mega:PATH
    /// [default: $XDG_DATA_HOME/cairn/repository]
    #[arg(short = 'r', long = "repo", env = "CAIRN_REPOSITORY", global = true)]
    pub repo: Option<String>,
    /// Read the password from this file (first line)
    #[arg(long, env = "CAIRN_PASSWORD_FILE", global = true)]
    pub password_file: Option<PathBuf>,
    /// Run this shell command and use its first output line as the password
    #[arg(long, env = "CAIRN_PASSWORD_COMMAND", global = true)]
    pub password_command: Option<String>,
    /// Local cache directory [default: $XDG_CACHE_HOME/cairn]
    #[arg(long, env = "CAIRN_CACHE_DIR", global = true)]
    pub cache_dir: Option<PathBuf>,
    /// Use a temporary cache that is removed on exit
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// Print nothing but errors and the final summary
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Credentials file for mega: repositories (MegaFuse format accepted)
    #[arg(long, env = "CAIRN_MEGA_CONFIG", global = true)]
    pub mega_config: Option<PathBuf>,
}

/// Argon2id cost, for commands that create a key. Cheap values are for tests.
#[derive(clap::Args, Debug, Clone)]
pub struct KdfArgs {
    /// Argon2id memory in KiB
    #[arg(long, default_value_t = KdfParams::default().memory_kib)]
    pub kdf_memory_kib: u32,
    /// Argon2id iterations
    #[arg(long, default_value_t = KdfParams::default().iterations)]
    pub kdf_iterations: u32,
    /// Argon2id lanes
    #[arg(long, default_value_t = KdfParams::default().parallelism)]
    pub kdf_parallelism: u32,
}

impl KdfArgs {
    pub fn params(&self) -> KdfParams {
        KdfParams {
            memory_kib: self.kdf_memory_kib,
            iterations: self.kdf_iterations,
            parallelism: self.kdf_parallelism,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new encrypted repository
    Init(InitArgs),
    /// Back up files and directories into a new snapshot
    Snapshot(snapshot::SnapshotArgs),
    /// List snapshots
    Snapshots(snapshots::SnapshotsArgs),
    /// List the contents of a snapshot
    Ls(browse::LsArgs),
    /// Show what changed between two snapshots
    Diff(browse::DiffArgs),
    /// Restore a snapshot, or part of one, into a directory
    Restore(restore::RestoreArgs),
    /// Print a repository object as JSON, for inspection
    Cat(cat::CatArgs),
    /// Manage the passwords (keys) that open the repository
    Key(key::KeyArgs),
    /// Remove snapshots by retention policy or by id
    Forget(forget::ForgetArgs),
    /// Reclaim the space of data no snapshot references
    Prune(prune::PruneArgs),
    /// Check the repository's integrity (and with --read-data, all data)
    Verify(verify::VerifyArgs),
    /// Mirror the repository to another location (e.g. Mega), or back
    Sync(sync::SyncArgs),
    /// Rebuild the index or rewrite damaged snapshots (never deletes packs)
    Repair(repair::RepairArgs),
}

#[derive(clap::Args, Debug)]
pub struct InitArgs {
    #[command(flatten)]
    pub kdf: KdfArgs,
    /// Minimum chunk size in bytes
    #[arg(long, default_value_t = 512 * 1024)]
    pub chunk_min: u32,
    /// Average chunk size in bytes
    #[arg(long, default_value_t = 1024 * 1024)]
    pub chunk_avg: u32,
    /// Maximum chunk size in bytes
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    pub chunk_max: u32,
    /// Target pack size in bytes
    #[arg(long)]
    pub pack_size: Option<u32>,
}

/// An error that carries its own exit code (for outcomes that are not
/// library errors, like a snapshot saved with unreadable files).
#[derive(Debug)]
pub struct Exit(pub u8);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}", self.0)
    }
}

impl std::error::Error for Exit {}

/// Parses the command line, runs the command and returns the exit code.
pub fn main() -> ExitCode {
    let args = match profile::expand(std::env::args_os().collect()) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("cairn: {}", output::error_chain(&e));
            return ExitCode::from(exit::USAGE);
        }
    };
    let matches = match Cli::command().try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(exit::USAGE);
        }
    };
    match run(cli, &matches) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if let Some(Exit(code)) = e.downcast_ref::<Exit>() {
                return ExitCode::from(*code);
            }
            eprintln!("cairn: {}", output::error_chain(&e));
            ExitCode::from(exit_code_for(&e))
        }
    }
}

fn exit_code_for(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<cairn::Error>() {
        Some(cairn::Error::RepositoryNotFound { .. }) => exit::NO_REPOSITORY,
        Some(cairn::Error::WrongPassword) => exit::WRONG_PASSWORD,
        Some(cairn::Error::InvalidArgument(_)) => exit::USAGE,
        _ => exit::ERROR,
    }
}

fn run(cli: Cli, matches: &clap::ArgMatches) -> anyhow::Result<u8> {
    let g = &cli.global;
    match cli.command {
        Command::Init(args) => init(g, &args),
        Command::Snapshot(args) => {
            let sub = matches
                .subcommand_matches("snapshot")
                .ok_or_else(|| anyhow::anyhow!("internal: snapshot arguments missing"))?;
            snapshot::run(g, &args, sub)
        }
        Command::Snapshots(args) => snapshots::run(g, &args),
        Command::Ls(args) => browse::ls(g, &args),
        Command::Diff(args) => browse::diff(g, &args),
        Command::Restore(args) => restore::run(g, &args),
        Command::Cat(args) => cat::run(g, &args),
        Command::Key(args) => key::run(g, &args),
        Command::Forget(args) => forget::run(g, &args),
        Command::Prune(args) => prune::run(g, &args),
        Command::Verify(args) => verify::run(g, &args),
        Command::Sync(args) => sync::run(g, &args),
        Command::Repair(args) => repair::run(g, &args),
    }
}

fn init(g: &GlobalArgs, args: &InitArgs) -> anyhow::Result<u8> {
    let backend = env::backend(g)?;
    let password = env::password(g, true)?;
    let options = cairn::repository::InitOptions {
        kdf: args.kdf.params(),
        chunker: cairn::chunker::ChunkerParams {
            min_bytes: args.chunk_min,
            avg_bytes: args.chunk_avg,
            max_bytes: args.chunk_max,
        },
        pack_target_bytes: args.pack_size,
    };
    let location = backend.location();
    let repo = cairn::repository::Repository::init(
        backend,
        password.as_bytes(),
        &options,
        &env::cache(g),
    )?;
    if !g.quiet {
        println!(
            "created cairn repository {} at {location}",
            &repo.config().id[..8]
        );
        println!("keep the password safe: without it the data cannot be restored");
    }
    Ok(exit::OK)
}
