//! The per-peer WireGuard timer state machine (whitepaper §6, "Timers &
//! Stateless UX"), in the sans-I/O style: the caller reports events with the
//! current monotonic time and polls for the actions that fall due.
//!
//! Time is a [`Duration`] since an arbitrary epoch chosen by the caller
//! (the worker's TSC clock, for instance), and is never read here. Like
//! quinn, the timers are a small array indexed by [`Timer`], and
//! [`PeerTimers::next_deadline`] is their minimum. Randomness (the
//! handshake jitter) is passed in too.
//!
//! # Which event arms which timer
//!
//! The semantics follow the whitepaper and, where it leaves details open,
//! the Linux driver's `timers.c` (which wireguard-go copies).
//!
//! | Timer | Armed by | Deadline | Cancelled by | On expiry |
//! |---|---|---|---|---|
//! | [`Timer::RetransmitHandshake`] | [`on_handshake_initiated`] (re-armed on every initiation) | `REKEY_TIMEOUT` + jitter | [`on_handshake_complete`] | [`SendHandshakeInitiation`] (a retry), or [`HandshakeGaveUp`] once `REKEY_ATTEMPT_TIME` has passed since the attempt began (§6.4) |
//! | [`Timer::SendKeepalive`] (passive keepalive) | [`on_data_received`] if not already armed | `KEEPALIVE_TIMEOUT` | [`on_authenticated_packet_sent`] | [`SendKeepalive`] (§6.5) |
//! | [`Timer::NewHandshake`] | [`on_data_sent`] if not already armed | `KEEPALIVE_TIMEOUT + REKEY_TIMEOUT` (+ jitter) | [`on_authenticated_packet_received`] | [`SendHandshakeInitiation`], unless one went out less than `REKEY_TIMEOUT` ago (§6.5) |
//! | [`Timer::ZeroKeyMaterial`] | [`on_session_derived`]; also on giving up, if not already armed | `REJECT_AFTER_TIME * 3` | nothing | [`ZeroKeys`] (§6.3) |
//! | [`Timer::PersistentKeepalive`] | [`on_authenticated_packet_sent`] / [`on_authenticated_packet_received`] when enabled, [`set_persistent_keepalive`] (due at once) | the configured interval | setting it to 0 | [`SendKeepalive`] (§6.5) |
//!
//! The send-side rekey checks (§6.2) are not timers. The data path asks
//! [`should_rekey_on_send`] and [`should_rekey_on_receive`] per packet and
//! [`keys_expired`] before using a key.
//!
//! A keepalive must not arm the passive keepalive. §6.5 limits it to
//! "transport data message (but not a keepalive)", and two idle peers would
//! otherwise ping-pong keepalives forever. So receiving is reported by two
//! events: [`on_authenticated_packet_received`] for every authenticated
//! packet and [`on_data_received`] only for packets that carry data.
//!
//! A handshake initiation counts as a retry only if it answers a
//! [`SendHandshakeInitiation`] that the retransmit timer produced. Any other
//! initiation, such as one caused by new data or a rekey, starts a new
//! `REKEY_ATTEMPT_TIME` period, as `timer_handshake_attempts = 0` does for
//! `is_retry == false` in the Linux driver. The Linux driver also gives up
//! by count (after 18 retries, roughly 95 s). Here the limit is measured as
//! time, as the whitepaper states it.
//!
//! [`on_handshake_initiated`]: PeerTimers::on_handshake_initiated
//! [`on_handshake_complete`]: PeerTimers::on_handshake_complete
//! [`on_session_derived`]: PeerTimers::on_session_derived
//! [`on_data_sent`]: PeerTimers::on_data_sent
//! [`on_data_received`]: PeerTimers::on_data_received
//! [`on_authenticated_packet_sent`]: PeerTimers::on_authenticated_packet_sent
//! [`on_authenticated_packet_received`]: PeerTimers::on_authenticated_packet_received
//! [`set_persistent_keepalive`]: PeerTimers::set_persistent_keepalive
//! [`should_rekey_on_send`]: PeerTimers::should_rekey_on_send
//! [`should_rekey_on_receive`]: PeerTimers::should_rekey_on_receive
//! [`keys_expired`]: PeerTimers::keys_expired
//! [`SendHandshakeInitiation`]: TimerAction::SendHandshakeInitiation
//! [`SendKeepalive`]: TimerAction::SendKeepalive
//! [`ZeroKeys`]: TimerAction::ZeroKeys
//! [`HandshakeGaveUp`]: TimerAction::HandshakeGaveUp

use std::time::Duration;

pub use super::replay::REJECT_AFTER_MESSAGES;

