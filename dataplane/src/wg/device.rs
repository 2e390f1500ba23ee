//! The control thread's side of WireGuard: every peer's handshake state and
//! timers, the DoS defences, and the decisions the workers carry out
//! (whitepaper 5.3, 5.4 and 6). Sans-I/O: time, wall-clock time and
//! randomness come in as arguments, and what to do goes out as
//! [`DeviceOutput`]s that the driver in the daemon executes.

use crate::wg::cookie::{Admission, CookieChecker};
use crate::wg::datapath::peer_of_index;
use crate::wg::keys::{PresharedKey, PrivateKey, PublicKey};
use crate::wg::messages::{self, MessageKind, COOKIE_REPLY_LEN, INITIATION_LEN, RESPONSE_LEN};
use crate::wg::noise::{Handshake, HandshakeError, SessionKeys, StaticIdentity};
use crate::wg::ratelimit::RateLimiter;
use crate::wg::timers::{PeerTimers, TimerAction, REKEY_TIMEOUT_JITTER_MAX};
use rand_core::CryptoRngCore;
use std::collections::HashMap;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, SystemTime};

/// One peer as configured.
#[derive(Debug)]
pub struct PeerSpec {
    pub public_key: PublicKey,
    pub preshared_key: Option<PresharedKey>,
    pub endpoint: Option<SocketAddrV4>,
    pub persistent_keepalive: u16,
}

/// What the driver must do.
#[derive(Debug)]
pub enum DeviceOutput {
    /// Send this handshake or cookie message to `to` from our listen port.
    Transmit { to: SocketAddrV4, message: Vec<u8> },
    /// Give the workers a new keypair.
    InstallKeypair { peer: u32, keys: SessionKeys },
    /// Make the workers forget the peer's keypairs.
    ClearKeys { peer: u32 },
    /// Have the worker send an (encrypted, empty) keepalive to the peer.
    SendKeepalive { peer: u32 },
    /// A session we initiated is ready: re-inject the packets queued for the
    /// peer, or send a keepalive when none are queued (the initiator must
    /// send first to confirm the keypair).
    FlushQueue { peer: u32 },
    /// The handshake gave up (REKEY_ATTEMPT_TIME): drop the queued packets.
    DropQueue { peer: u32 },
    /// Send the peer's packets here from now on.
    SetEndpoint { peer: u32, endpoint: SocketAddrV4 },
}

/// What the workers reported about a peer since the last look (the driver
/// turns their TSC stamps into this clock).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Activity {
    pub sent: Option<Duration>,
    pub data_sent: Option<Duration>,
    pub received: Option<Duration>,
    pub data_received: Option<Duration>,
    pub endpoint: Option<SocketAddrV4>,
    pub confirmed_index: Option<u32>,
    pub rekey_wanted: bool,
}

/// Per-peer counters for the API and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerStatus {
    pub handshakes_completed: u64,
    pub handshake_attempts: u64,
    /// Wall-clock time of the latest completed handshake.
    pub last_handshake: Option<SystemTime>,
}

struct DevicePeer {
    public_key: PublicKey,
    handshake: Handshake,
    timers: PeerTimers,
    endpoint: Option<SocketAddrV4>,
    generation: u8,
    /// The responder's keypair index awaiting the initiator's first packet.
    awaiting_confirmation: Option<u32>,
    status: PeerStatus,
}

/// Device-wide counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceStats {
    pub initiations_received: u64,
    pub responses_received: u64,
    pub cookie_replies_sent: u64,
    pub cookie_replies_received: u64,
    pub rate_limited: u64,
    pub rejected: u64,
}

/// All peers of one node.
pub struct Device {
    identity: StaticIdentity,
    checker: CookieChecker,
    limiter: RateLimiter,
    peers: Vec<DevicePeer>,
    by_key: HashMap<[u8; 32], u32>,
    index_mask: u32,
    stats: DeviceStats,
}

