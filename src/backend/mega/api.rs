//! The Mega command channel: `POST {api}cs?id=<seq>&sid=<session>` with a
//! JSON array of commands, and everything that makes it reliable.
//!
//! Owns request ids, retries with exponential backoff and full jitter
//! (whole-request -3/-4, HTTP 500/502/503/504/429, connection failures), the
//! HTTP 402 `X-Hashcash` challenge, and the translation of error replies into
//! `MegaError`. A retried request is sent again with the SAME id and body, so
//! the server recognizes it and a batch never applies twice. Knows nothing
//! about logins (an expired session comes back as `ESID` for the caller to
//! handle), nodes or files.

use crate::backend::mega::crypto::{self, HashcashChallenge};
use crate::backend::mega::error::{code, MegaError, MegaResult};
use rand::Rng;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

/// How often and how patiently to retry.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per request (the first one included).
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles each time.
    pub base_delay: Duration,
    /// Upper bound of one backoff.
    pub max_delay: Duration,
    /// Hashcash nonces to try before giving up on a 402 challenge.
    pub hashcash_max_attempts: u32,
    /// One HTTP request (a command batch, or one upload/download piece of at
    /// most a few MiB) taking longer than this is abandoned and retried.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(60),
            hashcash_max_attempts: 1 << 16,
            request_timeout: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// Exponential backoff with full jitter before attempt `attempt + 1`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX));
        let cap = exp.min(self.max_delay);
        let millis = cap.as_millis().min(u128::from(u64::MAX)) as u64;
        if millis == 0 {
            return cap;
        }
        // Full jitter, but never below half the step, so retries stay ordered.
        let jittered = rand::thread_rng().gen_range(millis / 2..=millis);
        Duration::from_millis(jittered)
    }
}

/// Counters a test or a progress report can read.
#[derive(Debug, Default)]
pub struct ApiStats {
    /// HTTP requests sent to the command endpoint (retries included).
    pub requests: AtomicU64,
    /// Of those, how many were retries.
    pub retries: AtomicU64,
    /// Hashcash challenges solved.
    pub hashcash_solved: AtomicU64,
}

/// The command channel of one client.
pub struct ApiClient {
    http: reqwest::Client,
    api_url: String,
    seq: AtomicU64,
    sid: RwLock<Option<String>>,
    pub retry: RetryPolicy,
    pub stats: ApiStats,
}

enum Attempt {
    Done(Vec<Value>),
    Retry(MegaError),
    /// Retry, waiting at least what the server asked for (`Retry-After`).
    RetryAfter(MegaError, Duration),
}

impl ApiClient {
    pub fn new(api_url: &str, retry: RetryPolicy) -> MegaResult<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .timeout(retry.request_timeout)
            .build()
            .map_err(|e| MegaError::Config(format!("cannot build the HTTP client: {e}")))?;
        let mut api_url = api_url.trim().to_string();
        if !api_url.starts_with("http://") && !api_url.starts_with("https://") {
            return Err(MegaError::Config(format!(
                "API URL {api_url:?} must start with http:// or https://"
            )));
        }
        if !api_url.ends_with('/') {
            api_url.push('/');
        }
        Ok(ApiClient {
            http,
            api_url,
            seq: AtomicU64::new(rand::thread_rng().gen_range(1_000_000_000..2_000_000_000)),
            sid: RwLock::new(None),
            retry,
            stats: ApiStats::default(),
        })
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    pub fn set_sid(&self, sid: Option<String>) {
        if let Ok(mut g) = self.sid.write() {
            *g = sid;
        }
    }

    pub fn sid(&self) -> Option<String> {
        self.sid.read().ok().and_then(|g| g.clone())
    }

