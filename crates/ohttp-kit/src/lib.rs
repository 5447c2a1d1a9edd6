//! Oblivious HTTP (RFC 9458), Binary HTTP (RFC 9292) and chunked OHTTP glue.
