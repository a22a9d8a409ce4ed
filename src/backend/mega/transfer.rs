//! Moving file contents to and from Mega's storage servers.
//!
//! Upload: a fresh file key and nonce, Mega's chunk boundaries, a CBC-MAC
//! per chunk and the condensed meta-MAC, AES-128-CTR, chunks grouped into
//! requests of about 1 MiB with several requests in flight, each retried on
//! its own. The storage server answers the request that completes the file
//! with a 36-byte token; only then does the caller create the node (`p`), so
//! an object is either wholly there or absent. Download: the whole file with
//! its MAC checked, or a byte range decrypted from the enclosing 16-byte
//! block. Sends no API commands itself: the caller gets URLs (`u`, `g`) and
//! creates nodes.

use crate::backend::mega::api::{time_left, RetryPolicy};
use crate::backend::mega::crypto::{self, FileKey, Key};
use crate::backend::mega::error::{code, MegaError, MegaResult};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde_json::{json, Value};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Length of the completion token the storage server returns (SDK `UPLOADTOKENLEN`).
pub const UPLOAD_TOKEN_LEN: usize = 36;
/// Requests carry whole chunks adding up to at least this much (or the rest).
const GROUP_TARGET: u64 = 1024 * 1024;

/// Counters for tests and reports.
#[derive(Debug, Default)]
pub struct TransferStats {
    pub upload_requests: AtomicU64,
    pub download_requests: AtomicU64,
    pub retries: AtomicU64,
    /// Bytes accepted by the storage servers (retries not counted twice).
    pub uploaded_bytes: AtomicU64,
    /// Bytes received from the storage servers.
    pub downloaded_bytes: AtomicU64,
}

/// Settings shared by uploads and downloads.
pub struct Transfers<'a> {
    pub http: &'a reqwest::Client,
    pub retry: &'a RetryPolicy,
    pub in_flight: usize,
    pub stats: &'a TransferStats,
}

/// A finished upload: what `p` needs.
pub struct Uploaded {
    pub token: Vec<u8>,
    pub key: FileKey,
}

/// What an upload sends: bytes in memory, or a local file read a request's
/// worth at a time (a staged pack: it need not be in memory whole).
pub enum UploadSource<'a> {
    Bytes(&'a [u8]),
    File { file: Arc<File>, len: u64 },
}

impl UploadSource<'_> {
    pub fn size_bytes(&self) -> u64 {
        match self {
            UploadSource::Bytes(data) => data.len() as u64,
            UploadSource::File { len, .. } => *len,
        }
    }

    /// The plaintext of `g`; a file is read off the async threads.
    async fn group(&self, g: &Group) -> MegaResult<Vec<u8>> {
        match self {
            UploadSource::Bytes(data) => {
                let range = g.offset as usize..(g.offset + g.len) as usize;
                data.get(range)
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| MegaError::Protocol("upload group beyond the data".into()))
            }
            UploadSource::File { file, .. } => {
                let (file, offset, len) = (Arc::clone(file), g.offset, g.len as usize);
                tokio::task::spawn_blocking(move || {
                    let mut plain = vec![0; len];
                    file.read_exact_at(&mut plain, offset).map(|()| plain)
                })
                .await
                .map_err(|e| MegaError::Protocol(format!("file reader: {e}")))?
                .map_err(|e| MegaError::Io(format!("reading the file to upload: {e}")))
            }
        }
    }
}

/// Consecutive whole chunks sent in one upload request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub offset: u64,
    pub len: u64,
    /// (offset, length) of each chunk in the group.
    pub chunks: Vec<(u64, u64)>,
}

struct GroupDone {
    index: usize,
    macs: Vec<[u8; 16]>,
    token: Option<Vec<u8>>,
}

/// Chunks grouped into upload requests of about `GROUP_TARGET` bytes.
pub fn upload_groups(size: u64) -> Vec<Group> {
    let mut groups = Vec::new();
    let mut cur: Vec<(u64, u64)> = Vec::new();
    let mut start = 0u64;
    let mut len = 0u64;
    for (off, clen) in crypto::chunks(size) {
        if cur.is_empty() {
            start = off;
        }
        cur.push((off, clen));
        len += clen;
        if len >= GROUP_TARGET {
            groups.push(Group {
                offset: start,
                len,
                chunks: std::mem::take(&mut cur),
            });
            len = 0;
        }
    }
    if !cur.is_empty() {
        groups.push(Group {
            offset: start,
            len,
            chunks: cur,
        });
    }
    groups
}