/// Messages sent under one key before the initiator starts a rekey (§6.1).
pub const REKEY_AFTER_MESSAGES: u64 = 1 << 60;
/// Key age after which the initiator rekeys on its next send (§6.1).
pub const REKEY_AFTER_TIME: Duration = Duration::from_secs(120);
/// Key age after which a key is no longer used in either direction (§6.1).
pub const REJECT_AFTER_TIME: Duration = Duration::from_secs(180);
/// How long one handshake attempt is retried before giving up (§6.1).
pub const REKEY_ATTEMPT_TIME: Duration = Duration::from_secs(90);
/// Wait before retransmitting an unanswered initiation, and the minimum
/// spacing of initiations (§6.1).
pub const REKEY_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle time after received data before a passive keepalive (§6.1).
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound of the random jitter added to handshake timeouts (§6.1,
/// "up to 333 ms"; `RekeyTimeoutJitterMaxMs` in wireguard-go).
pub const REKEY_TIMEOUT_JITTER_MAX: Duration = Duration::from_millis(333);
/// With no new session for this long, all key material is erased (§6.3).
pub const ZERO_KEYS_AFTER: Duration = Duration::from_secs(3 * 180);
/// Key age at which an initiator receiving data starts a last-minute rekey
/// before the key is rejected (§6.2).
pub const REKEY_ON_RECEIVE_AGE: Duration = Duration::from_secs(180 - 10 - 5);

/// The timers of one peer, indexing [`PeerTimers`]' deadline array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Resend an unanswered handshake initiation (§6.4).
    RetransmitHandshake,
    /// Passive keepalive: answer received data we did not reply to (§6.5).
    SendKeepalive,
    /// We sent data and heard nothing back: the session may be dead (§6.5).
    NewHandshake,
    /// Erase keys that have not been renewed (§6.3).
    ZeroKeyMaterial,
    /// The configured persistent keepalive (§6.5).
    PersistentKeepalive,
}

impl Timer {
    pub const ALL: [Timer; 5] = [
        Timer::RetransmitHandshake,
        Timer::SendKeepalive,
        Timer::NewHandshake,
        Timer::ZeroKeyMaterial,
        Timer::PersistentKeepalive,
    ];
}

/// What the caller must do when a timer expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerAction {
    /// Send a handshake initiation, then report [`PeerTimers::on_handshake_initiated`].
    SendHandshakeInitiation,
    /// Send an empty authenticated packet, then report
    /// [`PeerTimers::on_authenticated_packet_sent`].
    SendKeepalive,
    /// Erase every keypair and handshake state of this peer (§6.3).
    ZeroKeys,
    /// `REKEY_ATTEMPT_TIME` passed without a response. Drop the packets
    /// queued for the handshake (§6.4).
    HandshakeGaveUp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Session {
    created: Duration,
    initiator: bool,
}

/// The timer state of one peer. It has a fixed size, never allocates, and
/// never reads the clock.
///
/// Drive it with the `on_*` events as packets come and go. Whenever
/// [`next_deadline`](Self::next_deadline) passes, call [`poll`](Self::poll)
/// until it returns `None`, and carry out each action (and report the events
/// it causes) before polling again.
#[derive(Debug, Clone, Default)]
pub struct PeerTimers {
    deadlines: [Option<Duration>; Timer::ALL.len()],
    /// When the current handshake attempt (first initiation and its
    /// retries) began. `None` when no attempt is running.
    attempt_started: Option<Duration>,
    /// The retransmit timer asked for an initiation, so the next one is a retry.
    retry_requested: bool,
    last_initiation: Option<Duration>,
    last_handshake: Option<Duration>,
    session: Option<Session>,
    /// The §6.2 receive-side rekey fired for the current session.
    sent_lastminute_handshake: bool,
    persistent_keepalive: u16,
}

impl PeerTimers {
    pub fn new() -> Self {
        Self::default()
    }

    // --- Events -----------------------------------------------------------

    /// We sent a handshake initiation. A response is expected within
    /// `REKEY_TIMEOUT + jitter`. `jitter` should be uniform in
    /// 0..=[`REKEY_TIMEOUT_JITTER_MAX`] and is clamped to that range (§6.4).
    pub fn on_handshake_initiated(&mut self, now: Duration, jitter: Duration) {
        if !self.retry_requested || self.attempt_started.is_none() {
            self.attempt_started = Some(now);
        }
        self.retry_requested = false;
        self.last_initiation = Some(now);
        let jitter = jitter.min(REKEY_TIMEOUT_JITTER_MAX);
        self.arm(Timer::RetransmitHandshake, now + REKEY_TIMEOUT + jitter);
    }

    /// We answered a peer's initiation. Like wireguard-go (which stamps
    /// `lastSentHandshake` when it sends a response), this holds off our own
    /// initiation for `REKEY_TIMEOUT`, so the two ends do not start crossing
    /// handshakes while the initiator's first data message is on its way.
    pub fn on_handshake_responded(&mut self, now: Duration) {
        self.last_initiation = Some(now);
    }

