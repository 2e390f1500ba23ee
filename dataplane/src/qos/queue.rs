//! One class's FIFO: a fixed-capacity ring of packets with their lengths
//! and arrival ticks, allocated once at construction. Nothing here
//! allocates after that, and no index can go out of bounds.

/// A queued packet.
#[derive(Debug)]
pub(crate) struct Slot<P> {
    pub pkt: P,
    /// The caller's length in bytes (what the counters count).
    pub len: u32,
    /// Tick it was enqueued (for the delay histogram and CoDel).
    pub at: u64,
}

#[derive(Debug)]
pub(crate) struct PacketQueue<P> {
    slots: Box<[Option<Slot<P>>]>,
    head: usize,
    len: usize,
    bytes: u64,
}

impl<P> PacketQueue<P> {
    /// A queue holding at most `capacity` packets (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        PacketQueue {
            slots: (0..capacity).map(|_| None).collect(),
            head: 0,
            len: 0,
            bytes: 0,
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
        self.len == self.slots.len()
    }

    /// Bytes queued (sum of the caller's lengths).
    #[inline(always)]
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Appends; gives the slot back when full.
    #[inline]
    pub fn push(&mut self, slot: Slot<P>) -> Result<(), Slot<P>> {
        if self.is_full() {
            return Err(slot);
        }
        let mut tail = self.head + self.len;
        if tail >= self.slots.len() {
            tail -= self.slots.len();
        }
        self.bytes += u64::from(slot.len);
        self.len += 1;
        match self.slots.get_mut(tail) {
            Some(s) => *s = Some(slot),
            None => return Err(slot),
        }
        Ok(())
    }

    /// The head's length and arrival tick.
    #[inline(always)]
    pub fn peek(&self) -> Option<(u32, u64)> {
        if self.len == 0 {
            return None;
        }
        self.slots
            .get(self.head)
            .and_then(|s| s.as_ref())
            .map(|s| (s.len, s.at))
    }

    #[inline]
    pub fn pop(&mut self) -> Option<Slot<P>> {
        if self.len == 0 {
            return None;
        }
        let slot = self.slots.get_mut(self.head).and_then(Option::take)?;
        self.head += 1;
        if self.head == self.slots.len() {
            self.head = 0;
        }
        self.len -= 1;
        self.bytes -= u64::from(slot.len);
        Some(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(pkt: u32, len: u32) -> Slot<u32> {
        Slot { pkt, len, at: 0 }
    }

    #[test]
    fn fifo_order_across_wraparound_with_byte_accounting() {
        let mut q = PacketQueue::new(3);
        for round in 0..5u32 {
            q.push(slot(round * 10, 100)).unwrap();
            q.push(slot(round * 10 + 1, 200)).unwrap();
            assert_eq!(q.bytes(), 300);
            assert_eq!(q.peek(), Some((100, 0)));
            assert_eq!(q.pop().map(|s| s.pkt), Some(round * 10));
            assert_eq!(q.pop().map(|s| s.pkt), Some(round * 10 + 1));
            assert!(q.is_empty());
            assert_eq!(q.bytes(), 0);
        }
    }

    #[test]
    fn full_queue_gives_the_packet_back() {
        let mut q = PacketQueue::new(2);
        q.push(slot(1, 1)).unwrap();
        q.push(slot(2, 1)).unwrap();
        assert_eq!(q.push(slot(3, 1)).unwrap_err().pkt, 3);
        assert_eq!(q.len(), 2);
    }
}
