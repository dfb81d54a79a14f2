//! The smallest SDK function: answers `ok`. Benchmarks use it to measure the runtime's own cost.

use wisp_sdk::Response;

fn main() {
    wisp_sdk::serve(|_| Response::text(200, "ok"))
}
