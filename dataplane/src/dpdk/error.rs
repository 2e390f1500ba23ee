//! DPDK failures as typed Rust errors.

use core::fmt;
use std::ffi::CStr;

/// A DPDK error number (`rte_errno` or a negative return value), shown with
/// DPDK's own text for it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    /// The current thread's `rte_errno`.
    pub fn last() -> Errno {
        // SAFETY: reads a thread-local int; no preconditions.
        Errno(unsafe { dpdk_sys::patronus_rte_errno() })
    }

    /// From a DPDK return value that is a negative errno on failure.
    pub fn from_ret(ret: i32) -> Errno {
        Errno(ret.saturating_abs())
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SAFETY: rte_strerror accepts any value and returns a pointer to a
        // NUL-terminated string (static or thread-local) that stays valid
        // until the next call on this thread; we copy it out at once.
        let text = unsafe { CStr::from_ptr(dpdk_sys::rte_strerror(self.0)) };
        write!(f, "{} (errno {})", text.to_string_lossy(), self.0)
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// What went wrong in DPDK, and where.
#[derive(Debug, thiserror::Error)]
pub enum DpdkError {
    #[error("EAL is already initialised in this process (EAL initialises once per process)")]
    EalAlreadyInitialised,
    #[error("EAL initialisation failed: {0}")]
    EalInit(Errno),
    #[error("invalid argument {what}: {why}")]
    InvalidArgument { what: String, why: String },
    #[error("mempool {name}: creation failed: {errno}")]
    Mempool { name: String, errno: Errno },
    #[error("ring {name}: creation failed: {errno}")]
    Ring { name: String, errno: Errno },
    #[error("device {device:?}: no such DPDK port (is it a valid PCI address or vdev string, and was it passed to EAL?)")]
    NoSuchPort { device: String },
    #[error("port {port}: {op} failed: {errno}")]
    Port {
        port: String,
        op: &'static str,
        errno: Errno,
    },
    #[error("lcore registration failed: {0}")]
    LcoreRegister(Errno),
}
