fn main() {
    gantry::memory::keep_freed_memory();
    std::process::exit(gantry::cli::main());
}
