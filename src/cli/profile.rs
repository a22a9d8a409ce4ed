//! Profiles: a TOML file that holds what would otherwise be a long command
//! line, so that a 20-line duplicity invocation becomes
//! `cairn snapshot --profile server`.
//!
//! ```toml
//! repository = "mega:/Backups/server"      # optional, like --repo
//! password_file = "/etc/cairn/password"    # optional, like --password-file
//!
//! [snapshot]
//! args = ["--exclude-caches", "--include=/source/var/lib/docker/containers",
//!         "--exclude=/source/var/lib/docker", "/source"]
//!
//! [forget]
//! keep_daily = 7
//! keep_weekly = 5
//! keep_monthly = 12
//! group_by = "host,paths"
//! prune = true
//! ```
//!
//! `--profile NAME` reads `$XDG_CONFIG_HOME/cairn/profiles/NAME.toml` (or
//! the path itself if NAME contains a `/`). The profile's arguments for the
//! subcommand are placed before the ones on the command line, so filter
//! rules given by hand come after the profile's and a flag given by hand
//! overrides the profile's.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{bail, Context};
use cairn::retention::RetentionPolicy;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub repository: Option<String>,
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub snapshot: Section,
    #[serde(default)]
    pub forget: ForgetSection,
}

/// Raw arguments for a subcommand, in order.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    #[serde(default)]
    pub args: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ForgetSection {
    #[serde(flatten)]
    pub policy: RetentionPolicy,
    pub group_by: Option<String>,
    #[serde(default)]
    pub prune: bool,
    #[serde(default)]
    pub args: Vec<String>,
}

fn profile_path(name: &str) -> anyhow::Result<PathBuf> {
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(".config"),
            None => bail!("profile {name:?}: neither $XDG_CONFIG_HOME nor $HOME is set"),
        },
    };
    Ok(base
        .join("cairn")
        .join("profiles")
        .join(format!("{name}.toml")))
}

pub fn load(name: &str) -> anyhow::Result<Profile> {
    let path = profile_path(name)?;
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading profile {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("profile {}", path.display()))
}

fn count(flag: &str, value: Option<u32>, out: &mut Vec<String>) {
    if let Some(n) = value {
        out.push(flag.to_string());
        out.push(if n == cairn::retention::UNLIMITED {
            "-1".to_string()
        } else {
            n.to_string()
        });
    }
}

fn duration(flag: &str, value: Option<cairn::retention::Duration>, out: &mut Vec<String>) {
    if let Some(d) = value {
        out.push(flag.to_string());
        out.push(d.to_string());
    }
}

impl ForgetSection {
    fn args(&self) -> Vec<String> {
        let p = &self.policy;
        let mut out = Vec::new();
        count("--keep-last", p.keep_last, &mut out);
        count("--keep-hourly", p.keep_hourly, &mut out);
        count("--keep-daily", p.keep_daily, &mut out);
        count("--keep-weekly", p.keep_weekly, &mut out);
        count("--keep-monthly", p.keep_monthly, &mut out);
        count("--keep-yearly", p.keep_yearly, &mut out);
        duration("--keep-within", p.keep_within, &mut out);
        duration("--keep-within-hourly", p.keep_within_hourly, &mut out);
        duration("--keep-within-daily", p.keep_within_daily, &mut out);
        duration("--keep-within-weekly", p.keep_within_weekly, &mut out);
        duration("--keep-within-monthly", p.keep_within_monthly, &mut out);
        duration("--keep-within-yearly", p.keep_within_yearly, &mut out);
        for tags in &p.keep_tags {
            out.push("--keep-tag".into());
            out.push(tags.join(","));
        }
        if let Some(g) = &self.group_by {
            out.push("--group-by".into());
            out.push(g.clone());
        }
        if self.prune {
            out.push("--prune".into());
        }
        out.extend(self.args.iter().cloned());
        out
    }
}

