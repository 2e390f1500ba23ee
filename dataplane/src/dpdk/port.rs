//! Ethernet ports: any DPDK device (a PCI NIC or SR-IOV VF, or a vdev such as
//! net_af_packet, net_tap, net_memif, net_pcap, net_ring, net_null), with N
//! rx/tx queue pairs, symmetric RSS where the device supports it, MTU, link
//! status and statistics.

use super::{DpdkError, Errno, MbufBurst, Mempool};
use core::marker::PhantomData;
use std::ffi::{CStr, CString};

/// The 40-byte Toeplitz key of repeated 0x6d5a: with it the hash of
/// (src, dst) equals the hash of (dst, src), so both directions of a flow
/// land on the same queue and worker (Woo & Park, "Scalable TCP Session
/// Monitoring with Symmetric Receive-side Scaling", 2012).
const SYMMETRIC_RSS_KEY: [u8; 52] = {
    let mut key = [0u8; 52];
    let mut i = 0;
    while i < key.len() {
        key[i] = if i % 2 == 0 { 0x6d } else { 0x5a };
        i += 1;
    }
    key
};

/// RTE_ETH_RSS_IPV4 ..= RTE_ETH_RSS_IPV6_UDP_EX (bits 2 to 17): IP, TCP and
/// UDP over both families. DPDK defines these with RTE_BIT64, which bindgen
/// cannot evaluate.
const RSS_HF_IP_TCP_UDP: u64 = ((1u64 << 18) - 1) & !0b11;

/// How to bring a port up.
#[derive(Debug, Clone)]
pub struct PortConfig {
    /// rx/tx queue pairs: one per worker.
    pub queues: u16,
    pub rx_descriptors: u16,
    pub tx_descriptors: u16,
    /// None keeps the device's default MTU.
    pub mtu: Option<u16>,
    /// Receive frames for every MAC address (needed on af_packet and
    /// when we answer for addresses not our own).
    pub promiscuous: bool,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            queues: 1,
            rx_descriptors: 1024,
            tx_descriptors: 1024,
            mtu: None,
            promiscuous: true,
        }
    }
}

/// Link state as the driver reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStatus {
    pub up: bool,
    pub speed_mbps: u32,
    pub full_duplex: bool,
}

/// The basic counters every driver keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Dropped by the NIC because no rx descriptor was free.
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_no_mbuf: u64,
}

/// A started DPDK port. Dropping it stops and closes the device, which
/// frees the mbufs its queues hold.
pub struct Port {
    id: u16,
    name: String,
    queues: u16,
    rss: bool,
    started: bool,
}

impl Port {
    /// The DPDK port id of a device that EAL probed: a PCI address as given
    /// to `-a`, or a vdev's name (the part of its argument string before the
    /// first comma, e.g. `net_af_packet0`).
    pub fn find(device: &str) -> Result<u16, DpdkError> {
        let name = device.split(',').next().unwrap_or(device).trim();
        let cname = CString::new(name).map_err(|_| DpdkError::NoSuchPort {
            device: device.into(),
        })?;
        let mut id = 0u16;
        // SAFETY: cname is valid for the call; id is a valid out pointer.
        let ret = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        if ret != 0 {
            return Err(DpdkError::NoSuchPort {
                device: device.into(),
            });
        }
        Ok(id)
    }

    /// Configures and starts port `id`: `config.queues` rx/tx queue pairs
    /// whose rx side allocates from `pool`, RSS when there is more than one
    /// queue and the device hashes, the MTU, and promiscuous mode.
    pub fn start(
        id: u16,
        name: &str,
        config: &PortConfig,
        pool: &Mempool,
    ) -> Result<Port, DpdkError> {
        let err = |op: &'static str, ret: i32| DpdkError::Port {
            port: name.into(),
            op,
            errno: Errno::from_ret(ret),
        };
        // SAFETY: rte_eth_dev_info is plain data; zeroed is a valid value.
        let mut info: dpdk_sys::rte_eth_dev_info = unsafe { core::mem::zeroed() };
        // SAFETY: info is a valid out pointer; an invalid id returns -ENODEV.
        let ret = unsafe { dpdk_sys::rte_eth_dev_info_get(id, &mut info) };
        if ret != 0 {
            return Err(err("rte_eth_dev_info_get", ret));
        }
        if config.queues == 0
            || config.queues > info.max_rx_queues
            || config.queues > info.max_tx_queues
        {
            return Err(DpdkError::InvalidArgument {
                what: format!("port {name}: queues = {}", config.queues),
                why: format!(
                    "the device supports 1 to {} queue pairs",
                    info.max_rx_queues.min(info.max_tx_queues)
                ),
            });
        }

