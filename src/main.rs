fn main() -> std::process::ExitCode {
    squall::cli::main()
}
