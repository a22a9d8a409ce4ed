//! Turning a repository location (`/srv/backup`, `local:/srv/backup`,
//! `mega:/Backups/host`, `s3:...`) into a backend.

use std::path::PathBuf;
use std::sync::Arc;

use crate::backend::local::LocalBackend;
use crate::backend::Backend;
use crate::error::{Error, Result};

/// A parsed repository location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    Mega(String),
}

impl Location {
    pub fn parse(spec: &str) -> Result<Location> {
        if let Some(path) = spec.strip_prefix("local:") {
            return Ok(Location::Local(PathBuf::from(path)));
        }
        if let Some(path) = spec.strip_prefix("mega:") {
            let path = if path.starts_with('/') {
                path.to_string()
            } else {
                format!("/{path}")
            };
            return Ok(Location::Mega(path));
        }
        if let Some((scheme, _)) = spec.split_once(':') {
            let looks_like_scheme = !scheme.is_empty()
                && !scheme.contains('/')
                && scheme.chars().all(|c| c.is_ascii_alphanumeric());
            if looks_like_scheme {
                return Err(Error::InvalidArgument(format!(
                    "unknown repository scheme {scheme:?} in {spec:?} (use a path, local:PATH or mega:PATH)"
                )));
            }
        }
        if spec.is_empty() {
            return Err(Error::InvalidArgument("empty repository location".into()));
        }
        Ok(Location::Local(PathBuf::from(spec)))
    }

    /// Builds the backend for a local location; remote ones need settings
    /// the caller supplies (see `cli`).
    pub fn local_backend(&self) -> Option<Arc<dyn Backend>> {
        match self {
            Location::Local(path) => Some(Arc::new(LocalBackend::new(path))),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations() {
        assert_eq!(
            Location::parse("/srv/b").unwrap(),
            Location::Local("/srv/b".into())
        );
        assert_eq!(
            Location::parse("local:/srv/b").unwrap(),
            Location::Local("/srv/b".into())
        );
        assert_eq!(
            Location::parse("rel/dir").unwrap(),
            Location::Local("rel/dir".into())
        );
        assert_eq!(
            Location::parse("mega:Backups/h").unwrap(),
            Location::Mega("/Backups/h".into())
        );
        assert!(Location::parse("ftp:/x").is_err());
        assert!(Location::parse("").is_err());
    }
}
