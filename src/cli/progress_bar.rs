//! Progress on a terminal: files, bytes, throughput, and ETA when the total
//! is known. Silent when stderr is not a terminal or with `--quiet`; errors
//! about single entries are always printed.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use cairn::progress::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct TerminalProgress {
    bar: Option<ProgressBar>,
    files: AtomicU64,
}

impl TerminalProgress {
    /// `total_bytes`: known total for an ETA (restore), or `None` (snapshot).
    pub fn new(quiet: bool, total_bytes: Option<u64>) -> Self {
        let show = !quiet && std::io::stderr().is_terminal();
        let bar = show.then(|| {
            let (bar, template) = match total_bytes {
                Some(total) => (
                    ProgressBar::new(total),
                    "{elapsed_precise} {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
                ),
                None => (
                    ProgressBar::new_spinner(),
                    "{spinner} {elapsed_precise} {bytes} read, {binary_bytes_per_sec} {msg}",
                ),
            };
            bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar
        });
        TerminalProgress {
            bar,
            files: AtomicU64::new(0),
        }
    }

    /// Switches a spinner to a bar with ETA once the total is known.
    pub fn set_total(&self, total_bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total_bytes);
            let template = "{elapsed_precise} {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}";
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
        }
    }

    pub fn is_visible(&self) -> bool {
        self.bar.is_some()
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for TerminalProgress {
    fn file_done(&self, _path: &Path, size_bytes: u64, read: bool) {
        let n = self.files.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(bar) = &self.bar {
            // Unchanged files count as done without being read.
            if !read {
                bar.inc(size_bytes);
            }
            bar.set_message(format!("{n} files"));
        }
    }

    fn bytes_read(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }

    fn error(&self, path: &Path, message: &str) {
        let text = format!("error: {}: {message}", path.display());
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }
}
