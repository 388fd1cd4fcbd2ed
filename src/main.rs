fn main() {
    std::process::exit(gantry::cli::main());
}