    /// The handshake completed: as initiator we processed the response, as
    /// responder the first data message confirmed the new key.
    pub fn on_handshake_complete(&mut self, now: Duration) {
        self.disarm(Timer::RetransmitHandshake);
        self.attempt_started = None;
        self.retry_requested = false;
        self.sent_lastminute_handshake = false;
        self.last_handshake = Some(now);
    }

    /// A new keypair was derived (the initiator on receiving the response,
    /// the responder on sending it). Its age starts now and drives the
    /// rekey and expiry checks. Keys are erased `REJECT_AFTER_TIME * 3`
    /// from now unless another session replaces it first (§6.3).
    pub fn on_session_derived(&mut self, now: Duration, initiator: bool) {
        self.session = Some(Session {
            created: now,
            initiator,
        });
        self.sent_lastminute_handshake = false;
        self.arm(Timer::ZeroKeyMaterial, now + ZERO_KEYS_AFTER);
    }

    /// We sent a transport data message with a payload (not a keepalive).
    /// If nothing authenticated comes back within
    /// `KEEPALIVE_TIMEOUT + REKEY_TIMEOUT`, a new handshake starts (§6.5).
    /// Later sends do not push the deadline back.
    pub fn on_data_sent(&mut self, now: Duration) {
        self.on_data_sent_jittered(now, Duration::ZERO);
    }

    /// [`on_data_sent`](Self::on_data_sent) with the handshake jitter the
    /// Linux driver and wireguard-go add to this timer (clamped to
    /// [`REKEY_TIMEOUT_JITTER_MAX`]).
    pub fn on_data_sent_jittered(&mut self, now: Duration, jitter: Duration) {
        if self.deadline(Timer::NewHandshake).is_none() {
            let jitter = jitter.min(REKEY_TIMEOUT_JITTER_MAX);
            self.arm(
                Timer::NewHandshake,
                now + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + jitter,
            );
        }
    }

    /// We received an authenticated transport data message with a payload
    /// (not a keepalive). If we send nothing within `KEEPALIVE_TIMEOUT`, a
    /// passive keepalive goes out (§6.5). Later data does not push it back.
    /// Also report [`on_authenticated_packet_received`](Self::on_authenticated_packet_received).
    pub fn on_data_received(&mut self, now: Duration) {
        if self.deadline(Timer::SendKeepalive).is_none() {
            self.arm(Timer::SendKeepalive, now + KEEPALIVE_TIMEOUT);
        }
    }

    /// We sent any authenticated packet: data, keepalive or handshake
    /// message. It serves as the passive keepalive, so that timer is
    /// cancelled, and the persistent keepalive counts from now.
    pub fn on_authenticated_packet_sent(&mut self, now: Duration) {
        self.disarm(Timer::SendKeepalive);
        self.traversal(now);
    }

    /// We received any authenticated packet: data, keepalive or handshake
    /// message. The peer is alive, so the new-handshake timer is cancelled,
    /// and the persistent keepalive counts from now.
    pub fn on_authenticated_packet_received(&mut self, now: Duration) {
        self.disarm(Timer::NewHandshake);
        self.traversal(now);
    }

    /// Sets the persistent keepalive interval in seconds (0 turns it off).
    /// A changed nonzero interval makes a keepalive due at once, as `wg set`
    /// does on a running interface, so a peer behind NAT becomes reachable
    /// without waiting a full interval.
    pub fn set_persistent_keepalive(&mut self, secs: u16) {
        if secs == self.persistent_keepalive {
            return;
        }
        self.persistent_keepalive = secs;
        if secs == 0 {
            self.disarm(Timer::PersistentKeepalive);
        } else {
            self.arm(Timer::PersistentKeepalive, Duration::ZERO);
        }
    }

    // --- Queries for the data path ----------------------------------------

    /// Should sending under the current key start a new handshake? Yes once
    /// `send_counter` (the next nonce) reaches `REKEY_AFTER_MESSAGES`, or,
    /// for the initiator only, once the key is `REKEY_AFTER_TIME` old (§6.2).
    /// Callers still rate-limit with
    /// [`handshake_initiation_allowed`](Self::handshake_initiation_allowed).
    pub fn should_rekey_on_send(&self, now: Duration, send_counter: u64) -> bool {
        self.session.is_some_and(|s| {
            send_counter >= REKEY_AFTER_MESSAGES
                || (s.initiator && now.saturating_sub(s.created) >= REKEY_AFTER_TIME)
        })
    }

    /// Should receiving data under the current key start a new handshake?
    /// True once per session, for the initiator, when the key has reached
    /// `REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT`, so a peer
    /// that only receives does not lose its session (§6.2). Returns true only
    /// the first time, and the state resets on the next handshake.
    pub fn should_rekey_on_receive(&mut self, now: Duration) -> bool {
        let due = !self.sent_lastminute_handshake
            && self.session.is_some_and(|s| {
                s.initiator && now.saturating_sub(s.created) >= REKEY_ON_RECEIVE_AGE
            });
        if due {
            self.sent_lastminute_handshake = true;
        }
        due
    }

