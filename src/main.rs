//! The `kiln` command: everything is in the library.

fn main() {
    std::process::exit(kiln::cli::main(std::env::args_os()));
}
