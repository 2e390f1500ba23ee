//! A fixed-size burst of owned mbufs: what rx fills and tx drains, with no
//! allocation.

use super::Mbuf;
use core::ptr::NonNull;
use dpdk_sys::rte_mbuf;

/// Packets per rx/tx burst, as in DPDK's l3fwd.
pub const BURST_SIZE: usize = 32;

/// Up to [`BURST_SIZE`] owned mbufs. Dropping it frees what it still holds.
pub struct MbufBurst {
    ptrs: [*mut rte_mbuf; BURST_SIZE],
    len: usize,
}

// SAFETY: it owns its mbufs exactly as Vec<Mbuf> would; Mbuf is Send.
unsafe impl Send for MbufBurst {}

impl Default for MbufBurst {
    fn default() -> Self {
        Self::new()
    }
}

impl MbufBurst {
    pub const fn new() -> Self {
        MbufBurst {
            ptrs: [core::ptr::null_mut(); BURST_SIZE],
            len: 0,
        }
    }

    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline(always)]
    pub fn is_full(&self) -> bool {
        self.len == BURST_SIZE
    }

    /// Adds a packet; gives it back when the burst is full.
    #[inline(always)]
    pub fn push(&mut self, mbuf: Mbuf) -> Result<(), Mbuf> {
        if self.len == BURST_SIZE {
            return Err(mbuf);
        }
        self.ptrs[self.len] = mbuf.into_raw().as_ptr();
        self.len += 1;
        Ok(())
    }

    /// Takes the last packet out.
    #[inline(always)]
    pub fn pop(&mut self) -> Option<Mbuf> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        let raw = NonNull::new(self.ptrs[self.len])?;
        // SAFETY: slots below len hold owned, valid mbufs; the slot is now
        // outside len, so ownership moves to the returned Mbuf.
        Some(unsafe { Mbuf::from_raw(raw) })
    }

    /// Moves every packet out, in order. Packets the iterator does not reach
    /// are freed when it is dropped.
    #[inline(always)]
    pub fn drain(&mut self) -> Drain<'_> {
        let end = self.len;
        self.len = 0;
        Drain {
            ptrs: &self.ptrs[..end],
            next: 0,
        }
    }

    /// Space for an rx burst or ring dequeue to write into: the caller
    /// writes up to `BURST_SIZE - len` pointers and then calls `set_filled`.
    #[inline(always)]
    pub(crate) fn spare_ptrs(&mut self) -> &mut [*mut rte_mbuf] {
        &mut self.ptrs[self.len..]
    }

    /// Records that `n` pointers were written by DPDK into the spare slots.
    ///
    /// # Safety
    /// The first `n` spare slots must hold valid mbufs now owned by us.
    #[inline(always)]
    pub(crate) unsafe fn set_filled(&mut self, n: usize) {
        debug_assert!(self.len + n <= BURST_SIZE);
        self.len += n;
    }

    /// The owned pointers, for a tx burst or a ring enqueue.
    #[inline(always)]
    pub(crate) fn filled_ptrs(&mut self) -> &mut [*mut rte_mbuf] {
        &mut self.ptrs[..self.len]
    }

    /// Forgets the first `n` packets, which DPDK has taken over (tx, enqueue),
    /// and moves the rest to the front.
    #[inline(always)]
    pub(crate) fn consume_front(&mut self, n: usize) {
        let n = n.min(self.len);
        self.ptrs.copy_within(n..self.len, 0);
        self.len -= n;
    }

    /// Frees every packet still held; returns how many.
    #[inline(always)]
    pub fn free_all(&mut self) -> usize {
        let n = self.len;
        if n > 0 {
            // SAFETY: the first len slots hold owned, valid mbufs; after the
            // call they are forgotten.
            unsafe { dpdk_sys::patronus_rte_pktmbuf_free_bulk(self.ptrs.as_mut_ptr(), n as u32) };
            self.len = 0;
        }
        n
    }
}

impl Drop for MbufBurst {
    fn drop(&mut self) {
        self.free_all();
    }
}

/// The iterator of [`MbufBurst::drain`].
pub struct Drain<'a> {
    ptrs: &'a [*mut rte_mbuf],
    next: usize,
}

impl Iterator for Drain<'_> {
    type Item = Mbuf;

    #[inline(always)]
    fn next(&mut self) -> Option<Mbuf> {
        let raw = *self.ptrs.get(self.next)?;
        self.next += 1;
        // SAFETY: drain took the slots out of the burst, so each pointer is
        // owned here and handed out exactly once.
        NonNull::new(raw).map(|raw| unsafe { Mbuf::from_raw(raw) })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.ptrs.len() - self.next;
        (left, Some(left))
    }
}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        for _ in self.by_ref() {}
    }
}

impl MbufBurst {
    /// The lengths of the packets held, in order, without taking them out.
    #[inline]
    pub fn iter_lens(&self) -> impl Iterator<Item = usize> + '_ {
        self.ptrs[..self.len].iter().map(|&raw| {
            // SAFETY: slots below len hold owned, valid mbufs.
            usize::from(unsafe { (*raw).data_len })
        })
    }
}