        let mut key = SYMMETRIC_RSS_KEY;
        // SAFETY: rte_eth_conf is plain data; zeroed is DPDK's documented default.
        let mut conf: dpdk_sys::rte_eth_conf = unsafe { core::mem::zeroed() };
        let rss_hf = info.flow_type_rss_offloads & RSS_HF_IP_TCP_UDP;
        let rss = config.queues > 1 && rss_hf != 0;
        if rss {
            conf.rxmode.mq_mode = dpdk_sys::RTE_ETH_MQ_RX_RSS;
            let key_len = match info.hash_key_size {
                0 => 40,
                n => n.min(key.len() as u8),
            };
            conf.rx_adv_conf.rss_conf.rss_key = key.as_mut_ptr();
            conf.rx_adv_conf.rss_conf.rss_key_len = key_len;
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
        } else if config.queues > 1 {
            log::warn!("port {name}: device has no RSS; rx queues beyond 0 will only see what the device spreads itself");
        }

        // SAFETY: conf and key live across the call; DPDK copies the key.
        let ret =
            unsafe { dpdk_sys::rte_eth_dev_configure(id, config.queues, config.queues, &conf) };
        if ret != 0 {
            return Err(err("rte_eth_dev_configure", ret));
        }
        // The port is configured from here on: close it on any later failure.
        let mut port = Port {
            id,
            name: name.into(),
            queues: config.queues,
            rss,
            started: false,
        };