impl Device {
    /// Peers get ids 0.. in the order given. `index_mask` must be the one
    /// the workers use to find peers by receiver index.
    pub fn new(
        private_key: PrivateKey,
        peers: Vec<PeerSpec>,
        index_mask: u32,
        now: Duration,
        rng: &mut impl CryptoRngCore,
    ) -> Device {
        let identity = StaticIdentity::new(private_key);
        let checker = CookieChecker::new(&identity, now, rng);
        let limiter = RateLimiter::new(rng);
        let mut by_key = HashMap::with_capacity(peers.len());
        let peers = peers
            .into_iter()
            .enumerate()
            .map(|(id, spec)| {
                by_key.insert(spec.public_key.0, id as u32);
                let mut timers = PeerTimers::new();
                timers.set_persistent_keepalive(spec.persistent_keepalive);
                DevicePeer {
                    handshake: Handshake::new(&identity, spec.public_key, spec.preshared_key),
                    public_key: spec.public_key,
                    timers,
                    endpoint: spec.endpoint,
                    generation: 0,
                    awaiting_confirmation: None,
                    status: PeerStatus::default(),
                }
            })
            .collect();
        Device {
            identity,
            checker,
            limiter,
            peers,
            by_key,
            index_mask,
            stats: DeviceStats::default(),
        }
    }

    pub fn public_key(&self) -> PublicKey {
        self.identity.public_key()
    }

    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// The peer id of a public key.
    pub fn peer_id(&self, key: &PublicKey) -> Option<u32> {
        self.by_key.get(&key.0).copied()
    }

    pub fn peer_status(&self, peer: u32) -> Option<PeerStatus> {
        self.peers.get(peer as usize).map(|p| p.status)
    }

    pub fn peer_public_key(&self, peer: u32) -> Option<PublicKey> {
        self.peers.get(peer as usize).map(|p| p.public_key)
    }

    pub fn peer_endpoint(&self, peer: u32) -> Option<SocketAddrV4> {
        self.peers.get(peer as usize)?.endpoint
    }

    pub fn stats(&self) -> DeviceStats {
        self.stats
    }

    fn next_index(&mut self, peer: u32) -> u32 {
        let p = &mut self.peers[peer as usize];
        p.generation = p.generation.wrapping_add(1);
        crate::wg::datapath::local_index(self.index_mask, peer, p.generation)
    }

