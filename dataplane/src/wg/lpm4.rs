//! A compiled IPv4 longest-prefix-match table for the data path's hot
//! lookups: a 16-8-8 multibit trie with prefix expansion (the scheme of
//! DPDK's `rte_lpm`, with a 2^16 first level instead of 2^24).
//!
//! [`super::allowed_ips::AllowedIps`] stays the source of truth (inserts,
//! removals, iteration, IPv6); this is built from it once and then read
//! with at most three dependent memory accesses per lookup — where the
//! binary trie walks ~17 nodes at 100,000 prefixes. It holds `u32` values
//! (peer ids).
//!
//! Entry encoding (`u32`): 0 is empty; with [`CHUNK`] set, the low bits
//! index a 256-entry chunk of the next level; otherwise the entry is the
//! value plus one.

use super::allowed_ips::AllowedIps;
use std::net::{IpAddr, Ipv4Addr};

const CHUNK: u32 = 1 << 31;

/// The compiled IPv4 table.
#[derive(Debug, Clone)]
pub struct Lpm4 {
    level1: Vec<u32>,
    level2: Vec<u32>,
    level3: Vec<u32>,
}

impl Default for Lpm4 {
    fn default() -> Self {
        Lpm4 {
            level1: vec![0; 1 << 16],
            level2: Vec::new(),
            level3: Vec::new(),
        }
    }
}

impl Lpm4 {
    /// Compiles the IPv4 prefixes of `table`. Values must be below 2^31 - 1.
    pub fn build(table: &AllowedIps<u32>) -> Lpm4 {
        let mut prefixes: Vec<(u32, u8, u32)> = table
            .iter()
            .filter_map(|(addr, len, value)| match addr {
                IpAddr::V4(a) => Some((u32::from(a), len, *value)),
                IpAddr::V6(_) => None,
            })
            .collect();
        // Shorter prefixes first: longer ones then overwrite the ranges
        // they cover, which is exactly longest-prefix match.
        prefixes.sort_by_key(|&(_, len, _)| len);
        let mut lpm = Lpm4::default();
        for (addr, len, value) in prefixes {
            lpm.paint(addr, len, value);
        }
        lpm
    }

