//! The cryptokey routing table: which peer owns an inner IP address
//! (whitepaper §2, "Cryptokey Routing").
//!
//! On transmit the longest prefix matching a packet's destination selects
//! the peer to encrypt to; on receive the longest prefix matching the
//! decrypted packet's source must belong to the peer whose key decrypted it,
//! or the packet is dropped.
//!
//! # Design
//!
//! Each family has its own path-compressed binary trie (PATRICIA-style, as
//! in the Linux driver's `allowedips.c`). Addresses are left-aligned in a
//! `u128`, so one code path serves both families. A node holds a prefix, an
//! optional value and two children. A node without a value exists only
//! where two prefixes diverge, so it always has two children, and a trie of
//! n prefixes has at most 2n − 1 nodes. The nodes live in one arena `Vec`,
//! linked by `u32` index, with a free list. That keeps them dense for the
//! cache, and removal never needs to shift anything.
//!
//! Complexity, with W = 32 for IPv4 and W = 128 for IPv6:
//! - `lookup`: O(W) worst case, never a scan over peers or prefixes. It
//!   visits only the nodes on one root-to-leaf path, each with one masked
//!   compare. With n random prefixes that is about log2(n) branch nodes
//!   plus the nested prefixes that cover the address. It does not allocate.
//! - `insert` and `remove`: O(W), with at most two node allocations or frees.
//! - `remove_value` and `iter`: O(n), control path only.
//!
//! IPv4 and IPv6 are separate tries. An IPv4-mapped IPv6 address
//! (`::ffff:a.b.c.d`) is an IPv6 key and never matches an IPv4 prefix, as in
//! `wg`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a prefix was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrefixError {
    /// The prefix length is longer than the address (over 32 for IPv4 or
    /// over 128 for IPv6).
    TooLong { addr: IpAddr, prefix_len: u32 },
    /// The text before `/` (the whole text if there is no `/`) is not an
    /// IPv4 or IPv6 address. Holds the input.
    InvalidAddress(String),
    /// The text after `/` is not a decimal number. Holds the input.
    InvalidLength(String),
}

impl fmt::Display for PrefixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong { addr, prefix_len } => {
                let (family, max) = if addr.is_ipv4() {
                    ("IPv4", 32)
                } else {
                    ("IPv6", 128)
                };
                write!(
                    f,
                    "invalid prefix {addr}/{prefix_len}: an {family} prefix length is at most {max}"
                )
            }
            Self::InvalidAddress(input) => write!(
                f,
                "invalid prefix {input:?}: expected an IPv4 or IPv6 address, optionally followed by /length"
            ),
            Self::InvalidLength(input) => write!(
                f,
                "invalid prefix {input:?}: the prefix length after '/' must be a decimal number"
            ),
        }
    }
}

impl std::error::Error for PrefixError {}

/// Parses `"10.0.0.0/24"` or `"fd00::/64"`. A bare address means a host
/// route: /32 for IPv4 and /128 for IPv6. Surrounding whitespace is ignored.
/// Host bits are returned as written. [`AllowedIps::insert`] masks them.
pub fn parse_prefix(text: &str) -> Result<(IpAddr, u8), PrefixError> {
    let text = text.trim();
    let (addr_text, len_text) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let addr: IpAddr = addr_text
        .parse()
        .map_err(|_| PrefixError::InvalidAddress(text.to_owned()))?;
    let max = max_len(addr);
    let prefix_len = match len_text {
        None => u32::from(max),
        Some(l) => {
            if l.is_empty() || !l.bytes().all(|b| b.is_ascii_digit()) {
                return Err(PrefixError::InvalidLength(text.to_owned()));
            }
            l.parse::<u32>()
                .map_err(|_| PrefixError::InvalidLength(text.to_owned()))?
        }
    };
    if prefix_len > u32::from(max) {
        return Err(PrefixError::TooLong { addr, prefix_len });
    }
    // Cannot truncate: at most 128 here.
    Ok((addr, prefix_len as u8))
}

const NONE: u32 = u32::MAX;
const V4: usize = 0;
const V6: usize = 1;

#[derive(Clone)]
struct Node<T> {
    /// Left-aligned network address, masked to `len` bits.
    key: u128,
    len: u8,
    family: u8,
    value: Option<T>,
    /// Subtries whose next bit (bit `len`) is 0 or 1. `NONE` if empty.
    child: [u32; 2],
}

/// Where a node index is stored: a family's root or a node's child slot.
#[derive(Clone, Copy)]
enum Link {
    Root(usize),
    Child(u32, usize),
}

