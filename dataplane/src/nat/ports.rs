//! Which worker owns which external port, and which internal endpoint.
//!
//! The configured range `lo..=hi` is split by residue: worker `w` of `n`
//! allocates only ports with `port % n == w`. A reply's destination port
//! alone therefore names the worker that owns its mapping
//! ([`PortSlice::owner_of`]), whichever queue the NIC's RSS put it on; the
//! caller hands it over if that is another worker. Residues rather than
//! contiguous blocks because with a power-of-two worker count the owner is
//! the port's low bits, which a NIC flow rule can match with one masked
//! rule per queue (`rte_flow` on the UDP/TCP destination port), so the
//! hand-off could later move into hardware.
//!
//! The other direction: RFC 4787 REQ-1 wants one external port for an
//! internal endpoint whatever the destination, but the LAN port's RSS
//! hashes the whole 5-tuple, so an endpoint's flows to different
//! destinations reach different workers. Each internal endpoint (address,
//! port, protocol) is therefore owned by one worker, chosen by a keyed hash
//! that every worker computes the same way ([`EndpointHash::owner`]), and
//! the others hand its packets to it.
//!
//! The hash is a keyed 64-bit mix (two rounds of the splitmix64 finaliser
//! around a 128-bit secret), not a cryptographic PRF: it makes the owner,
//! the index position and the first probed port (RFC 6056 section 3.3.3's
//! `F(local endpoint, secret)`) unpredictable to someone who does not know
//! the secret, at a few nanoseconds per packet.

use super::NatConfigError;

/// This worker's share of the external port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSlice {
    lo: u16,
    hi: u16,
    workers: u16,
    worker: u16,
    /// The first port of the range with `port % workers == worker`.
    first: u32,
    /// How many ports the slice holds.
    len: u32,
}

impl PortSlice {
    /// Worker `worker` of `workers` over `lo..=hi`. Fails for an empty or
    /// zero-based range, a worker index out of range, or a slice with no
    /// port.
    pub fn new(lo: u16, hi: u16, workers: u16, worker: u16) -> Result<PortSlice, NatConfigError> {
        if lo == 0 || lo > hi {
            return Err(NatConfigError::PortRange { lo, hi });
        }
        if workers == 0 || worker >= workers {
            return Err(NatConfigError::Worker { worker, workers });
        }
        // Any `workers` consecutive ports hold every residue, so this gives
        // every worker (not only this one) at least one port.
        if u32::from(hi - lo) + 1 < u32::from(workers) {
            return Err(NatConfigError::EmptySlice { lo, hi, workers });
        }
        let n = u32::from(workers);
        let lo32 = u32::from(lo);
        let first = lo32 + (u32::from(worker) + n - lo32 % n) % n;
        let len = (u32::from(hi) - first) / n + 1;
        Ok(PortSlice {
            lo,
            hi,
            workers,
            worker,
            first,
            len,
        })
    }

    /// The worker that owns `port`'s mappings, or None outside the range.
    #[inline]
    pub fn owner_of(&self, port: u16) -> Option<u16> {
        if port < self.lo || port > self.hi {
            return None;
        }
        Some(port % self.workers)
    }

    pub fn worker(&self) -> u16 {
        self.worker
    }

    pub fn workers(&self) -> u16 {
        self.workers
    }

    /// Ports in this worker's slice.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The slice's `offset`-th port; `offset < len()`.
    #[inline]
    pub fn port(&self, offset: u32) -> u16 {
        // first + offset * workers <= hi by construction of len.
        (self.first + offset * u32::from(self.workers)) as u16
    }

    /// The offset of `port` in this slice, if it is one of ours.
    #[inline]
    pub fn offset(&self, port: u16) -> Option<u32> {
        let p = u32::from(port);
        if p < self.first || port > self.hi {
            return None;
        }
        let d = p - self.first;
        let n = u32::from(self.workers);
        d.is_multiple_of(n).then_some(d / n)
    }

    /// The slice's ports in order.
    pub fn ports(&self) -> impl Iterator<Item = u16> + '_ {
        (0..self.len).map(|o| self.port(o))
    }
}

