//! EAL initialisation and cleanup, and the choice between hugepages and
//! DPDK's `--no-huge` fallback.

use super::{DpdkError, Errno};
use std::ffi::{c_char, CString};
use std::sync::atomic::{AtomicBool, Ordering};

static EAL_STARTED: AtomicBool = AtomicBool::new(false);

/// The initialised Environment Abstraction Layer. Dropping it runs
/// `rte_eal_cleanup`, so drop ports, rings and mempools first.
#[derive(Debug)]
pub struct Eal {
    _private: (),
}

impl Eal {
    /// Initialises EAL from an argument list (without the program name).
    /// EAL can be initialised once per process; a second call fails.
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<Eal, DpdkError> {
        if EAL_STARTED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError::EalAlreadyInitialised);
        }
        let mut owned = Vec::with_capacity(args.len() + 1);
        owned.push(CString::new("patronus").expect("no NUL in a literal"));
        for arg in args {
            let arg = arg.as_ref();
            owned.push(CString::new(arg).map_err(|_| DpdkError::InvalidArgument {
                what: format!("EAL argument {arg:?}"),
                why: "contains a NUL byte".into(),
            })?);
        }
        // EAL may keep pointers into argv (device arguments, the file prefix)
        // for the life of the process, so the strings are leaked on purpose:
        // this happens once per process.
        let mut argv: Vec<*mut c_char> = owned.into_iter().map(CString::into_raw).collect();
        let argc = argv.len() as i32;
        // SAFETY: argv holds argc valid NUL-terminated strings that live for
        // the rest of the process; EAL may permute the array, which we own.
        let ret = unsafe { dpdk_sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        std::mem::forget(argv);
        if ret < 0 {
            // EAL refuses a second rte_eal_init even after a failure, so the
            // flag stays set.
            return Err(DpdkError::EalInit(Errno::last()));
        }
        Ok(Eal { _private: () })
    }

    /// The DPDK version string, e.g. "DPDK 22.11.11".
    pub fn version() -> String {
        // SAFETY: rte_version returns a pointer to a static string.
        let text = unsafe { std::ffi::CStr::from_ptr(dpdk_sys::rte_version()) };
        text.to_string_lossy().into_owned()
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: EAL was initialised by this value and every DPDK object is
        // documented to be released before it; cleanup is called once.
        let ret = unsafe { dpdk_sys::rte_eal_cleanup() };
        if ret != 0 {
            log::warn!("rte_eal_cleanup failed: {}", Errno::from_ret(ret));
        }
    }
}

/// How EAL gets its memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryMode {
    /// Hugepages from a mounted hugetlbfs, with `--in-memory` (no runtime files).
    Hugepages,
    /// `--no-huge -m N` with a unique `--file-prefix`: slower, but runs anywhere.
    NoHuge,
}

/// The memory part of an EAL argument list, chosen from what the host has.
#[derive(Debug, Clone)]
pub struct EalMemory {
    pub mode: MemoryMode,
    /// Why hugepages were not used, when they were wanted; log it as a warning.
    pub fallback_reason: Option<String>,
    pub args: Vec<String>,
}

impl EalMemory {
    /// Uses hugepages when `want_hugepages` and the host has a mounted
    /// hugetlbfs with free pages; otherwise `--no-huge -m memory_mb`.
    pub fn choose(want_hugepages: bool, memory_mb: u32, file_prefix: &str) -> EalMemory {
        let fallback_reason = if want_hugepages {
            hugepages_unavailable_reason(
                &std::fs::read_to_string("/proc/mounts").unwrap_or_default(),
                &std::fs::read_to_string("/proc/meminfo").unwrap_or_default(),
            )
        } else {
            None
        };
        let mode = if want_hugepages && fallback_reason.is_none() {
            MemoryMode::Hugepages
        } else {
            MemoryMode::NoHuge
        };
        let mut args = vec![format!("--file-prefix={file_prefix}")];
        match mode {
            MemoryMode::Hugepages => args.push("--in-memory".into()),
            MemoryMode::NoHuge => {
                args.push("--no-huge".into());
                args.push(format!("-m{memory_mb}"));
            }
        }
        EalMemory {
            mode,
            fallback_reason,
            args,
        }
    }
}

/// Why hugepages cannot be used, from the text of /proc/mounts and
/// /proc/meminfo, or None when they can.
fn hugepages_unavailable_reason(mounts: &str, meminfo: &str) -> Option<String> {
    let mounted = mounts
        .lines()
        .any(|line| line.split_whitespace().nth(2) == Some("hugetlbfs"));
    if !mounted {
        return Some("no hugetlbfs is mounted (run scripts/setup)".into());
    }
    let free = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("HugePages_Free:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    if free == 0 {
        return Some("no free hugepages are reserved (run scripts/setup)".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTED: &str = "nodev /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n";
    const FREE: &str = "HugePages_Total:     512\nHugePages_Free:      500\n";

    #[test]
    fn hugepages_are_used_when_mounted_and_free() {
        assert_eq!(hugepages_unavailable_reason(MOUNTED, FREE), None);
    }

    #[test]
    fn missing_mount_is_reported() {
        let reason = hugepages_unavailable_reason("proc /proc proc rw 0 0\n", FREE);
        assert!(reason.unwrap().contains("hugetlbfs"));
    }

    #[test]
    fn zero_free_pages_are_reported() {
        let reason = hugepages_unavailable_reason(MOUNTED, "HugePages_Free:        0\n");
        assert!(reason.unwrap().contains("free hugepages"));
    }

    #[test]
    fn no_huge_args_carry_memory_and_prefix() {
        let mem = EalMemory::choose(false, 256, "t1");
        assert_eq!(mem.mode, MemoryMode::NoHuge);
        assert_eq!(mem.args, ["--file-prefix=t1", "--no-huge", "-m256"]);
        assert!(
            mem.fallback_reason.is_none(),
            "not wanted is not a fallback"
        );
    }
}
