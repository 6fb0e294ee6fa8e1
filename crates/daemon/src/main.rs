//! The `nsbeacon` binary.

fn main() {
    std::process::exit(nsbeacon::cli::main());
}
