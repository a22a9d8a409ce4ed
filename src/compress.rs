//! zstd compression of blob payloads, and the rule for when not to compress.
//!
//! `Compression::Auto` compresses every blob at level 3 and keeps it raw
//! when that does not shrink it. Trying costs little on data that does not
//! compress (zstd gives up on such blocks early: about 1.2 GB/s per core on
//! random bytes), and guessing from samples did not pay: slices from the
//! start, middle and end of each chunk missed compressible stretches in
//! archives and disk images, and the benchmark corpus came out 1.1% larger
//! than restic's repository of it.

use std::fmt;
use std::str::FromStr;

/// The user's choice, from `--compression off|auto|LEVEL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    Off,
    /// Level 3.
    #[default]
    Auto,
    /// A fixed zstd level (1..=22).
    Level(i32),
}

impl FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" | "none" => Ok(Compression::Off),
            "auto" => Ok(Compression::Auto),
            level => match level.parse::<i32>() {
                Ok(n) if (1..=22).contains(&n) => Ok(Compression::Level(n)),
                _ => Err(format!(
                    "invalid compression {s:?}: use off, auto or a level from 1 to 22"
                )),
            },
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::Off => f.write_str("off"),
            Compression::Auto => f.write_str("auto"),
            Compression::Level(n) => write!(f, "{n}"),
        }
    }
}

const AUTO_LEVEL: i32 = 3;

/// Compresses `data` if that is worth it; `None` means store it raw.
pub fn compress(data: &[u8], mode: Compression) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    compress_append(data, mode, &mut out).then_some(out)
}

/// Like `compress`, appending to what `out` holds (a buffer reused from
/// blob to blob, with room for a header before the compressed bytes).
/// `false`, and `out` as it was, when the data is better stored raw.
pub fn compress_append(data: &[u8], mode: Compression, out: &mut Vec<u8>) -> bool {
    let level = match mode {
        Compression::Off => return false,
        Compression::Auto => AUTO_LEVEL,
        Compression::Level(n) => n,
    };
    let start = out.len();
    out.reserve(data.len());
    let mut tail = std::io::Cursor::new(&mut *out);
    tail.set_position(start as u64);
    let written = with_compressor(level, |c| c.compress_to_buffer(data, &mut tail));
    if written.is_ok_and(|n| n < data.len()) {
        return true;
    }
    out.truncate(start);
    false
}

thread_local! {
    /// Creating a zstd context costs more than compressing a small file, so
    /// each thread keeps one (with the level it was made for).
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

fn with_compressor<T>(
    level: i32,
    f: impl FnOnce(&mut zstd::bulk::Compressor<'static>) -> std::io::Result<T>,
) -> std::io::Result<T> {
    COMPRESSOR.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            *slot = Some((level, zstd::bulk::Compressor::new(level)?));
        }
        match slot.as_mut() {
            Some((_, c)) => f(c),
            None => Err(std::io::Error::other("no zstd compressor")),
        }
    })
}

/// Decompresses at most `plain_len` bytes; anything else is corruption.
pub fn decompress(data: &[u8], plain_len: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    decompress_into(data, plain_len, &mut out)?;
    Ok(out)
}

/// Like `decompress`, into `out` (cleared first), so that a reader of many
/// blobs reuses one buffer.
pub fn decompress_into(data: &[u8], plain_len: usize, out: &mut Vec<u8>) -> Result<(), String> {
    out.clear();
    out.reserve_exact(plain_len);
    DECOMPRESSOR
        .with(|slot| {
            let mut slot = slot.borrow_mut();
            if slot.is_none() {
                *slot = Some(zstd::bulk::Decompressor::new()?);
            }
            match slot.as_mut() {
                // Writes at most `out`'s capacity: no bomb gets further.
                Some(d) => d.decompress_to_buffer(data, out),
                None => Err(std::io::Error::other("no zstd decompressor")),
            }
        })
        .map_err(|e| e.to_string())?;
    if out.len() != plain_len {
        return Err(format!(
            "decompressed to {} bytes, expected {plain_len}",
            out.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressible_data_shrinks_and_roundtrips() {
        let data = b"hello hello hello hello ".repeat(5000);
        let packed = compress(&data, Compression::Auto).expect("compresses");
        assert!(packed.len() < data.len() / 10);
        assert_eq!(decompress(&packed, data.len()).unwrap(), data);
    }

    #[test]
    fn random_data_is_stored_raw() {
        let mut data = vec![0u8; 200_000];
        blake3::Hasher::new()
            .update(b"seed")
            .finalize_xof()
            .fill(&mut data);
        assert!(compress(&data, Compression::Auto).is_none());
        assert!(compress(&data, Compression::Off).is_none());
    }

    #[test]
    fn a_compressible_stretch_anywhere_is_found() {
        // Like an archive's chunk: random but for a run of text in one
        // place, which no start, middle or end sample would see.
        let mut data = vec![0u8; 1 << 20];
        blake3::Hasher::new()
            .update(b"seed")
            .finalize_xof()
            .fill(&mut data);
        let text = b"log line 17: nothing to report\n".repeat(4000);
        data[200_000..200_000 + text.len()].copy_from_slice(&text);
        let packed = compress(&data, Compression::Auto).expect("compresses");
        assert!(packed.len() < data.len() - 100_000, "{}", packed.len());
        assert_eq!(decompress(&packed, data.len()).unwrap(), data);
    }

    /// Compressed bytes go after what the buffer holds; data stored raw
    /// leaves the buffer as it was.
    #[test]
    fn appending_keeps_the_buffers_head() {
        let mut out = b"head".to_vec();
        let text = b"again and again ".repeat(1000);
        assert!(compress_append(&text, Compression::Auto, &mut out));
        assert_eq!(&out[..4], b"head");
        assert_eq!(decompress(&out[4..], text.len()).unwrap(), text);
        let mut random = vec![0u8; 10_000];
        blake3::Hasher::new().finalize_xof().fill(&mut random);
        out.truncate(4);
        assert!(!compress_append(&random, Compression::Auto, &mut out));
        assert_eq!(out, b"head");
    }

    #[test]
    fn wrong_length_is_an_error() {
        let data = vec![7u8; 1000];
        let packed = compress(&data, Compression::Level(3)).unwrap();
        assert!(decompress(&packed, 999).is_err());
        assert!(decompress(b"garbage", 10).is_err());
    }

    #[test]
    fn parses_user_choices() {
        assert_eq!("off".parse::<Compression>().unwrap(), Compression::Off);
        assert_eq!("auto".parse::<Compression>().unwrap(), Compression::Auto);
        assert_eq!("19".parse::<Compression>().unwrap(), Compression::Level(19));
        assert!("0".parse::<Compression>().is_err());
        assert!("fast".parse::<Compression>().is_err());
    }
}
