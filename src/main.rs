// mimalloc: tuples are allocated on one worker thread and freed on another; glibc's
// allocator is several times slower at that (see docs/benchmarks.md).
// Built with `no_thp`: its arenas are not backed by transparent huge pages, so RSS
// follows the heap instead of counting every touched 2 MiB (docs/benchmarks.md, Memory).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    squall::cli::main()
}
