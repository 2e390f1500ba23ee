//! Worker threads as DPDK lcores, and the TSC.

use super::{DpdkError, Errno};

/// Registers the calling (already pinned) thread with EAL as a non-EAL lcore,
/// so it gets an lcore id and a mempool cache. Pin the thread first: DPDK
/// records the thread's current CPU affinity. Dropping the registration
/// unregisters the thread.
pub fn register_thread() -> Result<LcoreRegistration, DpdkError> {
    // SAFETY: EAL must be initialised; rte_thread_register checks that itself
    // and fails with an errno if not. It touches only this thread's state.
    let ret = unsafe { dpdk_sys::rte_thread_register() };
    if ret != 0 {
        return Err(DpdkError::LcoreRegister(Errno::last()));
    }
    // SAFETY: reads this thread's lcore id, which registration just set.
    let lcore_id = unsafe { dpdk_sys::patronus_rte_lcore_id() };
    Ok(LcoreRegistration {
        lcore_id,
        _not_send: core::marker::PhantomData,
    })
}

/// A live lcore registration of the current thread.
#[derive(Debug)]
pub struct LcoreRegistration {
    lcore_id: u32,
    // Registration is per thread: it must be dropped where it was made.
    _not_send: core::marker::PhantomData<*const ()>,
}

impl LcoreRegistration {
    /// The DPDK lcore id assigned to this thread.
    pub fn lcore_id(&self) -> u32 {
        self.lcore_id
    }
}

impl Drop for LcoreRegistration {
    fn drop(&mut self) {
        // SAFETY: called on the thread that registered (the type is !Send).
        unsafe { dpdk_sys::rte_thread_unregister() };
    }
}

/// The time-stamp counter. One read per burst on the data path.
#[inline(always)]
pub fn tsc() -> u64 {
    // SAFETY: rdtsc has no preconditions.
    unsafe { dpdk_sys::patronus_rte_rdtsc() }
}

/// TSC ticks per second as EAL measured it at init.
pub fn tsc_hz() -> u64 {
    // SAFETY: returns a value EAL computed at init; valid after init, and 0
    // before it, which callers treat as unknown.
    unsafe { dpdk_sys::patronus_rte_get_tsc_hz() }
}