    /// Handles a handshake initiation, response or cookie reply that
    /// arrived from `src`. `under_load` turns on the cookie defence.
    #[allow(clippy::too_many_arguments)]
    pub fn handle_message(
        &mut self,
        src: SocketAddrV4,
        msg: &[u8],
        under_load: bool,
        now: Duration,
        wall: SystemTime,
        rng: &mut impl CryptoRngCore,
        out: &mut Vec<DeviceOutput>,
    ) -> Result<(), HandshakeError> {
        let result = self.handle(src, msg, under_load, now, wall, rng, out);
        if result.is_err() {
            self.stats.rejected += 1;
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn handle(
        &mut self,
        src: SocketAddrV4,
        msg: &[u8],
        under_load: bool,
        now: Duration,
        wall: SystemTime,
        rng: &mut impl CryptoRngCore,
        out: &mut Vec<DeviceOutput>,
    ) -> Result<(), HandshakeError> {
        match messages::classify(msg).ok_or(HandshakeError::Malformed)? {
            MessageKind::Initiation => {
                self.stats.initiations_received += 1;
                if !self.admit(src, msg, under_load, now, rng, out)? {
                    return Ok(());
                }
                let pending = self.identity.open_initiation(msg)?;
                let peer = self
                    .peer_id(pending.remote_static())
                    .ok_or(HandshakeError::UnknownPeer)?;
                let index = self.next_index(peer);
                let mut response = [0u8; RESPONSE_LEN];
                let p = &mut self.peers[peer as usize];
                let keys = p
                    .handshake
                    .respond(pending, index, now, rng, &mut response)?;
                p.timers.on_session_derived(now, false);
                p.timers.on_handshake_responded(now);
                p.timers.on_authenticated_packet_received(now);
                p.timers.on_authenticated_packet_sent(now);
                p.awaiting_confirmation = Some(keys.local_index);
                p.status.handshakes_completed += 1;
                p.status.last_handshake = Some(wall);
                if p.endpoint != Some(src) {
                    p.endpoint = Some(src);
                    out.push(DeviceOutput::SetEndpoint {
                        peer,
                        endpoint: src,
                    });
                }
                out.push(DeviceOutput::InstallKeypair { peer, keys });
                out.push(DeviceOutput::Transmit {
                    to: src,
                    message: response.to_vec(),
                });
            }
            MessageKind::Response => {
                self.stats.responses_received += 1;
                if !self.admit(src, msg, under_load, now, rng, out)? {
                    return Ok(());
                }
                let receiver = messages::Response::new_checked(msg)
                    .map_err(|_| HandshakeError::Malformed)?
                    .receiver_index();
                let peer = peer_of_index(self.index_mask, receiver);
                let p = self
                    .peers
                    .get_mut(peer as usize)
                    .ok_or(HandshakeError::WrongIndex)?;
                let keys = p.handshake.consume_response(&self.identity, msg)?;
                p.timers.on_handshake_complete(now);
                p.timers.on_session_derived(now, true);
                p.timers.on_authenticated_packet_received(now);
                p.awaiting_confirmation = None;
                p.status.handshakes_completed += 1;
                p.status.last_handshake = Some(wall);
                if p.endpoint != Some(src) {
                    p.endpoint = Some(src);
                    out.push(DeviceOutput::SetEndpoint {
                        peer,
                        endpoint: src,
                    });
                }
                out.push(DeviceOutput::InstallKeypair { peer, keys });
                // The initiator must send first (whitepaper 5.4.6): the queued
                // packets confirm the session, or a keepalive when none are.
                out.push(DeviceOutput::FlushQueue { peer });
            }
            MessageKind::CookieReply => {
                self.stats.cookie_replies_received += 1;
                let receiver = messages::CookieReply::new_checked(msg)
                    .map_err(|_| HandshakeError::Malformed)?
                    .receiver_index();
                let peer = peer_of_index(self.index_mask, receiver);
                let p = self
                    .peers
                    .get_mut(peer as usize)
                    .ok_or(HandshakeError::WrongIndex)?;
                p.handshake.consume_cookie_reply(msg, now)?;
            }
            MessageKind::Transport => return Err(HandshakeError::Malformed),
        }
        Ok(())
    }

    /// mac1 always; under load, mac2 (or a cookie reply) and the
    /// per-source rate limit. Returns whether to go on.
    fn admit(
        &mut self,
        src: SocketAddrV4,
        msg: &[u8],
        under_load: bool,
        now: Duration,
        rng: &mut impl CryptoRngCore,
        out: &mut Vec<DeviceOutput>,
    ) -> Result<bool, HandshakeError> {
        let mut reply = [0u8; COOKIE_REPLY_LEN];
        match self
            .checker
            .check(msg, SocketAddr::V4(src), under_load, now, rng, &mut reply)?
        {
            Admission::SendCookieReply => {
                self.stats.cookie_replies_sent += 1;
                out.push(DeviceOutput::Transmit {
                    to: src,
                    message: reply.to_vec(),
                });
                Ok(false)
            }
            Admission::Accept => {
                if under_load && !self.limiter.allow((*src.ip()).into(), now) {
                    self.stats.rate_limited += 1;
                    return Ok(false);
                }
                Ok(true)
            }
        }
    }

    /// A worker has a packet for `peer` and no usable session.
    pub fn need_session(
        &mut self,
        peer: u32,
        now: Duration,
        wall: SystemTime,
        rng: &mut impl CryptoRngCore,
        out: &mut Vec<DeviceOutput>,
    ) {
        let Some(p) = self.peers.get(peer as usize) else {
            return;
        };
        if p.handshake.in_flight_index().is_some() || !p.timers.handshake_initiation_allowed(now) {
            return;
        }
        self.initiate(peer, now, wall, rng, out);
    }

    fn initiate(
        &mut self,
        peer: u32,
        now: Duration,
        wall: SystemTime,
        rng: &mut impl CryptoRngCore,
        out: &mut Vec<DeviceOutput>,
    ) {
        let Some(endpoint) = self.peers.get(peer as usize).and_then(|p| p.endpoint) else {
            return;
        };
        let index = self.next_index(peer);
        let mut message = [0u8; INITIATION_LEN];
        let jitter = Duration::from_millis(
            rng.next_u64() % (REKEY_TIMEOUT_JITTER_MAX.as_millis() as u64 + 1),
        );
        let p = &mut self.peers[peer as usize];
        if p.handshake
            .initiate(&self.identity, index, wall, now, rng, &mut message)
            .is_err()
        {
            return;
        }
        p.timers.on_handshake_initiated(now, jitter);
        p.timers.on_authenticated_packet_sent(now);
        p.status.handshake_attempts += 1;
        out.push(DeviceOutput::Transmit {
            to: endpoint,
            message: message.to_vec(),
        });
    }

    /// Feeds what the workers did with a peer into its timers.
    pub fn observe(
        &mut self,
        peer: u32,
        activity: Activity,
        now: Duration,
        wall: SystemTime,
        rng: &mut impl CryptoRngCore,
        out: &mut Vec<DeviceOutput>,
    ) {
        let Some(p) = self.peers.get_mut(peer as usize) else {
            return;
        };
        if let Some(t) = activity.data_sent {
            p.timers.on_data_sent(t);
        }
        if let Some(t) = activity.sent {
            p.timers.on_authenticated_packet_sent(t);
        }
        if let Some(t) = activity.received {
            p.timers.on_authenticated_packet_received(t);
        }
        if let Some(t) = activity.data_received {
            p.timers.on_data_received(t);
        }
        if let (Some(index), Some(waiting)) = (activity.confirmed_index, p.awaiting_confirmation) {
            if index == waiting {
                // The initiator used our responder keypair: handshake complete.
                p.awaiting_confirmation = None;
                p.timers
                    .on_handshake_complete(activity.received.unwrap_or(now));
            }
        }
        if let Some(endpoint) = activity.endpoint {
            p.endpoint = Some(endpoint);
        }
        let rekey = activity.rekey_wanted || p.timers.should_rekey_on_receive(now);
        if rekey
            && p.handshake.in_flight_index().is_none()
            && p.timers.handshake_initiation_allowed(now)
        {
            self.initiate(peer, now, wall, rng, out);
        }
    }

    /// Runs every timer that is due.
    pub fn poll(
        &mut self,
        now: Duration,
        wall: SystemTime,
        rng: &mut impl CryptoRngCore,
        out: &mut Vec<DeviceOutput>,
    ) {
        for peer in 0..self.peers.len() as u32 {
            let due = self.peers[peer as usize]
                .timers
                .next_deadline()
                .is_some_and(|d| d <= now);
            if !due {
                continue;
            }
            while let Some(action) = self.peers[peer as usize].timers.poll(now) {
                match action {
                    TimerAction::SendHandshakeInitiation => {
                        self.initiate(peer, now, wall, rng, out)
                    }
                    TimerAction::SendKeepalive => out.push(DeviceOutput::SendKeepalive { peer }),
                    TimerAction::ZeroKeys => {
                        self.peers[peer as usize].handshake.clear();
                        out.push(DeviceOutput::ClearKeys { peer });
                    }
                    TimerAction::HandshakeGaveUp => {
                        self.peers[peer as usize].handshake.clear();
                        out.push(DeviceOutput::DropQueue { peer });
                    }
                }
            }
        }
    }

    /// The earliest timer deadline of any peer.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.peers
            .iter()
            .filter_map(|p| p.timers.next_deadline())
            .min()
    }
}

impl core::fmt::Debug for Device {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Device")
            .field("public_key", &self.identity.public_key())
            .field("peers", &self.peers.len())
            .field("stats", &self.stats)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    const A_ADDR: SocketAddrV4 = SocketAddrV4::new(std::net::Ipv4Addr::new(192, 0, 2, 1), 51820);
    const B_ADDR: SocketAddrV4 = SocketAddrV4::new(std::net::Ipv4Addr::new(192, 0, 2, 2), 51820);