#[derive(Debug)]
enum Reply {
    Accepted,
    Token(Vec<u8>),
}

impl Transfers<'_> {
    async fn backoff(&self, attempt: u32) {
        self.stats.retries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(self.retry.delay(attempt)).await;
    }

    /// Uploads `data` to the storage URL from `u`. Returns the completion
    /// token and the file key (with its meta-MAC).
    pub async fn upload(&self, url: &str, source: &UploadSource<'_>) -> MegaResult<Uploaded> {
        let aes: Key = rand::random();
        let nonce: [u8; 8] = rand::random();
        let groups = upload_groups(source.size_bytes());
        let mut results: Vec<GroupDone> = stream::iter(groups.into_iter().enumerate())
            .map(|(index, g)| async move {
                let plain = source.group(&g).await?;
                let (macs, body) = tokio::task::spawn_blocking(move || {
                    seal_group(&aes, &nonce, g.offset, plain, &g.chunks)
                })
                .await
                .map_err(|e| MegaError::Protocol(format!("encryption worker: {e}")))?;
                let token = self.post_group(url, g.offset, body).await?;
                Ok::<_, MegaError>(GroupDone { index, macs, token })
            })
            .buffer_unordered(self.in_flight.max(1))
            .try_collect()
            .await?;
        results.sort_by_key(|r| r.index);
        let macs: Vec<[u8; 16]> = results
            .iter()
            .flat_map(|r| r.macs.iter().copied())
            .collect();
        let token = results.into_iter().find_map(|r| r.token).ok_or_else(|| {
            MegaError::Protocol("upload finished without a completion token".into())
        })?;
        Ok(Uploaded {
            token,
            key: FileKey {
                aes,
                nonce,
                meta_mac: crypto::meta_mac(&aes, &macs),
            },
        })
    }

    async fn post_group(
        &self,
        url: &str,
        offset: u64,
        body: Vec<u8>,
    ) -> MegaResult<Option<Vec<u8>>> {
        // Like the SDK: the offset, and a checksum of the body as `?d=`.
        let target = format!(
            "{}/{offset}?d={}",
            url.trim_end_matches('/'),
            crypto::b64_encode(&crypto::upload_checksum(&body))
        );
        let mut attempt = 0u32;
        loop {
            self.stats.upload_requests.fetch_add(1, Ordering::Relaxed);
            let sent = self.http.post(&target).body(body.clone()).send().await;
            let failure = match sent {
                Err(e) => MegaError::network(e),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    match status {
                        200..=299 => match resp.bytes().await {
                            Err(e) => MegaError::network(e),
                            Ok(b) => match upload_reply(&b) {
                                Ok(reply) => {
                                    self.stats
                                        .uploaded_bytes
                                        .fetch_add(body.len() as u64, Ordering::Relaxed);
                                    return Ok(match reply {
                                        Reply::Accepted => None,
                                        Reply::Token(t) => Some(t),
                                    });
                                }
                                Err(e) if e.is_transient() => e,
                                Err(e) => return Err(e),
                            },
                        },
                        509 => {
                            return Err(MegaError::TransferQuota {
                                seconds_left: time_left(&resp),
                            })
                        }
                        500..=599 | 429 => MegaError::Http {
                            status,
                            context: "upload".into(),
                        },
                        _ => {
                            return Err(MegaError::Http {
                                status,
                                context: "upload".into(),
                            })
                        }
                    }
                }
            };
            attempt += 1;
            if attempt >= self.retry.max_attempts {
                return Err(failure);
            }
            self.backoff(attempt).await;
        }
    }

    /// Downloads and decrypts a whole file, checking its meta-MAC.
    pub async fn download(&self, url: &str, size: u64, key: &FileKey) -> MegaResult<Vec<u8>> {
        let mut data = if size == 0 {
            Vec::new()
        } else {
            // Several ranges in flight for large files, in chunk-aligned pieces.
            let pieces = download_pieces(size);
            let parts: Vec<Vec<u8>> = stream::iter(pieces)
                .map(|(off, len)| self.get_range(url, off, len))
                .buffered(self.in_flight.max(1))
                .try_collect()
                .await?;
            parts.concat()
        };
        let (aes, nonce) = (key.aes, key.nonce);
        let mac = tokio::task::spawn_blocking(move || {
            crypto::ctr_apply(&aes, &nonce, 0, &mut data);
            let mac = crypto::file_mac(&aes, &nonce, &data);
            (data, mac)
        })
        .await
        .map_err(|e| MegaError::Protocol(format!("decryption worker: {e}")))?;
        let (data, mac) = mac;
        if mac != key.meta_mac {
            return Err(MegaError::Corrupt(
                "downloaded file fails its MAC check (damaged or tampered)".into(),
            ));
        }
        Ok(data)
    }

    /// Downloads `length` bytes at `offset` (the caller checked the bounds).
    pub async fn download_range(
        &self,
        url: &str,
        key: &FileKey,
        offset: u64,
        length: u64,
    ) -> MegaResult<Vec<u8>> {
        if length == 0 {
            return Ok(Vec::new());
        }
        let aligned = offset - offset % 16;
        let mut data = self
            .get_range(url, aligned, offset + length - aligned)
            .await?;
        crypto::ctr_apply(&key.aes, &key.nonce, aligned, &mut data);
        Ok(data.split_off((offset - aligned) as usize))
    }

    async fn get_range(&self, url: &str, offset: u64, length: u64) -> MegaResult<Vec<u8>> {
        let target = format!(
            "{}/{offset}-{}",
            url.trim_end_matches('/'),
            offset + length - 1
        );
        let mut attempt = 0u32;
        loop {
            self.stats.download_requests.fetch_add(1, Ordering::Relaxed);
            let failure = match self.http.get(&target).send().await {
                Err(e) => MegaError::network(e),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    match status {
                        200..=299 => match resp.bytes().await {
                            Ok(b) if b.len() as u64 == length => {
                                self.stats
                                    .downloaded_bytes
                                    .fetch_add(length, Ordering::Relaxed);
                                return Ok(b.to_vec());
                            }
                            Ok(b) => MegaError::Corrupt(format!(
                                "download returned {} bytes instead of {length}",
                                b.len()
                            )),
                            Err(e) => MegaError::network(e),
                        },
                        509 => {
                            return Err(MegaError::TransferQuota {
                                seconds_left: time_left(&resp),
                            })
                        }
                        500..=599 | 429 => MegaError::Http {
                            status,
                            context: "download".into(),
                        },
                        _ => {
                            return Err(MegaError::Http {
                                status,
                                context: "download".into(),
                            })
                        }
                    }
                }
            };
            attempt += 1;
            if attempt >= self.retry.max_attempts {
                return Err(failure);
            }
            self.backoff(attempt).await;
        }
    }
}

