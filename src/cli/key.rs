//! `cairn key`: list, add and remove the passwords that open a repository.

use std::path::PathBuf;

use crate::cli::{env, exit, GlobalArgs, KdfArgs};

#[derive(clap::Args, Debug)]
pub struct KeyArgs {
    #[command(subcommand)]
    pub action: KeyAction,
}

#[derive(clap::Subcommand, Debug)]
pub enum KeyAction {
    /// List the keys
    List,
    /// Add a key for a new password (CAIRN_NEW_PASSWORD, --new-password-file or a prompt)
    Add {
        #[arg(long)]
        new_password_file: Option<PathBuf>,
        #[command(flatten)]
        kdf: KdfArgs,
    },
    /// Remove a key (by id prefix); the key in use cannot be removed
    Remove { id: String },
    /// Change the password of the key in use
    Passwd {
        #[arg(long)]
        new_password_file: Option<PathBuf>,
        #[command(flatten)]
        kdf: KdfArgs,
    },
}

pub fn run(g: &GlobalArgs, args: &KeyArgs) -> anyhow::Result<u8> {
    let mut repo = env::open(g)?;
    match &args.action {
        KeyAction::List => {
            println!(" {:<8}  {:<25}  {:<16}  user", "id", "created", "host");
            for k in repo.list_keys()? {
                let mark = if k.current { '*' } else { ' ' };
                let created = chrono::DateTime::parse_from_rfc3339(&k.created)
                    .map(|t| crate::cli::output::local_time(&t))
                    .unwrap_or(k.created.clone());
                println!(
                    "{mark}{:<8}  {:<25}  {:<16}  {}",
                    k.id.short(),
                    created,
                    k.hostname,
                    k.username
                );
            }
        }
        KeyAction::Add {
            new_password_file,
            kdf,
        } => {
            let pw = env::new_password(new_password_file.as_ref())?;
            let id = repo.add_key(pw.as_bytes(), kdf.params())?;
            println!("added key {}", id.short());
        }
        KeyAction::Remove { id } => {
            let id = repo.resolve_key(id)?;
            repo.remove_key(&id)?;
            println!("removed key {}", id.short());
        }
        KeyAction::Passwd {
            new_password_file,
            kdf,
        } => {
            let pw = env::new_password(new_password_file.as_ref())?;
            let id = repo.change_password(pw.as_bytes(), kdf.params())?;
            println!("password changed; the key is now {}", id.short());
        }
    }
    Ok(exit::OK)
}
