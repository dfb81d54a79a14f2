//! The floor of a Rust std guest: an empty `main`. Its fuel per run is std's own startup.
fn main() {}
