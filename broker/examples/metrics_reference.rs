//! Print the README's metrics table: `cargo run -p brook-broker --example metrics_reference`.

fn main() {
    print!("{}", brook_broker::metrics::reference_markdown());
}
