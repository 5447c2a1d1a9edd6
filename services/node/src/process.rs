//! Process-wide protections of the node, applied once at start by its binary.
//!
//! The node is the one process that holds plaintext and session keys. A core dump would
//! write that memory to a file the host can read; a dumpable process can also be read by
//! any process of the same user through `/proc/<pid>/mem` or ptrace. So the node sets its
//! core-file limit to zero (soft and hard, so it cannot be raised again) and marks itself
//! not dumpable (`PR_SET_DUMPABLE` = 0, which also makes `/proc/<pid>/mem` and ptrace
//! refuse non-root peers). Linux only; on other systems the node does not start.
//!
//!
//! Swap is the other way plaintext could reach a disk the host reads. [`protect_memory`]
//! locks every page of the process (`mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)`:
//! pages are locked as they are first touched, so a model-sized mapping costs nothing up
//! front). Locking needs `CAP_IPC_LOCK` or a large enough `RLIMIT_MEMLOCK`. Where it is
//! refused, the node still starts when the system has no active swap (`/proc/swaps` lists
//! none, as in a confidential VM built for it), since then no page can be written out.
//! With swap active and no lock, the node refuses to start unless the operator says
//! `--allow-swap` (development machines only).

use rustix::mm::{MlockAllFlags, mlockall};
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
    /// Memory could not be locked and the system swaps: session plaintext could be written
    /// to the swap device.
    #[error(
        "swap is active ({devices} device(s) in /proc/swaps) and memory cannot be locked \
         (mlockall: {lock_error}): plaintext could reach the swap device. Give the node \
         CAP_IPC_LOCK or an unlimited RLIMIT_MEMLOCK, turn swap off, or pass --allow-swap \
         (development only)"
    )]
    SwapWithoutLock {
        /// Active swap devices.
        devices: usize,
        /// Why `mlockall` failed.
        lock_error: rustix::io::Errno,
    },
    /// `/proc/swaps` could not be read, so whether the system swaps is unknown.
    #[error("cannot read /proc/swaps to check for swap: {0}")]
    SwapUnknown(std::io::Error),
}

/// How the node's memory is kept out of swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemoryProtection {
    /// Every page is locked in RAM.
    Locked,
    /// Locking was refused, but no swap device is active.
    NoSwap,
    /// Locking was refused and swap is active; the operator allowed it (`--allow-swap`).
    SwapAllowed,
}

impl MemoryProtection {
    /// A fixed name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Locked => "locked",
            Self::NoSwap => "no_swap",
            Self::SwapAllowed => "swap_allowed",
        }
    }
}

/// Active swap devices listed in the text of `/proc/swaps` (a header line, then one line
/// per device).
pub fn active_swap_devices(proc_swaps: &str) -> usize {
    proc_swaps
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .count()
}

/// The decision, apart from the system calls: `lock` is what `mlockall` returned.
fn decide(
    lock: Result<(), rustix::io::Errno>,
    proc_swaps: impl FnOnce() -> std::io::Result<String>,
    allow_swap: bool,
) -> Result<MemoryProtection, HardenError> {
    let Err(lock_error) = lock else {
        return Ok(MemoryProtection::Locked);
    };
    let devices = active_swap_devices(&proc_swaps().map_err(HardenError::SwapUnknown)?);
    match (devices, allow_swap) {
        (0, _) => Ok(MemoryProtection::NoSwap),
        (_, true) => Ok(MemoryProtection::SwapAllowed),
        (devices, false) => Err(HardenError::SwapWithoutLock {
            devices,
            lock_error,
        }),
    }
}

/// Keep the node's memory out of swap: lock it, or check that nothing can be swapped.
/// Call before loading anything secret (after [`harden`]).
pub fn protect_memory(allow_swap: bool) -> Result<MemoryProtection, HardenError> {
    let lock = mlockall(MlockAllFlags::CURRENT | MlockAllFlags::FUTURE | MlockAllFlags::ONFAULT);
    decide(lock, || std::fs::read_to_string("/proc/swaps"), allow_swap)
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

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::io::Errno;

    const HEADER: &str = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";

    fn swaps(devices: &[&str]) -> String {
        let mut s = HEADER.to_string();
        for d in devices {
            s.push_str(&format!("{d}\tpartition\t1048572\t0\t-2\n"));
        }
        s
    }

    #[test]
    fn proc_swaps_is_counted_past_its_header() {
        assert_eq!(active_swap_devices(HEADER), 0);
        assert_eq!(active_swap_devices(""), 0);
        assert_eq!(active_swap_devices(&swaps(&["/dev/sda2", "/swapfile"])), 2);
    }

    #[test]
    fn a_lock_needs_no_swap_check() {
        let unread = || -> std::io::Result<String> { panic!("/proc/swaps read after a lock") };
        assert_eq!(
            decide(Ok(()), unread, false).unwrap(),
            MemoryProtection::Locked
        );
    }

    #[test]
    fn without_a_lock_swap_refuses_the_start_unless_allowed() {
        let none = || Ok(swaps(&[]));
        assert_eq!(
            decide(Err(Errno::PERM), none, false).unwrap(),
            MemoryProtection::NoSwap
        );
        let one = || Ok(swaps(&["/dev/sda2"]));
        match decide(Err(Errno::NOMEM), one, false) {
            Err(HardenError::SwapWithoutLock {
                devices: 1,
                lock_error: Errno::NOMEM,
            }) => {}
            other => panic!("expected SwapWithoutLock, got {other:?}"),
        }
        let one = || Ok(swaps(&["/dev/sda2"]));
        assert_eq!(
            decide(Err(Errno::PERM), one, true).unwrap(),
            MemoryProtection::SwapAllowed
        );
        let unreadable = || Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        assert!(matches!(
            decide(Err(Errno::PERM), unreadable, true),
            Err(HardenError::SwapUnknown(_))
        ));
    }

    /// The real calls on this machine: the node either locks its memory or finds no swap
    /// (CI and development machines here run without swap); never a silent third state.
    #[test]
    fn this_process_is_protected_or_says_why() {
        let swapping = std::fs::read_to_string("/proc/swaps")
            .map(|s| active_swap_devices(&s) > 0)
            .unwrap_or(true);
        match protect_memory(false) {
            Ok(MemoryProtection::Locked) => {}
            Ok(MemoryProtection::NoSwap) => assert!(!swapping),
            Ok(MemoryProtection::SwapAllowed) => panic!("swap allowed without --allow-swap"),
            Err(HardenError::SwapWithoutLock { .. }) => assert!(swapping),
            Err(e) => panic!("unexpected: {e}"),
        }
        // Undo, so the rest of this test binary is not pinned in RAM.
        let _ = rustix::mm::munlockall();
    }
}
