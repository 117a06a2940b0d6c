//! The `ontovec` binary: parse arguments and hand over to the library.

fn main() -> std::process::ExitCode {
    match ontovec::cli::run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
