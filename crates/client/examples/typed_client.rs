//! A typed client: calls `calladd` with serde types and tells the failure cases apart.
//!
//! ```text
//! cargo run -p jobcenter --example typed_client -- 12      # against 127.0.0.1:6522
//! ```

use jobcenter::{Client, ClientConfig, ClientError};
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
struct In {
    input: f64,
}

#[derive(Deserialize)]
struct Out {
    output: f64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let input = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(12.0);
    let cfg = ClientConfig::builder()
        .who("theCustomer")
        .token("wantsThings")
        .build();
    let result = match cfg {
        Ok(cfg) => match Client::connect(cfg).await {
            Ok(client) => client.call_typed::<In, Out>("calladd", &In { input }).await,
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    match result {
        Ok(out) => {
            println!("calladd({input}) = {}", out.output);
            std::process::ExitCode::SUCCESS
        }
        Err(ClientError::NotCreated { message }) => {
            eprintln!("not created: {message}");
            std::process::ExitCode::from(1)
        }
        Err(ClientError::JobFailed { job_id, error }) => {
            eprintln!("job {job_id} failed: {error}");
            std::process::ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
