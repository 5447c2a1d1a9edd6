//! The client SDK an app embeds: tokens, key configs, OHTTP, attested sessions.

pub mod chat;
pub mod config;
pub mod error;
pub mod ledger;
pub mod tokens;
pub mod verify;
pub mod wire;

pub use error::{Check, Error};
