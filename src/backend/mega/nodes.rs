//! The account's node tree (files and folders) as the client sees it.
//!
//! Owns parsing the `f` reply and `p` replies into `Node`s (decrypting keys
//! and names; malformed or undecryptable nodes are skipped and counted, never
//! a panic), the indexes by handle, by parent and by (parent, name) built in
//! one linear pass, path resolution, and the deterministic choice among
//! same-named siblings: the newest (`ts`, then handle) wins. Also builds the
//! commands that create folders. Does no I/O.

use crate::backend::mega::crypto::{self, Key};
use crate::backend::mega::error::{MegaError, MegaResult};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};

/// What a node is (`t` in the protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeKind {
    File,
    Folder,
    Root,
    Inbox,
    Rubbish,
}

impl NodeKind {
    fn from_t(t: i64) -> Option<Self> {
        Some(match t {
            0 => NodeKind::File,
            1 => NodeKind::Folder,
            2 => NodeKind::Root,
            3 => NodeKind::Inbox,
            4 => NodeKind::Rubbish,
            _ => return None,
        })
    }

    /// Folders and the special roots can hold children.
    pub fn is_container(self) -> bool {
        self != NodeKind::File
    }
}

/// One decrypted node.
#[derive(Clone, PartialEq, Eq)]
pub struct Node {
    pub handle: String,
    pub parent: Option<String>,
    pub kind: NodeKind,
    pub name: String,
    pub size_bytes: u64,
    /// The decrypted node key: 16 bytes for folders, 32 for files, empty for roots.
    pub key: Vec<u8>,
    pub ts: i64,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("handle", &self.handle)
            .field("parent", &self.parent)
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("size_bytes", &self.size_bytes)
            .finish()
    }
}

/// Decrypts one node object from `f` or `p`. `None` if it is malformed or
/// its key is not for us.
pub fn parse_node(v: &Value, master: &Key, me: &str) -> Option<Node> {
    let handle = v.get("h")?.as_str()?.to_string();
    if handle.is_empty() {
        return None;
    }
    let kind = NodeKind::from_t(v.get("t")?.as_i64()?)?;
    let parent = v
        .get("p")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .map(str::to_string);
    let ts = v.get("ts").and_then(Value::as_i64).unwrap_or(0);
    if matches!(kind, NodeKind::Root | NodeKind::Inbox | NodeKind::Rubbish) {
        return Some(Node {
            handle,
            parent,
            kind,
            name: String::new(),
            size_bytes: 0,
            key: Vec::new(),
            ts,
        });
    }
    // "k" is "owner:key" or several "id:key" joined by '/'; take ours.
    let k = v.get("k")?.as_str()?;
    let enc = k.split('/').find_map(|part| {
        let (owner, key) = part.split_once(':')?;
        (owner == me).then_some(key)
    })?;
    let mut key = crypto::b64_decode(enc).ok()?;
    let want = if kind == NodeKind::File { 32 } else { 16 };
    if key.len() != want {
        return None;
    }
    crypto::ecb_decrypt(master, &mut key).ok()?;
    let attrs = crypto::decrypt_attr(&crypto::attr_key(&key).ok()?, v.get("a")?.as_str()?).ok()?;
    let name = attrs.get("n")?.as_str()?.to_string();
    if name.is_empty() || name.contains('/') {
        return None;
    }
    let size_bytes = if kind == NodeKind::File {
        v.get("s")?.as_u64()?
    } else {
        0
    };
    Some(Node {
        handle,
        parent: Some(parent?),
        kind,
        name,
        size_bytes,
        key,
        ts,
    })
}

/// The nodes of one account, indexed for path lookups.
#[derive(Default)]
pub struct NodeTree {
    nodes: HashMap<String, Node>,
    children: HashMap<String, BTreeSet<String>>,
    by_name: HashMap<(String, String), Vec<String>>,
    root: Option<String>,
    /// Nodes left out because they were malformed or not decryptable.
    pub skipped: usize,
}

