//! `jobcenter serve`: the API server with the JCL engine.

use crate::args::ServeArgs;
use crate::cmd::Failure;

pub async fn run(_a: ServeArgs) -> Result<u8, Failure> {
    Err(Failure::with_code(2, "not implemented yet"))
}