    fn pair(psk: bool) -> (Device, Device) {
        let (ka, kb) = (
            PrivateKey::generate(&mut OsRng),
            PrivateKey::generate(&mut OsRng),
        );
        let psk_a = psk.then(|| PresharedKey::from_bytes([5; 32]));
        let psk_b = psk.then(|| PresharedKey::from_bytes([5; 32]));
        let a = Device::new(
            ka.clone(),
            vec![PeerSpec {
                public_key: kb.public_key(),
                preshared_key: psk_a,
                endpoint: Some(B_ADDR),
                persistent_keepalive: 0,
            }],
            0x1111_0000,
            Duration::ZERO,
            &mut OsRng,
        );
        let b = Device::new(
            kb,
            vec![PeerSpec {
                public_key: ka.public_key(),
                preshared_key: psk_b,
                endpoint: None,
                persistent_keepalive: 0,
            }],
            0x2222_0000,
            Duration::ZERO,
            &mut OsRng,
        );
        (a, b)
    }

    fn wall() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn transmit(out: &[DeviceOutput]) -> (SocketAddrV4, Vec<u8>) {
        out.iter()
            .find_map(|o| match o {
                DeviceOutput::Transmit { to, message } => Some((*to, message.clone())),
                _ => None,
            })
            .expect("a message to send")
    }

    fn keys(out: &[DeviceOutput]) -> &SessionKeys {
        out.iter()
            .find_map(|o| match o {
                DeviceOutput::InstallKeypair { keys, .. } => Some(keys),
                _ => None,
            })
            .expect("a keypair")
    }

