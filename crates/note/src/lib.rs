//! C2SP signed-note, tlog-checkpoint and tlog-cosignature (no I/O).
