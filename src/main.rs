//! The `ontovec` binary: parse arguments and hand over to the library.

/// mimalloc instead of glibc malloc: the store, tantivy and the encoder allocate from several
/// threads, where glibc's per-thread arenas fragmented (measured: lower peak RSS and less time
/// in the allocator during bulk ingest; see README, Performance).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

extern "C" {
    /// mimalloc's option setter (the library is linked by the `mimalloc` crate).
    fn mi_option_set(option: std::os::raw::c_int, value: std::os::raw::c_long);
}

/// `mi_option_purge_delay` in the mimalloc bundled by libmimalloc-sys 0.1.4x (v2 and v3 alike).
const MI_OPTION_PURGE_DELAY: std::os::raw::c_int = 15;

/// Training allocates and frees the same activation-sized buffers (MBs each) thousands of times
/// a step; with mimalloc's default 10 ms purge delay those pages go back to the OS and come back
/// as fresh, zeroed huge pages. Measured with `ontovec bench train` (2026-12-06, 2 cores): system
/// time 8.4 s → 3.3 s and 49 → 60 strings/s with purging off, peak RSS +4%. Only training
/// commands keep their memory; the server still returns freed memory.
fn keep_freed_memory_when_training() {
    let mut args = std::env::args().skip(1);
    let cmd = args.next();
    let training = match cmd.as_deref() {
        Some("train") => true,
        Some("bench") => args.next().as_deref() == Some("train"),
        _ => false,
    };
    if training {
        // SAFETY: a plain option setter of the linked allocator, called before any thread starts.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
}

fn main() -> std::process::ExitCode {
    keep_freed_memory_when_training();
    match ontovec::cli::run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