impl NodeTree {
    /// Builds the tree from an `f` reply in one pass.
    pub fn from_fetch(reply: &Value, master: &Key, me: &str) -> MegaResult<Self> {
        let list = reply
            .get("f")
            .and_then(Value::as_array)
            .ok_or_else(|| MegaError::Protocol("node listing lacks \"f\"".into()))?;
        let mut tree = NodeTree::default();
        for v in list {
            match parse_node(v, master, me) {
                Some(n) => tree.insert(n),
                None => tree.skipped += 1,
            }
        }
        if tree.root.is_none() {
            return Err(MegaError::Protocol(
                "node listing has no root folder".into(),
            ));
        }
        Ok(tree)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn root(&self) -> Option<&str> {
        self.root.as_deref()
    }

    pub fn get(&self, handle: &str) -> Option<&Node> {
        self.nodes.get(handle)
    }

    /// Adds or replaces a node.
    pub fn insert(&mut self, n: Node) {
        if self.nodes.contains_key(&n.handle) {
            self.unlink(&n.handle);
        }
        if n.kind == NodeKind::Root && self.root.is_none() {
            self.root = Some(n.handle.clone());
        }
        if let Some(p) = &n.parent {
            self.children
                .entry(p.clone())
                .or_default()
                .insert(n.handle.clone());
            if !n.name.is_empty() {
                self.by_name
                    .entry((p.clone(), n.name.clone()))
                    .or_default()
                    .push(n.handle.clone());
            }
        }
        self.nodes.insert(n.handle.clone(), n);
    }

    fn unlink(&mut self, handle: &str) -> Option<Node> {
        let n = self.nodes.remove(handle)?;
        if let Some(p) = &n.parent {
            if let Some(set) = self.children.get_mut(p) {
                set.remove(handle);
            }
            let key = (p.clone(), n.name.clone());
            if let Some(v) = self.by_name.get_mut(&key) {
                v.retain(|h| h != handle);
                if v.is_empty() {
                    self.by_name.remove(&key);
                }
            }
        }
        Some(n)
    }

    /// Removes a node and everything below it.
    pub fn remove(&mut self, handle: &str) {
        let mut stack = vec![handle.to_string()];
        while let Some(h) = stack.pop() {
            if let Some(kids) = self.children.remove(&h) {
                stack.extend(kids);
            }
            self.unlink(&h);
        }
    }

    /// Every child of `parent` named `name` of the wanted sort, newest first.
    pub fn named(&self, parent: &str, name: &str, folder: bool) -> Vec<&Node> {
        let mut v: Vec<&Node> = self
            .by_name
            .get(&(parent.to_string(), name.to_string()))
            .into_iter()
            .flatten()
            .filter_map(|h| self.nodes.get(h))
            .filter(|n| n.kind.is_container() == folder)
            .collect();
        v.sort_by(|a, b| (b.ts, &b.handle).cmp(&(a.ts, &a.handle)));
        v
    }

    /// The child chosen for a name: for files the newest of the same-named
    /// siblings, for folders the oldest (so every client adds to the same one).
    pub fn child(&self, parent: &str, name: &str, folder: bool) -> Option<&Node> {
        let v = self.named(parent, name, folder);
        if folder {
            v.last().copied()
        } else {
            v.first().copied()
        }
    }

    /// All folders reached by following `components` from `start`: where
    /// several siblings share a folder name, their contents count as one.
    pub fn folders_at<'a>(
        &self,
        start: &str,
        components: impl IntoIterator<Item = &'a str>,
    ) -> Vec<String> {
        let mut cur = vec![start.to_string()];
        for c in components {
            cur = cur
                .iter()
                .flat_map(|h| self.named(h, c, true))
                .map(|n| n.handle.clone())
                .collect();
            if cur.is_empty() {
                break;
            }
        }
        cur
    }

    /// The file called `name` in any of `folders`: the newest one.
    pub fn file_in(&self, folders: &[String], name: &str) -> Option<&Node> {
        folders
            .iter()
            .flat_map(|h| self.named(h, name, false))
            .max_by(|a, b| (a.ts, &a.handle).cmp(&(b.ts, &b.handle)))
    }

