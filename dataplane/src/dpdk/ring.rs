//! rte_ring as a lock-free mbuf queue, and ports made of rings (net_ring),
//! which the tests and benchmarks use as a NIC they fully control.

use super::{DpdkError, Errno, MbufBurst};
use core::ptr::NonNull;
use dpdk_sys::rte_ring;
use std::ffi::{c_void, CString};

/// A multi-producer/multi-consumer ring of mbufs. Dropping it frees the
/// ring and every mbuf still in it.
pub struct Ring {
    raw: NonNull<rte_ring>,
    name: String,
}

// SAFETY: rte_ring enqueue/dequeue are thread-safe in MP/MC mode, which is
// how `Ring::new` creates it.
unsafe impl Send for Ring {}
// SAFETY: as above.
unsafe impl Sync for Ring {}

impl Ring {
    /// A ring holding up to `capacity` mbufs (rounded up to a power of two, minus one).
    pub fn new(name: &str, capacity: u32) -> Result<Ring, DpdkError> {
        let cname = CString::new(name).map_err(|_| DpdkError::InvalidArgument {
            what: format!("ring name {name:?}"),
            why: "contains a NUL byte".into(),
        })?;
        let size = (capacity + 1).next_power_of_two();
        // SAFETY: cname is valid for the call; flags 0 means MP/MC.
        let raw = unsafe { dpdk_sys::rte_ring_create(cname.as_ptr(), size, -1, 0) };
        let raw = NonNull::new(raw).ok_or_else(|| DpdkError::Ring {
            name: name.into(),
            errno: Errno::last(),
        })?;
        Ok(Ring {
            raw,
            name: name.into(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Moves as many of the burst's packets into the ring as fit; the rest
    /// stay in the burst. Returns how many moved.
    #[inline]
    pub fn enqueue_burst(&self, burst: &mut MbufBurst) -> usize {
        let ptrs = burst.filled_ptrs();
        // SAFETY: ptrs holds owned mbufs; the ring takes the first n.
        let n = unsafe {
            dpdk_sys::patronus_rte_ring_enqueue_burst(
                self.raw.as_ptr(),
                ptrs.as_ptr() as *const *mut c_void,
                ptrs.len() as u32,
                core::ptr::null_mut(),
            )
        } as usize;
        burst.consume_front(n);
        n
    }

    /// Moves up to the burst's free space out of the ring.
    #[inline]
    pub fn dequeue_burst(&self, burst: &mut MbufBurst) -> usize {
        let spare = burst.spare_ptrs();
        // SAFETY: spare has room for its length in pointers; the ring only
        // ever holds mbufs (enqueue_burst is the only way in).
        let n = unsafe {
            dpdk_sys::patronus_rte_ring_dequeue_burst(
                self.raw.as_ptr(),
                spare.as_mut_ptr() as *mut *mut c_void,
                spare.len() as u32,
                core::ptr::null_mut(),
            )
        } as usize;
        // SAFETY: the ring handed over n owned mbufs.
        unsafe { burst.set_filled(n) };
        n
    }

    /// Packets in the ring now.
    pub fn len(&self) -> usize {
        // SAFETY: a read of a valid ring's indices.
        unsafe { dpdk_sys::patronus_rte_ring_count(self.raw.as_ptr()) as usize }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn as_ptr(&self) -> *mut rte_ring {
        self.raw.as_ptr()
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let mut burst = MbufBurst::new();
        while self.dequeue_burst(&mut burst) > 0 {
            burst.free_all();
        }
        // SAFETY: we created the ring; it is empty and no port uses it
        // (ring ports are dropped before their rings).
        unsafe { dpdk_sys::rte_ring_free(self.raw.as_ptr()) }
    }
}

/// Creates a net_ring port named `name` whose single rx queue reads `rx`
/// and whose single tx queue writes `tx`. Returns its port id; start it with
/// `Port::start`. The rings must outlive the port.
pub fn ring_port(name: &str, rx: &Ring, tx: &Ring) -> Result<u16, DpdkError> {
    ring_port_multi(name, &[rx], &[tx])
}

/// A net_ring port with one rx queue per ring in `rx` and one tx queue per
/// ring in `tx` (queue i reads `rx[i]` and writes `tx[i]`).
pub fn ring_port_multi(name: &str, rx: &[&Ring], tx: &[&Ring]) -> Result<u16, DpdkError> {
    let cname = CString::new(name).map_err(|_| DpdkError::InvalidArgument {
        what: format!("port name {name:?}"),
        why: "contains a NUL byte".into(),
    })?;
    if rx.is_empty() || tx.is_empty() || rx.len() > 16 || tx.len() > 16 {
        return Err(DpdkError::InvalidArgument {
            what: format!("port {name}: {} rx and {} tx rings", rx.len(), tx.len()),
            why: "a ring port takes 1 to 16 of each".into(),
        });
    }
    let mut rx_rings: Vec<*mut rte_ring> = rx.iter().map(|r| r.as_ptr()).collect();
    let mut tx_rings: Vec<*mut rte_ring> = tx.iter().map(|r| r.as_ptr()).collect();
    // SAFETY: the arrays hold valid rings and live across the call; the PMD
    // keeps the ring pointers, which the caller keeps alive.
    let ret = unsafe {
        dpdk_sys::rte_eth_from_rings(
            cname.as_ptr(),
            rx_rings.as_mut_ptr(),
            rx_rings.len() as u32,
            tx_rings.as_mut_ptr(),
            tx_rings.len() as u32,
            0,
        )
    };
    if ret < 0 {
        return Err(DpdkError::Port {
            port: name.into(),
            op: "rte_eth_from_rings",
            errno: Errno::last(),
        });
    }
    Ok(ret as u16)
}
