//! The `ontovec` binary: parse arguments and hand over to the library.

/// mimalloc instead of glibc malloc: the store, tantivy and the encoder allocate from several
/// threads, where glibc's per-thread arenas fragmented (measured: lower peak RSS and less time
/// in the allocator during bulk ingest; see README, Performance).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    match ontovec::cli::run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