    fn next_id(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends one batch of commands and returns one reply per command. Whole-
    /// request failures that may be temporary are retried with the same id;
    /// `ESID` and other whole-request errors are returned.
    pub async fn request(&self, commands: &[Value]) -> MegaResult<Vec<Value>> {
        let id = self.next_id();
        let body = serde_json::to_vec(commands)
            .map_err(|e| MegaError::Protocol(format!("cannot encode request: {e}")))?;
        let mut hashcash: Option<String> = None;
        let mut challenges = 0u32;
        let mut attempt = 0u32;
        loop {
            let sid = self.sid();
            let mut url = format!("{}cs?id={id}", self.api_url);
            if let Some(sid) = &sid {
                url.push_str("&sid=");
                url.push_str(sid);
            }
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let mut rb = self
                .http
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
            if let Some(h) = &hashcash {
                rb = rb.header("X-Hashcash", h.as_str());
            }
            let outcome = match rb.send().await {
                Err(e) => Attempt::Retry(MegaError::network(e)),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    if status == 402 {
                        let header = resp
                            .headers()
                            .get("X-Hashcash")
                            .and_then(|h| h.to_str().ok())
                            .map(str::to_string);
                        let Some(header) = header else {
                            return Err(MegaError::Http {
                                status,
                                context: "payment required without a hashcash challenge".into(),
                            });
                        };
                        challenges += 1;
                        if challenges > 3 {
                            return Err(MegaError::Protocol(
                                "the server keeps rejecting our hashcash solutions".into(),
                            ));
                        }
                        hashcash = Some(self.solve(&header).await?);
                        continue;
                    }
                    self.classify(status, resp, commands.len()).await?
                }
            };
            match outcome {
                Attempt::Done(v) => return Ok(v),
                Attempt::Retry(e) | Attempt::RetryAfter(e, _)
                    if attempt + 1 >= self.retry.max_attempts =>
                {
                    return Err(e);
                }
                Attempt::Retry(_) | Attempt::RetryAfter(..) => {
                    attempt += 1;
                    let mut wait = self.retry.delay(attempt);
                    if let Attempt::RetryAfter(_, asked) = outcome {
                        wait = wait.max(asked.min(self.retry.max_delay));
                    }
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    async fn classify(
        &self,
        status: u16,
        resp: reqwest::Response,
        expected: usize,
    ) -> MegaResult<Attempt> {
        let context = || "command request".to_string();
        match status {
            200..=299 => {}
            500 | 502 | 503 | 504 | 429 => {
                let e = MegaError::Http {
                    status,
                    context: context(),
                };
                return Ok(match retry_after(&resp) {
                    Some(d) => Attempt::RetryAfter(e, d),
                    None => Attempt::Retry(e),
                });
            }
            509 => {
                return Err(MegaError::TransferQuota {
                    seconds_left: time_left(&resp),
                })
            }
            _ => {
                return Err(MegaError::Http {
                    status,
                    context: context(),
                })
            }
        }
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return Ok(Attempt::Retry(MegaError::network(e))),
        };
        let value: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            // A cut-off reply: the same id makes the retry safe.
            Err(e) => {
                return Ok(Attempt::Retry(MegaError::Protocol(format!(
                    "reply is not JSON: {e}"
                ))))
            }
        };
        match value {
            Value::Number(n) => match n.as_i64() {
                Some(c @ (code::EAGAIN | code::ERATELIMIT)) => {
                    Ok(Attempt::Retry(MegaError::api(c, "")))
                }
                Some(c) if c < 0 => Err(MegaError::api(c, "")),
                _ => Err(MegaError::Protocol(format!("unexpected whole reply {n}"))),
            },
            Value::Array(v) if v.len() == expected => Ok(Attempt::Done(v)),
            Value::Array(v) => Err(MegaError::Protocol(format!(
                "{} replies to {expected} commands",
                v.len()
            ))),
            other => Err(MegaError::Protocol(format!(
                "reply is neither an array nor an error code: {}",
                truncate(&other.to_string())
            ))),
        }
    }

    async fn solve(&self, header: &str) -> MegaResult<String> {
        let challenge = HashcashChallenge::parse(header)?;
        let max = self.retry.hashcash_max_attempts;
        let c = challenge.clone();
        let prefix = tokio::task::spawn_blocking(move || crypto::solve_hashcash(&c, max, 2))
            .await
            .map_err(|e| MegaError::Protocol(format!("hashcash worker failed: {e}")))??;
        self.stats.hashcash_solved.fetch_add(1, Ordering::Relaxed);
        Ok(format!("1:{}:{prefix}", challenge.token))
    }

    /// Sends one command and returns its reply. A per-command -3/-4 means the
    /// command was not applied; it is sent again under a new id after a
    /// backoff. Negative replies become `MegaError::Api`.
    pub async fn call(&self, command: Value) -> MegaResult<Value> {
        let mut attempt = 0u32;
        loop {
            let mut replies = self.request(std::slice::from_ref(&command)).await?;
            let reply = replies.pop().unwrap_or(Value::Null);
            match error_code(&reply) {
                Some(c @ (code::EAGAIN | code::ERATELIMIT)) => {
                    attempt += 1;
                    if attempt >= self.retry.max_attempts {
                        return Err(MegaError::api(c, ""));
                    }
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(self.retry.delay(attempt)).await;
                }
                Some(c) => return Err(MegaError::api(c, "")),
                None => return Ok(reply),
            }
        }
    }
}

/// The error code in a reply, if the reply is a negative number.
pub fn error_code(reply: &Value) -> Option<i64> {
    reply.as_i64().filter(|&c| c < 0)
}

/// The `X-MEGA-Time-Left` header of a 509 reply, in seconds.
pub fn time_left(resp: &reqwest::Response) -> Option<u64> {
    resp.headers()
        .get("X-MEGA-Time-Left")
        .and_then(|h| h.to_str().ok())
        .and_then(|s| s.trim().parse().ok())
}

/// A `Retry-After` header given in seconds.
pub fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|h| h.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

fn truncate(s: &str) -> String {
    s.chars().take(120).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            hashcash_max_attempts: 1,
            request_timeout: Duration::from_secs(1),
        };
        for attempt in 0..40 {
            let d = p.delay(attempt);
            assert!(d <= Duration::from_secs(1), "{attempt}: {d:?}");
        }
        assert!(p.delay(1) <= Duration::from_millis(200));
        assert!(p.delay(3) >= Duration::from_millis(400));
    }

    #[test]
    fn bad_urls_are_refused() {
        assert!(ApiClient::new("ftp://x", RetryPolicy::default()).is_err());
        let c = ApiClient::new("http://127.0.0.1:1", RetryPolicy::default()).unwrap();
        assert_eq!(c.api_url(), "http://127.0.0.1:1/");
    }

    #[test]
    fn error_codes() {
        assert_eq!(error_code(&serde_json::json!(-9)), Some(-9));
        assert_eq!(error_code(&serde_json::json!(0)), None);
        assert_eq!(error_code(&serde_json::json!({"f": []})), None);
    }
}
