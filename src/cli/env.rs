//! Where settings come from: flags, environment variables, files, a
//! password command, or a prompt on the terminal.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use cairn::backend::retry::RetryBackend;
use cairn::backend::Backend;
use cairn::location::Location;
use cairn::repository::{CacheOptions, Repository};
use zeroize::Zeroizing;

use crate::cli::GlobalArgs;

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

fn xdg_dir(var: &str, fallback: &str) -> Option<PathBuf> {
    match std::env::var_os(var).filter(|v| !v.is_empty()) {
        Some(dir) => Some(PathBuf::from(dir)),
        None => home().map(|h| h.join(fallback)),
    }
}

/// The repository used when none is given: `$XDG_DATA_HOME/cairn/repository`
/// (`~/.local/share/cairn/repository`).
pub fn default_repository() -> anyhow::Result<PathBuf> {
    xdg_dir("XDG_DATA_HOME", ".local/share")
        .map(|d| d.join("cairn").join("repository"))
        .ok_or_else(|| {
            anyhow!("no repository given and $HOME is not set: use --repo or CAIRN_REPOSITORY")
        })
}

pub fn cache(g: &GlobalArgs) -> CacheOptions {
    if g.no_cache {
        return CacheOptions { root: None };
    }
    let root = g
        .cache_dir
        .clone()
        .or_else(|| xdg_dir("XDG_CACHE_HOME", ".cache").map(|d| d.join("cairn")));
    CacheOptions { root }
}

pub fn backend(g: &GlobalArgs) -> anyhow::Result<Arc<dyn Backend>> {
    let spec = match &g.repo {
        Some(spec) => spec.clone(),
        None => default_repository()?.display().to_string(),
    };
    backend_at(g, &spec)
}

/// The backend for any location string (also `sync --to/--from`).
pub fn backend_at(g: &GlobalArgs, spec: &str) -> anyhow::Result<Arc<dyn Backend>> {
    let location = Location::parse(spec)?;
    let backend: Box<dyn Backend> = match location {
        Location::Mega(path) => mega_backend(g, &path)?,
        Location::Local(path) => Box::new(cairn::backend::local::LocalBackend::new(path)),
    };
    Ok(Arc::new(RetryBackend::new(
        backend,
        4,
        Duration::from_millis(200),
    )))
}

/// Mega credentials: `CAIRN_MEGA_USER`/`CAIRN_MEGA_PASSWORD`, or a
/// `--mega-config` file (MegaFuse's `USERNAME = …` / `PASSWORD = …` format).
fn mega_backend(g: &GlobalArgs, path: &str) -> anyhow::Result<Box<dyn Backend>> {
    use cairn::backend::mega::{parse_megafuse_config, MegaBackend, MegaConfig};
    let (user, password) = match &g.mega_config {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading Mega configuration {}", file.display()))?;
            let cfg = parse_megafuse_config(&text)
                .with_context(|| format!("Mega configuration {}", file.display()))?;
            (
                cfg.username.unwrap_or_default(),
                cfg.password.unwrap_or_default(),
            )
        }
        None => {
            let user = std::env::var("CAIRN_MEGA_USER")
                .map_err(|_| anyhow!("mega: repositories need CAIRN_MEGA_USER and CAIRN_MEGA_PASSWORD, or --mega-config FILE"))?;
            let password = std::env::var("CAIRN_MEGA_PASSWORD")
                .map_err(|_| anyhow!("mega: CAIRN_MEGA_PASSWORD is not set"))?;
            (user, password)
        }
    };
    let mut config = MegaConfig::new(&user, &password, path);
    if let Ok(url) = std::env::var("CAIRN_MEGA_API_URL") {
        config.api_url = url;
    }
    config.mfa_code = std::env::var("CAIRN_MEGA_MFA").ok();
    config.session_cache_dir = cache(g).root.map(|r| r.join("mega-sessions"));
    Ok(Box::new(MegaBackend::open(config)?))
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").to_string()
}