    fn handshake(
        a: &mut Device,
        b: &mut Device,
        now: Duration,
    ) -> (Vec<DeviceOutput>, Vec<DeviceOutput>) {
        let mut out_a = Vec::new();
        a.need_session(0, now, wall(), &mut OsRng, &mut out_a);
        let (to, init) = transmit(&out_a);
        assert_eq!(to, B_ADDR);
        let mut out_b = Vec::new();
        b.handle_message(A_ADDR, &init, false, now, wall(), &mut OsRng, &mut out_b)
            .unwrap();
        let (to, response) = transmit(&out_b);
        assert_eq!(
            to, A_ADDR,
            "the responder answers where the initiation came from"
        );
        let mut out_a = Vec::new();
        a.handle_message(
            B_ADDR,
            &response,
            false,
            now,
            wall(),
            &mut OsRng,
            &mut out_a,
        )
        .unwrap();
        (out_a, out_b)
    }

    #[test]
    fn two_devices_complete_a_handshake_with_matching_keys() {
        for psk in [false, true] {
            let (mut a, mut b) = pair(psk);
            let (out_a, out_b) = handshake(&mut a, &mut b, Duration::from_secs(1));
            let (ka, kb) = (keys(&out_a), keys(&out_b));
            assert!(ka.initiator && !kb.initiator);
            assert_eq!(ka.send_key, kb.recv_key);
            assert_eq!(ka.recv_key, kb.send_key);
            assert_eq!(
                (ka.remote_index, kb.remote_index),
                (kb.local_index, ka.local_index)
            );
            assert_eq!(peer_of_index(0x1111_0000, ka.local_index), 0);
            assert!(out_a
                .iter()
                .any(|o| matches!(o, DeviceOutput::FlushQueue { peer: 0 })));
            assert!(
                !out_a
                    .iter()
                    .any(|o| matches!(o, DeviceOutput::SendKeepalive { .. })),
                "the driver sends a keepalive only when nothing was queued"
            );
            assert!(out_b.iter().any(|o| matches!(o, DeviceOutput::SetEndpoint { peer: 0, endpoint } if *endpoint == A_ADDR)));
            assert_eq!(b.peer_status(0).unwrap().handshakes_completed, 1);
            assert_eq!(b.peer_status(0).unwrap().last_handshake, Some(wall()));
        }
    }

    #[test]
    fn a_responder_does_not_start_a_crossing_handshake() {
        let (mut a, mut b) = pair(false);
        handshake(&mut a, &mut b, Duration::from_secs(1));
        // B has a packet for A before A's first data message confirmed the keys.
        let mut out = Vec::new();
        b.need_session(0, Duration::from_secs(2), wall(), &mut OsRng, &mut out);
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(b.peer_status(0).unwrap().handshake_attempts, 0);
    }

