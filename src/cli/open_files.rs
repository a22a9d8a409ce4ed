//! The process's limit on open descriptors: raised when `cairn` starts,
//! and put back for the programs it runs.
//!
//! The soft limit goes up to the hard one (at most 65536), as Go programs
//! such as restic do: the index keeps up to 256 files open and the
//! snapshot's read-ahead up to 128, and under a low soft limit (containers
//! and services set 256 or less) a backup would fail files it could have
//! read. Where it cannot be raised, it stays, and the read-ahead keeps
//! fewer open. A `--password-command` gets the limit `cairn` was started
//! with, as Go's `os/exec` does for its children: a program written for
//! the usual 1024 may use `select`, which cannot watch descriptors above it.

use std::os::unix::process::CommandExt;
use std::sync::OnceLock;

/// The soft limit at start, when it was raised.
static STARTED_WITH: OnceLock<libc::rlim_t> = OnceLock::new();

/// Raises the soft limit to the hard one, at most 65536.
pub fn raise() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct
    // passed, which lives for the duration of the calls.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        let wanted = limit.rlim_max.min(65536);
        if limit.rlim_cur >= wanted {
            return;
        }
        let started_with = limit.rlim_cur;
        limit.rlim_cur = wanted;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
            let _ = STARTED_WITH.set(started_with);
        }
    }
}

/// Makes `command` start with the soft limit `cairn` was started with.
pub fn restore_for(command: &mut std::process::Command) {
    let Some(&soft) = STARTED_WITH.get() else {
        return;
    };
    // SAFETY: the closure runs in the child between fork and exec, and
    // calls only getrlimit and setrlimit (async-signal-safe) on a struct
    // of its own.
    unsafe {
        command.pre_exec(move || {
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
                limit.rlim_cur = soft;
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            }
            Ok(())
        });
    }
}