    /// Every file below `folders`, with its path relative to them
    /// ("data/ab/ab01"), one per path (the newest of same-named files).
    pub fn files_below(&self, folders: &[String]) -> Vec<(String, &Node)> {
        let mut best: HashMap<String, &Node> = HashMap::new();
        let mut stack: Vec<(String, String)> =
            folders.iter().map(|h| (h.clone(), String::new())).collect();
        let mut seen = std::collections::HashSet::new();
        while let Some((h, prefix)) = stack.pop() {
            // Malformed data could make a cycle; visit each folder once.
            if !seen.insert(h.clone()) {
                continue;
            }
            let Some(kids) = self.children.get(&h) else {
                continue;
            };
            for k in kids {
                let Some(n) = self.nodes.get(k) else { continue };
                let path = format!("{prefix}{}", n.name);
                match n.kind {
                    NodeKind::File => {
                        let e = best.entry(path).or_insert(n);
                        if (n.ts, &n.handle) > (e.ts, &e.handle) {
                            *e = n;
                        }
                    }
                    NodeKind::Folder => stack.push((n.handle.clone(), format!("{path}/"))),
                    _ => {}
                }
            }
        }
        let mut out: Vec<(String, &Node)> = best.into_iter().collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// The `p` command creating folder `name` under `parent`, and its key.
pub fn mkdir_command(parent: &str, name: &str, master: &Key) -> MegaResult<(Value, Key)> {
    let folder_key: Key = rand::random();
    let attr = crypto::encrypt_name(&folder_key, name);
    let mut wrapped = folder_key.to_vec();
    crypto::ecb_encrypt(master, &mut wrapped)?;
    Ok((
        json!({
            "a": "p",
            "t": parent,
            "n": [{"h": "xxxxxxxx", "t": 1, "a": attr, "k": crypto::b64_encode(&wrapped)}],
        }),
        folder_key,
    ))
}

/// The nodes a `p` reply reports as created.
pub fn parse_put_reply(reply: &Value, master: &Key, me: &str) -> MegaResult<Vec<Node>> {
    let list = reply
        .get("f")
        .and_then(Value::as_array)
        .ok_or_else(|| MegaError::Protocol("put-nodes reply lacks \"f\"".into()))?;
    let nodes: Vec<Node> = list
        .iter()
        .filter_map(|v| parse_node(v, master, me))
        .collect();
    if nodes.len() != list.len() || nodes.is_empty() {
        return Err(MegaError::Protocol(
            "put-nodes reply holds a node we cannot read".into(),
        ));
    }
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "AAAAAAAAAAA";
    const MASTER: Key = [9; 16];

    fn folder(h: &str, p: &str, name: &str, ts: i64) -> Value {
        let key = [h.len() as u8; 16];
        let mut wrapped = key.to_vec();
        crypto::ecb_encrypt(&MASTER, &mut wrapped).unwrap();
        json!({"h": h, "p": p, "t": 1, "ts": ts, "a": crypto::encrypt_name(&key, name),
               "k": format!("{ME}:{}", crypto::b64_encode(&wrapped))})
    }

    fn file(h: &str, p: &str, name: &str, size: u64, ts: i64) -> Value {
        let fk = crypto::FileKey {
            aes: [1; 16],
            nonce: [2; 8],
            meta_mac: [3; 8],
        };
        let mut wrapped = fk.to_node_key().to_vec();
        crypto::ecb_encrypt(&MASTER, &mut wrapped).unwrap();
        json!({"h": h, "p": p, "t": 0, "s": size, "ts": ts,
               "a": crypto::encrypt_name(&crypto::attr_key(&fk.to_node_key()).unwrap(), name),
               "k": format!("other:AAAA/{ME}:{}", crypto::b64_encode(&wrapped))})
    }

    fn sample() -> Value {
        json!({"f": [
            {"h": "root0001", "t": 2, "p": ""},
            {"h": "rubb0001", "t": 4, "p": ""},
            folder("f0000001", "root0001", "Backups", 1),
            folder("f0000002", "f0000001", "host", 1),
            folder("f0000003", "f0000002", "data", 1),
            file("n0000001", "f0000003", "pack1", 10, 5),
            file("n0000002", "f0000003", "pack1", 20, 7),
            file("n0000003", "f0000002", "config", 3, 1),
            // a second "data" folder (two clients raced): its files count too
            folder("f0000004", "f0000002", "data", 2),
            file("n0000005", "f0000004", "pack2", 4, 1),
            // malformed ones: skipped, not fatal
            {"h": "bad00001", "t": 0, "p": "f0000002"},
            {"h": 5, "t": "x"},
            {"h": "bad00002", "t": 1, "p": "f0000002", "a": "!!", "k": "AAAAAAAAAAA:xx"},
            "not an object",
            file("n0000004", "f0000002", "wrongkey", 3, 1).as_object().map(|o| {
                let mut o = o.clone();
                o.insert("k".into(), json!("someone:AAAAAAAAAAAAAAAAAAAAAA"));
                Value::Object(o)
            }).unwrap(),
        ]})
    }

    #[test]
    fn builds_indexes_and_resolves_paths() {
        let t = NodeTree::from_fetch(&sample(), &MASTER, ME).unwrap();
        assert_eq!(t.skipped, 5);
        let host = t.folders_at("root0001", ["Backups", "host"]);
        assert_eq!(host, vec!["f0000002".to_string()]);
        assert!(t.folders_at("root0001", ["Backups", "nope"]).is_empty());
        // duplicates: the newest wins, deterministically
        assert_eq!(
            t.child("f0000003", "pack1", false).unwrap().handle,
            "n0000002"
        );
        let mut files: Vec<(String, u64)> = t
            .files_below(&host)
            .into_iter()
            .map(|(p, n)| (p, n.size_bytes))
            .collect();
        files.sort();
        assert_eq!(
            files,
            vec![
                ("config".to_string(), 3),
                ("data/pack1".to_string(), 20),
                ("data/pack2".to_string(), 4)
            ]
        );
        let data = t.folders_at("root0001", ["Backups", "host", "data"]);
        assert_eq!(data.len(), 2);
        assert_eq!(t.file_in(&data, "pack2").unwrap().handle, "n0000005");
        // new files go to the oldest of the same-named folders
        assert_eq!(
            t.child("f0000002", "data", true).unwrap().handle,
            "f0000003"
        );
    }

    #[test]
    fn remove_drops_subtrees() {
        let mut t = NodeTree::from_fetch(&sample(), &MASTER, ME).unwrap();
        t.remove("f0000003");
        assert!(t.get("n0000001").is_none());
        assert_eq!(
            t.child("f0000002", "data", true).unwrap().handle,
            "f0000004"
        );
        assert_eq!(t.files_below(&["f0000002".to_string()]).len(), 2);
    }

    #[test]
    fn malformed_listings_are_errors_not_panics() {
        for v in [
            json!(null),
            json!({"f": 3}),
            json!({"f": []}),
            json!([1, 2]),
        ] {
            assert!(NodeTree::from_fetch(&v, &MASTER, ME).is_err());
        }
        assert!(parse_put_reply(&json!({"f": [{"h": 1}]}), &MASTER, ME).is_err());
    }

    #[test]
    fn random_node_objects_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let pick = |rng: &mut rand::rngs::StdRng| -> Value {
            match rng.gen_range(0..7) {
                0 => json!(null),
                1 => json!(rng.gen::<i64>() % 6),
                2 => json!("root0001"),
                3 => json!(format!(
                    "{ME}:{}",
                    crypto::b64_encode(&[rng.gen::<u8>(); 32])
                )),
                4 => json!(crypto::b64_encode(&[rng.gen::<u8>(); 32])),
                5 => json!([1, "x"]),
                _ => json!({"n": 1}),
            }
        };
        let mut list = vec![json!({"h": "root0001", "t": 2})];
        for _ in 0..3000 {
            let mut o = serde_json::Map::new();
            for k in ["h", "p", "t", "a", "k", "s", "ts"] {
                if rng.gen_bool(0.8) {
                    o.insert(k.into(), pick(&mut rng));
                }
            }
            list.push(Value::Object(o));
        }
        // and a folder that is its own parent
        list.push(folder("loop0001", "loop0001", "loop", 1));
        let mut t = NodeTree::from_fetch(&json!({ "f": list }), &MASTER, ME).unwrap();
        let _ = t.files_below(&["root0001".to_string(), "loop0001".to_string()]);
        t.remove("loop0001");
    }

    #[test]
    fn mkdir_command_is_readable_back() {
        let (cmd, _) = mkdir_command("root0001", "Backups", &MASTER).unwrap();
        let n = &cmd["n"][0];
        let node = json!({"h": "f1", "p": "root0001", "t": 1, "a": n["a"],
                          "k": format!("{ME}:{}", n["k"].as_str().unwrap())});
        assert_eq!(parse_node(&node, &MASTER, ME).unwrap().name, "Backups");
    }

    #[test]
    fn linear_time_on_a_large_listing() {
        let mut list = vec![json!({"h": "root0001", "t": 2})];
        list.push(folder("dir00001", "root0001", "d", 1));
        for i in 0..20_000 {
            list.push(
                json!({"h": format!("x{i}"), "t": 0, "p": "dir00001", "s": 1,
                             "a": "AAAAAAAAAAAAAAAAAAAAAA", "k": "nobody:AAAA"}),
            );
        }
        let t = NodeTree::from_fetch(&json!({ "f": list }), &MASTER, ME).unwrap();
        assert_eq!(t.skipped, 20_000);
    }
}