/// Longest-prefix-match table from IPv4/IPv6 prefixes to `T` (a peer
/// handle). See the module documentation for the structure and its costs.
#[derive(Clone)]
pub struct AllowedIps<T> {
    nodes: Vec<Node<T>>,
    free: Vec<u32>,
    roots: [u32; 2],
    len: usize,
}

impl<T> Default for AllowedIps<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: fmt::Debug> fmt::Debug for AllowedIps<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T> AllowedIps<T> {
    pub const fn new() -> Self {
        Self {
            nodes: Vec::new(),
            free: Vec::new(),
            roots: [NONE; 2],
            len: 0,
        }
    }

    /// Heap bytes the table holds (node arena and free list capacity), for
    /// the memory-per-prefix figures.
    pub fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * core::mem::size_of::<Node<T>>()
            + self.free.capacity() * core::mem::size_of::<u32>()
    }

    /// Number of prefixes in the table.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        *self = Self::new();
    }

    /// Maps `addr/prefix_len` to `value`, with the host bits of `addr`
    /// cleared as `wg` does, and returns the value it replaced. Fails if
    /// `prefix_len` is longer than the address.
    pub fn insert(
        &mut self,
        addr: IpAddr,
        prefix_len: u8,
        value: T,
    ) -> Result<Option<T>, PrefixError> {
        if prefix_len > max_len(addr) {
            return Err(PrefixError::TooLong {
                addr,
                prefix_len: u32::from(prefix_len),
            });
        }
        let (raw, family) = key_of(addr);
        let key = raw & mask(prefix_len);
        let mut link = Link::Root(family);
        loop {
            let idx = self.get(link);
            if idx == NONE {
                let leaf = self.alloc(key, prefix_len, family, Some(value), [NONE; 2]);
                self.set(link, leaf);
                self.len += 1;
                return Ok(None);
            }
            let node = &self.nodes[idx as usize];
            let common = common_len(node.key, key).min(node.len).min(prefix_len);
            if common == node.len {
                if node.len == prefix_len {
                    let old = self.nodes[idx as usize].value.replace(value);
                    if old.is_none() {
                        self.len += 1;
                    }
                    return Ok(old);
                }
                // The node's prefix covers ours: descend.
                link = Link::Child(idx, bit(key, node.len));
                continue;
            }
            // We diverge inside the node's prefix, so the node moves down
            // under a new one.
            let node_key = node.key;
            let new = if common == prefix_len {
                // Our prefix covers the node's.
                let mut child = [NONE; 2];
                child[bit(node_key, prefix_len)] = idx;
                self.alloc(key, prefix_len, family, Some(value), child)
            } else {
                // Siblings under a valueless branch at the first differing bit.
                let leaf = self.alloc(key, prefix_len, family, Some(value), [NONE; 2]);
                let mut child = [NONE; 2];
                child[bit(node_key, common)] = idx;
                child[bit(key, common)] = leaf;
                self.alloc(key & mask(common), common, family, None, child)
            };
            self.set(link, new);
            self.len += 1;
            return Ok(None);
        }
    }

    /// Removes exactly `addr/prefix_len` (host bits ignored). Other
    /// prefixes, longer or shorter, are untouched.
    pub fn remove(&mut self, addr: IpAddr, prefix_len: u8) -> Option<T> {
        if prefix_len > max_len(addr) {
            return None;
        }
        let (raw, family) = key_of(addr);
        let key = raw & mask(prefix_len);
        let mut parent_link = None;
        let mut link = Link::Root(family);
        loop {
            let idx = self.get(link);
            if idx == NONE {
                return None;
            }
            let node = &self.nodes[idx as usize];
            if node.len > prefix_len || (node.key ^ key) & mask(node.len) != 0 {
                return None;
            }
            if node.len == prefix_len {
                break;
            }
            parent_link = Some(link);
            link = Link::Child(idx, bit(key, node.len));
        }
        let idx = self.get(link);
        let old = self.nodes[idx as usize].value.take()?;
        self.len -= 1;
        self.prune(link, parent_link);
        Some(old)
    }

    /// Removes every prefix mapped to `value` (all of a peer's allowed IPs)
    /// and returns how many there were.
    pub fn remove_value(&mut self, value: &T) -> usize
    where
        T: PartialEq,
    {
        let doomed: Vec<(IpAddr, u8)> = self
            .iter()
            .filter(|(_, _, v)| *v == value)
            .map(|(a, l, _)| (a, l))
            .collect();
        for &(addr, len) in &doomed {
            self.remove(addr, len);
        }
        doomed.len()
    }

    /// The value of the longest prefix containing `addr`, searching only
    /// prefixes of `addr`'s family.
    #[inline]
    pub fn lookup(&self, addr: IpAddr) -> Option<&T> {
        let (key, family) = key_of(addr);
        self.lookup_key(key, family)
    }

    /// [`Self::lookup`] for a destination already known to be IPv4.
    #[inline]
    pub fn lookup_v4(&self, addr: Ipv4Addr) -> Option<&T> {
        self.lookup_key(u128::from(u32::from(addr)) << 96, V4)
    }

    /// [`Self::lookup`] for a destination already known to be IPv6.
    #[inline]
    pub fn lookup_v6(&self, addr: Ipv6Addr) -> Option<&T> {
        self.lookup_key(u128::from(addr), V6)
    }

    /// Every prefix as (network address, length, value): IPv4 first, then
    /// ordered by address and, for the same address, shorter prefixes first.
    pub fn iter(&self) -> Iter<'_, T> {
        let mut stack = Vec::new();
        for &root in self.roots.iter().rev() {
            if root != NONE {
                stack.push(root);
            }
        }
        Iter { table: self, stack }
    }

    fn lookup_key(&self, key: u128, family: usize) -> Option<&T> {
        let mut idx = self.roots[family];
        let mut best = None;
        while idx != NONE {
            let node = &self.nodes[idx as usize];
            if (node.key ^ key) & mask(node.len) != 0 {
                break;
            }
            if let Some(v) = &node.value {
                best = Some(v);
            }
            if node.len == 128 {
                break;
            }
            idx = node.child[bit(key, node.len)];
        }
        best
    }

    /// Restores the invariant that a valueless node has two children after
    /// the node at `link` lost its value.
    fn prune(&mut self, link: Link, parent_link: Option<Link>) {
        let idx = self.get(link);
        let [c0, c1] = self.nodes[idx as usize].child;
        match (c0 != NONE, c1 != NONE) {
            (true, true) => {}
            (true, false) | (false, true) => {
                self.set(link, if c0 != NONE { c0 } else { c1 });
                self.release(idx);
            }
            (false, false) => {
                self.set(link, NONE);
                self.release(idx);
                // A valueless parent left with one child is now redundant.
                if let Some(parent_link) = parent_link {
                    let parent = self.get(parent_link);
                    let p = &self.nodes[parent as usize];
                    if p.value.is_none() {
                        let only = if p.child[0] != NONE {
                            p.child[0]
                        } else {
                            p.child[1]
                        };
                        self.set(parent_link, only);
                        self.release(parent);
                    }
                }
            }
        }
    }

    fn get(&self, link: Link) -> u32 {
        match link {
            Link::Root(family) => self.roots[family],
            Link::Child(idx, dir) => self.nodes[idx as usize].child[dir],
        }
    }

    fn set(&mut self, link: Link, to: u32) {
        match link {
            Link::Root(family) => self.roots[family] = to,
            Link::Child(idx, dir) => self.nodes[idx as usize].child[dir] = to,
        }
    }

    fn alloc(
        &mut self,
        key: u128,
        len: u8,
        family: usize,
        value: Option<T>,
        child: [u32; 2],
    ) -> u32 {
        let node = Node {
            key,
            len,
            family: family as u8,
            value,
            child,
        };
        if let Some(idx) = self.free.pop() {
            self.nodes[idx as usize] = node;
            idx
        } else {
            let idx = u32::try_from(self.nodes.len())
                .ok()
                .filter(|&i| i != NONE)
                .expect("allowed-IPs trie exceeds 2^32 - 1 nodes");
            self.nodes.push(node);
            idx
        }
    }

    fn release(&mut self, idx: u32) {
        let node = &mut self.nodes[idx as usize];
        node.value = None;
        node.child = [NONE; 2];
        self.free.push(idx);
    }
}