    /// Is the current key unusable? True once it is `REJECT_AFTER_TIME`
    /// old, and true when there is no key at all (§6.2).
    pub fn keys_expired(&self, now: Duration) -> bool {
        self.session
            .is_none_or(|s| now.saturating_sub(s.created) >= REJECT_AFTER_TIME)
    }

    /// False if an initiation went out less than `REKEY_TIMEOUT` ago: at
    /// most one initiation per `REKEY_TIMEOUT` (§6.4).
    pub fn handshake_initiation_allowed(&self, now: Duration) -> bool {
        self.last_initiation
            .is_none_or(|t| now >= t + REKEY_TIMEOUT)
    }

    /// Age of the current key, or `None` without one (or after [`TimerAction::ZeroKeys`]).
    pub fn session_age(&self, now: Duration) -> Option<Duration> {
        self.session.map(|s| now.saturating_sub(s.created))
    }

    /// When the last handshake completed, for `wg show`-style status.
    pub fn last_handshake(&self) -> Option<Duration> {
        self.last_handshake
    }

    /// The persistent keepalive interval in seconds (0 = off).
    pub fn persistent_keepalive(&self) -> u16 {
        self.persistent_keepalive
    }

    // --- Timer output -----------------------------------------------------

    /// When `timer` expires, if it is armed.
    pub fn deadline(&self, timer: Timer) -> Option<Duration> {
        self.deadlines[timer as usize]
    }

    /// The earliest armed deadline, at which [`poll`](Self::poll) has work
    /// to do. It may lie in the past (poll at once).
    pub fn next_deadline(&self) -> Option<Duration> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// Expires the timers due at `now`, earliest first, and returns the
    /// first resulting action. Call again until `None`: one poll returns at
    /// most one action, and an expiry may produce none (a rate-limited
    /// handshake, for example).
    pub fn poll(&mut self, now: Duration) -> Option<TimerAction> {
        loop {
            let (timer, at) = Timer::ALL
                .iter()
                .filter_map(|&t| self.deadline(t).map(|at| (t, at)))
                .min_by_key(|&(_, at)| at)?;
            if at > now {
                return None;
            }
            self.disarm(timer);
            if let Some(action) = self.expire(timer, now) {
                return Some(action);
            }
        }
    }

    fn expire(&mut self, timer: Timer, now: Duration) -> Option<TimerAction> {
        match timer {
            Timer::RetransmitHandshake => {
                let started = self.attempt_started.unwrap_or(now);
                if now.saturating_sub(started) >= REKEY_ATTEMPT_TIME {
                    self.attempt_started = None;
                    self.retry_requested = false;
                    // No session is coming: answering received data is moot.
                    self.disarm(Timer::SendKeepalive);
                    // Erase what a partial exchange may have left behind.
                    if self.deadline(Timer::ZeroKeyMaterial).is_none() {
                        self.arm(Timer::ZeroKeyMaterial, now + ZERO_KEYS_AFTER);
                    }
                    Some(TimerAction::HandshakeGaveUp)
                } else {
                    self.retry_requested = true;
                    Some(TimerAction::SendHandshakeInitiation)
                }
            }
            Timer::SendKeepalive => Some(TimerAction::SendKeepalive),
            Timer::NewHandshake => self
                .handshake_initiation_allowed(now)
                .then_some(TimerAction::SendHandshakeInitiation),
            Timer::ZeroKeyMaterial => {
                self.session = None;
                self.sent_lastminute_handshake = false;
                Some(TimerAction::ZeroKeys)
            }
            Timer::PersistentKeepalive => {
                if self.persistent_keepalive == 0 {
                    return None;
                }
                // Keep the cadence even if the caller's send is not reported.
                self.traversal(now);
                Some(TimerAction::SendKeepalive)
            }
        }
    }

    /// An authenticated packet passed in either direction: restart the
    /// persistent keepalive interval.
    fn traversal(&mut self, now: Duration) {
        if self.persistent_keepalive != 0 {
            let interval = Duration::from_secs(u64::from(self.persistent_keepalive));
            self.arm(Timer::PersistentKeepalive, now + interval);
        }
    }

    fn arm(&mut self, timer: Timer, at: Duration) {
        self.deadlines[timer as usize] = Some(at);
    }

