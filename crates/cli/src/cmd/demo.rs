//! `jobcenter demo`: server, worker and client in one process.

use crate::args::DemoArgs;
use crate::cmd::Failure;

pub async fn run(_a: DemoArgs) -> Result<u8, Failure> {
    Err(Failure::with_code(2, "not implemented yet"))
}
