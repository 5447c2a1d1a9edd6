//! The client SDK an app embeds: tokens, key configs, OHTTP, attested sessions.

pub mod chat;
pub mod config;