    #[test]
    fn a_second_need_session_does_not_start_a_second_handshake() {
        let (mut a, _) = pair(false);
        let mut out = Vec::new();
        a.need_session(0, Duration::from_secs(1), wall(), &mut OsRng, &mut out);
        a.need_session(0, Duration::from_secs(1), wall(), &mut OsRng, &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn an_initiation_from_an_unknown_key_is_rejected() {
        let (mut a, _) = pair(false);
        let (_, mut stranger_b) = pair(false);
        let mut out = Vec::new();
        a.need_session(0, Duration::from_secs(1), wall(), &mut OsRng, &mut out);
        let (_, init) = transmit(&out);
        let mut out_b = Vec::new();
        // stranger_b does not know a's key (its own pair was generated apart)
        let err = stranger_b.handle_message(
            A_ADDR,
            &init,
            false,
            Duration::from_secs(1),
            wall(),
            &mut OsRng,
            &mut out_b,
        );
        assert!(err.is_err());
        assert!(out_b.is_empty());
        assert_eq!(stranger_b.stats().rejected, 1);
    }

    #[test]
    fn under_load_the_responder_demands_a_cookie_then_accepts() {
        let (mut a, mut b) = pair(false);
        let t0 = Duration::from_secs(1);
        let mut out = Vec::new();
        a.need_session(0, t0, wall(), &mut OsRng, &mut out);
        let (_, init) = transmit(&out);
        let mut out_b = Vec::new();
        b.handle_message(A_ADDR, &init, true, t0, wall(), &mut OsRng, &mut out_b)
            .unwrap();
        let (to, cookie) = transmit(&out_b);
        assert_eq!((to, cookie.len()), (A_ADDR, COOKIE_REPLY_LEN));
        assert!(!out_b
            .iter()
            .any(|o| matches!(o, DeviceOutput::InstallKeypair { .. })));
        let mut out_a = Vec::new();
        a.handle_message(B_ADDR, &cookie, false, t0, wall(), &mut OsRng, &mut out_a)
            .unwrap();
        // The retransmission (REKEY_TIMEOUT + jitter later) carries mac2.
        let mut out_a = Vec::new();
        a.poll(t0 + Duration::from_secs(6), wall(), &mut OsRng, &mut out_a);
        let (_, retry) = transmit(&out_a);
        let mut out_b = Vec::new();
        b.handle_message(
            A_ADDR,
            &retry,
            true,
            t0 + Duration::from_secs(6),
            wall(),
            &mut OsRng,
            &mut out_b,
        )
        .unwrap();
        assert!(out_b
            .iter()
            .any(|o| matches!(o, DeviceOutput::InstallKeypair { .. })));
        assert_eq!(b.stats().cookie_replies_sent, 1);
    }

    #[test]
    fn an_unanswered_initiation_is_retried_then_given_up() {
        let (mut a, _) = pair(false);
        let mut out = Vec::new();
        a.need_session(0, Duration::ZERO, wall(), &mut OsRng, &mut out);
        let mut sent = 1;
        let mut gave_up = false;
        let mut t = Duration::ZERO;
        while t < Duration::from_secs(100) {
            t += Duration::from_millis(100);
            let mut out = Vec::new();
            a.poll(t, wall(), &mut OsRng, &mut out);
            sent += out
                .iter()
                .filter(|o| matches!(o, DeviceOutput::Transmit { .. }))
                .count();
            gave_up |= out
                .iter()
                .any(|o| matches!(o, DeviceOutput::DropQueue { peer: 0 }));
        }
        assert!(gave_up, "REKEY_ATTEMPT_TIME ends the attempts");
        assert!(
            (16..=19).contains(&sent),
            "one try per REKEY_TIMEOUT(+jitter) for 90 s, got {sent}"
        );
    }

    #[test]
    fn a_replayed_initiation_is_rejected_by_the_device() {
        let (mut a, mut b) = pair(false);
        let mut out = Vec::new();
        a.need_session(0, Duration::from_secs(1), wall(), &mut OsRng, &mut out);
        let (_, init) = transmit(&out);
        let mut out_b = Vec::new();
        b.handle_message(
            A_ADDR,
            &init,
            false,
            Duration::from_secs(1),
            wall(),
            &mut OsRng,
            &mut out_b,
        )
        .unwrap();
        let mut out_b = Vec::new();
        assert!(b
            .handle_message(
                A_ADDR,
                &init,
                false,
                Duration::from_secs(2),
                wall(),
                &mut OsRng,
                &mut out_b
            )
            .is_err());
        assert!(out_b.is_empty());
    }

    #[test]
    fn a_responder_that_only_receives_sends_a_passive_keepalive() {
        let (mut a, mut b) = pair(false);
        handshake(&mut a, &mut b, Duration::from_secs(1));
        let activity = Activity {
            received: Some(Duration::from_secs(2)),
            data_received: Some(Duration::from_secs(2)),
            ..Activity::default()
        };
        let mut out = Vec::new();
        b.observe(
            0,
            activity,
            Duration::from_secs(2),
            wall(),
            &mut OsRng,
            &mut out,
        );
        let mut out = Vec::new();
        b.poll(Duration::from_secs(13), wall(), &mut OsRng, &mut out);
        assert!(
            out.iter()
                .any(|o| matches!(o, DeviceOutput::SendKeepalive { peer: 0 })),
            "{out:?}"
        );
    }

    #[test]
    fn garbage_messages_are_rejected_without_output() {
        let (_, mut b) = pair(false);
        let mut seed = 7u32;
        for len in [0usize, 1, 4, 32, 64, 92, 148, 200] {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let mut msg = vec![(seed >> 16) as u8; len];
            if len >= 4 {
                msg[..4].copy_from_slice(&[1 + (seed % 3) as u8, 0, 0, 0]);
            }
            let mut out = Vec::new();
            assert!(b
                .handle_message(
                    A_ADDR,
                    &msg,
                    false,
                    Duration::from_secs(1),
                    wall(),
                    &mut OsRng,
                    &mut out
                )
                .is_err());
            assert!(out.is_empty());
        }
    }
}