        let (mut nb_rx, mut nb_tx) = (config.rx_descriptors, config.tx_descriptors);
        // SAFETY: valid out pointers; the driver clamps to its limits.
        let ret = unsafe { dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut nb_rx, &mut nb_tx) };
        if ret != 0 {
            return Err(err("rte_eth_dev_adjust_nb_rx_tx_desc", ret));
        }
        if let Some(mtu) = config.mtu {
            // SAFETY: plain call on a configured port.
            let ret = unsafe { dpdk_sys::rte_eth_dev_set_mtu(id, mtu) };
            if ret != 0 {
                return Err(err("rte_eth_dev_set_mtu", ret));
            }
        }
        // SAFETY: plain query; negative (SOCKET_ID_ANY) is acceptable below.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(id) };
        let socket = if socket < 0 { 0 } else { socket as u32 };
        for q in 0..config.queues {
            // SAFETY: the pool outlives the port (callers drop ports first);
            // a null rx_conf asks for the driver's defaults.
            let ret = unsafe {
                dpdk_sys::rte_eth_rx_queue_setup(
                    id,
                    q,
                    nb_rx,
                    socket,
                    core::ptr::null(),
                    pool.as_ptr(),
                )
            };
            if ret != 0 {
                return Err(err("rte_eth_rx_queue_setup", ret));
            }
            // SAFETY: a null tx_conf asks for the driver's defaults.
            let ret = unsafe {
                dpdk_sys::rte_eth_tx_queue_setup(id, q, nb_tx, socket, core::ptr::null())
            };
            if ret != 0 {
                return Err(err("rte_eth_tx_queue_setup", ret));
            }
        }
        if config.promiscuous {
            // SAFETY: plain call. Devices without the feature say ENOTSUP,
            // which is fine: they deliver what they deliver.
            let ret = unsafe { dpdk_sys::rte_eth_promiscuous_enable(id) };
            if ret != 0 && ret != -(libc::ENOTSUP) {
                return Err(err("rte_eth_promiscuous_enable", ret));
            }
        }
        // SAFETY: every queue is set up.
        let ret = unsafe { dpdk_sys::rte_eth_dev_start(id) };
        if ret != 0 {
            return Err(err("rte_eth_dev_start", ret));
        }
        port.started = true;
        Ok(port)
    }

    pub fn id(&self) -> u16 {
        self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn queues(&self) -> u16 {
        self.queues
    }

    /// Whether RSS spreads received packets over the queues.
    pub fn rss(&self) -> bool {
        self.rss
    }

    /// The driver's name, e.g. `net_af_packet` or `net_ice`.
    pub fn driver(&self) -> String {
        // SAFETY: as in start().
        let mut info: dpdk_sys::rte_eth_dev_info = unsafe { core::mem::zeroed() };
        // SAFETY: valid out pointer and port id.
        if unsafe { dpdk_sys::rte_eth_dev_info_get(self.id, &mut info) } != 0
            || info.driver_name.is_null()
        {
            return "unknown".into();
        }
        // SAFETY: driver_name points to a static NUL-terminated string.
        unsafe { CStr::from_ptr(info.driver_name) }
            .to_string_lossy()
            .into_owned()
    }

    /// The port's own MAC address.
    pub fn mac_addr(&self) -> Result<[u8; 6], DpdkError> {
        let mut addr = dpdk_sys::rte_ether_addr::default();
        // SAFETY: addr is a valid out pointer.
        let ret = unsafe { dpdk_sys::rte_eth_macaddr_get(self.id, &mut addr) };
        if ret != 0 {
            return Err(self.error("rte_eth_macaddr_get", ret));
        }
        Ok(addr.addr_bytes)
    }

    /// The current link state, without waiting for autonegotiation.
    pub fn link(&self) -> Result<LinkStatus, DpdkError> {
        let mut link = dpdk_sys::rte_eth_link::default();
        // SAFETY: link is a valid out pointer.
        let ret = unsafe { dpdk_sys::rte_eth_link_get_nowait(self.id, &mut link) };
        if ret != 0 {
            return Err(self.error("rte_eth_link_get_nowait", ret));
        }
        Ok(LinkStatus {
            up: u32::from(link.link_status()) == dpdk_sys::RTE_ETH_LINK_UP,
            speed_mbps: link.link_speed,
            full_duplex: link.link_duplex() != 0,
        })
    }

    /// The driver's basic counters.
    pub fn stats(&self) -> Result<PortStats, DpdkError> {
        let mut s = dpdk_sys::rte_eth_stats::default();
        // SAFETY: s is a valid out pointer.
        let ret = unsafe { dpdk_sys::rte_eth_stats_get(self.id, &mut s) };
        if ret != 0 {
            return Err(self.error("rte_eth_stats_get", ret));
        }
        Ok(PortStats {
            rx_packets: s.ipackets,
            tx_packets: s.opackets,
            rx_bytes: s.ibytes,
            tx_bytes: s.obytes,
            rx_missed: s.imissed,
            rx_errors: s.ierrors,
            tx_errors: s.oerrors,
            rx_no_mbuf: s.rx_nombuf,
        })
    }

    /// The driver's extended counters, by name. Control path only: allocates.
    pub fn xstats(&self) -> Result<Vec<(String, u64)>, DpdkError> {
        // SAFETY: a null buffer with size 0 asks for the count.
        let n = unsafe { dpdk_sys::rte_eth_xstats_get_names(self.id, core::ptr::null_mut(), 0) };
        if n < 0 {
            return Err(self.error("rte_eth_xstats_get_names", n));
        }
        let n = n as usize;
        let mut names = vec![dpdk_sys::rte_eth_xstat_name::default(); n];
        let mut values = vec![dpdk_sys::rte_eth_xstat::default(); n];
        // SAFETY: both buffers hold n entries.
        let got_names =
            unsafe { dpdk_sys::rte_eth_xstats_get_names(self.id, names.as_mut_ptr(), n as u32) };
        // SAFETY: as above.
        let got_values =
            unsafe { dpdk_sys::rte_eth_xstats_get(self.id, values.as_mut_ptr(), n as u32) };
        if got_names < 0 || got_values < 0 {
            return Err(self.error("rte_eth_xstats_get", got_names.min(got_values)));
        }
        let count = (got_names as usize).min(got_values as usize).min(n);
        Ok(values[..count]
            .iter()
            .filter_map(|v| {
                let name = names.get(v.id as usize)?;
                // SAFETY: DPDK NUL-terminates each name within its array.
                let text = unsafe { CStr::from_ptr(name.name.as_ptr()) };
                Some((text.to_string_lossy().into_owned(), v.value))
            })
            .collect())
    }

    /// The rx and tx handles of queue pair `queue`, for the worker that owns
    /// it. Each queue must be polled by one thread only: hand each pair to
    /// exactly one worker.
    pub fn queue_pair(&self, queue: u16) -> Option<(RxQueue<'_>, TxQueue<'_>)> {
        (queue < self.queues).then_some((
            RxQueue {
                port: self.id,
                queue,
                _port: PhantomData,
            },
            TxQueue {
                port: self.id,
                queue,
                _port: PhantomData,
            },
        ))
    }

    fn error(&self, op: &'static str, ret: i32) -> DpdkError {
        DpdkError::Port {
            port: self.name.clone(),
            op,
            errno: Errno::from_ret(ret),
        }
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        // SAFETY: the port was configured by us; no queue handle outlives
        // `self` (they borrow it), so no worker polls it any more.
        unsafe {
            let ret = dpdk_sys::rte_eth_dev_stop(self.id);
            if ret != 0 {
                log::warn!(
                    "port {}: rte_eth_dev_stop: {}",
                    self.name,
                    Errno::from_ret(ret)
                );
            }
            let ret = dpdk_sys::rte_eth_dev_close(self.id);
            if ret != 0 {
                log::warn!(
                    "port {}: rte_eth_dev_close: {}",
                    self.name,
                    Errno::from_ret(ret)
                );
            }
        }
    }
}

