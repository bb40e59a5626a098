//! The `jobcenter` command.
fn main() {
    println!("jobcenter: not yet");
}