/// Iterator over an [`AllowedIps`] table. See [`AllowedIps::iter`].
pub struct Iter<'a, T> {
    table: &'a AllowedIps<T>,
    stack: Vec<u32>,
}

impl<'a, T> Iterator for Iter<'a, T> {
    type Item = (IpAddr, u8, &'a T);

    fn next(&mut self) -> Option<Self::Item> {
        while let Some(idx) = self.stack.pop() {
            let node = &self.table.nodes[idx as usize];
            for &c in node.child.iter().rev() {
                if c != NONE {
                    self.stack.push(c);
                }
            }
            if let Some(v) = &node.value {
                return Some((addr_of(node.key, node.family as usize), node.len, v));
            }
        }
        None
    }
}

fn max_len(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// The address left-aligned in 128 bits, and its family index.
fn key_of(addr: IpAddr) -> (u128, usize) {
    match addr {
        IpAddr::V4(a) => (u128::from(u32::from(a)) << 96, V4),
        IpAddr::V6(a) => (u128::from(a), V6),
    }
}

fn addr_of(key: u128, family: usize) -> IpAddr {
    if family == V4 {
        // The low 96 bits of an IPv4 key are zero.
        IpAddr::V4(Ipv4Addr::from((key >> 96) as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(key))
    }
}

#[inline]
fn mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    }
}

/// Bit `i` (0 = most significant) of a left-aligned key. `i` < 128.
#[inline]
fn bit(key: u128, i: u8) -> usize {
    ((key >> (127 - u32::from(i))) & 1) as usize
}

fn common_len(a: u128, b: u128) -> u8 {
    (a ^ b).leading_zeros() as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn p(text: &str) -> (IpAddr, u8) {
        parse_prefix(text).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn table(entries: &[(&str, u32)]) -> AllowedIps<u32> {
        let mut t = AllowedIps::new();
        for &(prefix, v) in entries {
            let (a, l) = p(prefix);
            assert_eq!(t.insert(a, l, v), Ok(None), "{prefix}");
        }
        check_invariants(&t);
        t
    }

    /// Structure checks: valueless nodes branch, children extend their
    /// parent's prefix on the right side, and the count and arena agree.
    fn check_invariants<T>(t: &AllowedIps<T>) {
        fn walk<T>(t: &AllowedIps<T>, idx: u32, parent: Option<(u128, u8, usize)>) -> usize {
            let n = &t.nodes[idx as usize];
            assert_eq!(n.key & mask(n.len), n.key, "unmasked key");
            if let Some((pkey, plen, dir)) = parent {
                assert!(n.len > plen, "child not longer than parent");
                assert_eq!(n.key & mask(plen), pkey, "child outside parent");
                assert_eq!(bit(n.key, plen), dir, "child on wrong side");
            }
            let children = n.child.iter().filter(|&&c| c != NONE).count();
            if n.value.is_none() {
                assert_eq!(children, 2, "valueless node without two children");
            }
            let mut nodes = 1;
            for (dir, &c) in n.child.iter().enumerate() {
                if c != NONE {
                    nodes += walk(t, c, Some((n.key, n.len, dir)));
                }
            }
            nodes
        }
        let mut live = 0;
        for &root in &t.roots {
            if root != NONE {
                live += walk(t, root, None);
            }
        }
        assert_eq!(live, t.nodes.len() - t.free.len(), "leaked nodes");
        assert!(live <= (2 * t.len).max(1), "more than 2n - 1 nodes");
        assert_eq!(t.iter().count(), t.len);
    }

    #[test]
    fn longest_prefix_wins_among_nested_prefixes() {
        let t = table(&[
            ("10.0.0.0/8", 1),
            ("10.1.0.0/16", 2),
            ("10.1.2.0/24", 3),
            ("10.1.2.3/32", 4),
        ]);
        assert_eq!(t.lookup(ip("10.1.2.3")), Some(&4));
        assert_eq!(t.lookup(ip("10.1.2.4")), Some(&3));
        assert_eq!(t.lookup(ip("10.1.3.1")), Some(&2));
        assert_eq!(t.lookup(ip("10.200.0.1")), Some(&1));
        assert_eq!(t.lookup(ip("11.0.0.0")), None);
        assert_eq!(t.lookup(ip("9.255.255.255")), None);
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn result_does_not_depend_on_insertion_order() {
        let entries = [
            ("10.1.2.3/32", 4),
            ("10.1.2.0/24", 3),
            ("10.0.0.0/8", 1),
            ("10.1.0.0/16", 2),
            ("10.1.2.128/25", 5),
        ];
        let a = table(&entries);
        let mut rev = entries;
        rev.reverse();
        let b = table(&rev);
        for addr in [
            "10.1.2.3",
            "10.1.2.200",
            "10.1.2.5",
            "10.1.9.9",
            "10.9.9.9",
            "1.1.1.1",
        ] {
            assert_eq!(a.lookup(ip(addr)), b.lookup(ip(addr)), "{addr}");
        }
        assert_eq!(a.lookup(ip("10.1.2.200")), Some(&5));
        assert_eq!(a.iter().collect::<Vec<_>>(), b.iter().collect::<Vec<_>>());
    }

    #[test]
    fn default_routes_catch_everything_of_their_family_only() {
        let t = table(&[("0.0.0.0/0", 9), ("192.168.0.0/16", 1)]);
        assert_eq!(t.lookup(ip("8.8.8.8")), Some(&9));
        assert_eq!(t.lookup(ip("255.255.255.255")), Some(&9));
        assert_eq!(t.lookup(ip("0.0.0.0")), Some(&9));
        assert_eq!(t.lookup(ip("192.168.7.7")), Some(&1));
        assert_eq!(t.lookup(ip("::1")), None);
        assert_eq!(t.lookup(ip("::ffff:8.8.8.8")), None);

        let t = table(&[("::/0", 7), ("2001:db8::/32", 2)]);
        assert_eq!(t.lookup(ip("2001:db8::1")), Some(&2));
        assert_eq!(t.lookup(ip("fe80::1")), Some(&7));
        assert_eq!(t.lookup(ip("8.8.8.8")), None);
    }

    #[test]
    fn host_routes_match_only_their_address() {
        let t = table(&[
            ("192.0.2.1/32", 1),
            ("2001:db8::1/128", 2),
            ("2001:db8::ffff:ffff/128", 3),
        ]);
        assert_eq!(t.lookup(ip("192.0.2.1")), Some(&1));
        assert_eq!(t.lookup(ip("192.0.2.0")), None);
        assert_eq!(t.lookup(ip("192.0.2.2")), None);
        assert_eq!(t.lookup(ip("2001:db8::1")), Some(&2));
        assert_eq!(t.lookup(ip("2001:db8::ffff:ffff")), Some(&3));
        assert_eq!(t.lookup(ip("2001:db8::2")), None);
        assert_eq!(t.lookup_v4("192.0.2.1".parse().unwrap()), Some(&1));
        assert_eq!(t.lookup_v6("2001:db8::1".parse().unwrap()), Some(&2));
    }

    #[test]
    fn ipv4_and_ipv6_are_separate() {
        // The same bits in both families, and an IPv4-mapped IPv6 host.
        let t = table(&[
            ("10.0.0.0/8", 4),
            ("a00::/8", 6),
            ("::ffff:10.0.0.1/128", 66),
        ]);
        assert_eq!(t.lookup(ip("10.0.0.1")), Some(&4));
        assert_eq!(t.lookup(ip("a00::1")), Some(&6));
        assert_eq!(t.lookup(ip("::ffff:10.0.0.1")), Some(&66));
        assert_eq!(t.lookup(ip("::ffff:10.0.0.2")), None);
        let mut t = t;
        assert_eq!(t.remove(ip("a00::"), 8), Some(6));
        assert_eq!(t.lookup(ip("10.0.0.1")), Some(&4));
    }

    #[test]
    fn host_bits_are_masked_on_insert_and_remove() {
        let mut t = AllowedIps::new();
        assert_eq!(t.insert(ip("10.1.2.3"), 24, 1), Ok(None));
        assert_eq!(t.iter().collect::<Vec<_>>(), vec![(ip("10.1.2.0"), 24, &1)]);
        assert_eq!(t.lookup(ip("10.1.2.200")), Some(&1));
        // The same network written with other host bits is the same prefix.
        assert_eq!(t.insert(ip("10.1.2.99"), 24, 2), Ok(Some(1)));
        assert_eq!(t.len(), 1);
        assert_eq!(t.insert(ip("2001:db8::dead:beef"), 64, 3), Ok(None));
        assert_eq!(t.iter().nth(1), Some((ip("2001:db8::"), 64, &3)));
        assert_eq!(t.insert(ip("255.255.255.255"), 0, 4), Ok(None));
        assert_eq!(t.iter().next(), Some((ip("0.0.0.0"), 0, &4)));
        assert_eq!(t.remove(ip("10.1.2.250"), 24), Some(2));
        assert_eq!(t.lookup(ip("10.1.2.200")), Some(&4));
        check_invariants(&t);
    }

    #[test]
    fn insert_replaces_and_returns_previous_value() {
        let mut t = AllowedIps::new();
        let (a, l) = p("10.0.0.0/24");
        assert_eq!(t.insert(a, l, 1), Ok(None));
        assert_eq!(t.insert(a, l, 2), Ok(Some(1)));
        assert_eq!(t.len(), 1);
        assert_eq!(t.lookup(ip("10.0.0.5")), Some(&2));
        // A prefix that only existed as a branch point takes a value.
        let mut t = table(&[("10.0.0.0/24", 1), ("10.0.1.0/24", 2)]);
        assert_eq!(t.insert(ip("10.0.0.0"), 23, 3), Ok(None));
        assert_eq!(t.len(), 3);
        assert_eq!(t.lookup(ip("10.0.1.1")), Some(&2));
        assert_eq!(t.lookup(ip("10.0.0.1")), Some(&1));
        assert_eq!(t.remove(ip("10.0.0.0"), 23), Some(3));
        assert_eq!(t.lookup(ip("10.0.0.1")), Some(&1));
        check_invariants(&t);
    }

    #[test]
    fn overlong_prefix_is_an_error_naming_it() {
        let mut t = AllowedIps::new();
        let err = t.insert(ip("10.0.0.0"), 33, 1).unwrap_err();
        assert_eq!(
            err,
            PrefixError::TooLong {
                addr: ip("10.0.0.0"),
                prefix_len: 33
            }
        );
        assert!(err.to_string().contains("10.0.0.0/33"), "{err}");
        let err = t.insert(ip("fd00::"), 129, 1).unwrap_err();
        assert!(err.to_string().contains("fd00::/129"), "{err}");
        assert!(err.to_string().contains("128"), "{err}");
        assert!(t.insert(ip("fd00::1"), 128, 1).is_ok());
        assert!(t.insert(ip("10.0.0.1"), 32, 1).is_ok());
        assert_eq!(t.remove(ip("10.0.0.0"), 33), None);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn parse_prefix_accepts_prefixes_and_bare_addresses() {
        assert_eq!(parse_prefix("10.0.0.0/24"), Ok((ip("10.0.0.0"), 24)));
        assert_eq!(parse_prefix("10.0.0.7/24"), Ok((ip("10.0.0.7"), 24)));
        assert_eq!(parse_prefix(" 192.0.2.1 "), Ok((ip("192.0.2.1"), 32)));
        assert_eq!(parse_prefix("0.0.0.0/0"), Ok((ip("0.0.0.0"), 0)));
        assert_eq!(parse_prefix("fd00::/8"), Ok((ip("fd00::"), 8)));
        assert_eq!(parse_prefix("::1"), Ok((ip("::1"), 128)));
        assert_eq!(parse_prefix("::/0"), Ok((ip("::"), 0)));
        assert_eq!(parse_prefix("10.0.0.0/032"), Ok((ip("10.0.0.0"), 32)));
    }

    #[test]
    fn parse_prefix_rejects_malformed_input_with_clear_errors() {
        let bad_addr = [
            "",
            "/24",
            "10.0.0/24",
            "10.0.0.256/8",
            "hello",
            "fd00::g/64",
            "[::1]/128",
        ];
        for text in bad_addr {
            let err = parse_prefix(text).unwrap_err();
            assert_eq!(
                err,
                PrefixError::InvalidAddress(text.to_owned()),
                "{text:?}"
            );
            assert!(err.to_string().contains("address"), "{err}");
        }
        for text in [
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/-1",
            "10.0.0.0/8/8",
            "::/x",
            "::/99999999999",
        ] {
            let err = parse_prefix(text).unwrap_err();
            assert_eq!(err, PrefixError::InvalidLength(text.to_owned()), "{text:?}");
            assert!(err.to_string().contains(text), "{err}");
        }
        assert_eq!(
            parse_prefix("10.0.0.0/33"),
            Err(PrefixError::TooLong {
                addr: ip("10.0.0.0"),
                prefix_len: 33
            })
        );
        let err = parse_prefix("fd00::/300").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid prefix fd00::/300: an IPv6 prefix length is at most 128"
        );
    }

    #[test]
    fn remove_falls_back_to_shorter_prefix_and_frees_nodes() {
        let mut t = table(&[
            ("10.0.0.0/8", 1),
            ("10.1.0.0/16", 2),
            ("10.1.2.0/24", 3),
            ("10.1.3.0/24", 4),
        ]);
        assert_eq!(t.remove(ip("10.1.2.0"), 24), Some(3));
        assert_eq!(t.lookup(ip("10.1.2.1")), Some(&2));
        assert_eq!(t.remove(ip("10.1.2.0"), 24), None);
        // A branch point that is not itself a prefix is not removable.
        assert_eq!(t.remove(ip("10.0.0.0"), 7), None);
        assert_eq!(t.remove(ip("10.1.0.0"), 16), Some(2));
        assert_eq!(t.lookup(ip("10.1.2.1")), Some(&1));
        assert_eq!(t.lookup(ip("10.1.3.1")), Some(&4));
        check_invariants(&t);
        assert_eq!(t.remove(ip("10.0.0.0"), 8), Some(1));
        assert_eq!(t.remove(ip("10.1.3.0"), 24), Some(4));
        assert!(t.is_empty());
        assert_eq!(t.lookup(ip("10.1.3.1")), None);
        check_invariants(&t);
        // The arena is reused rather than grown.
        let arena = t.nodes.len();
        for i in 0..4u8 {
            t.insert(IpAddr::V4(Ipv4Addr::new(10, i, 0, 0)), 16, u32::from(i))
                .unwrap();
        }
        assert!(t.nodes.len() <= arena.max(7));
        check_invariants(&t);
    }

    #[test]
    fn remove_value_drops_all_prefixes_of_a_peer() {
        let mut t = table(&[
            ("10.0.0.0/8", 1),
            ("10.1.0.0/16", 2),
            ("10.1.2.0/24", 1),
            ("192.0.2.7/32", 1),
            ("fd00::/64", 1),
            ("fd00::1/128", 2),
        ]);
        assert_eq!(t.remove_value(&1), 4);
        assert_eq!(t.len(), 2);
        assert_eq!(t.lookup(ip("10.1.2.1")), Some(&2));
        assert_eq!(t.lookup(ip("10.2.0.0")), None);
        assert_eq!(t.lookup(ip("192.0.2.7")), None);
        assert_eq!(t.lookup(ip("fd00::2")), None);
        assert_eq!(t.lookup(ip("fd00::1")), Some(&2));
        assert_eq!(t.remove_value(&1), 0);
        check_invariants(&t);
    }

    #[test]
    fn iter_lists_networks_in_order() {
        let t = table(&[
            ("fd00::/8", 5),
            ("10.1.2.0/24", 3),
            ("10.0.0.0/8", 1),
            ("9.0.0.0/8", 0),
            ("10.1.2.0/25", 4),
            ("::/0", 6),
        ]);
        let got: Vec<_> = t.iter().map(|(a, l, &v)| (a, l, v)).collect();
        assert_eq!(
            got,
            vec![
                (ip("9.0.0.0"), 8, 0),
                (ip("10.0.0.0"), 8, 1),
                (ip("10.1.2.0"), 24, 3),
                (ip("10.1.2.0"), 25, 4),
                (ip("::"), 0, 6),
                (ip("fd00::"), 8, 5),
            ]
        );
        assert!(format!("{t:?}").contains("10.1.2.0"));
    }

    /// splitmix64: a dependency-free deterministic generator for the tests.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn u128(&mut self) -> u128 {
            (u128::from(self.next()) << 64) | u128::from(self.next())
        }
    }

    /// A random address, clustered under a few top-level blocks so that
    /// prefixes nest and share branches often.
    fn random_addr(rng: &mut Rng, v6: bool) -> IpAddr {
        let top = [0x0a, 0x0b, 0xc0, 0xfd][rng.below(4) as usize];
        if v6 {
            let bits = (rng.u128() >> 8) | (u128::from(top as u8) << 120);
            IpAddr::V6(Ipv6Addr::from(bits))
        } else {
            let bits = (rng.next() as u32 >> 8) | (top << 24);
            IpAddr::V4(Ipv4Addr::from(bits))
        }
    }

    fn random_len(rng: &mut Rng, v6: bool) -> u8 {
        let max = if v6 { 128 } else { 32 };
        match rng.below(20) {
            0 => 0,
            1..=3 => max,
            _ => rng.below(u64::from(max) + 1) as u8,
        }
    }

    /// The naive reference: every prefix, scanned linearly.
    fn oracle_lookup(oracle: &BTreeMap<(usize, u128, u8), u32>, addr: IpAddr) -> Option<u32> {
        let (key, family) = key_of(addr);
        oracle
            .iter()
            .filter(|((f, k, l), _)| *f == family && (key & mask(*l)) == *k)
            .max_by_key(|((_, _, l), _)| *l)
            .map(|(_, &v)| v)
    }

    #[test]
    fn matches_linear_scan_oracle_on_random_prefixes() {
        let mut rng = Rng(0x00a1_10ed);
        let mut t = AllowedIps::new();
        let mut oracle = BTreeMap::new();
        let mut inserted = Vec::new();
        for v in 0..1_000u32 {
            let v6 = rng.below(2) == 0;
            let addr = random_addr(&mut rng, v6);
            let len = random_len(&mut rng, v6);
            let (key, family) = key_of(addr);
            let expect = oracle.insert((family, key & mask(len), len), v);
            assert_eq!(t.insert(addr, len, v), Ok(expect));
            inserted.push((addr, len));
        }
        check_invariants(&t);
        assert_eq!(t.len(), oracle.len());
        let listed: Vec<_> = t
            .iter()
            .map(|(a, l, &v)| (key_of(a).1, key_of(a).0, l, v))
            .collect();
        let expected: Vec<_> = oracle.iter().map(|(&(f, k, l), &v)| (f, k, l, v)).collect();
        assert_eq!(listed, expected);

        let mut hits = 0;
        let mut lookups = |t: &AllowedIps<u32>, oracle: &BTreeMap<_, _>, rng: &mut Rng| {
            for _ in 0..50_000 {
                let addr = if rng.below(10) < 7 {
                    // Inside (or next to) a known prefix: vary its host bits.
                    let (base, len) = inserted[rng.below(inserted.len() as u64) as usize];
                    let (key, family) = key_of(base);
                    let bits = (key & mask(len)) | (rng.u128() & !mask(len));
                    let bits = if rng.below(8) == 0 {
                        bits ^ (1 << 127 >> len.min(127))
                    } else {
                        bits
                    };
                    addr_of(if family == V4 { bits & mask(32) } else { bits }, family)
                } else {
                    let v6 = rng.below(2) == 0;
                    random_addr(rng, v6)
                };
                let want = oracle_lookup(oracle, addr);
                assert_eq!(t.lookup(addr).copied(), want, "{addr}");
                hits += usize::from(want.is_some());
            }
        };
        lookups(&t, &oracle, &mut rng);

        // Remove a third (and some absent prefixes), then compare again.
        for _ in 0..400 {
            let (addr, len) = if rng.below(4) == 0 {
                let v6 = rng.below(2) == 0;
                (random_addr(&mut rng, v6), random_len(&mut rng, v6))
            } else {
                inserted[rng.below(inserted.len() as u64) as usize]
            };
            let (key, family) = key_of(addr);
            let expect = oracle.remove(&(family, key & mask(len), len));
            assert_eq!(t.remove(addr, len), expect, "remove {addr}/{len}");
        }
        check_invariants(&t);
        assert_eq!(t.len(), oracle.len());
        lookups(&t, &oracle, &mut rng);
        assert!(hits > 50_000, "only {hits} of 100000 lookups matched");
    }

    #[test]
    fn ten_thousand_peers_with_three_prefixes_each() {
        const PEERS: u32 = 10_000;
        const HUB: u32 = PEERS;
        let mut t = AllowedIps::new();
        // A covering route through a hub, so misses on a peer fall back to it.
        t.insert(ip("10.0.0.0"), 8, HUB).unwrap();
        let v4 = |a: u8, i: u32, d: u8| IpAddr::V4(Ipv4Addr::new(a, (i >> 8) as u8, i as u8, d));
        let v6 = |i: u32, low: u16| IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, i as u16, low));
        for i in 0..PEERS {
            assert_eq!(t.insert(v4(10, i, 1), 32, i), Ok(None));
            assert_eq!(t.insert(v4(11, i, 0), 24, i), Ok(None));
            assert_eq!(t.insert(v6(i, 1), 128, i), Ok(None));
        }
        assert_eq!(t.len(), 3 * PEERS as usize + 1);
        check_invariants(&t);
        for i in 0..PEERS {
            assert_eq!(t.lookup(v4(10, i, 1)), Some(&i));
            assert_eq!(t.lookup(v4(10, i, 2)), Some(&HUB));
            assert_eq!(t.lookup(v4(11, i, 0)), Some(&i));
            assert_eq!(t.lookup(v4(11, i, 255)), Some(&i));
            assert_eq!(t.lookup(v6(i, 1)), Some(&i));
            assert_eq!(t.lookup(v6(i, 2)), None);
        }
        assert_eq!(t.lookup(ip("11.255.0.1")), None);
        // Dropping every tenth peer leaves the rest intact.
        for i in (0..PEERS).step_by(10) {
            assert_eq!(t.remove_value(&i), 3);
        }
        check_invariants(&t);
        for i in 0..PEERS {
            let own = if i % 10 != 0 { Some(&i) } else { None };
            assert_eq!(t.lookup(v4(10, i, 1)), own.or(Some(&HUB)));
            assert_eq!(t.lookup(v4(11, i, 7)), own);
            assert_eq!(t.lookup(v6(i, 1)), own);
        }
    }
}