/// The password, from (in order) `--password-file`, `--password-command`,
/// `CAIRN_PASSWORD`, or a prompt on the terminal (twice when `confirm`).
pub fn password(g: &GlobalArgs, confirm: bool) -> anyhow::Result<Zeroizing<String>> {
    if let Some(path) = &g.password_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading password file {}", path.display()))?;
        return Ok(Zeroizing::new(first_line(&text)));
    }
    if let Some(command) = &g.password_command {
        let mut sh = std::process::Command::new("sh");
        sh.arg("-c")
            .arg(command)
            .stderr(std::process::Stdio::inherit());
        super::open_files::restore_for(&mut sh);
        let out = sh
            .output()
            .with_context(|| format!("running password command {command:?}"))?;
        if !out.status.success() {
            bail!("password command {command:?} failed with {}", out.status);
        }
        return Ok(Zeroizing::new(first_line(&String::from_utf8_lossy(
            &out.stdout,
        ))));
    }
    if let Ok(pw) = std::env::var("CAIRN_PASSWORD") {
        return Ok(Zeroizing::new(pw));
    }
    prompt_password("password", confirm)
}

/// A second password (for `key add` and `key passwd`): `CAIRN_NEW_PASSWORD`,
/// `--new-password-file`, or a prompt.
pub fn new_password(file: Option<&PathBuf>) -> anyhow::Result<Zeroizing<String>> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading password file {}", path.display()))?;
        return Ok(Zeroizing::new(first_line(&text)));
    }
    if let Ok(pw) = std::env::var("CAIRN_NEW_PASSWORD") {
        return Ok(Zeroizing::new(pw));
    }
    prompt_password("new password", true)
}

fn prompt_password(what: &str, confirm: bool) -> anyhow::Result<Zeroizing<String>> {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty");
    let Ok(mut tty) = tty else {
        bail!(
            "no password given: set CAIRN_PASSWORD, CAIRN_PASSWORD_FILE or CAIRN_PASSWORD_COMMAND"
        );
    };
    if !tty.is_terminal() {
        bail!(
            "no password given: set CAIRN_PASSWORD, CAIRN_PASSWORD_FILE or CAIRN_PASSWORD_COMMAND"
        );
    }
    let first = read_hidden(&mut tty, &format!("enter {what}: "))?;
    if confirm {
        let second = read_hidden(&mut tty, &format!("enter {what} again: "))?;
        if *first != *second {
            bail!("the passwords do not match");
        }
    }
    if first.is_empty() {
        bail!("an empty password is not allowed");
    }
    Ok(first)
}

fn read_hidden(tty: &mut std::fs::File, prompt: &str) -> anyhow::Result<Zeroizing<String>> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    tty.write_all(prompt.as_bytes())?;
    tty.flush()?;
    let saved = tcgetattr(&*tty).ok();
    if let Some(saved) = &saved {
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        let _ = tcsetattr(&*tty, SetArg::TCSANOW, &quiet);
    }
    let mut line = Zeroizing::new(String::new());
    let result = std::io::BufReader::new(&*tty).read_line(&mut line);
    if let Some(saved) = &saved {
        let _ = tcsetattr(&*tty, SetArg::TCSANOW, saved);
    }
    let _ = tty.write_all(b"\n");
    result.context("reading password from the terminal")?;
    Ok(Zeroizing::new(
        line.trim_end_matches(['\n', '\r']).to_string(),
    ))
}

/// Opens the repository named by the global arguments.
pub fn open(g: &GlobalArgs) -> anyhow::Result<Repository> {
    let backend = backend(g)?;
    // A missing repository is reported before asking for a password.
    // A location without config and keys is no repository: say so before
    // asking for a password. (Keys without a config is a damaged one, which
    // `Repository::open` reports.)
    if let Err(e) = backend.stat("config") {
        if e.is_not_found() && backend.list("keys/").is_ok_and(|k| k.is_empty()) {
            return Err(cairn::Error::RepositoryNotFound {
                location: backend.location(),
            }
            .into());
        }
    }
    let password = password(g, false)?;
    Ok(Repository::open(backend, password.as_bytes(), &cache(g))?)
}

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_string())
}

pub fn username() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_default()
}
