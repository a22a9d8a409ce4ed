//! The `cairn` binary: parse arguments, call the library, map errors to
//! exit codes. Everything else lives in the library and in `cli/`.

mod cli;

fn main() -> std::process::ExitCode {
    use_one_malloc_arena();
    cli::main()
}

/// glibc gives each thread that allocates its own heap arena. The snapshot
/// pipeline allocates chunk buffers on one thread and frees them on
/// another, and with an arena per thread it measured 15 to 18 MiB more
/// resident than with one, at no measurable cost in time (buffers are
/// recycled, so allocations are few).
fn use_one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: called first thing, before any other thread exists; mallopt
    // only changes a tuning parameter of the allocator.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
