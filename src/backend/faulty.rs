//! A fault-injecting wrapper around any backend, for tests: makes chosen
//! calls fail (transiently or for good), return short or corrupted data, or
//! stall, either at a given call number or at a given rate with a fixed
//! seed, so every failing run can be replayed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::backend::{Backend, Error, ErrorKind, ObjectInfo, Result};

/// Which operations a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    List,
    Read,
    Write,
    Delete,
    Stat,
    Any,
}

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Fails with a retryable error; nothing happens.
    Transient,
    /// Fails for good; nothing happens.
    Permanent,
    /// Storage full; nothing happens.
    Full,
    /// Reads return one byte less.
    Short,
    /// Reads return data with one bit flipped.
    Corrupt,
    /// The call waits this long, then proceeds.
    Stall(Duration),
}

/// When a fault fires.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Trigger {
    /// On the n-th matching call (1-based), once.
    Call(u64),
    /// On each matching call with this probability (seeded).
    Rate(f64),
}

#[derive(Debug, Clone, Copy)]
pub struct Fault {
    pub op: Op,
    pub kind: FaultKind,
    pub trigger: Trigger,
}

pub struct FaultyBackend<B: Backend> {
    inner: B,
    faults: Vec<Fault>,
    /// Matching calls seen so far, per fault.
    calls: Vec<AtomicU64>,
    fired: AtomicU64,
    rng: Mutex<u64>,
}

impl<B: Backend> FaultyBackend<B> {
    pub fn new(inner: B, faults: Vec<Fault>, seed: u64) -> Self {
        FaultyBackend {
            inner,
            calls: faults.iter().map(|_| AtomicU64::new(0)).collect(),
            faults,
            fired: AtomicU64::new(0),
            rng: Mutex::new(seed | 1),
        }
    }

    /// How many faults fired so far.
    pub fn fired(&self) -> u64 {
        self.fired.load(Ordering::Relaxed)
    }

    pub fn inner(&self) -> &B {
        &self.inner
    }

    fn random(&self) -> f64 {
        let mut s = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        // xorshift64*: deterministic, good enough for choosing faults.
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The fault to apply to this call, if any. `Trigger::Call(n)` counts
    /// only the calls the fault applies to.
    fn pick(&self, op: Op) -> Option<FaultKind> {
        for (f, calls) in self.faults.iter().zip(&self.calls) {
            if f.op != Op::Any && f.op != op {
                continue;
            }
            let n = calls.fetch_add(1, Ordering::Relaxed) + 1;
            let fire = match f.trigger {
                Trigger::Call(k) => k == n,
                Trigger::Rate(p) => self.random() < p,
            };
            if fire {
                self.fired.fetch_add(1, Ordering::Relaxed);
                return Some(f.kind);
            }
        }
        None
    }

    fn before(&self, op: Op, name: &str) -> Result<Option<FaultKind>> {
        match self.pick(op) {
            Some(FaultKind::Transient) => Err(Error::new(
                ErrorKind::Transient,
                name,
                "injected transient fault",
            )),
            Some(FaultKind::Permanent) => Err(Error::new(
                ErrorKind::Other,
                name,
                "injected permanent fault",
            )),
            Some(FaultKind::Full) => Err(Error::new(
                ErrorKind::QuotaExceeded,
                name,
                "injected: no space left",
            )),
            Some(FaultKind::Stall(d)) => {
                std::thread::sleep(d);
                Ok(None)
            }
            other => Ok(other),
        }
    }

    fn damage(kind: Option<FaultKind>, mut bytes: Vec<u8>) -> Vec<u8> {
        match kind {
            Some(FaultKind::Short) => {
                bytes.pop();
            }
            Some(FaultKind::Corrupt) if !bytes.is_empty() => {
                let i = bytes.len() / 2;
                bytes[i] ^= 0x01;
            }
            _ => {}
        }
        bytes
    }
}

impl<B: Backend> Backend for FaultyBackend<B> {
    fn location(&self) -> String {
        format!("faulty({})", self.inner.location())
    }

    fn create(&self) -> Result<()> {
        self.inner.create()
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.before(Op::List, prefix)?;
        self.inner.list(prefix)
    }

    fn read(&self, name: &str) -> Result<Vec<u8>> {
        let kind = self.before(Op::Read, name)?;
        Ok(Self::damage(kind, self.inner.read(name)?))
    }

    fn read_range(&self, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        let kind = self.before(Op::Read, name)?;
        Ok(Self::damage(
            kind,
            self.inner.read_range(name, offset, length)?,
        ))
    }

    fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        self.before(Op::Write, name)?;
        self.inner.write(name, bytes)
    }

    fn delete(&self, name: &str) -> Result<()> {
        self.before(Op::Delete, name)?;
        self.inner.delete(name)
    }

    fn stat(&self, name: &str) -> Result<u64> {
        self.before(Op::Stat, name)?;
        self.inner.stat(name)
    }

    /// Forwarded without faults: the sweep is housekeeping on the backend's
    /// own side, not a request that can fail in transit.
    fn remove_stale_temporaries(&self, age: std::time::Duration) -> Result<usize> {
        self.inner.remove_stale_temporaries(age)
    }
}
