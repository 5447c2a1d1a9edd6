//! The C2SP tlog-witness service.