impl core::fmt::Debug for Port {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Port")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("queues", &self.queues)
            .field("rss", &self.rss)
            .finish()
    }
}

/// The receive side of one queue of a port, owned by one worker.
#[derive(Debug)]
pub struct RxQueue<'p> {
    port: u16,
    queue: u16,
    _port: PhantomData<&'p Port>,
}

impl RxQueue<'_> {
    /// Receives up to the burst's free space; returns how many arrived.
    #[inline(always)]
    pub fn rx_burst(&mut self, burst: &mut MbufBurst) -> usize {
        let spare = burst.spare_ptrs();
        // SAFETY: spare has room for its length in pointers; the port and
        // queue are started and polled only through this handle.
        let n = unsafe {
            dpdk_sys::patronus_rte_eth_rx_burst(
                self.port,
                self.queue,
                spare.as_mut_ptr(),
                spare.len() as u16,
            )
        };
        // SAFETY: DPDK wrote n mbufs that we now own into the spare slots.
        unsafe { burst.set_filled(usize::from(n)) };
        usize::from(n)
    }

    pub fn port_id(&self) -> u16 {
        self.port
    }
}

/// The transmit side of one queue of a port, owned by one worker.
#[derive(Debug)]
pub struct TxQueue<'p> {
    port: u16,
    queue: u16,
    _port: PhantomData<&'p Port>,
}

impl TxQueue<'_> {
    /// Hands the burst's packets to the device; those it does not take stay
    /// in the burst (at the front). Returns how many were sent.
    #[inline(always)]
    pub fn tx_burst(&mut self, burst: &mut MbufBurst) -> usize {
        let ptrs = burst.filled_ptrs();
        // SAFETY: ptrs holds owned mbufs; the driver takes ownership of the
        // first n it returns, which we then forget.
        let n = unsafe {
            dpdk_sys::patronus_rte_eth_tx_burst(
                self.port,
                self.queue,
                ptrs.as_mut_ptr(),
                ptrs.len() as u16,
            )
        };
        burst.consume_front(usize::from(n));
        usize::from(n)
    }

    pub fn port_id(&self) -> u16 {
        self.port
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Toeplitz hash as NICs compute it (Microsoft RSS specification).
    fn toeplitz(key: &[u8], input: &[u8]) -> u32 {
        let mut hash = 0u32;
        let mut window = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
        for (i, byte) in input.iter().enumerate() {
            for bit in 0..8 {
                if byte & (0x80 >> bit) != 0 {
                    hash ^= window;
                }
                let next_key_bit = key.get(4 + i).map_or(0, |k| (k >> (7 - bit)) & 1);
                window = (window << 1) | u32::from(next_key_bit);
            }
        }
        hash
    }

    #[test]
    fn the_rss_key_hashes_both_directions_of_a_flow_alike() {
        let mut seed = 0x1234_5678u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        for _ in 0..1000 {
            let (src, dst) = (next().to_be_bytes(), next().to_be_bytes());
            let (sport, dport) = ((next() as u16).to_be_bytes(), (next() as u16).to_be_bytes());
            let forward = [&src[..], &dst, &sport, &dport].concat();
            let reverse = [&dst[..], &src, &dport, &sport].concat();
            assert_eq!(
                toeplitz(&SYMMETRIC_RSS_KEY[..40], &forward),
                toeplitz(&SYMMETRIC_RSS_KEY[..40], &reverse)
            );
        }
    }

    #[test]
    fn the_toeplitz_reference_matches_the_rss_specification() {
        // Microsoft's verification suite: the default key, IPv4 only,
        // 66.9.149.187 -> 161.142.100.80 hashes to 0x323e8fc2.
        let key: [u8; 40] = [
            0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
            0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
            0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
        ];
        assert_eq!(
            toeplitz(&key, &[66, 9, 149, 187, 161, 142, 100, 80]),
            0x323e_8fc2
        );
    }

    #[test]
    fn the_rss_hash_field_mask_covers_ip_tcp_and_udp_only() {
        assert_eq!(RSS_HF_IP_TCP_UDP & 0b11, 0);
        assert_eq!(RSS_HF_IP_TCP_UDP >> 18, 0);
        assert_eq!(RSS_HF_IP_TCP_UDP.count_ones(), 16);
    }
}
