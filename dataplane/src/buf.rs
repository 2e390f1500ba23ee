//! The packet-buffer abstraction that all packet logic is written against.
//!
//! A packet is a contiguous run of bytes with room before it (headroom, where
//! encapsulation headers are prepended) and after it (tailroom, where trailers
//! such as an AEAD tag are appended). DPDK's `Mbuf` implements [`PacketBuf`]
//! for the data path, and [`HeapBuf`] implements it on a plain `Vec` so that
//! parsing, crypto, DPI and QoS are unit-tested without DPDK. The operations
//! mirror `rte_pktmbuf_prepend/adj/append/trim`.
//!
//! Only single-segment packets are modelled: ports are configured without
//! scatter, and the mempool's data room is sized to the largest MTU.

use core::fmt;

/// Why a buffer operation was refused. The buffer is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufError {
    /// `prepend` asked for more than the headroom.
    NoHeadroom { wanted: usize, available: usize },
    /// `append` asked for more than the tailroom.
    NoTailroom { wanted: usize, available: usize },
    /// `adj` or `trim` asked to remove more than the packet holds.
    TooShort { wanted: usize, available: usize },
}

impl fmt::Display for BufError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BufError::NoHeadroom { wanted, available } => {
                write!(
                    f,
                    "prepend of {wanted} bytes exceeds headroom of {available}"
                )
            }
            BufError::NoTailroom { wanted, available } => {
                write!(
                    f,
                    "append of {wanted} bytes exceeds tailroom of {available}"
                )
            }
            BufError::TooShort { wanted, available } => {
                write!(
                    f,
                    "cannot remove {wanted} bytes from a {available}-byte packet"
                )
            }
        }
    }
}

impl std::error::Error for BufError {}

/// A single-segment packet buffer with headroom and tailroom.
pub trait PacketBuf {
    /// The packet bytes.
    fn data(&self) -> &[u8];
    /// The packet bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Free bytes before the packet.
    fn headroom(&self) -> usize;
    /// Free bytes after the packet.
    fn tailroom(&self) -> usize;
    /// Grows the packet at the front by `len` bytes and returns them
    /// (uninitialised contents: the caller writes the new header).
    fn prepend(&mut self, len: usize) -> Result<&mut [u8], BufError>;
    /// Removes `len` bytes from the front (strips a header).
    fn adj(&mut self, len: usize) -> Result<(), BufError>;
    /// Grows the packet at the back by `len` bytes and returns them.
    fn append(&mut self, len: usize) -> Result<&mut [u8], BufError>;
    /// Removes `len` bytes from the back.
    fn trim(&mut self, len: usize) -> Result<(), BufError>;

    /// Packet length in bytes.
    fn len(&self) -> usize {
        self.data().len()
    }
    /// True when the packet holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A [`PacketBuf`] on the heap, for tests, tools and the control thread.
///
/// The storage is allocated once in [`HeapBuf::new`]; no operation allocates.
#[derive(Clone, PartialEq, Eq)]
pub struct HeapBuf {
    storage: Vec<u8>,
    start: usize,
    end: usize,
}

impl HeapBuf {
    /// An empty packet with `headroom` bytes before it and `capacity -
    /// headroom` bytes of tailroom. `headroom` is clamped to `capacity`.
    pub fn new(capacity: usize, headroom: usize) -> Self {
        let headroom = headroom.min(capacity);
        HeapBuf {
            storage: vec![0; capacity],
            start: headroom,
            end: headroom,
        }
    }

    /// A packet holding a copy of `bytes`, with the given headroom and tailroom.
    pub fn from_slice(bytes: &[u8], headroom: usize, tailroom: usize) -> Self {
        let mut buf = HeapBuf::new(headroom + bytes.len() + tailroom, headroom);
        buf.end = headroom + bytes.len();
        buf.storage[headroom..buf.end].copy_from_slice(bytes);
        buf
    }
}

impl fmt::Debug for HeapBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeapBuf")
            .field("len", &self.len())
            .field("headroom", &self.headroom())
            .field("tailroom", &self.tailroom())
            .finish()
    }
}