/// Pieces of about 4 MiB on chunk boundaries, for parallel downloads.
fn download_pieces(size: u64) -> Vec<(u64, u64)> {
    const PIECE: u64 = 4 * 1024 * 1024;
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (off, len) in crypto::chunks(size) {
        match out.last_mut() {
            Some(last) if last.1 < PIECE => last.1 += len,
            _ => out.push((off, len)),
        }
    }
    out.retain(|p| p.1 > 0);
    out
}

/// MACs each chunk of a group's plaintext and encrypts it in place.
fn seal_group(
    aes: &Key,
    nonce: &[u8; 8],
    offset: u64,
    mut plain: Vec<u8>,
    chunks: &[(u64, u64)],
) -> (Vec<[u8; 16]>, Vec<u8>) {
    let macs = chunks
        .iter()
        .filter(|&&(_, len)| len > 0)
        .map(|&(off, len)| {
            let s = (off - offset) as usize;
            crypto::chunk_mac(aes, nonce, &plain[s..s + len as usize])
        })
        .collect();
    crypto::ctr_apply(aes, nonce, offset, &mut plain);
    (macs, plain)
}

/// Reads a storage server reply: empty = accepted, 36 bytes = completion
/// token, a short negative number = error.
fn upload_reply(body: &[u8]) -> MegaResult<Reply> {
    if body.is_empty() {
        return Ok(Reply::Accepted);
    }
    if body.len() == UPLOAD_TOKEN_LEN {
        return Ok(Reply::Token(body.to_vec()));
    }
    if body.len() < 10 {
        if let Some(c) = std::str::from_utf8(body)
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .filter(|&c| c < 0)
        {
            return Err(MegaError::api(c, "upload"));
        }
    }
    Err(MegaError::Protocol(format!(
        "storage server sent {} unexpected bytes",
        body.len()
    )))
}

