//! `jobcenter check`: compile JCL sources and report every error as `file:line: message`.

use crate::args::CheckArgs;
use crate::cmd::Failure;

pub fn run(_a: CheckArgs) -> Result<u8, Failure> {
    Err(Failure::with_code(2, "not implemented yet"))
}
