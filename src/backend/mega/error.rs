//! The Mega client's error type: API error codes, HTTP failures, transfer
//! quota, malformed server data, and their mapping onto `backend::Error`.
//!
//! Owns the wording of every Mega error a user sees ("mega: storage quota
//! exceeded (-17)"); knows nothing about requests or retries.

use crate::backend::{Error, ErrorKind};
use std::fmt;

/// Mega API error codes (SDK `include/mega/types.h`).
pub mod code {
    pub const EINTERNAL: i64 = -1;
    pub const EARGS: i64 = -2;
    pub const EAGAIN: i64 = -3;
    pub const ERATELIMIT: i64 = -4;
    pub const EFAILED: i64 = -5;
    pub const ETOOMANY: i64 = -6;
    pub const ERANGE: i64 = -7;
    pub const EEXPIRED: i64 = -8;
    pub const ENOENT: i64 = -9;
    pub const ECIRCULAR: i64 = -10;
    pub const EACCESS: i64 = -11;
    pub const EEXIST: i64 = -12;
    pub const EINCOMPLETE: i64 = -13;
    pub const EKEY: i64 = -14;
    pub const ESID: i64 = -15;
    pub const EBLOCKED: i64 = -16;
    pub const EOVERQUOTA: i64 = -17;
    pub const ETEMPUNAVAIL: i64 = -18;
    pub const ETOOMANYCONNECTIONS: i64 = -19;
    pub const EMFAREQUIRED: i64 = -26;
    pub const EMASTERONLY: i64 = -27;
    pub const EBUSINESSPASTDUE: i64 = -28;
    pub const EPAYWALL: i64 = -29;
}

/// What went wrong talking to Mega.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MegaError {
    /// The API answered with a negative error code.
    Api { code: i64, context: String },
    /// Login refused: wrong e-mail or password (-9 at login).
    WrongCredentials,
    /// The account has 2FA and no (or a wrong) code was given (-26).
    MfaRequired,
    /// The download (transfer) quota is exhausted (HTTP 509).
    TransferQuota { seconds_left: Option<u64> },
    /// An HTTP status the client does not retry or retried in vain.
    Http { status: u16, context: String },
    /// The connection failed (after retries).
    Network(String),
    /// The server sent something that does not follow the protocol.
    Protocol(String),
    /// Downloaded bytes failed the MAC check or have the wrong length.
    Corrupt(String),
    /// No such file or folder.
    NotFound(String),
    /// Local file trouble (the session cache).
    Io(String),
    /// Bad configuration (missing user, bad path).
    Config(String),
}

impl MegaError {
    pub fn api(code: i64, context: impl Into<String>) -> Self {
        MegaError::Api {
            code,
            context: context.into(),
        }
    }

    /// A connection failure. The URL is left out of the message: it holds
    /// the session id or a download/upload capability.
    pub fn network(e: reqwest::Error) -> Self {
        let e = e.without_url();
        let mut msg = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            source = s.source();
        }
        MegaError::Network(msg)
    }

    /// Whether the failure is temporary (a retry at a higher level may help).
    pub fn is_transient(&self) -> bool {
        match self {
            MegaError::Api { code, .. } => matches!(
                *code,
                code::EAGAIN
                    | code::ERATELIMIT
                    | code::ETEMPUNAVAIL
                    | code::ETOOMANYCONNECTIONS
                    | code::EINTERNAL
            ),
            MegaError::Http { status, .. } => *status >= 500 || *status == 429,
            MegaError::Network(_) => true,
            _ => false,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            MegaError::Api { code, .. } => match *code {
                code::ENOENT => ErrorKind::NotFound,
                code::EEXIST => ErrorKind::AlreadyExists,
                code::EACCESS | code::EBLOCKED | code::EMASTERONLY | code::EBUSINESSPASTDUE => {
                    ErrorKind::PermissionDenied
                }
                code::EOVERQUOTA | code::EPAYWALL => ErrorKind::QuotaExceeded,
                code::ESID | code::EKEY => ErrorKind::Auth,
                _ if self.is_transient() => ErrorKind::Transient,
                _ => ErrorKind::Other,
            },
            MegaError::WrongCredentials | MegaError::MfaRequired => ErrorKind::Auth,
            MegaError::TransferQuota { .. } => ErrorKind::QuotaExceeded,
            MegaError::Http { status, .. } => match status {
                401 | 403 => ErrorKind::PermissionDenied,
                404 => ErrorKind::NotFound,
                _ if self.is_transient() => ErrorKind::Transient,
                _ => ErrorKind::Other,
            },
            MegaError::Network(_) => ErrorKind::Transient,
            MegaError::Protocol(_) | MegaError::Io(_) | MegaError::Config(_) => ErrorKind::Other,
            MegaError::Corrupt(_) => ErrorKind::Corrupt,
            MegaError::NotFound(_) => ErrorKind::NotFound,
        }
    }

    /// Converts to the backend error for `object`.
    pub fn into_backend(self, object: impl Into<String>) -> Error {
        let kind = self.kind();
        let message = self.to_string();
        Error::new(kind, object, message).with_source(self)
    }
}