    fn disarm(&mut self, timer: Timer) {
        self.deadlines[timer as usize] = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    const NS: Duration = Duration::from_nanos(1);

    /// Runs the simulation up to `until`: jumps from deadline to deadline,
    /// polls, and lets `react` play the peer's part for each action.
    fn run(
        t: &mut PeerTimers,
        until: Duration,
        mut react: impl FnMut(&mut PeerTimers, Duration, TimerAction),
    ) -> Vec<(Duration, TimerAction)> {
        let mut log = Vec::new();
        while let Some(at) = t.next_deadline() {
            if at > until {
                break;
            }
            // Nothing fires a nanosecond early.
            if at > NS {
                let before = t.clone();
                assert_eq!(t.poll(at - NS), None, "fired before {at:?}");
                assert_eq!(t.deadlines, before.deadlines);
            }
            while let Some(action) = t.poll(at) {
                log.push((at, action));
                react(t, at, action);
            }
            assert!(t.next_deadline().is_none_or(|n| n > at), "{at:?} still due");
        }
        log
    }

    /// A peer that always sends what it is asked to, with fixed jitter.
    fn obedient(jitter: Duration) -> impl FnMut(&mut PeerTimers, Duration, TimerAction) {
        move |t, now, action| match action {
            TimerAction::SendHandshakeInitiation => {
                t.on_authenticated_packet_sent(now);
                t.on_handshake_initiated(now, jitter);
            }
            TimerAction::SendKeepalive => t.on_authenticated_packet_sent(now),
            TimerAction::ZeroKeys | TimerAction::HandshakeGaveUp => {}
        }
    }

    fn actions(log: &[(Duration, TimerAction)], which: TimerAction) -> Vec<Duration> {
        log.iter()
            .filter(|(_, a)| *a == which)
            .map(|(at, _)| *at)
            .collect()
    }

    #[test]
    fn answering_an_initiation_holds_off_our_own_for_rekey_timeout() {
        let mut t = PeerTimers::new();
        t.on_handshake_responded(Duration::from_secs(10));
        assert!(!t.handshake_initiation_allowed(Duration::from_secs(14)));
        assert!(t.handshake_initiation_allowed(Duration::from_secs(15)));
        assert_eq!(
            t.deadline(Timer::RetransmitHandshake),
            None,
            "nothing to retransmit"
        );
    }

    #[test]
    fn constants_match_the_whitepaper() {
        assert_eq!(REKEY_AFTER_MESSAGES, 1u64 << 60);
        assert_eq!(
            u128::from(REJECT_AFTER_MESSAGES),
            (1u128 << 64) - (1 << 13) - 1
        );
        assert_eq!(REKEY_AFTER_TIME, s(120));
        assert_eq!(REJECT_AFTER_TIME, s(180));
        assert_eq!(REKEY_ATTEMPT_TIME, s(90));
        assert_eq!(REKEY_TIMEOUT, s(5));
        assert_eq!(KEEPALIVE_TIMEOUT, s(10));
        assert_eq!(REKEY_TIMEOUT_JITTER_MAX, ms(333));
        assert_eq!(ZERO_KEYS_AFTER, REJECT_AFTER_TIME * 3);
        assert_eq!(
            REKEY_ON_RECEIVE_AGE,
            REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT
        );
    }

    #[test]
    fn fresh_peer_has_no_deadline() {
        let mut t = PeerTimers::new();
        assert_eq!(t.next_deadline(), None);
        assert_eq!(t.poll(s(1_000_000)), None);
        assert!(t.keys_expired(s(0)));
        assert!(!t.should_rekey_on_send(s(0), 0));
    }

    #[test]
    fn retransmits_every_rekey_timeout_until_attempt_time_then_gives_up() {
        let base = s(1000);
        let mut t = PeerTimers::new();
        t.on_handshake_initiated(base, Duration::ZERO);
        let log = run(&mut t, base + s(200), obedient(Duration::ZERO));
        let retries: Vec<_> = (1..18).map(|k| base + REKEY_TIMEOUT * k).collect();
        assert_eq!(actions(&log, TimerAction::SendHandshakeInitiation), retries);
        assert_eq!(
            actions(&log, TimerAction::HandshakeGaveUp),
            vec![base + s(90)]
        );
        // Giving up leaves only the key-erasure timer behind.
        assert_eq!(t.deadline(Timer::RetransmitHandshake), None);
        assert_eq!(t.next_deadline(), Some(base + s(90) + ZERO_KEYS_AFTER));
        assert_eq!(log.len(), 18);
    }

    #[test]
    fn retransmission_adds_the_jitter_passed_in_clamped_to_333ms() {
        let mut t = PeerTimers::new();
        t.on_handshake_initiated(s(0), ms(100));
        assert_eq!(t.next_deadline(), Some(ms(5_100)));
        assert_eq!(t.poll(ms(5_099)), None);
        assert_eq!(
            t.poll(ms(5_100)),
            Some(TimerAction::SendHandshakeInitiation)
        );
        t.on_handshake_initiated(ms(5_100), s(3));
        assert_eq!(t.next_deadline(), Some(ms(5_100 + 5_000 + 333)));
        // With maximal jitter every time, it still gives up at the first
        // expiry past REKEY_ATTEMPT_TIME.
        let mut t = PeerTimers::new();
        t.on_handshake_initiated(s(0), ms(333));
        let log = run(&mut t, s(200), obedient(ms(333)));
        let sends = actions(&log, TimerAction::SendHandshakeInitiation);
        assert_eq!(sends.len(), 16);
        for (k, at) in sends.iter().enumerate() {
            assert_eq!(*at, ms(5_333) * (k as u32 + 1));
        }
        assert_eq!(
            actions(&log, TimerAction::HandshakeGaveUp),
            vec![ms(5_333) * 17]
        );
    }

    #[test]
    fn handshake_response_stops_retransmission() {
        let mut t = PeerTimers::new();
        t.on_handshake_initiated(s(0), Duration::ZERO);
        assert_eq!(t.poll(s(5)), Some(TimerAction::SendHandshakeInitiation));
        t.on_handshake_initiated(s(5), Duration::ZERO);
        t.on_authenticated_packet_received(s(6));
        t.on_handshake_complete(s(6));
        t.on_session_derived(s(6), true);
        assert_eq!(t.deadline(Timer::RetransmitHandshake), None);
        assert_eq!(t.last_handshake(), Some(s(6)));
        assert_eq!(t.next_deadline(), Some(s(6) + ZERO_KEYS_AFTER));
        assert!(run(&mut t, s(100), obedient(Duration::ZERO)).is_empty());
    }

    #[test]
    fn new_initiation_not_asked_for_by_the_timer_restarts_the_attempt() {
        let mut t = PeerTimers::new();
        t.on_handshake_initiated(s(0), Duration::ZERO);
        let log = run(&mut t, s(50), obedient(Duration::ZERO));
        assert_eq!(
            actions(&log, TimerAction::SendHandshakeInitiation).len(),
            10
        );
        // At 55 s new data triggers an initiation of its own, just before
        // the retransmit timer would have.
        assert!(t.handshake_initiation_allowed(s(55)));
        t.on_handshake_initiated(s(55), Duration::ZERO);
        let log = run(&mut t, s(300), obedient(Duration::ZERO));
        assert_eq!(
            actions(&log, TimerAction::HandshakeGaveUp),
            vec![s(55 + 90)]
        );
    }

    #[test]
    fn passive_keepalive_sent_once_when_we_only_receive() {
        let mut t = PeerTimers::new();
        t.on_authenticated_packet_received(s(0));
        t.on_data_received(s(0));
        // More data while it is pending does not push it back.
        t.on_authenticated_packet_received(s(3));
        t.on_data_received(s(3));
        assert_eq!(t.next_deadline(), Some(KEEPALIVE_TIMEOUT));
        let mut log = run(&mut t, s(20), obedient(Duration::ZERO));
        // From now on the peer only sends keepalives, which need no answer.
        for k in 2..10 {
            t.on_authenticated_packet_received(s(10 * k));
            log.extend(run(&mut t, s(10 * k + 9), obedient(Duration::ZERO)));
        }
        assert_eq!(log, vec![(s(10), TimerAction::SendKeepalive)]);
    }

    #[test]
    fn no_keepalive_when_we_send_data() {
        let mut t = PeerTimers::new();
        t.on_authenticated_packet_received(s(0));
        t.on_data_received(s(0));
        t.on_data_sent(s(4));
        t.on_authenticated_packet_sent(s(4));
        assert_eq!(t.deadline(Timer::SendKeepalive), None);
        // The reply to our data cancels the new-handshake timer too.
        t.on_authenticated_packet_received(s(6));
        t.on_data_received(s(6));
        t.on_data_sent(s(7));
        t.on_authenticated_packet_sent(s(7));
        t.on_authenticated_packet_received(s(8));
        assert_eq!(t.next_deadline(), None);
        assert!(run(&mut t, s(100), obedient(Duration::ZERO)).is_empty());
    }

    #[test]
    fn new_handshake_when_data_sent_and_nothing_received_for_15s() {
        let mut t = PeerTimers::new();
        for at in [0, 1, 2, 9] {
            t.on_data_sent(s(at));
            t.on_authenticated_packet_sent(s(at));
        }
        assert_eq!(t.next_deadline(), Some(s(15)));
        assert_eq!(t.poll(s(15) - NS), None);
        assert_eq!(t.poll(s(15)), Some(TimerAction::SendHandshakeInitiation));
        // The jittered variant adds (clamped) jitter.
        let mut t = PeerTimers::new();
        t.on_data_sent_jittered(s(0), ms(200));
        assert_eq!(t.next_deadline(), Some(ms(15_200)));
        let mut t = PeerTimers::new();
        t.on_data_sent_jittered(s(0), s(9));
        assert_eq!(t.next_deadline(), Some(ms(15_333)));
    }

    #[test]
    fn keepalive_from_the_peer_proves_it_alive() {
        let mut t = PeerTimers::new();
        t.on_data_sent(s(0));
        t.on_authenticated_packet_received(s(14));
        assert_eq!(t.poll(s(100)), None);
    }

    #[test]
    fn new_handshake_is_rate_limited_by_a_recent_initiation() {
        let mut t = PeerTimers::new();
        t.on_data_sent(s(0));
        t.on_handshake_initiated(s(12), Duration::ZERO);
        assert!(!t.handshake_initiation_allowed(s(15)));
        assert_eq!(t.poll(s(15)), None);
        // The retransmit timer still retries at 17 s.
        assert_eq!(t.poll(s(17)), Some(TimerAction::SendHandshakeInitiation));
    }

    #[test]
    fn persistent_keepalive_every_interval() {
        let mut t = PeerTimers::new();
        t.set_persistent_keepalive(25);
        assert_eq!(t.persistent_keepalive(), 25);
        // Configuring it makes one due at once.
        assert_eq!(t.next_deadline(), Some(Duration::ZERO));
        let start = s(100);
        let log = run(&mut t, start + s(100), obedient(Duration::ZERO));
        assert_eq!(log[0], (Duration::ZERO, TimerAction::SendKeepalive));
        // Within the simulated epoch, then steadily every 25 s.
        let steady: Vec<_> = log
            .iter()
            .map(|(at, _)| *at)
            .skip_while(|at| *at < start)
            .collect();
        assert_eq!(steady, vec![s(100), s(125), s(150), s(175), s(200)]);
        assert!(log.iter().all(|(_, a)| *a == TimerAction::SendKeepalive));
        // Traffic in either direction restarts the interval.
        t.on_authenticated_packet_received(s(210));
        assert_eq!(t.deadline(Timer::PersistentKeepalive), Some(s(235)));
        t.on_authenticated_packet_sent(s(220));
        assert_eq!(t.deadline(Timer::PersistentKeepalive), Some(s(245)));
        // Setting the same value again changes nothing; 0 switches it off.
        t.set_persistent_keepalive(25);
        assert_eq!(t.deadline(Timer::PersistentKeepalive), Some(s(245)));
        t.set_persistent_keepalive(0);
        assert_eq!(t.next_deadline(), None);
        t.on_authenticated_packet_sent(s(230));
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn persistent_keepalive_keeps_cadence_without_send_reports() {
        let mut t = PeerTimers::new();
        t.set_persistent_keepalive(10);
        t.on_authenticated_packet_sent(s(0));
        let log = run(&mut t, s(35), |_, _, _| {});
        assert_eq!(
            log,
            vec![
                (s(10), TimerAction::SendKeepalive),
                (s(20), TimerAction::SendKeepalive),
                (s(30), TimerAction::SendKeepalive),
            ]
        );
    }

    #[test]
    fn initiator_rekeys_after_120s_responder_does_not() {
        let base = s(500);
        let mut init = PeerTimers::new();
        init.on_session_derived(base, true);
        let mut resp = PeerTimers::new();
        resp.on_session_derived(base, false);
        assert!(!init.should_rekey_on_send(base + REKEY_AFTER_TIME - NS, 1));
        assert!(init.should_rekey_on_send(base + REKEY_AFTER_TIME, 1));
        assert!(init.should_rekey_on_send(base + s(170), 1));
        assert!(!resp.should_rekey_on_send(base + REKEY_AFTER_TIME, 1));
        assert!(!resp.should_rekey_on_send(base + s(179), 1));
        // The message limit applies to both roles.
        for t in [&init, &resp] {
            assert!(!t.should_rekey_on_send(base, REKEY_AFTER_MESSAGES - 1));
            assert!(t.should_rekey_on_send(base, REKEY_AFTER_MESSAGES));
        }
        // A new session resets the age.
        init.on_session_derived(base + s(121), true);
        assert!(!init.should_rekey_on_send(base + s(200), 1));
        assert_eq!(init.session_age(base + s(200)), Some(s(79)));
    }

    #[test]
    fn initiator_rekeys_on_receive_once_near_reject_time() {
        let mut t = PeerTimers::new();
        t.on_session_derived(s(0), true);
        assert!(!t.should_rekey_on_receive(s(165) - NS));
        assert!(t.should_rekey_on_receive(s(165)));
        assert!(!t.should_rekey_on_receive(s(166)), "acts only once");
        // Once the handshake completes and a new session exists, it can fire again.
        t.on_handshake_complete(s(167));
        t.on_session_derived(s(167), true);
        assert!(!t.should_rekey_on_receive(s(200)));
        assert!(t.should_rekey_on_receive(s(167 + 165)));
        let mut r = PeerTimers::new();
        r.on_session_derived(s(0), false);
        assert!(!r.should_rekey_on_receive(s(170)));
    }

    #[test]
    fn keys_expire_at_180s() {
        let mut t = PeerTimers::new();
        t.on_session_derived(s(10), false);
        assert!(!t.keys_expired(s(10)));
        assert!(!t.keys_expired(s(190) - NS));
        assert!(t.keys_expired(s(190)));
        assert!(t.keys_expired(s(1000)));
    }

    #[test]
    fn zero_keys_540s_after_the_last_session() {
        let mut t = PeerTimers::new();
        t.on_session_derived(s(0), true);
        assert_eq!(t.next_deadline(), Some(s(540)));
        assert_eq!(t.poll(s(540) - NS), None);
        assert_eq!(t.poll(s(540)), Some(TimerAction::ZeroKeys));
        assert_eq!(t.session_age(s(540)), None);
        assert!(t.keys_expired(s(540)));
        assert!(!t.should_rekey_on_send(s(541), REKEY_AFTER_MESSAGES));
        assert_eq!(t.next_deadline(), None);
        // A newer session pushes erasure back.
        let mut t = PeerTimers::new();
        t.on_session_derived(s(0), true);
        t.on_session_derived(s(200), true);
        assert_eq!(t.poll(s(540)), None);
        assert_eq!(t.poll(s(740)), Some(TimerAction::ZeroKeys));
    }

    #[test]
    fn giving_up_cancels_passive_keepalive_and_keeps_pending_erasure() {
        let mut t = PeerTimers::new();
        t.on_session_derived(s(0), true);
        t.on_handshake_initiated(s(100), Duration::ZERO);
        let log = run(&mut t, s(190), |t, now, a| {
            if a == TimerAction::SendHandshakeInitiation {
                t.on_handshake_initiated(now, Duration::ZERO);
                // The peer keeps sending us data on the old key meanwhile.
                t.on_data_received(now);
            }
        });
        assert_eq!(actions(&log, TimerAction::HandshakeGaveUp), vec![s(190)]);
        assert_eq!(t.deadline(Timer::SendKeepalive), None);
        // Erasure stays where the session put it, not 540 s after giving up.
        assert_eq!(t.deadline(Timer::ZeroKeyMaterial), Some(s(540)));
    }

    #[test]
    fn next_deadline_is_the_earliest_armed_timer() {
        let mut t = PeerTimers::new();
        t.on_session_derived(s(3), true); // 543
        assert_eq!(t.next_deadline(), Some(s(543)));
        t.set_persistent_keepalive(25);
        t.on_authenticated_packet_sent(s(4)); // 29
        assert_eq!(t.next_deadline(), Some(s(29)));
        t.on_data_sent(s(4)); // 19
        assert_eq!(t.next_deadline(), Some(s(19)));
        t.on_data_received(s(5)); // 15
        assert_eq!(t.next_deadline(), Some(s(15)));
        t.on_handshake_initiated(s(6), ms(10)); // 11.01
        assert_eq!(t.next_deadline(), Some(ms(11_010)));
        t.on_handshake_complete(s(7));
        assert_eq!(t.next_deadline(), Some(s(15)));
        t.on_authenticated_packet_sent(s(8)); // drops 15, persistent 33
        assert_eq!(t.next_deadline(), Some(s(19)));
        t.on_authenticated_packet_received(s(9)); // drops 19, persistent 34
        assert_eq!(t.next_deadline(), Some(s(34)));
        assert_eq!(t.deadline(Timer::ZeroKeyMaterial), Some(s(543)));
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
    }

    #[test]
    fn next_deadline_tracks_the_minimum_under_random_events() {
        let mut rng = Rng(0x7173_e125);
        let mut t = PeerTimers::new();
        let mut now = s(1);
        let mut fired = 0;
        for _ in 0..20_000 {
            now += ms(rng.below(4_000));
            let jitter = ms(rng.below(400));
            match rng.below(11) {
                0 => t.on_handshake_initiated(now, jitter),
                1 => t.on_handshake_complete(now),
                2 => t.on_session_derived(now, rng.below(2) == 0),
                3 => t.on_data_sent_jittered(now, jitter),
                4 => t.on_data_received(now),
                5 => t.on_authenticated_packet_sent(now),
                6 => t.on_authenticated_packet_received(now),
                7 => t.set_persistent_keepalive([0, 1, 25][rng.below(3) as usize]),
                _ => {
                    let expected = Timer::ALL.iter().filter_map(|&k| t.deadline(k)).min();
                    assert_eq!(t.next_deadline(), expected);
                    match expected {
                        Some(at) if at > now => assert_eq!(t.poll(now), None),
                        Some(at) => {
                            // Everything due fires (or is dropped) in one
                            // round of polls, and nothing else does.
                            while t.poll(now).is_some() {
                                fired += 1;
                            }
                            assert!(t.next_deadline().is_none_or(|n| n > now));
                            assert!(at <= now);
                        }
                        None => assert_eq!(t.poll(now), None),
                    }
                }
            }
            for k in Timer::ALL {
                assert!(t.next_deadline() <= t.deadline(k).or(Some(Duration::MAX)));
            }
        }
        assert!(fired > 500, "only {fired} actions");
    }
}
