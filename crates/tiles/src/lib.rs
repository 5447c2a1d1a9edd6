//! C2SP tlog-tiles: tile paths and tile encoding (no I/O).