/// The keyed hash of internal endpoints, identical on every worker given
/// the same secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointHash {
    k0: u64,
    k1: u64,
    workers: u16,
}

impl EndpointHash {
    pub fn new(secret: u128, workers: u16) -> EndpointHash {
        EndpointHash {
            k0: secret as u64,
            k1: (secret >> 64) as u64,
            workers: workers.max(1),
        }
    }

    /// The hash of an internal endpoint. Its high 32 bits choose the owner,
    /// its low bits the index position and the first port probed.
    #[inline]
    pub fn hash(&self, addr: u32, port: u16, proto: u8) -> u64 {
        let word = u64::from(addr) << 24 | u64::from(port) << 8 | u64::from(proto);
        mix(mix(word ^ self.k0) ^ self.k1)
    }

    /// The worker that owns the endpoint of hash `h`.
    #[inline]
    pub fn owner(&self, h: u64) -> u16 {
        // Lemire's multiply-shift range reduction of the high half.
        (((h >> 32) * u64::from(self.workers)) >> 32) as u16
    }
}

/// The splitmix64 finaliser: a bijective 64-bit mix with full avalanche.
#[inline]
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_partition_the_range_without_overlap_or_gap() {
        for (lo, hi, n) in [
            (1024, 65535, 1),
            (1024, 65535, 3),
            (1000, 1010, 4),
            (7, 7, 1),
        ] {
            let slices: Vec<_> = (0..n)
                .map(|w| PortSlice::new(lo, hi, n, w).unwrap())
                .collect();
            let mut seen = vec![false; 65536];
            for s in &slices {
                for (i, p) in s.ports().enumerate() {
                    assert!((lo..=hi).contains(&p), "{p} outside {lo}..={hi}");
                    assert!(!seen[usize::from(p)], "{p} in two slices");
                    seen[usize::from(p)] = true;
                    assert_eq!(s.owner_of(p), Some(s.worker()));
                    assert_eq!(s.offset(p), Some(i as u32));
                }
            }
            let covered = seen.iter().filter(|&&b| b).count();
            assert_eq!(covered, usize::from(hi - lo) + 1, "{lo}..={hi} / {n}");
        }
    }

    #[test]
    fn ports_of_other_workers_and_outside_the_range_have_no_offset() {
        let s = PortSlice::new(1024, 2047, 4, 1).unwrap();
        assert_eq!(s.len(), 256);
        assert_eq!(s.port(0), 1025);
        assert_eq!(s.offset(1024), None);
        assert_eq!(s.offset(1026), None);
        assert_eq!(s.offset(2049), None);
        assert_eq!(s.offset(1021), None);
        assert_eq!(s.owner_of(1026), Some(2));
        assert_eq!(s.owner_of(1023), None);
        assert_eq!(s.owner_of(2048), None);
    }

    #[test]
    fn bad_ranges_and_worker_indexes_are_refused() {
        assert!(PortSlice::new(0, 10, 1, 0).is_err());
        assert!(PortSlice::new(10, 9, 1, 0).is_err());
        assert!(PortSlice::new(10, 20, 2, 2).is_err());
        assert!(PortSlice::new(10, 20, 0, 0).is_err());
        // Two ports cannot feed three workers, whichever one asks.
        for w in 0..3 {
            assert!(PortSlice::new(10, 11, 3, w).is_err());
        }
        assert_eq!(
            PortSlice::new(10, 12, 3, 0)
                .unwrap()
                .ports()
                .collect::<Vec<_>>(),
            [12]
        );
    }

    #[test]
    fn endpoint_owners_spread_evenly_and_depend_on_the_secret() {
        let h = EndpointHash::new(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210, 4);
        let other = EndpointHash::new(1, 4);
        let mut counts = [0u32; 4];
        let mut differ = 0;
        for port in 0..40_000u16 {
            let x = h.hash(0x0a00_0002, port, 17);
            counts[usize::from(h.owner(x))] += 1;
            differ += u32::from(h.owner(x) != other.owner(other.hash(0x0a00_0002, port, 17)));
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
        assert!(differ > 25_000, "{differ}");
    }
}