    fn paint(&mut self, addr: u32, len: u8, value: u32) {
        let entry = value.saturating_add(1) & !CHUNK;
        let mask = if len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(len))
        };
        let base = addr & mask;
        if len <= 16 {
            let first = (base >> 16) as usize;
            let count = 1usize << (16 - len);
            for slot in first..first + count {
                Self::paint_slot(
                    &mut self.level1[slot],
                    entry,
                    &mut self.level2,
                    &mut self.level3,
                    2,
                );
            }
            return;
        }
        let l2_chunk = Self::chunk_of(&mut self.level1[(base >> 16) as usize], &mut self.level2);
        if len <= 24 {
            let first = ((base >> 8) & 0xff) as usize;
            let count = 1usize << (24 - len);
            for i in first..first + count {
                let slot = l2_chunk * 256 + i;
                Self::paint_slot(
                    &mut self.level2[slot],
                    entry,
                    &mut Vec::new(),
                    &mut self.level3,
                    3,
                );
            }
            return;
        }
        let l2_slot = l2_chunk * 256 + ((base >> 8) & 0xff) as usize;
        let l3_chunk = Self::chunk_of(&mut self.level2[l2_slot], &mut self.level3);
        let first = (base & 0xff) as usize;
        let count = 1usize << (32 - len);
        for i in first..first + count {
            self.level3[l3_chunk * 256 + i] = entry;
        }
    }

    /// Sets a slot to `entry`; a slot that already points to a chunk gets
    /// the entry painted into every slot of that chunk that a longer prefix
    /// has not claimed (shorter prefixes are painted first, so every slot
    /// of the chunk holding the old value is overwritten).
    fn paint_slot(
        slot: &mut u32,
        entry: u32,
        level2: &mut Vec<u32>,
        level3: &mut Vec<u32>,
        next_level: u8,
    ) {
        if *slot & CHUNK == 0 {
            *slot = entry;
            return;
        }
        // Only reachable if a longer prefix was painted before a shorter
        // one; `build` sorts to prevent it. Kept total for safety.
        let chunk = (*slot & !CHUNK) as usize;
        let table = if next_level == 2 { level2 } else { level3 };
        for e in &mut table[chunk * 256..chunk * 256 + 256] {
            if *e & CHUNK == 0 {
                *e = entry;
            }
        }
    }

    /// The chunk under `slot`, creating it (filled with the slot's value)
    /// when the slot holds a value.
    fn chunk_of(slot: &mut u32, next: &mut Vec<u32>) -> usize {
        if *slot & CHUNK != 0 {
            return (*slot & !CHUNK) as usize;
        }
        let chunk = next.len() / 256;
        next.extend(std::iter::repeat_n(*slot, 256));
        *slot = CHUNK | chunk as u32;
        chunk
    }

    /// The value of the longest prefix containing `addr`.
    #[inline]
    pub fn lookup(&self, addr: Ipv4Addr) -> Option<u32> {
        let ip = u32::from(addr);
        let mut entry = self.level1[(ip >> 16) as usize];
        if entry & CHUNK != 0 {
            entry = self.level2[((entry & !CHUNK) as usize) * 256 + ((ip >> 8) & 0xff) as usize];
            if entry & CHUNK != 0 {
                entry = self.level3[((entry & !CHUNK) as usize) * 256 + (ip & 0xff) as usize];
            }
        }
        entry.checked_sub(1)
    }

    /// Heap bytes of the three levels.
    pub fn heap_bytes(&self) -> usize {
        (self.level1.capacity() + self.level2.capacity() + self.level3.capacity()) * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(prefixes: &[(&str, u8, u32)]) -> AllowedIps<u32> {
        let mut t = AllowedIps::new();
        for &(a, len, v) in prefixes {
            t.insert(a.parse().unwrap(), len, v).unwrap();
        }
        t
    }

    #[test]
    fn longest_prefixes_win_across_all_three_levels() {
        let t = table(&[
            ("0.0.0.0", 0, 1),
            ("10.0.0.0", 8, 2),
            ("10.1.0.0", 16, 3),
            ("10.1.2.0", 24, 4),
            ("10.1.2.128", 25, 5),
            ("10.1.2.130", 32, 6),
            ("10.1.3.0", 20, 7),
        ]);
        let lpm = Lpm4::build(&t);
        let at = |s: &str| lpm.lookup(s.parse().unwrap());
        assert_eq!(at("192.0.2.1"), Some(1));
        assert_eq!(at("10.9.9.9"), Some(2));
        assert_eq!(
            at("10.1.9.9"),
            Some(7),
            "inside 10.1.0.0/20 (host bits masked)"
        );
        assert_eq!(at("10.1.2.1"), Some(4));
        assert_eq!(at("10.1.2.129"), Some(5));
        assert_eq!(at("10.1.2.130"), Some(6));
        assert_eq!(at("10.1.2.131"), Some(5));
        assert_eq!(at("10.1.0.255"), Some(7), "10.1.0.0/20 covers 10.1.0-15.x");
        assert_eq!(at("10.1.16.1"), Some(3));
        let empty = Lpm4::build(&AllowedIps::new());
        assert_eq!(empty.lookup(Ipv4Addr::new(1, 2, 3, 4)), None);
    }

    #[test]
    fn it_agrees_with_the_trie_on_random_prefixes() {
        let mut seed = 0x2468_ace1u32;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        let mut t = AllowedIps::new();
        for v in 0..3000u32 {
            let len = (next() % 33) as u8;
            let _ = t.insert(IpAddr::V4(Ipv4Addr::from(next())), len, v);
        }
        let lpm = Lpm4::build(&t);
        for _ in 0..200_000 {
            let a = Ipv4Addr::from(next());
            assert_eq!(lpm.lookup(a), t.lookup(IpAddr::V4(a)).copied(), "{a}");
        }
    }
}
