//! The client SDK an app embeds: tokens, key configs, OHTTP, attested sessions.