/// The `p` command that turns a completed upload into a file node.
pub fn put_file_command(
    parent: &str,
    name: &str,
    up: &Uploaded,
    master: &Key,
) -> MegaResult<Value> {
    let node_key = up.key.to_node_key();
    let attr = crypto::encrypt_name(&crypto::attr_key(&node_key)?, name);
    let mut wrapped = node_key.to_vec();
    crypto::ecb_encrypt(master, &mut wrapped)?;
    Ok(json!({
        "a": "p",
        "t": parent,
        "n": [{"h": crypto::b64_encode(&up.token), "t": 0, "a": attr, "k": crypto::b64_encode(&wrapped)}],
    }))
}

/// Whether an upload failure means the URL is stale and a new `u` may help.
pub fn needs_new_url(e: &MegaError) -> bool {
    matches!(
        e,
        MegaError::Http {
            status: 403 | 404 | 410,
            ..
        }
    ) || matches!(
        e,
        MegaError::Api {
            code: code::EEXPIRED,
            ..
        }
    )
}

/// A pause used between whole-transfer restarts.
pub fn restart_pause() -> Duration {
    Duration::from_millis(50)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_cover_the_file_on_chunk_boundaries() {
        for size in [
            0u64,
            1,
            16,
            131_072,
            131_073,
            3 * 1024 * 1024 + 17,
            20 * 1024 * 1024,
        ] {
            let g = upload_groups(size);
            let mut pos = 0;
            for grp in &g {
                assert_eq!(grp.offset, pos);
                assert!(crypto::is_chunk_boundary(grp.offset));
                assert_eq!(grp.chunks.iter().map(|c| c.1).sum::<u64>(), grp.len);
                pos += grp.len;
            }
            assert_eq!(pos, size);
        }
        assert_eq!(upload_groups(0).len(), 1);
        let pieces = download_pieces(20 * 1024 * 1024);
        assert_eq!(pieces.iter().map(|p| p.1).sum::<u64>(), 20 * 1024 * 1024);
        assert!(download_pieces(0).is_empty());
    }

    #[test]
    fn upload_replies() {
        assert!(matches!(upload_reply(b""), Ok(Reply::Accepted)));
        assert!(matches!(upload_reply(&[7u8; 36]), Ok(Reply::Token(_))));
        assert_eq!(
            upload_reply(b"-17").err(),
            Some(MegaError::api(-17, "upload"))
        );
        assert!(upload_reply(b"-3").unwrap_err().is_transient());
        assert!(upload_reply(b"hello world, not a token").is_err());
    }

    #[test]
    fn seal_group_matches_whole_file_mac() {
        let data: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        let aes = [5u8; 16];
        let nonce = [6u8; 8];
        let mut macs = Vec::new();
        let mut ct = Vec::new();
        for g in upload_groups(data.len() as u64) {
            let (m, c) = seal_group(
                &aes,
                &nonce,
                g.offset,
                data[g.offset as usize..(g.offset + g.len) as usize].to_vec(),
                &g.chunks,
            );
            macs.extend(m);
            ct.extend(c);
        }
        assert_eq!(
            crypto::meta_mac(&aes, &macs),
            crypto::file_mac(&aes, &nonce, &data)
        );
        crypto::ctr_apply(&aes, &nonce, 0, &mut ct);
        assert_eq!(ct, data);
    }
}