impl PacketBuf for HeapBuf {
    fn data(&self) -> &[u8] {
        &self.storage[self.start..self.end]
    }

    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.end]
    }

    fn headroom(&self) -> usize {
        self.start
    }

    fn tailroom(&self) -> usize {
        self.storage.len() - self.end
    }

    fn prepend(&mut self, len: usize) -> Result<&mut [u8], BufError> {
        if len > self.start {
            return Err(BufError::NoHeadroom {
                wanted: len,
                available: self.start,
            });
        }
        self.start -= len;
        Ok(&mut self.storage[self.start..self.start + len])
    }

    fn adj(&mut self, len: usize) -> Result<(), BufError> {
        if len > self.len() {
            return Err(BufError::TooShort {
                wanted: len,
                available: self.len(),
            });
        }
        self.start += len;
        Ok(())
    }

    fn append(&mut self, len: usize) -> Result<&mut [u8], BufError> {
        if len > self.tailroom() {
            return Err(BufError::NoTailroom {
                wanted: len,
                available: self.tailroom(),
            });
        }
        let old_end = self.end;
        self.end += len;
        Ok(&mut self.storage[old_end..self.end])
    }

    fn trim(&mut self, len: usize) -> Result<(), BufError> {
        if len > self.len() {
            return Err(BufError::TooShort {
                wanted: len,
                available: self.len(),
            });
        }
        self.end -= len;
        Ok(())
    }
}

/// Behaviour every [`PacketBuf`] must share; run against `HeapBuf` here and
/// against `Mbuf` in the DPDK integration tests.
#[doc(hidden)]
pub fn check_packet_buf_contract<B: PacketBuf>(buf: &mut B) {
    let (head, tail) = (buf.headroom(), buf.tailroom());
    assert!(buf.is_empty(), "contract starts from an empty buffer");
    assert!(
        head >= 4 && tail >= 8,
        "contract needs some head and tail room"
    );

    buf.append(4)
        .expect("append within tailroom")
        .copy_from_slice(b"body");
    assert_eq!(buf.data(), b"body");
    assert_eq!(buf.tailroom(), tail - 4);

    buf.prepend(2)
        .expect("prepend within headroom")
        .copy_from_slice(b"hd");
    assert_eq!(buf.data(), b"hdbody");
    assert_eq!(buf.headroom(), head - 2);

    buf.data_mut()[0] = b'H';
    assert_eq!(buf.data(), b"Hdbody");

    buf.adj(2).expect("adj within length");
    buf.trim(1).expect("trim within length");
    assert_eq!(buf.data(), b"bod");
    assert_eq!(buf.headroom(), head);
    assert_eq!(buf.tailroom(), tail - 3);

    let head_now = buf.headroom();
    assert_eq!(
        buf.prepend(head_now + 1).map(|_| ()),
        Err(BufError::NoHeadroom {
            wanted: head_now + 1,
            available: head_now
        })
    );
    let tail_now = buf.tailroom();
    assert_eq!(
        buf.append(tail_now + 1).map(|_| ()),
        Err(BufError::NoTailroom {
            wanted: tail_now + 1,
            available: tail_now
        })
    );
    assert_eq!(
        buf.adj(4),
        Err(BufError::TooShort {
            wanted: 4,
            available: 3
        })
    );
    assert_eq!(
        buf.trim(4),
        Err(BufError::TooShort {
            wanted: 4,
            available: 3
        })
    );
    assert_eq!(
        buf.data(),
        b"bod",
        "a refused operation leaves the buffer unchanged"
    );
    buf.trim(3).expect("trim to empty");
    assert!(buf.is_empty());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_buf_follows_the_packet_buf_contract() {
        check_packet_buf_contract(&mut HeapBuf::new(64, 16));
    }

    #[test]
    fn from_slice_places_bytes_between_head_and_tail_room() {
        let buf = HeapBuf::from_slice(&[1, 2, 3], 10, 5);
        assert_eq!(buf.data(), &[1, 2, 3]);
        assert_eq!((buf.headroom(), buf.tailroom()), (10, 5));
    }

    #[test]
    fn headroom_is_clamped_to_capacity() {
        let mut buf = HeapBuf::new(8, 100);
        assert_eq!((buf.headroom(), buf.tailroom()), (8, 0));
        assert!(buf.append(1).is_err());
    }

    #[test]
    fn debug_shows_sizes_not_contents() {
        let buf = HeapBuf::from_slice(b"secret", 2, 2);
        let text = format!("{buf:?}");
        assert!(text.contains("len: 6") && !text.contains("115"), "{text}");
    }
}
