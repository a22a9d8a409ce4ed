//! `cairn ls` and `cairn diff`: browsing snapshots without restoring them.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use cairn::repository::Repository;
use cairn::tree::{Node, NodeKind};

use crate::cli::{env, exit, output, GlobalArgs};

#[derive(clap::Args, Debug)]
pub struct LsArgs {
    /// Snapshot id (8+ hex digits) or "latest"
    pub snapshot: String,
    /// Only entries at or below this path
    pub path: Option<String>,
    /// Show mode, owner, size and modification time
    #[arg(short, long)]
    pub long: bool,
    /// Print a JSON array
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    pub first: String,
    pub second: String,
    /// Print a JSON array
    #[arg(long)]
    pub json: bool,
}

fn mode_string(node: &Node) -> String {
    let mut s = String::new();
    s.push(node.kind.letter());
    let bits = [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o040, 'r'),
        (0o020, 'w'),
        (0o010, 'x'),
        (0o004, 'r'),
        (0o002, 'w'),
        (0o001, 'x'),
    ];
    for (i, (bit, c)) in bits.iter().enumerate() {
        let set = node.mode & bit != 0;
        let special = match i {
            2 if node.mode & 0o4000 != 0 => Some(if set { 's' } else { 'S' }),
            5 if node.mode & 0o2000 != 0 => Some(if set { 's' } else { 'S' }),
            8 if node.mode & 0o1000 != 0 => Some(if set { 't' } else { 'T' }),
            _ => None,
        };
        s.push(special.unwrap_or(if set { *c } else { '-' }));
    }
    s
}

fn node_json(path: &Path, node: &Node) -> serde_json::Value {
    let mtime = chrono::DateTime::from_timestamp(node.mtime.secs, node.mtime.nanos)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default();
    serde_json::json!({
        "path": String::from_utf8_lossy(path.as_os_str().as_bytes()),
        "type": format!("{:?}", node.kind).to_lowercase(),
        "mode": node.mode,
        "uid": node.uid,
        "gid": node.gid,
        "user": node.user,
        "group": node.group,
        "size": node.size,
        "mtime": mtime,
        "link_target": node.link_target.as_ref().map(|t| String::from_utf8_lossy(t).into_owned()),
    })
}

fn walk(
    repo: &Repository,
    dir: &Path,
    node: &Node,
    out: &mut Vec<(PathBuf, Node)>,
) -> anyhow::Result<()> {
    out.push((dir.to_path_buf(), node.clone()));
    if node.kind == NodeKind::Dir {
        if let Some(id) = &node.subtree {
            for child in repo.load_tree(id)?.nodes {
                walk(repo, &dir.join(OsStr::from_bytes(&child.name)), &child, out)?;
            }
        }
    }
    Ok(())
}

pub fn ls(g: &GlobalArgs, args: &LsArgs) -> anyhow::Result<u8> {
    let repo = env::open(g)?;
    let (_, snap) = repo.resolve_snapshot(&args.snapshot)?;
    let start = args.path.clone().unwrap_or_else(|| "/".into());
    let mut node = Node::new(b"/", NodeKind::Dir);
    node.subtree = Some(snap.tree);
    let mut here = PathBuf::from("/");
    for part in Path::new(&start).components().skip(1) {
        let tree = match (&node.subtree, node.kind) {
            (Some(id), NodeKind::Dir) => repo.load_tree(id)?,
            _ => return Err(cairn::Error::PathNotFound(start).into()),
        };
        node = tree
            .find(part.as_os_str().as_bytes())
            .cloned()
            .ok_or_else(|| cairn::Error::PathNotFound(start.clone()))?;
        here.push(part);
    }
    let mut entries = Vec::new();
    walk(&repo, &here, &node, &mut entries)?;
    if here == Path::new("/") {
        entries.remove(0);
    }
    if args.json {
        let items: Vec<_> = entries.iter().map(|(p, n)| node_json(p, n)).collect();
        output::print_json(&items)?;
        return Ok(exit::OK);
    }
    let mut stdout = std::io::stdout().lock();
    for (path, n) in &entries {
        use std::io::Write;
        if args.long {
            let mtime = chrono::DateTime::from_timestamp(n.mtime.secs, n.mtime.nanos)
                .map(|t| {
                    t.with_timezone(&chrono::Local)
                        .format("%Y-%m-%d %H:%M:%S")
                        .to_string()
                })
                .unwrap_or_default();
            let user = n.user.clone().unwrap_or_else(|| n.uid.to_string());
            let group = n.group.clone().unwrap_or_else(|| n.gid.to_string());
            write!(
                stdout,
                "{} {:>8} {:>8} {:>12} {} ",
                mode_string(n),
                user,
                group,
                n.size,
                mtime
            )?;
        }
        stdout.write_all(path.as_os_str().as_bytes())?;
        if let (true, Some(t)) = (args.long, &n.link_target) {
            stdout.write_all(b" -> ")?;
            stdout.write_all(t)?;
        }
        stdout.write_all(b"\n")?;
    }
    Ok(exit::OK)
}

pub fn diff(g: &GlobalArgs, args: &DiffArgs) -> anyhow::Result<u8> {
    let repo = env::open(g)?;
    let (id_a, a) = repo.resolve_snapshot(&args.first)?;
    let (id_b, b) = repo.resolve_snapshot(&args.second)?;
    let entries = cairn::diff::diff_trees(&repo, &a.tree, &b.tree)?;
    if args.json {
        output::print_json(&entries)?;
        return Ok(exit::OK);
    }
    println!("comparing snapshot {} to {}:", id_a.short(), id_b.short());
    let mut counts = [0usize; 4];
    for e in &entries {
        println!("{}    {}", e.change.symbol(), e.path);
        let slot = match e.change {
            cairn::diff::Change::Added => 0,
            cairn::diff::Change::Removed => 1,
            cairn::diff::Change::Modified => 2,
            cairn::diff::Change::Metadata => 3,
        };
        counts[slot] += 1;
    }
    println!(
        "added {}, removed {}, modified {}, metadata changed {}",
        counts[0], counts[1], counts[2], counts[3]
    );
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_render_like_ls() {
        let mut n = Node::new(b"x", NodeKind::File);
        n.mode = 0o4755;
        assert_eq!(mode_string(&n), "-rwsr-xr-x");
        n.kind = NodeKind::Dir;
        n.mode = 0o1777;
        assert_eq!(mode_string(&n), "drwxrwxrwt");
    }
}
