//! The `cairn` binary: parse arguments, call the library, map errors to
//! exit codes. Everything else lives in the library and in `cli/`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
