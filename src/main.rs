// mimalloc: tuples are allocated on one worker thread and freed on another; glibc's
// allocator is several times slower at that (see docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    squall::cli::main()
}
