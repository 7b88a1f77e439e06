// Replaced by its issue's benchmark.
fn main() {}
