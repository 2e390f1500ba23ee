//! Packet-buffer pools.

use super::{DpdkError, Errno, Mbuf, MbufBurst};
use core::ptr::NonNull;
use dpdk_sys::rte_mempool;
use std::ffi::CString;

/// An `rte_pktmbuf` pool. Dropping it frees the pool: every mbuf from it
/// must be back by then (the leak checks compare [`Mempool::in_use`]).
pub struct Mempool {
    raw: NonNull<rte_mempool>,
    name: String,
}

// SAFETY: rte_mempool get/put are multi-thread safe (the pool is created
// with the default multi-producer/multi-consumer ring).
unsafe impl Send for Mempool {}
// SAFETY: as above; the counters it reads are read-only snapshots.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pool of `count` mbufs with `data_room` bytes each (including
    /// RTE_PKTMBUF_HEADROOM) and a per-lcore cache of `cache_size`.
    pub fn new(
        name: &str,
        count: u32,
        cache_size: u32,
        data_room: u16,
    ) -> Result<Mempool, DpdkError> {
        let cname = CString::new(name).map_err(|_| DpdkError::InvalidArgument {
            what: format!("mempool name {name:?}"),
            why: "contains a NUL byte".into(),
        })?;
        // SAFETY: cname is a valid C string for the call; DPDK copies it.
        // SOCKET_ID_ANY lets EAL place the pool.
        let raw = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(
                cname.as_ptr(),
                count,
                cache_size,
                0,
                data_room,
                -1, /* SOCKET_ID_ANY */
            )
        };
        let raw = NonNull::new(raw).ok_or_else(|| DpdkError::Mempool {
            name: name.into(),
            errno: Errno::last(),
        })?;
        Ok(Mempool {
            raw,
            name: name.into(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn as_ptr(&self) -> *mut rte_mempool {
        self.raw.as_ptr()
    }

    /// One empty mbuf, or None when the pool is exhausted.
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is valid; a non-null result is a fresh mbuf we own.
        let raw = unsafe { dpdk_sys::patronus_rte_pktmbuf_alloc(self.raw.as_ptr()) };
        // SAFETY: a non-null result is a fresh mbuf that only we own.
        NonNull::new(raw).map(|raw| unsafe { Mbuf::from_raw(raw) })
    }

    /// Fills the burst's free slots with empty mbufs, all or none. Returns
    /// how many were added (0 when the pool cannot supply them all).
    pub fn alloc_bulk(&self, burst: &mut MbufBurst) -> usize {
        let spare = burst.spare_ptrs();
        let n = spare.len();
        // SAFETY: spare has room for n pointers; on success DPDK wrote n
        // fresh mbufs we now own, on failure it wrote none.
        unsafe {
            let ret = dpdk_sys::patronus_rte_pktmbuf_alloc_bulk(
                self.raw.as_ptr(),
                spare.as_mut_ptr(),
                n as u32,
            );
            if ret != 0 {
                return 0;
            }
            burst.set_filled(n);
        }
        n
    }

    /// Mbufs free in the pool, including those in per-lcore caches.
    pub fn available(&self) -> u32 {
        // SAFETY: a read-only count over a valid pool.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.raw.as_ptr()) }
    }

    /// Mbufs currently handed out.
    pub fn in_use(&self) -> u32 {
        // SAFETY: a read-only count over a valid pool.
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.raw.as_ptr()) }
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        let in_use = self.in_use();
        if in_use != 0 {
            log::warn!(
                "mempool {}: freed with {in_use} mbufs still in use",
                self.name
            );
        }
        // SAFETY: we created the pool and drop it once.
        unsafe { dpdk_sys::rte_mempool_free(self.raw.as_ptr()) }
    }
}

impl core::fmt::Debug for Mempool {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Mempool")
            .field("name", &self.name)
            .field("available", &self.available())
            .field("in_use", &self.in_use())
            .finish()
    }
}
