//! An owned DPDK packet buffer.

use crate::buf::{BufError, PacketBuf};
use core::ptr::NonNull;
use dpdk_sys::rte_mbuf;

/// One single-segment `rte_mbuf`, owned: dropping it returns it to its pool.
pub struct Mbuf {
    raw: NonNull<rte_mbuf>,
}

// SAFETY: an mbuf is plain memory owned by exactly one Mbuf at a time; DPDK
// allows freeing it from any thread (the mempool is multi-producer).
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `raw` must be a valid mbuf that nothing else owns or will free.
    #[inline(always)]
    pub unsafe fn from_raw(raw: NonNull<rte_mbuf>) -> Mbuf {
        Mbuf { raw }
    }

    /// Gives ownership back to DPDK (for a tx burst or a ring enqueue).
    #[inline(always)]
    pub fn into_raw(self) -> NonNull<rte_mbuf> {
        let raw = self.raw;
        core::mem::forget(self);
        raw
    }

    #[inline(always)]
    fn header(&self) -> &rte_mbuf {
        // SAFETY: we own a valid mbuf for as long as self lives.
        unsafe { self.raw.as_ref() }
    }

    /// The port the mbuf was received on.
    pub fn port(&self) -> u16 {
        self.header().port
    }

    /// The RSS hash the NIC computed, when it set one.
    pub fn rss_hash(&self) -> Option<u32> {
        let h = self.header();
        if h.ol_flags & u64::from(dpdk_sys::RTE_MBUF_F_RX_RSS_HASH) != 0 {
            // SAFETY: the flag says the NIC wrote the hash member of the union.
            Some(unsafe { h.__bindgen_anon_2.hash.rss })
        } else {
            None
        }
    }

    /// Resets the mbuf to an empty packet with default headroom, as after alloc.
    pub fn reset(&mut self) {
        // SAFETY: we own the mbuf; reset rewrites its metadata only.
        unsafe { dpdk_sys::patronus_rte_pktmbuf_reset(self.raw.as_ptr()) }
    }

    /// Replaces the packet with a copy of `bytes`. Fails without changing the
    /// mbuf when they do not fit in the default headroom's tailroom.
    pub fn fill_from(&mut self, bytes: &[u8]) -> Result<(), BufError> {
        self.reset();
        self.append(bytes.len())?.copy_from_slice(bytes);
        Ok(())
    }
}

impl PacketBuf for Mbuf {
    #[inline(always)]
    fn data(&self) -> &[u8] {
        let h = self.header();
        // SAFETY: buf_addr + data_off .. + data_len lies inside the mbuf's
        // data room (an mbuf invariant DPDK maintains), and we own it.
        unsafe {
            core::slice::from_raw_parts(
                (h.buf_addr as *const u8).add(usize::from(h.data_off)),
                usize::from(h.data_len),
            )
        }
    }

    #[inline(always)]
    fn data_mut(&mut self) -> &mut [u8] {
        let h = self.header();
        let (addr, off, len) = (h.buf_addr as *mut u8, h.data_off, h.data_len);
        // SAFETY: as in data(); &mut self gives exclusive access.
        unsafe { core::slice::from_raw_parts_mut(addr.add(usize::from(off)), usize::from(len)) }
    }

    #[inline(always)]
    fn headroom(&self) -> usize {
        usize::from(self.header().data_off)
    }

    #[inline(always)]
    fn tailroom(&self) -> usize {
        let h = self.header();
        usize::from(h.buf_len) - usize::from(h.data_off) - usize::from(h.data_len)
    }

    fn prepend(&mut self, len: usize) -> Result<&mut [u8], BufError> {
        let available = self.headroom();
        let small = u16::try_from(len).ok().filter(|_| len <= available);
        let Some(len16) = small else {
            return Err(BufError::NoHeadroom {
                wanted: len,
                available,
            });
        };
        // SAFETY: we own the mbuf and checked the headroom, so the returned
        // pointer is non-null and len bytes at it belong to the packet.
        unsafe {
            let p = dpdk_sys::patronus_rte_pktmbuf_prepend(self.raw.as_ptr(), len16);
            Ok(core::slice::from_raw_parts_mut(p as *mut u8, len))
        }
    }

    fn adj(&mut self, len: usize) -> Result<(), BufError> {
        let available = self.len();
        match u16::try_from(len) {
            Ok(len16) if len <= available => {
                // SAFETY: we own the mbuf and len <= data_len.
                unsafe { dpdk_sys::patronus_rte_pktmbuf_adj(self.raw.as_ptr(), len16) };
                Ok(())
            }
            _ => Err(BufError::TooShort {
                wanted: len,
                available,
            }),
        }
    }

    fn append(&mut self, len: usize) -> Result<&mut [u8], BufError> {
        let available = self.tailroom();
        let small = u16::try_from(len).ok().filter(|_| len <= available);
        let Some(len16) = small else {
            return Err(BufError::NoTailroom {
                wanted: len,
                available,
            });
        };
        // SAFETY: we own the (single-segment) mbuf and checked the tailroom,
        // so append succeeds and returns len writable bytes.
        unsafe {
            let p = dpdk_sys::patronus_rte_pktmbuf_append(self.raw.as_ptr(), len16);
            Ok(core::slice::from_raw_parts_mut(p as *mut u8, len))
        }
    }

    fn trim(&mut self, len: usize) -> Result<(), BufError> {
        let available = self.len();
        match u16::try_from(len) {
            Ok(len16) if len <= available => {
                // SAFETY: we own the mbuf and len <= data_len.
                unsafe { dpdk_sys::patronus_rte_pktmbuf_trim(self.raw.as_ptr(), len16) };
                Ok(())
            }
            _ => Err(BufError::TooShort {
                wanted: len,
                available,
            }),
        }
    }
}

impl Drop for Mbuf {
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: we own the mbuf and nothing uses it after this.
        unsafe { dpdk_sys::patronus_rte_pktmbuf_free(self.raw.as_ptr()) }
    }
}

impl core::fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Mbuf")
            .field("len", &self.len())
            .field("headroom", &self.headroom())
            .field("tailroom", &self.tailroom())
            .field("port", &self.port())
            .finish()
    }
}
