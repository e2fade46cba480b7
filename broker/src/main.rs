//! The `brook` binary: `brook serve` and the admin CLI.

fn main() -> std::process::ExitCode {
    brook_broker::cli::main()
}
