//! The Privacy Pass issuer service.
