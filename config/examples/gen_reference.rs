//! Prints the markdown config reference for the README:
//! `cargo run -p brook-config --example gen_reference`.

fn main() {
    print!("{}", brook_config::reference_markdown());
}
