//! `cairn cat`: print repository objects as JSON, for inspection and
//! debugging. Everything is decrypted and checked on the way.

use cairn::blob::BlobKind;
use cairn::id::{BlobId, IndexId, PackId};
use serde_json::json;

use crate::cli::{env, exit, output, GlobalArgs};

#[derive(clap::Args, Debug)]
pub struct CatArgs {
    #[command(subcommand)]
    pub what: CatWhat,
}

#[derive(clap::Subcommand, Debug)]
pub enum CatWhat {
    /// The decrypted repository config
    Config,
    /// A snapshot manifest (id, prefix or "latest")
    Snapshot { id: String },
    /// A tree blob (full id)
    Tree { id: String },
    /// An index file (full id)
    Index { id: String },
    /// A pack's header (full id)
    Pack { id: String },
    /// The key files (without secrets)
    Keys,
}

fn parse<T: std::str::FromStr<Err = cairn::id::ParseIdError>>(s: &str) -> anyhow::Result<T> {
    s.parse::<T>()
        .map_err(|e| cairn::Error::InvalidArgument(e.to_string()).into())
}

pub fn run(g: &GlobalArgs, args: &CatArgs) -> anyhow::Result<u8> {
    let repo = env::open(g)?;
    let value = match &args.what {
        CatWhat::Config => serde_json::to_value(repo.config())?,
        CatWhat::Snapshot { id } => {
            let (id, snap) = repo.resolve_snapshot(id)?;
            json!({ "id": id.to_hex(), "snapshot": serde_json::to_value(&snap)? })
        }
        CatWhat::Tree { id } => {
            let id: BlobId = parse(id)?;
            let tree = repo.load_tree(&id)?;
            let nodes: Vec<_> = tree
                .nodes
                .iter()
                .map(|n| {
                    json!({
                        "name": n.display_name(),
                        "kind": n.kind,
                        "mode": format!("{:o}", n.mode),
                        "uid": n.uid, "gid": n.gid, "user": n.user, "group": n.group,
                        "size": n.size,
                        "mtime": [n.mtime.secs, n.mtime.nanos],
                        "subtree": n.subtree.map(|s| s.to_hex()),
                        "content": n.content.iter().map(|c| json!([c.0.to_hex(), c.1])).collect::<Vec<_>>(),
                    })
                })
                .collect();
            json!({ "id": id.to_hex(), "nodes": nodes })
        }
        CatWhat::Index { id } => {
            let id: IndexId = parse(id)?;
            let file = repo.load_index_file(&id)?;
            json!({
                "id": id.to_hex(),
                "supersedes": file.supersedes.iter().map(|s| s.to_hex()).collect::<Vec<_>>(),
                "packs": file.packs.iter().map(|p| json!({
                    "id": p.id.to_hex(),
                    "size": p.size_bytes,
                    "blobs": p.blobs.iter().map(entry_json).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        }
        CatWhat::Pack { id } => {
            let id: PackId = parse(id)?;
            let name = id.object_name();
            let size = repo.backend().stat(&name)?;
            let trailer = repo
                .backend()
                .read_range(&name, size.saturating_sub(4), size.min(4))?;
            let (offset, length) = cairn::pack::header_range(&trailer, size)
                .map_err(|e| cairn::Error::corrupt(&name, e))?;
            let sealed = repo.backend().read_range(&name, offset, length)?;
            let entries = cairn::pack::decode_header(repo.key(), &sealed, offset)
                .map_err(|e| cairn::Error::corrupt(&name, e))?;
            json!({
                "id": id.to_hex(),
                "size": size,
                "header_length": length,
                "blobs": entries.iter().map(entry_json).collect::<Vec<_>>(),
            })
        }
        CatWhat::Keys => {
            let keys = repo.list_keys()?;
            json!(keys
                .iter()
                .map(|k| json!({
                    "id": k.id.to_hex(), "current": k.current, "created": k.created,
                    "hostname": k.hostname, "username": k.username,
                }))
                .collect::<Vec<_>>())
        }
    };
    output::print_json(&value)?;
    Ok(exit::OK)
}

fn entry_json(e: &cairn::pack::PackEntry) -> serde_json::Value {
    json!({
        "type": if e.kind == BlobKind::Data { "data" } else { "tree" },
        "id": e.id.to_hex(),
        "offset": e.offset,
        "length": e.length,
        "plain_length": e.plain_length,
    })
}
