//! Process-wide protections of the node, applied once at start by its binary.
//!
//! The node is the one process that holds plaintext and session keys. A core dump would
//! write that memory to a file the host can read; a dumpable process can also be read by
//! any process of the same user through `/proc/<pid>/mem` or ptrace. So the node sets its
//! core-file limit to zero (soft and hard, so it cannot be raised again) and marks itself
//! not dumpable (`PR_SET_DUMPABLE` = 0, which also makes `/proc/<pid>/mem` and ptrace
//! refuse non-root peers). Linux only; on other systems the node does not start.
//!
//! Not covered here: locking secret memory against swap (`mlock`), which needs
//! `CAP_IPC_LOCK` or a raised `RLIMIT_MEMLOCK` for a model-sized process; a confidential
//! VM should run without swap.

use rustix::process::{DumpableBehavior, Resource, Rlimit, set_dumpable_behavior, setrlimit};

/// A protection that could not be applied (the node must not start without it).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HardenError {
    /// `setrlimit(RLIMIT_CORE, 0)` failed.
    #[error("cannot disable core dumps: {0}")]
    CoreLimit(rustix::io::Errno),
    /// `prctl(PR_SET_DUMPABLE, 0)` failed.
    #[error("cannot mark the process not dumpable: {0}")]
    Dumpable(rustix::io::Errno),
}

/// Disable core dumps and make the process not dumpable. Call before loading anything
/// secret.
pub fn harden() -> Result<(), HardenError> {
    setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )
    .map_err(HardenError::CoreLimit)?;
    set_dumpable_behavior(DumpableBehavior::NotDumpable).map_err(HardenError::Dumpable)?;
    Ok(())
}