/// A short description of an API error code.
pub fn describe(code: i64) -> &'static str {
    match code {
        code::EINTERNAL => "internal error",
        code::EARGS => "invalid arguments",
        code::EAGAIN => "server busy, try again",
        code::ERATELIMIT => "rate limited",
        code::EFAILED => "request failed",
        code::ETOOMANY => "too many requests or uses",
        code::ERANGE => "range or chunk boundary rejected",
        code::EEXPIRED => "expired",
        code::ENOENT => "not found",
        code::ECIRCULAR => "circular linkage",
        code::EACCESS => "access denied",
        code::EEXIST => "already exists",
        code::EINCOMPLETE => "incomplete",
        code::EKEY => "invalid key or decryption error",
        code::ESID => "session expired or invalid",
        code::EBLOCKED => "account blocked",
        code::EOVERQUOTA => "storage quota exceeded",
        code::ETEMPUNAVAIL => "temporarily unavailable",
        code::ETOOMANYCONNECTIONS => "too many connections",
        code::EMFAREQUIRED => "two-factor authentication code required",
        code::EMASTERONLY => "only the business master account may do this",
        code::EBUSINESSPASTDUE => "business account payment overdue",
        code::EPAYWALL => "account over its storage quota and locked until upgraded (paywall)",
        _ => "unknown error",
    }
}

impl fmt::Display for MegaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MegaError::Api { code, context } if context.is_empty() => {
                write!(f, "mega: {} ({code})", describe(*code))
            }
            MegaError::Api { code, context } => {
                write!(f, "mega: {context}: {} ({code})", describe(*code))
            }
            MegaError::WrongCredentials => {
                write!(f, "mega: login refused: wrong e-mail or password (-9)")
            }
            MegaError::MfaRequired => write!(
                f,
                "mega: login refused: the account uses two-factor authentication and the code is missing or wrong (-26)"
            ),
            MegaError::TransferQuota {
                seconds_left: Some(s),
            } => write!(
                f,
                "mega: transfer quota exceeded (HTTP 509); downloads resume in {s} seconds"
            ),
            MegaError::TransferQuota { seconds_left: None } => {
                write!(f, "mega: transfer quota exceeded (HTTP 509)")
            }
            MegaError::Http { status, context } => write!(f, "mega: {context}: HTTP {status}"),
            MegaError::Network(m) => write!(f, "mega: network error: {m}"),
            MegaError::Protocol(m) => write!(f, "mega: unexpected server reply: {m}"),
            MegaError::Corrupt(m) => write!(f, "mega: {m}"),
            MegaError::NotFound(p) => write!(f, "mega: {p}: not found"),
            MegaError::Io(m) => write!(f, "mega: {m}"),
            MegaError::Config(m) => write!(f, "mega: {m}"),
        }
    }
}

impl std::error::Error for MegaError {}

impl From<crate::backend::mega::crypto::CryptoError> for MegaError {
    fn from(e: crate::backend::mega::crypto::CryptoError) -> Self {
        MegaError::Protocol(e.0)
    }
}

pub type MegaResult<T> = std::result::Result<T, MegaError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_kinds() {
        let e = MegaError::api(code::EOVERQUOTA, "");
        assert_eq!(e.to_string(), "mega: storage quota exceeded (-17)");
        assert_eq!(e.kind(), ErrorKind::QuotaExceeded);
        assert_eq!(
            MegaError::api(code::EPAYWALL, "").kind(),
            ErrorKind::QuotaExceeded
        );
        assert_eq!(MegaError::WrongCredentials.kind(), ErrorKind::Auth);
        assert_eq!(
            MegaError::api(code::EAGAIN, "u").kind(),
            ErrorKind::Transient
        );
        let q = MegaError::TransferQuota {
            seconds_left: Some(42),
        };
        assert!(q.to_string().contains("42 seconds"));
        let b = q.into_backend("data/ab/x");
        assert_eq!(b.kind, ErrorKind::QuotaExceeded);
        assert_eq!(b.object, "data/ab/x");
    }
}
