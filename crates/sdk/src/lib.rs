//! The client SDK an app embeds: tokens, key configs, OHTTP, attested sessions.

pub mod chat;
pub mod client;
pub mod config;
pub mod error;
pub mod issuance;
pub mod ledger;
pub mod tokens;
pub mod verify;
pub mod wire;

pub use client::{Client, Event, TextStream, TokenSource, VerificationReport};
pub use error::{Check, Error};
