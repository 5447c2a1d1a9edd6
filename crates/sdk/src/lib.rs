//! The client SDK an app embeds: tokens, key configs, OHTTP, attested sessions.

pub mod chat;
pub mod client;
pub mod config;
pub mod consent;
pub mod error;
pub mod issuance;
pub mod ledger;
pub mod protect;
pub mod receipt;
mod state;
pub mod tokens;
pub mod verify;
pub mod wire;

pub use client::{AnswerLabel, Client, Event, TextStream, TokenSource, VerificationReport};
pub use error::{Check, Error};
