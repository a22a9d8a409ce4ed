//! Directories as stored: a `Tree` is a sorted list of `Node`s, encoded as
//! CBOR and stored as a tree blob. No I/O.
//!
//! Names and symlink targets are raw bytes (file names on Linux need not be
//! UTF-8). Optional fields are left out when empty, and unknown fields are
//! ignored, so newer writers can add fields without breaking older readers.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::id::BlobId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

impl NodeKind {
    /// One letter for listings, as `ls -l` shows it.
    pub fn letter(&self) -> char {
        match self {
            NodeKind::File => '-',
            NodeKind::Dir => 'd',
            NodeKind::Symlink => 'l',
            NodeKind::Fifo => 'p',
            NodeKind::Socket => 's',
            NodeKind::CharDevice => 'c',
            NodeKind::BlockDevice => 'b',
        }
    }
}

/// A point in time with nanoseconds, as the file system reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct Timestamp {
    pub secs: i64,
    pub nanos: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    pub name: ByteBuf,
    pub value: ByteBuf,
}

/// One chunk of a file: its blob id and plain length, so a reader can seek
/// without loading blobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentRef(pub BlobId, pub u32);

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub name: ByteBuf,
    pub kind: NodeKind,
    /// Permission bits including setuid, setgid and sticky (mode & 0o7777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub mtime: Timestamp,
    #[serde(default)]
    pub atime: Timestamp,
    #[serde(default)]
    pub ctime: Timestamp,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub inode: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub device: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub links: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rdev: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<Xattr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_target: Option<ByteBuf>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<ContentRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<BlobId>,
}

impl Node {
    /// A node with the given name and kind and every other field empty.
    pub fn new(name: &[u8], kind: NodeKind) -> Self {
        Node {
            name: ByteBuf::from(name.to_vec()),
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            user: None,
            group: None,
            mtime: Timestamp::default(),
            atime: Timestamp::default(),
            ctime: Timestamp::default(),
            size: 0,
            inode: 0,
            device: 0,
            links: 0,
            rdev: 0,
            xattrs: Vec::new(),
            link_target: None,
            content: Vec::new(),
            subtree: None,
        }
    }

    /// Name for messages and listings (lossy where not UTF-8).
    pub fn display_name(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

/// Why tree bytes are not a valid tree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("tree does not decode: {0}")]
    Decode(String),
    #[error("tree entries are not sorted and unique at {0:?}")]
    Unsorted(String),
    #[error("invalid entry name {0:?}")]
    BadName(String),
}

impl Tree {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if ciborium::into_writer(self, &mut out).is_err() {
            unreachable!("CBOR encoding into a Vec cannot fail");
        }
        out
    }

    /// Decodes and checks the invariants a reader relies on: names are
    /// sorted, unique, and are single path components.
    pub fn decode(bytes: &[u8]) -> Result<Tree, TreeError> {
        let tree: Tree =
            ciborium::from_reader(bytes).map_err(|e| TreeError::Decode(e.to_string()))?;
        for node in &tree.nodes {
            let name: &[u8] = &node.name;
            if name.is_empty()
                || name == b"."
                || name == b".."
                || name.contains(&b'/')
                || name.contains(&0)
            {
                return Err(TreeError::BadName(node.display_name()));
            }
        }
        for pair in tree.nodes.windows(2) {
            if pair[0].name >= pair[1].name {
                return Err(TreeError::Unsorted(pair[1].display_name()));
            }
        }
        Ok(tree)
    }

    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }

    /// Sorts nodes by name; the archiver adds them in walk order.
    pub fn sort(&mut self) {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_with_odd_names() {
        let mut a = Node::new(b"new\nline", NodeKind::File);
        a.content = vec![ContentRef(BlobId([1; 32]), 10)];
        a.xattrs = vec![Xattr {
            name: ByteBuf::from(b"user.x".to_vec()),
            value: ByteBuf::from(vec![0, 255]),
        }];
        let mut b = Node::new(&[0xff, 0xfe], NodeKind::Symlink);
        b.link_target = Some(ByteBuf::from(vec![0x80, b'/']));
        let mut tree = Tree { nodes: vec![b, a] };
        tree.sort();
        let back = Tree::decode(&tree.encode()).unwrap();
        assert_eq!(back, tree);
        assert!(back.find(b"new\nline").is_some());
        assert!(back.find(b"missing").is_none());
    }

    #[test]
    fn invariants_are_checked() {
        let tree = Tree {
            nodes: vec![
                Node::new(b"b", NodeKind::File),
                Node::new(b"a", NodeKind::File),
            ],
        };
        assert!(matches!(
            Tree::decode(&tree.encode()),
            Err(TreeError::Unsorted(_))
        ));
        let tree = Tree {
            nodes: vec![Node::new(b"..", NodeKind::Dir)],
        };
        assert!(matches!(
            Tree::decode(&tree.encode()),
            Err(TreeError::BadName(_))
        ));
        let tree = Tree {
            nodes: vec![Node::new(b"a/b", NodeKind::Dir)],
        };
        assert!(Tree::decode(&tree.encode()).is_err());
        assert!(Tree::decode(b"\xff\x00garbage").is_err());
    }
}
