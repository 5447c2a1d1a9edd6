//! One module per role. Each exposes its clap type and `async fn run(..) -> anyhow::Result<ExitCode>`.

pub mod bench;
pub mod client;
pub mod demo;
pub mod engine;
pub mod evidence;
pub mod gateway;
pub mod image;
pub mod issuer;
pub mod ledger;
pub mod measure;
pub mod monitor;
pub mod node;
pub mod privacy;
pub mod receipts;
pub mod relay;
pub mod release;
pub mod up;
pub mod wallet;
pub mod witness;