/// Rewrites the command line: removes `--profile NAME` / `--profile=NAME`
/// and inserts the profile's global and subcommand arguments.
pub fn expand(args: Vec<OsString>) -> anyhow::Result<Vec<OsString>> {
    let position = args
        .iter()
        .position(|a| a == "--profile" || a.to_string_lossy().starts_with("--profile="));
    let Some(at) = position else {
        return Ok(args);
    };
    let mut args = args;
    let name = if args[at] == "--profile" {
        if at + 1 >= args.len() {
            bail!("--profile needs a name");
        }
        let name = args.remove(at + 1);
        args.remove(at);
        name.to_string_lossy().into_owned()
    } else {
        let flag = args.remove(at).to_string_lossy().into_owned();
        flag.trim_start_matches("--profile=").to_string()
    };
    let profile = load(&name)?;
    let subcommand = args
        .iter()
        .skip(1)
        .position(|a| a == "snapshot" || a == "forget")
        .map(|i| i + 1);
    let Some(sub) = subcommand else {
        bail!("--profile is for `snapshot` and `forget`");
    };
    let extra: Vec<String> = if args[sub] == "snapshot" {
        profile.snapshot.args
    } else {
        profile.forget.args()
    };
    let mut out: Vec<OsString> = args[..=sub].to_vec();
    out.extend(extra.into_iter().map(OsString::from));
    out.extend(args[sub + 1..].iter().cloned());
    let has = |flag: &str| {
        out.iter()
            .any(|a| a == flag || a.to_string_lossy().starts_with(&format!("{flag}=")))
    };
    let mut globals: Vec<OsString> = Vec::new();
    if let Some(repo) = profile.repository.filter(|_| !has("--repo") && !has("-r")) {
        globals.extend(["--repo".into(), repo.into()]);
    }
    if let Some(pw) = profile.password_file.filter(|_| !has("--password-file")) {
        globals.extend(["--password-file".into(), pw.into_os_string()]);
    }
    out.splice(1..1, globals);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn forget_section_becomes_flags() {
        let p: Profile = toml::from_str(
            "[forget]\nkeep_daily = 7\nkeep_weekly = 5\nkeep_within = \"1y2m\"\ngroup_by = \"host\"\nprune = true\n",
        )
        .unwrap();
        assert_eq!(
            p.forget.args(),
            [
                "--keep-daily",
                "7",
                "--keep-weekly",
                "5",
                "--keep-within",
                "1y2m",
                "--group-by",
                "host",
                "--prune"
            ]
        );
    }

    #[test]
    fn expands_profile_into_the_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.toml");
        std::fs::write(
            &path,
            "repository = \"/srv/repo\"\n[snapshot]\nargs = [\"--exclude=/source/proc\", \"/source\"]\n",
        )
        .unwrap();
        let profile = path.to_str().unwrap();
        let out = expand(os(&[
            "cairn",
            "snapshot",
            "--profile",
            profile,
            "--tag",
            "x",
        ]))
        .unwrap();
        assert_eq!(
            out,
            os(&[
                "cairn",
                "--repo",
                "/srv/repo",
                "snapshot",
                "--exclude=/source/proc",
                "/source",
                "--tag",
                "x"
            ])
        );
        let out = expand(os(&[
            "cairn",
            "-r",
            "/other",
            "snapshot",
            &format!("--profile={profile}"),
        ]))
        .unwrap();
        assert_eq!(
            out,
            os(&[
                "cairn",
                "-r",
                "/other",
                "snapshot",
                "--exclude=/source/proc",
                "/source"
            ])
        );
        assert!(expand(os(&[
            "cairn",
            "snapshot",
            "--profile",
            "/nonexistent/x.toml"
        ]))
        .is_err());
        std::fs::write(&path, "bogus = 1\n").unwrap();
        assert!(expand(os(&["cairn", "snapshot", "--profile", profile])).is_err());
    }
}
