//! A typed worker: serves `add` (async) and `square` (blocking) with serde types.
//!
//! ```text
//! cargo run -p jobcenter --example typed_worker      # against 127.0.0.1:6522
//! ```

use jobcenter::{Action, ClientConfig, Worker};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct AddIn {
    counter: f64,
    #[serde(default = "one")]
    step: f64,
}

fn one() -> f64 {
    1.0
}

#[derive(Serialize)]
struct AddOut {
    counter: f64,
}

#[derive(Deserialize)]
struct Root {
    root: f64,
}

#[derive(Serialize)]
struct Square {
    square: f64,
}

#[tokio::main]
async fn main() -> Result<(), jobcenter::ClientError> {
    let worker = Worker::connect(ClientConfig::new("theEmployee", "doesThings")).await?;
    let add = Action::typed("add", |i: AddIn| async move {
        Ok::<_, String>(AddOut {
            counter: i.counter + i.step,
        })
    });
    let square = Action::typed_sync("square", |r: Root| {
        if r.root.is_nan() {
            return Err("root is not a number");
        }
        Ok(Square {
            square: r.root * r.root,
        })
    });
    worker.announce(add.slots(4)).await?;
    worker.announce(square).await?;
    let outcome = worker.work().await;
    eprintln!("typed_worker: {outcome}");
    std::process::exit(outcome.exit_code());
}
