//! One BFD session in asynchronous mode (RFC 5880 §6.1–§6.8), sans I/O.
//!
//! The session never reads a clock or touches a socket: the caller passes
//! `now_ns` (any monotonic nanosecond count) into [`Session::handle_rx`],
//! [`Session::handle_timeout`] and [`Session::poll_transmit`], and sleeps
//! until [`Session::poll_timeout`]. What it implements:
//!
//! - the state machine of §6.2 and the reception procedure of §6.8.6, in
//!   its order: discriminator and authentication checks, remote variables,
//!   end of a Poll Sequence on F, timer update, AdminDown discard, state
//!   transitions, Final on P, detection timer restart;
//! - timer negotiation (§6.8.2): the periodic interval is
//!   `max(bfd.DesiredMinTxInterval, bfd.RemoteMinRxInterval)`, jittered to
//!   75–100 % (75–90 % with Detect Mult 1, §6.8.7), and nothing is sent
//!   periodically while the remote asks for a Required Min RX of 0;
//! - the detection time (§6.8.4): remote Detect Mult ×
//!   `max(bfd.RequiredMinRxInterval, remote Desired Min TX)`; on expiry an
//!   Init or Up session goes Down with diag 1 and forgets the remote
//!   discriminator (§6.8.1);
//! - Poll Sequences (§6.5, §6.8.3): every change to the advertised Desired
//!   Min TX or Required Min RX starts one. While Up, a slower TX or a faster
//!   RX only takes effect once the Final arrives; the safe direction applies
//!   at once. While not Up, Desired Min TX is at least 1 s (§6.8.3), so
//!   going Up itself starts a Poll with the configured interval;
//! - administrative control (§6.8.16): AdminDown with diag 7, still
//!   transmitting (at the not-Up rate) so the peer learns of it;
//! - optional keyed SHA1 / meticulous keyed SHA1 (§6.7.4, see `auth`).
//!
//! Not implemented: Demand mode (we never set D, but honour a peer's D by
//! ceasing periodic transmission while both are Up, §6.8.7) and the Echo
//! function (Required Min Echo RX is always 0).
//!
//! FRR's bfdd only recomputes its transmit interval and detection time when
//! it sees a P or F bit, so advertising new timers without a Poll would
//! leave it on stale values; this is why every advertised change polls.

use super::auth::{sequence_in_window, AuthConfig};
use super::counters::{Counters, RxDrop};
use super::jitter::Jitter;
use super::packet::{AuthRepr, BfdPacket, Diag, Repr, State, MAX_PACKET_LEN};
use super::transport::SessionKind;
use core::fmt;

/// The floor on Desired Min TX while the session is not Up (§6.8.3).
pub const SLOW_TX_US: u32 = 1_000_000;
/// The shortest interval we accept in configuration.
pub const MIN_INTERVAL_US: u32 = 10_000;
const NS_PER_US: u64 = 1_000;
/// The RFC's initial bfd.RemoteMinRxInterval (§6.8.1).
const INITIAL_REMOTE_MIN_RX_US: u32 = 1;
const EVENT_QUEUE_LEN: usize = 8;

/// A session's configuration.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// bfd.LocalDiscr: non-zero and unique on this system.
    pub local_discr: u32,
    /// Microseconds; at least [`MIN_INTERVAL_US`].
    pub desired_min_tx_us: u32,
    /// Microseconds; at least [`MIN_INTERVAL_US`].
    pub required_min_rx_us: u32,
    pub detect_mult: u8,
    pub kind: SessionKind,
    pub auth: Option<AuthConfig>,
    /// Do not transmit until the peer has been heard (§6.1).
    pub passive: bool,
    pub admin_down: bool,
    /// Seeds the jitter and the initial authentication sequence number.
    pub seed: u64,
}

/// A configuration the session refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    ZeroDiscriminator,
    ZeroDetectMult,
    /// Below [`MIN_INTERVAL_US`].
    IntervalTooShort(u32),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ZeroDiscriminator => write!(f, "BFD local discriminator must be non-zero"),
            ConfigError::ZeroDetectMult => write!(f, "BFD detect multiplier must be non-zero"),
            ConfigError::IntervalTooShort(us) => {
                write!(
                    f,
                    "BFD interval {us} us is below the {MIN_INTERVAL_US} us minimum"
                )
            }
        }
    }
}

/// What the session tells its owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    StateChanged {
        from: State,
        to: State,
        diag: Diag,
    },
    /// A Poll Sequence we started ended: these values are now in force.
    ParamsAgreed {
        desired_min_tx_us: u32,
        required_min_rx_us: u32,
    },
}

/// The session's timers; the next deadline is their minimum.
#[derive(Clone, Copy)]
enum Timer {
    /// The next jittered periodic packet.
    Periodic,
    /// A packet that goes out at once: a Final, or news of a state change.
    Immediate,
    /// Detection time expiry.
    Detection,
}

const TIMER_COUNT: usize = 3;

#[derive(Clone, Debug, Default)]
struct EventQueue {
    slots: [Option<SessionEvent>; EVENT_QUEUE_LEN],
    head: usize,
    len: usize,
}

impl EventQueue {
    fn push(&mut self, e: SessionEvent) -> bool {
        if self.len == EVENT_QUEUE_LEN {
            return false;
        }
        self.slots[(self.head + self.len) % EVENT_QUEUE_LEN] = Some(e);
        self.len += 1;
        true
    }

    fn pop(&mut self) -> Option<SessionEvent> {
        if self.len == 0 {
            return None;
        }
        let e = self.slots[self.head].take();
        self.head = (self.head + 1) % EVENT_QUEUE_LEN;
        self.len -= 1;
        e
    }
}

/// One BFD session.
#[derive(Debug)]
pub struct Session {
    local_discr: u32,
    remote_discr: u32,
    state: State,
    remote_state: State,
    diag: Diag,
    remote_diag: Diag,
    kind: SessionKind,
    passive: bool,
    detect_mult: u8,
    /// Configured intervals.
    cfg_tx_us: u32,
    cfg_rx_us: u32,
    /// bfd.DesiredMinTxInterval / bfd.RequiredMinRxInterval as advertised.
    adv_tx_us: u32,
    adv_rx_us: u32,
    /// The values in force locally, which lag the advertised ones during a
    /// Poll Sequence when changing them at once would be unsafe.
    used_tx_us: u32,
    used_rx_us: u32,
    remote_min_rx_us: u32,
    remote_desired_tx_us: u32,
    /// Zero until heard from, and again after a detection expiry.
    remote_detect_mult: u8,
    remote_demand: bool,
    poll_active: bool,
    /// Advertised values changed again during the Poll: poll once more.
    repoll: bool,
    final_pending: bool,
    auth: Option<AuthConfig>,
    xmit_auth_seq: u32,
    /// bfd.RcvAuthSeq, when bfd.AuthSeqKnown.
    rcv_auth_seq: Option<u32>,
    /// bfd.AuthSeqKnown lapses after two detection times of silence.
    rcv_auth_seq_until: u64,
    timers: [Option<u64>; TIMER_COUNT],
    last_periodic_tx: Option<u64>,
    jitter: Jitter,
    events: EventQueue,
    counters: Counters,
}

fn check_interval(us: u32) -> Result<(), ConfigError> {
    if us < MIN_INTERVAL_US {
        Err(ConfigError::IntervalTooShort(us))
    } else {
        Ok(())
    }
}

impl Session {
    pub fn new(cfg: SessionConfig) -> Result<Session, ConfigError> {
        if cfg.local_discr == 0 {
            return Err(ConfigError::ZeroDiscriminator);
        }
        if cfg.detect_mult == 0 {
            return Err(ConfigError::ZeroDetectMult);
        }
        check_interval(cfg.desired_min_tx_us)?;
        check_interval(cfg.required_min_rx_us)?;
        let mut jitter = Jitter::new(cfg.seed);
        // §6.8.1: bfd.XmitAuthSeq starts at a random value.
        let xmit_auth_seq = jitter.next_u32();
        let (state, diag) = if cfg.admin_down {
            (State::AdminDown, Diag::AdministrativelyDown)
        } else {
            (State::Down, Diag::None)
        };
        let adv_tx_us = cfg.desired_min_tx_us.max(SLOW_TX_US);
        let mut s = Session {
            local_discr: cfg.local_discr,
            remote_discr: 0,
            state,
            remote_state: State::Down,
            diag,
            remote_diag: Diag::None,
            kind: cfg.kind,
            passive: cfg.passive,
            detect_mult: cfg.detect_mult,
            cfg_tx_us: cfg.desired_min_tx_us,
            cfg_rx_us: cfg.required_min_rx_us,
            adv_tx_us,
            adv_rx_us: cfg.required_min_rx_us,
            used_tx_us: adv_tx_us,
            used_rx_us: cfg.required_min_rx_us,
            remote_min_rx_us: INITIAL_REMOTE_MIN_RX_US,
            remote_desired_tx_us: 0,
            remote_detect_mult: 0,
            remote_demand: false,
            poll_active: false,
            repoll: false,
            final_pending: false,
            auth: cfg.auth,
            xmit_auth_seq,
            rcv_auth_seq: None,
            rcv_auth_seq_until: 0,
            timers: [None; TIMER_COUNT],
            last_periodic_tx: None,
            jitter,
            events: EventQueue::default(),
            counters: Counters::default(),
        };
        if s.may_transmit_periodic() {
            // The first packet goes out as soon as the caller drives us.
            s.timers[Timer::Periodic as usize] = Some(0);
        }
        Ok(s)
    }

    // --- Accessors ---------------------------------------------------------

    pub fn state(&self) -> State {
        self.state
    }

    pub fn remote_state(&self) -> State {
        self.remote_state
    }

    /// bfd.LocalDiag: why the session last went down.
    pub fn diag(&self) -> Diag {
        self.diag
    }

    /// The diagnostic the peer last sent.
    pub fn remote_diag(&self) -> Diag {
        self.remote_diag
    }

    pub fn local_discr(&self) -> u32 {
        self.local_discr
    }

    /// Zero until the peer has been heard, and after a detection expiry.
    pub fn remote_discr(&self) -> u32 {
        self.remote_discr
    }

    pub fn kind(&self) -> SessionKind {
        self.kind
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Whether a Poll Sequence we started awaits its Final.
    pub fn is_polling(&self) -> bool {
        self.poll_active
    }

    /// (Desired Min TX, Required Min RX) as advertised, microseconds.
    pub fn advertised_params(&self) -> (u32, u32) {
        (self.adv_tx_us, self.adv_rx_us)
    }

    /// The periodic transmit interval before jitter, microseconds (§6.8.2).
    pub fn tx_interval_us(&self) -> u32 {
        self.used_tx_us.max(self.remote_min_rx_us)
    }

    /// The detection time (§6.8.4), or `None` before the peer is heard.
    pub fn detection_time_ns(&self) -> Option<u64> {
        if self.remote_detect_mult == 0 {
            return None;
        }
        let interval = self.used_rx_us.max(self.remote_desired_tx_us);
        Some(u64::from(self.remote_detect_mult) * u64::from(interval) * NS_PER_US)
    }

    /// The earliest deadline at which [`Session::handle_timeout`] or
    /// [`Session::poll_transmit`] has work; it may already have passed.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.timers.iter().flatten().min().copied()
    }

    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop()
    }

    // --- Input -------------------------------------------------------------

    /// Processes a received UDP payload (RFC 5880 §6.8.6). The caller has
    /// already checked the transport (port, TTL, addresses); on `Err` the
    /// packet was discarded and counted under that reason.
    pub fn handle_rx(&mut self, payload: &[u8], now_ns: u64) -> Result<(), RxDrop> {
        let parsed = BfdPacket::new_checked(payload)
            .and_then(|p| Repr::parse(&p))
            .map_err(RxDrop::from);
        let result = match parsed {
            Ok(repr) => self.process(payload, &repr, now_ns),
            Err(e) => Err(e),
        };
        self.account(result)
    }

    /// [`Session::handle_rx`] for a packet the registry already parsed.
    pub(crate) fn handle_parsed(
        &mut self,
        payload: &[u8],
        repr: &Repr,
        now_ns: u64,
    ) -> Result<(), RxDrop> {
        let result = self.process(payload, repr, now_ns);
        self.account(result)
    }

    /// Counts a drop decided outside the session (transport checks).
    pub(crate) fn count_drop(&mut self, reason: RxDrop) {
        self.counters.rx_drops.count(reason);
    }

    fn account(&mut self, result: Result<(), RxDrop>) -> Result<(), RxDrop> {
        match result {
            Ok(()) => self.counters.rx_ok += 1,
            Err(reason) => self.counters.rx_drops.count(reason),
        }
        result
    }

    fn process(&mut self, payload: &[u8], repr: &Repr, now: u64) -> Result<(), RxDrop> {
        if repr.your_discriminator != 0 && repr.your_discriminator != self.local_discr {
            return Err(RxDrop::UnknownYourDiscriminator);
        }
        match (&self.auth, &repr.auth) {
            (None, None) => {}
            (None, Some(_)) => return Err(RxDrop::AuthUnexpected),
            (Some(_), None) => return Err(RxDrop::AuthMissing),
            (Some(cfg), Some(a)) => {
                if a.auth_type != cfg.auth_type() {
                    return Err(RxDrop::AuthTypeMismatch);
                }
                if a.key_id != cfg.key_id() {
                    return Err(RxDrop::AuthKeyId);
                }
                let known = self.rcv_auth_seq.filter(|_| now < self.rcv_auth_seq_until);
                if let Some(last) = known {
                    if !sequence_in_window(last, a.sequence, repr.detect_mult, cfg.meticulous()) {
                        return Err(RxDrop::AuthSequence);
                    }
                }
                let len = payload.get(3).map_or(0, |l| usize::from(*l));
                if !cfg.verify(payload.get(..len).unwrap_or(&[])) {
                    return Err(RxDrop::AuthDigest);
                }
                self.rcv_auth_seq = Some(a.sequence);
            }
        }

        let old_interval = self.tx_interval_us();
        self.remote_discr = repr.my_discriminator;
        self.remote_state = repr.state;
        self.remote_diag = repr.diag;
        self.remote_demand = repr.demand;
        self.remote_min_rx_us = repr.required_min_rx;
        self.remote_desired_tx_us = repr.desired_min_tx;
        self.remote_detect_mult = repr.detect_mult;

        if self.poll_active && repr.final_ {
            self.finish_poll();
        }

        if self.state == State::AdminDown {
            self.sync_periodic(now, old_interval);
            return Err(RxDrop::AdminDown);
        }

        match (self.state, repr.state) {
            (State::Down, State::AdminDown) => {}
            (_, State::AdminDown) => {
                self.set_state(State::Down, Some(Diag::NeighborSignaledSessionDown), now)
            }
            (State::Down, State::Down) => self.set_state(State::Init, None, now),
            (State::Down, State::Init) => self.set_state(State::Up, None, now),
            (State::Init, State::Init | State::Up) => self.set_state(State::Up, None, now),
            (State::Up, State::Down) => {
                self.set_state(State::Down, Some(Diag::NeighborSignaledSessionDown), now)
            }
            _ => {}
        }

        if repr.poll {
            // §6.8.7: answer "as soon as practicable, without respect to the
            // transmission timer".
            self.final_pending = true;
            self.timers[Timer::Immediate as usize] = Some(now);
        }

        let detect = self.detection_time_ns();
        self.timers[Timer::Detection as usize] = detect.map(|d| now.saturating_add(d));
        if self.auth.is_some() {
            self.rcv_auth_seq_until = detect.map_or(0, |d| now.saturating_add(2 * d));
        }
        self.sync_periodic(now, old_interval);
        Ok(())
    }

    /// Runs expired timers: the detection timer (§6.8.4). Transmit timers
    /// are served by [`Session::poll_transmit`].
    pub fn handle_timeout(&mut self, now_ns: u64) {
        let Some(t) = self.timers[Timer::Detection as usize] else {
            return;
        };
        if t > now_ns {
            return;
        }
        self.timers[Timer::Detection as usize] = None;
        let old_interval = self.tx_interval_us();
        // §6.8.1: forget the peer after a Detection Time of silence.
        self.remote_discr = 0;
        self.remote_state = State::Down;
        self.remote_min_rx_us = INITIAL_REMOTE_MIN_RX_US;
        self.remote_desired_tx_us = 0;
        self.remote_detect_mult = 0;
        self.remote_demand = false;
        if matches!(self.state, State::Init | State::Up) {
            self.counters.detection_expiries += 1;
            self.set_state(State::Down, Some(Diag::ControlDetectionTimeExpired), now_ns);
        }
        self.sync_periodic(now_ns, old_interval);
    }

    // --- Control -----------------------------------------------------------

    /// Changes the intervals (microseconds) and multiplier. A change to the
    /// advertised intervals starts a Poll Sequence (§6.8.3); the multiplier
    /// is carried in every packet and applies at once.
    pub fn set_params(
        &mut self,
        desired_min_tx_us: u32,
        required_min_rx_us: u32,
        detect_mult: u8,
    ) -> Result<(), ConfigError> {
        if detect_mult == 0 {
            return Err(ConfigError::ZeroDetectMult);
        }
        check_interval(desired_min_tx_us)?;
        check_interval(required_min_rx_us)?;
        let old_interval = self.tx_interval_us();
        self.cfg_tx_us = desired_min_tx_us;
        self.cfg_rx_us = required_min_rx_us;
        self.detect_mult = detect_mult;
        self.update_advertised();
        self.reschedule_periodic(old_interval);
        Ok(())
    }

    /// Administratively disables (AdminDown, diag 7) or re-enables (Down)
    /// the session (§6.8.16).
    pub fn set_admin_down(&mut self, down: bool, now_ns: u64) {
        let old_interval = self.tx_interval_us();
        if down && self.state != State::AdminDown {
            self.set_state(State::AdminDown, Some(Diag::AdministrativelyDown), now_ns);
        } else if !down && self.state == State::AdminDown {
            self.set_state(State::Down, None, now_ns);
        }
        self.sync_periodic(now_ns, old_interval);
    }

    // --- Output ------------------------------------------------------------

    /// Writes the next due packet into `buf` and returns its length; call
    /// until it returns `None`. `buf` must hold [`MAX_PACKET_LEN`] bytes or
    /// nothing is emitted.
    pub fn poll_transmit(&mut self, now_ns: u64, buf: &mut [u8]) -> Option<usize> {
        if buf.len() < MAX_PACKET_LEN {
            return None;
        }
        let due = |t: Option<u64>| t.is_some_and(|t| t <= now_ns);
        let periodic_due = due(self.timers[Timer::Periodic as usize]);
        if due(self.timers[Timer::Immediate as usize]) {
            self.timers[Timer::Immediate as usize] = None;
            let final_ = core::mem::take(&mut self.final_pending);
            if final_ || self.may_transmit_immediate() {
                if periodic_due {
                    // This packet stands in for the periodic one.
                    self.schedule_periodic_from(now_ns);
                }
                return self.emit(buf, final_);
            }
        }
        if periodic_due {
            if self.may_transmit_periodic() {
                self.schedule_periodic_from(now_ns);
                return self.emit(buf, false);
            }
            self.timers[Timer::Periodic as usize] = None;
        }
        None
    }

    fn emit(&mut self, buf: &mut [u8], final_: bool) -> Option<usize> {
        let repr = Repr {
            diag: self.diag,
            state: self.state,
            // §6.5: never P and F together.
            poll: self.poll_active && !final_,
            final_,
            control_plane_independent: false,
            demand: false,
            detect_mult: self.detect_mult,
            my_discriminator: self.local_discr,
            your_discriminator: self.remote_discr,
            desired_min_tx: self.adv_tx_us,
            required_min_rx: self.adv_rx_us,
            required_min_echo_rx: 0,
            auth: self.auth.as_ref().map(|cfg| AuthRepr {
                auth_type: cfg.auth_type(),
                key_id: cfg.key_id(),
                sequence: self.xmit_auth_seq,
                digest: [0; 20],
            }),
        };
        let n = repr.emit(buf).ok()?;
        if let Some(cfg) = &self.auth {
            cfg.sign(&mut buf[..n]);
            // Both SHA1 flavours advance per packet: required for
            // meticulous, and it narrows replays for plain keyed SHA1.
            self.xmit_auth_seq = self.xmit_auth_seq.wrapping_add(1);
        }
        self.counters.tx += 1;
        if final_ {
            self.counters.tx_final += 1;
        }
        Some(n)
    }

    // --- Internals ---------------------------------------------------------

    fn set_state(&mut self, to: State, diag: Option<Diag>, now: u64) {
        let from = self.state;
        if from == to {
            return;
        }
        self.state = to;
        if let Some(d) = diag {
            self.diag = d;
        }
        if to == State::Up {
            self.diag = Diag::None;
        }
        if to == State::AdminDown {
            self.timers[Timer::Detection as usize] = None;
        }
        self.counters.state_changes += 1;
        let event = SessionEvent::StateChanged {
            from,
            to,
            diag: self.diag,
        };
        if !self.events.push(event) {
            self.counters.events_lost += 1;
        }
        self.update_advertised();
        // Tell the peer now rather than at the next periodic slot.
        self.timers[Timer::Immediate as usize] = Some(now);
    }

    /// Recomputes bfd.DesiredMinTxInterval / bfd.RequiredMinRxInterval and
    /// starts a Poll Sequence when they change (§6.8.3).
    fn update_advertised(&mut self) {
        let tx = if self.state == State::Up {
            self.cfg_tx_us
        } else {
            self.cfg_tx_us.max(SLOW_TX_US)
        };
        let rx = self.cfg_rx_us;
        if (tx, rx) == (self.adv_tx_us, self.adv_rx_us) {
            return;
        }
        if self.state == State::Up {
            // Sending faster and detecting slower are safe at once; the
            // other directions wait for the Final.
            self.used_tx_us = self.used_tx_us.min(tx);
            self.used_rx_us = self.used_rx_us.max(rx);
        } else {
            self.used_tx_us = tx;
            self.used_rx_us = rx;
        }
        self.adv_tx_us = tx;
        self.adv_rx_us = rx;
        if self.poll_active {
            self.repoll = true;
        } else {
            self.poll_active = true;
        }
    }

    fn finish_poll(&mut self) {
        if self.repoll {
            // The Final may answer a Poll sent before the latest change.
            self.repoll = false;
            return;
        }
        self.poll_active = false;
        self.used_tx_us = self.adv_tx_us;
        self.used_rx_us = self.adv_rx_us;
        self.counters.polls_completed += 1;
        let event = SessionEvent::ParamsAgreed {
            desired_min_tx_us: self.adv_tx_us,
            required_min_rx_us: self.adv_rx_us,
        };
        if !self.events.push(event) {
            self.counters.events_lost += 1;
        }
    }

    /// §6.8.7: no periodic packets from a passive session that has not
    /// heard its peer, none while the peer asks for Required Min RX 0, and
    /// none while the peer runs Demand mode and both are Up.
    fn may_transmit_periodic(&self) -> bool {
        self.may_transmit_immediate()
            && !(self.remote_demand && self.state == State::Up && self.remote_state == State::Up)
    }

    fn may_transmit_immediate(&self) -> bool {
        !(self.passive && self.remote_discr == 0) && self.remote_min_rx_us != 0
    }

    fn schedule_periodic_from(&mut self, now: u64) {
        self.last_periodic_tx = Some(now);
        let interval = u64::from(self.tx_interval_us()) * NS_PER_US;
        let wait = self.jitter.apply(interval, self.detect_mult);
        self.timers[Timer::Periodic as usize] = Some(now.saturating_add(wait));
    }

    /// Arms or disarms the periodic timer after the rules of §6.8.7 may
    /// have changed, and re-spaces it if the interval changed.
    fn sync_periodic(&mut self, now: u64, old_interval_us: u32) {
        if !self.may_transmit_periodic() {
            self.timers[Timer::Periodic as usize] = None;
            return;
        }
        if self.timers[Timer::Periodic as usize].is_none() {
            self.timers[Timer::Periodic as usize] = Some(now);
            return;
        }
        self.reschedule_periodic(old_interval_us);
    }

    fn reschedule_periodic(&mut self, old_interval_us: u32) {
        let new = self.tx_interval_us();
        if new == old_interval_us || self.timers[Timer::Periodic as usize].is_none() {
            return;
        }
        if let Some(last) = self.last_periodic_tx {
            let wait = self
                .jitter
                .apply(u64::from(new) * NS_PER_US, self.detect_mult);
            self.timers[Timer::Periodic as usize] = Some(last.saturating_add(wait));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bfd::auth::AuthConfig;
    use crate::bfd::packet::AuthType;

    const MS: u64 = 1_000_000;

    fn cfg(discr: u32, tx_us: u32, rx_us: u32, mult: u8) -> SessionConfig {
        SessionConfig {
            local_discr: discr,
            desired_min_tx_us: tx_us,
            required_min_rx_us: rx_us,
            detect_mult: mult,
            kind: SessionKind::SingleHop,
            auth: None,
            passive: false,
            admin_down: false,
            seed: u64::from(discr) * 7919,
        }
    }

    fn session() -> Session {
        Session::new(cfg(1, 50_000, 50_000, 3)).unwrap()
    }

    /// A packet from the peer (discriminator 2).
    fn peer(state: State, your: u32) -> Repr {
        Repr {
            diag: Diag::None,
            state,
            poll: false,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: 3,
            my_discriminator: 2,
            your_discriminator: your,
            desired_min_tx: 50_000,
            required_min_rx: 50_000,
            required_min_echo_rx: 0,
            auth: None,
        }
    }

    fn bytes(r: &Repr) -> ([u8; MAX_PACKET_LEN], usize) {
        let mut b = [0u8; MAX_PACKET_LEN];
        let n = r.emit(&mut b).unwrap();
        (b, n)
    }

    fn rx(s: &mut Session, r: &Repr, now: u64) -> Result<(), RxDrop> {
        let (b, n) = bytes(r);
        s.handle_rx(&b[..n], now)
    }

    /// Emits every due packet and returns them parsed.
    fn drain(s: &mut Session, now: u64) -> Vec<Repr> {
        let mut out = Vec::new();
        let mut buf = [0u8; MAX_PACKET_LEN];
        while let Some(n) = s.poll_transmit(now, &mut buf) {
            out.push(Repr::parse(&BfdPacket::new_checked(&buf[..n]).unwrap()).unwrap());
            assert!(out.len() < 10, "poll_transmit never runs dry");
        }
        out
    }

    fn events(s: &mut Session) -> Vec<SessionEvent> {
        core::iter::from_fn(|| s.poll_event()).collect()
    }

    fn bring_up(s: &mut Session, now: u64) {
        rx(s, &peer(State::Init, s.local_discr()), now).unwrap();
        assert_eq!(s.state(), State::Up);
    }

    // --- State table (§6.8.6) ----------------------------------------------

    #[test]
    fn down_goes_init_on_remote_down() {
        let mut s = session();
        rx(&mut s, &peer(State::Down, 0), 0).unwrap();
        assert_eq!(s.state(), State::Init);
        assert_eq!(s.remote_discr(), 2);
        assert_eq!(
            events(&mut s),
            vec![SessionEvent::StateChanged {
                from: State::Down,
                to: State::Init,
                diag: Diag::None
            }]
        );
    }

    #[test]
    fn down_goes_up_on_remote_init() {
        let mut s = session();
        rx(&mut s, &peer(State::Init, 1), 0).unwrap();
        assert_eq!(s.state(), State::Up);
        assert_eq!(s.remote_state(), State::Init);
    }

    #[test]
    fn down_stays_down_on_remote_up() {
        let mut s = session();
        rx(&mut s, &peer(State::Up, 1), 0).unwrap();
        assert_eq!(s.state(), State::Down);
        assert!(events(&mut s).is_empty());
    }

    #[test]
    fn init_goes_up_on_remote_init_or_up() {
        for remote in [State::Init, State::Up] {
            let mut s = session();
            rx(&mut s, &peer(State::Down, 0), 0).unwrap();
            rx(&mut s, &peer(remote, 1), MS).unwrap();
            assert_eq!(s.state(), State::Up, "remote {remote:?}");
        }
    }

    #[test]
    fn init_stays_init_on_remote_down() {
        let mut s = session();
        rx(&mut s, &peer(State::Down, 0), 0).unwrap();
        rx(&mut s, &peer(State::Down, 1), MS).unwrap();
        assert_eq!(s.state(), State::Init);
    }

    #[test]
    fn up_goes_down_on_remote_down_with_diag_neighbor_signaled() {
        let mut s = session();
        bring_up(&mut s, 0);
        events(&mut s);
        rx(&mut s, &peer(State::Down, 1), MS).unwrap();
        assert_eq!(s.state(), State::Down);
        assert_eq!(s.diag(), Diag::NeighborSignaledSessionDown);
        assert_eq!(
            events(&mut s),
            vec![SessionEvent::StateChanged {
                from: State::Up,
                to: State::Down,
                diag: Diag::NeighborSignaledSessionDown
            }]
        );
    }

    #[test]
    fn remote_admin_down_takes_init_and_up_down_with_diag_3() {
        let mut s = session();
        bring_up(&mut s, 0);
        rx(&mut s, &peer(State::AdminDown, 1), MS).unwrap();
        assert_eq!(s.state(), State::Down);
        assert_eq!(s.diag(), Diag::NeighborSignaledSessionDown);

        let mut s = session();
        rx(&mut s, &peer(State::Down, 0), 0).unwrap();
        assert_eq!(s.state(), State::Init);
        rx(&mut s, &peer(State::AdminDown, 1), MS).unwrap();
        assert_eq!(s.state(), State::Down);
        assert_eq!(s.diag(), Diag::NeighborSignaledSessionDown);
    }

    #[test]
    fn remote_admin_down_leaves_down_session_and_diag_alone() {
        let mut s = session();
        rx(&mut s, &peer(State::AdminDown, 0), 0).unwrap();
        assert_eq!(s.state(), State::Down);
        assert_eq!(s.diag(), Diag::None);
        assert_eq!(s.counters().state_changes, 0);
    }

    #[test]
    fn detection_timeout_takes_up_down_with_diag_1() {
        let mut s = session();
        bring_up(&mut s, 0);
        events(&mut s);
        let d = s.detection_time_ns().unwrap();
        assert_eq!(d, 150 * MS);
        assert_eq!(s.poll_timeout().map(|t| t <= d), Some(true));
        s.handle_timeout(d - 1);
        assert_eq!(s.state(), State::Up);
        s.handle_timeout(d);
        assert_eq!(s.state(), State::Down);
        assert_eq!(s.diag(), Diag::ControlDetectionTimeExpired);
        assert_eq!(s.counters().detection_expiries, 1);
        assert_eq!(s.remote_discr(), 0);
        assert_eq!(
            events(&mut s),
            vec![SessionEvent::StateChanged {
                from: State::Up,
                to: State::Down,
                diag: Diag::ControlDetectionTimeExpired
            }]
        );
        // The next packet says Down with Your Discriminator 0, as FRR wants.
        let out = drain(&mut s, d);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].state, out[0].your_discriminator), (State::Down, 0));
        assert_eq!(out[0].diag, Diag::ControlDetectionTimeExpired);
    }

    #[test]
    fn detection_timeout_takes_init_down_too() {
        let mut s = session();
        rx(&mut s, &peer(State::Down, 0), 0).unwrap();
        // Remote desired 50 ms but we are not Up: detection uses the peer's
        // advertised rate: 3 × max(50 ms, 50 ms).
        s.handle_timeout(150 * MS);
        assert_eq!(s.state(), State::Down);
        assert_eq!(s.diag(), Diag::ControlDetectionTimeExpired);
    }

    #[test]
    fn detection_timeout_while_down_only_forgets_the_peer() {
        let mut s = session();
        rx(&mut s, &peer(State::Up, 1), 0).unwrap();
        assert_eq!(s.remote_discr(), 2);
        s.handle_timeout(150 * MS);
        assert_eq!(s.state(), State::Down);
        assert_eq!(s.remote_discr(), 0);
        assert_eq!(s.counters().detection_expiries, 0);
        assert_eq!(s.counters().state_changes, 0);
    }

    #[test]
    fn local_admin_down_sets_diag_7_tells_peer_and_ignores_it() {
        let mut s = session();
        bring_up(&mut s, 0);
        drain(&mut s, 0);
        s.set_admin_down(true, MS);
        assert_eq!(s.state(), State::AdminDown);
        assert_eq!(s.diag(), Diag::AdministrativelyDown);
        let out = drain(&mut s, MS);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].state, State::AdminDown);
        assert_eq!(out[0].diag, Diag::AdministrativelyDown);
        // Peer packets are discarded and no detection timer runs.
        assert_eq!(
            rx(&mut s, &peer(State::Up, 1), 2 * MS),
            Err(RxDrop::AdminDown)
        );
        assert_eq!(s.counters().rx_drops.get(RxDrop::AdminDown), 1);
        s.handle_timeout(10_000 * MS);
        assert_eq!(s.state(), State::AdminDown);
        // Still transmitting, at the not-Up rate.
        assert_eq!(s.advertised_params().0, SLOW_TX_US);
        // Re-enabling goes Down, not Up.
        s.set_admin_down(false, 3 * MS);
        assert_eq!(s.state(), State::Down);
    }

    #[test]
    fn session_configured_admin_down_starts_admin_down() {
        let mut c = cfg(1, 50_000, 50_000, 3);
        c.admin_down = true;
        let mut s = Session::new(c).unwrap();
        assert_eq!(s.state(), State::AdminDown);
        assert_eq!(s.diag(), Diag::AdministrativelyDown);
        let out = drain(&mut s, 0);
        assert_eq!(out[0].state, State::AdminDown);
    }

    #[test]
    fn state_change_is_sent_at_once_not_at_the_next_periodic_slot() {
        let mut s = session();
        drain(&mut s, 0); // first periodic packet
        assert!(drain(&mut s, 10 * MS).is_empty());
        rx(&mut s, &peer(State::Down, 0), 10 * MS).unwrap();
        let out = drain(&mut s, 10 * MS);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].state, State::Init);
        assert_eq!(out[0].your_discriminator, 2);
    }

    // --- Packet contents FRR relies on -------------------------------------

    #[test]
    fn emitted_packets_carry_what_frr_expects() {
        let mut s = session();
        let out = drain(&mut s, 0);
        assert_eq!(out.len(), 1);
        let p = &out[0];
        assert_eq!(p.my_discriminator, 1);
        assert_eq!(p.your_discriminator, 0);
        assert_eq!(p.state, State::Down);
        assert_eq!(p.detect_mult, 3);
        assert_eq!(p.required_min_echo_rx, 0);
        assert!(!p.control_plane_independent && !p.demand && p.auth.is_none());
        assert!(!(p.poll && p.final_));
        let mut buf = [0u8; MAX_PACKET_LEN];
        let mut s = session();
        assert_eq!(s.poll_transmit(0, &mut buf), Some(24));
        assert_eq!(buf[3], 24);
        assert_eq!(buf[0] >> 5, 1);
    }

    #[test]
    fn nothing_is_emitted_into_a_short_buffer() {
        let mut s = session();
        let mut buf = [0u8; MAX_PACKET_LEN - 1];
        assert_eq!(s.poll_transmit(0, &mut buf), None);
        assert_eq!(s.counters().tx, 0);
        // The packet is still due.
        assert_eq!(drain(&mut s, 0).len(), 1);
    }

    // --- Timers ------------------------------------------------------------

    #[test]
    fn transmits_once_a_second_until_up_then_at_the_configured_rate() {
        let mut s = session();
        let mut now = 0;
        let mut sent = Vec::new();
        while now < 10_000 * MS {
            let out = drain(&mut s, now);
            for p in &out {
                assert_eq!(p.desired_min_tx, SLOW_TX_US);
                sent.push(now);
            }
            now = s.poll_timeout().unwrap().max(now + 1);
        }
        assert!(sent.len() >= 10 && sent.len() <= 14, "{}", sent.len());
        for w in sent.windows(2) {
            let gap = w[1] - w[0];
            assert!((750 * MS..=1000 * MS).contains(&gap), "{gap}");
        }
        // Up: the advertised interval drops to 50 ms, inside a Poll.
        bring_up(&mut s, now);
        let out = drain(&mut s, now);
        assert_eq!(out[0].state, State::Up);
        assert_eq!(out[0].desired_min_tx, 50_000);
        assert!(out[0].poll);
    }

    #[test]
    fn going_up_polls_and_the_final_completes_the_poll() {
        let mut s = session();
        bring_up(&mut s, 0);
        assert!(s.is_polling());
        // 50 ms is a decrease of Desired Min TX, so it already applies.
        assert_eq!(s.tx_interval_us(), 50_000);
        let mut fin = peer(State::Up, 1);
        fin.final_ = true;
        rx(&mut s, &fin, MS).unwrap();
        assert!(!s.is_polling());
        assert_eq!(s.counters().polls_completed, 1);
        assert!(events(&mut s).contains(&SessionEvent::ParamsAgreed {
            desired_min_tx_us: 50_000,
            required_min_rx_us: 50_000
        }));
        let out = drain(&mut s, 100 * MS);
        assert!(out.iter().all(|p| !p.poll));
    }

    fn up_and_agreed() -> Session {
        let mut s = session();
        bring_up(&mut s, 0);
        let mut fin = peer(State::Up, 1);
        fin.final_ = true;
        rx(&mut s, &fin, 0).unwrap();
        drain(&mut s, 0);
        events(&mut s);
        s
    }

    /// Gaps between periodic packets over `[from, to)`, feeding the peer's
    /// Up packets every 10 ms so the session stays Up.
    fn gaps(s: &mut Session, from: u64, to: u64, final_at: Option<u64>) -> Vec<(u64, u64, bool)> {
        let mut last = None;
        let mut out = Vec::new();
        let mut now = from;
        let mut next_rx = from;
        while now < to {
            if now >= next_rx {
                let mut p = peer(State::Up, 1);
                p.final_ = final_at.is_some_and(|t| now >= t && now < t + 10 * MS);
                rx(s, &p, now).unwrap();
                next_rx += 10 * MS;
            }
            for p in drain(s, now) {
                if let Some(l) = last {
                    out.push((now, now - l, p.poll));
                }
                last = Some(now);
            }
            now = s.poll_timeout().unwrap().min(next_rx).max(now + 1);
        }
        out
    }

    #[test]
    fn slower_tx_interval_applies_only_after_the_final() {
        let mut s = up_and_agreed();
        s.set_params(200_000, 50_000, 3).unwrap();
        assert!(s.is_polling());
        assert_eq!(s.advertised_params(), (200_000, 50_000));
        assert_eq!(s.tx_interval_us(), 50_000);
        // No Final for 500 ms: still 50 ms spacing, every packet a Poll.
        let before = gaps(&mut s, 0, 500 * MS, None);
        assert!(before.len() > 5);
        assert!(before.iter().all(|(_, g, p)| *g <= 50 * MS && *p));
        // Final at 500 ms: 200 ms spacing afterwards, no P.
        let after = gaps(&mut s, 500 * MS, 2_000 * MS, Some(500 * MS));
        let settled: Vec<_> = after.iter().filter(|(t, _, _)| *t > 800 * MS).collect();
        assert!(!settled.is_empty());
        assert!(settled
            .iter()
            .all(|(_, g, p)| (150 * MS..=200 * MS).contains(g) && !*p));
        assert!(!s.is_polling());
    }

    #[test]
    fn faster_rx_interval_keeps_the_old_detection_time_until_the_final() {
        let mut s = session();
        s.set_params(50_000, 200_000, 3).unwrap();
        bring_up(&mut s, 0);
        let mut fin = peer(State::Up, 1);
        fin.final_ = true;
        // The Poll started by the change while Down was overtaken by the
        // one for going Up: it takes a second Final.
        rx(&mut s, &fin, 0).unwrap();
        assert!(s.is_polling());
        rx(&mut s, &fin, 0).unwrap();
        assert!(!s.is_polling());
        assert_eq!(s.detection_time_ns(), Some(600 * MS));
        s.set_params(50_000, 20_000, 3).unwrap();
        rx(&mut s, &peer(State::Up, 1), MS).unwrap();
        assert_eq!(s.detection_time_ns(), Some(600 * MS));
        rx(&mut s, &fin, 2 * MS).unwrap();
        assert!(!s.is_polling());
        // Now max(20 ms, remote 50 ms) × 3.
        assert_eq!(s.detection_time_ns(), Some(150 * MS));
        // A slower RX applies at once (it only lengthens detection).
        s.set_params(50_000, 100_000, 3).unwrap();
        assert_eq!(s.detection_time_ns(), Some(300 * MS));
    }

    #[test]
    fn detection_time_is_remote_mult_times_max_of_local_rx_and_remote_tx() {
        for (local_rx, remote_tx, remote_mult, want_ms) in [
            (50_000u32, 10_000u32, 3u8, 150u64),
            (10_000, 50_000, 3, 150),
            (10_000, 10_000, 5, 50),
            (300_000, 300_000, 1, 300),
        ] {
            let mut s = Session::new(cfg(1, 50_000, local_rx, 3)).unwrap();
            let mut p = peer(State::Down, 0);
            p.desired_min_tx = remote_tx;
            p.detect_mult = remote_mult;
            rx(&mut s, &p, 0).unwrap();
            assert_eq!(s.detection_time_ns(), Some(want_ms * MS));
        }
    }

    #[test]
    fn tx_interval_honours_the_remote_required_min_rx() {
        let mut s = up_and_agreed();
        let mut p = peer(State::Up, 1);
        p.required_min_rx = 300_000;
        rx(&mut s, &p, 0).unwrap();
        assert_eq!(s.tx_interval_us(), 300_000);
    }

    #[test]
    fn remote_min_rx_zero_stops_periodic_packets_but_not_finals() {
        let mut s = up_and_agreed();
        let mut p = peer(State::Up, 1);
        p.required_min_rx = 0;
        rx(&mut s, &p, 0).unwrap();
        for t in 1..100 {
            assert!(drain(&mut s, t * 10 * MS).is_empty());
        }
        p.poll = true;
        rx(&mut s, &p, 1_000 * MS).unwrap();
        let out = drain(&mut s, 1_000 * MS);
        assert_eq!(out.len(), 1);
        assert!(out[0].final_ && !out[0].poll);
        // Back to a normal Required Min RX: periodic packets resume.
        p.poll = false;
        p.required_min_rx = 50_000;
        rx(&mut s, &p, 1_010 * MS).unwrap();
        assert_eq!(drain(&mut s, 1_010 * MS).len(), 1);
    }

    #[test]
    fn poll_is_answered_with_a_final_at_once() {
        let mut s = up_and_agreed();
        drain(&mut s, 0);
        let mut p = peer(State::Up, 1);
        p.poll = true;
        p.desired_min_tx = 20_000;
        rx(&mut s, &p, 5 * MS).unwrap();
        let out = drain(&mut s, 5 * MS);
        assert_eq!(out.len(), 1);
        assert!(out[0].final_);
        assert!(!out[0].poll);
        assert_eq!(s.counters().tx_final, 1);
        // The peer's new rate counts for detection straight away.
        assert_eq!(s.detection_time_ns(), Some(150 * MS));
    }

    #[test]
    fn final_never_carries_poll_even_while_we_poll() {
        let mut s = session();
        bring_up(&mut s, 0);
        drain(&mut s, 0);
        assert!(s.is_polling());
        let mut p = peer(State::Up, 1);
        p.poll = true;
        rx(&mut s, &p, MS).unwrap();
        let out = drain(&mut s, MS);
        assert_eq!(out.len(), 1);
        assert!(out[0].final_ && !out[0].poll);
        // Our own Poll continues on the next periodic packet.
        let next = s.poll_timeout().unwrap();
        let out = drain(&mut s, next);
        assert!(out[0].poll && !out[0].final_);
    }

    #[test]
    fn passive_session_waits_to_hear_its_peer() {
        let mut c = cfg(1, 50_000, 50_000, 3);
        c.passive = true;
        let mut s = Session::new(c).unwrap();
        assert_eq!(s.poll_timeout(), None);
        assert!(drain(&mut s, 5_000 * MS).is_empty());
        rx(&mut s, &peer(State::Down, 0), 5_000 * MS).unwrap();
        let out = drain(&mut s, 5_000 * MS);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].state, State::Init);
    }

    #[test]
    fn demand_bit_from_peer_stops_periodic_packets_while_both_up() {
        let mut s = up_and_agreed();
        let mut p = peer(State::Up, 1);
        p.demand = true;
        rx(&mut s, &p, 0).unwrap();
        assert!(drain(&mut s, 500 * MS).is_empty());
    }

    #[test]
    fn detect_mult_one_spaces_packets_between_75_and_90_percent() {
        let mut s = Session::new(cfg(1, 1_000_000, 1_000_000, 1)).unwrap();
        let mut now = 0;
        let mut last = None;
        let mut n = 0;
        while n < 200 {
            if !drain(&mut s, now).is_empty() {
                if let Some(l) = last {
                    let gap = now - l;
                    assert!((750 * MS..=900 * MS).contains(&gap), "{gap}");
                    n += 1;
                }
                last = Some(now);
            }
            now = s.poll_timeout().unwrap().max(now + 1);
        }
    }

    // --- Malformed packets (§6.8.6): dropped and counted --------------------

    #[test]
    fn malformed_packets_are_dropped_and_counted_by_reason() {
        let good = bytes(&peer(State::Init, 1));
        type Mangle = fn(&mut [u8; MAX_PACKET_LEN], &mut usize);
        let cases: [(RxDrop, Mangle); 9] = [
            (RxDrop::BadVersion, |b, _| b[0] = (2 << 5) | (b[0] & 0x1f)),
            (RxDrop::BadLength, |b, _| b[3] = 23),
            (RxDrop::BadLength, |b, _| b[3] = 40),
            (RxDrop::Truncated, |_, n| *n = 20),
            (RxDrop::ZeroDetectMult, |b, _| b[2] = 0),
            (RxDrop::Multipoint, |b, _| b[1] |= 0x01),
            (RxDrop::ZeroMyDiscriminator, |b, _| b[4..8].fill(0)),
            (RxDrop::ZeroYourDiscriminator, |b, _| b[8..12].fill(0)),
            (RxDrop::UnknownYourDiscriminator, |b, _| b[11] = 9),
        ];
        let mut s = session();
        for (i, (want, mangle)) in cases.iter().enumerate() {
            let (mut b, mut n) = good;
            mangle(&mut b, &mut n);
            assert_eq!(s.handle_rx(&b[..n], i as u64), Err(*want));
            assert_eq!(s.state(), State::Down);
            assert_eq!(s.remote_discr(), 0);
        }
        assert_eq!(s.counters().rx_drops.total(), cases.len() as u64);
        assert_eq!(s.counters().rx_drops.get(RxDrop::BadLength), 2);
        assert_eq!(s.counters().rx_ok, 0);
        // The unmangled packet still works.
        s.handle_rx(&good.0[..good.1], 100).unwrap();
        assert_eq!(s.state(), State::Up);
        assert_eq!(s.counters().rx_ok, 1);
    }

    #[test]
    fn a_bit_must_match_the_configuration() {
        // Auth packet to a session without auth.
        let key = AuthConfig::new(1, b"key", false).unwrap();
        let mut s = session();
        let mut p = peer(State::Down, 0);
        p.auth = Some(AuthRepr {
            auth_type: AuthType::KeyedSha1,
            key_id: 1,
            sequence: 1,
            digest: [0; 20],
        });
        let (mut b, n) = bytes(&p);
        key.sign(&mut b[..n]);
        assert_eq!(s.handle_rx(&b[..n], 0), Err(RxDrop::AuthUnexpected));
        // Plain packet to a session with auth.
        let mut c = cfg(1, 50_000, 50_000, 3);
        c.auth = Some(key);
        let mut s = Session::new(c).unwrap();
        assert_eq!(
            rx(&mut s, &peer(State::Down, 0), 0),
            Err(RxDrop::AuthMissing)
        );
        assert_eq!(s.counters().rx_drops.get(RxDrop::AuthMissing), 1);
        assert_eq!(s.state(), State::Down);
    }

    // --- Authentication (§6.7.4) ---------------------------------------------

    fn auth_session(meticulous: bool) -> Session {
        let mut c = cfg(1, 50_000, 50_000, 3);
        c.auth = Some(AuthConfig::new(5, b"s3cret", meticulous).unwrap());
        Session::new(c).unwrap()
    }

    fn signed(
        state: State,
        your: u32,
        key_id: u8,
        secret: &[u8],
        meticulous: bool,
        seq: u32,
    ) -> ([u8; MAX_PACKET_LEN], usize) {
        let key = AuthConfig::new(key_id, secret, meticulous).unwrap();
        let mut p = peer(state, your);
        p.auth = Some(AuthRepr {
            auth_type: key.auth_type(),
            key_id,
            sequence: seq,
            digest: [0; 20],
        });
        let (mut b, n) = bytes(&p);
        key.sign(&mut b[..n]);
        (b, n)
    }

    #[test]
    fn authenticated_packets_with_the_right_key_are_accepted() {
        for meticulous in [false, true] {
            let mut s = auth_session(meticulous);
            let (b, n) = signed(State::Down, 0, 5, b"s3cret", meticulous, 100);
            s.handle_rx(&b[..n], 0).unwrap();
            assert_eq!(s.state(), State::Init);
            // Our packets are signed with a per-packet sequence number.
            let out = drain(&mut s, 0);
            let a = out[0].auth.unwrap();
            assert_eq!(a.key_id, 5);
            let mut buf = [0u8; MAX_PACKET_LEN];
            s.set_admin_down(true, 1);
            let n = s.poll_transmit(1, &mut buf).unwrap();
            assert_eq!(n, 52);
            let key = AuthConfig::new(5, b"s3cret", meticulous).unwrap();
            assert!(key.verify(&buf[..n]));
            let next = Repr::parse(&BfdPacket::new_checked(&buf[..n]).unwrap()).unwrap();
            assert_eq!(next.auth.unwrap().sequence, a.sequence.wrapping_add(1));
        }
    }

    #[test]
    fn wrong_key_wrong_key_id_and_wrong_type_are_dropped() {
        let mut s = auth_session(false);
        let (b, n) = signed(State::Down, 0, 5, b"wrong", false, 1);
        assert_eq!(s.handle_rx(&b[..n], 0), Err(RxDrop::AuthDigest));
        let (b, n) = signed(State::Down, 0, 6, b"s3cret", false, 1);
        assert_eq!(s.handle_rx(&b[..n], 0), Err(RxDrop::AuthKeyId));
        let (b, n) = signed(State::Down, 0, 5, b"s3cret", true, 1);
        assert_eq!(s.handle_rx(&b[..n], 0), Err(RxDrop::AuthTypeMismatch));
        let (mut b, n) = signed(State::Down, 0, 5, b"s3cret", false, 1);
        b[20] ^= 0x80; // tamper with a signed field
        assert_eq!(s.handle_rx(&b[..n], 0), Err(RxDrop::AuthDigest));
        assert_eq!(s.state(), State::Down);
        assert_eq!(s.counters().rx_drops.total(), 4);
    }

    #[test]
    fn meticulous_rejects_a_replayed_sequence_number() {
        let mut s = auth_session(true);
        let (b, n) = signed(State::Down, 0, 5, b"s3cret", true, 100);
        s.handle_rx(&b[..n], 0).unwrap();
        assert_eq!(s.handle_rx(&b[..n], MS), Err(RxDrop::AuthSequence));
        let (b, n) = signed(State::Down, 0, 5, b"s3cret", true, 99);
        assert_eq!(s.handle_rx(&b[..n], MS), Err(RxDrop::AuthSequence));
        // Beyond 3 × Detect Mult ahead.
        let (b, n) = signed(State::Down, 0, 5, b"s3cret", true, 110);
        assert_eq!(s.handle_rx(&b[..n], MS), Err(RxDrop::AuthSequence));
        let (b, n) = signed(State::Down, 0, 5, b"s3cret", true, 109);
        s.handle_rx(&b[..n], MS).unwrap();
        assert_eq!(s.counters().rx_drops.get(RxDrop::AuthSequence), 3);
    }

    #[test]
    fn keyed_sha1_accepts_an_equal_sequence_number_but_not_an_older_one() {
        let mut s = auth_session(false);
        let (b, n) = signed(State::Down, 0, 5, b"s3cret", false, 100);
        s.handle_rx(&b[..n], 0).unwrap();
        s.handle_rx(&b[..n], MS).unwrap();
        let (b, n) = signed(State::Down, 1, 5, b"s3cret", false, 99);
        assert_eq!(s.handle_rx(&b[..n], MS), Err(RxDrop::AuthSequence));
    }

    #[test]
    fn sequence_knowledge_lapses_after_two_detection_times() {
        let mut s = auth_session(true);
        let (b, n) = signed(State::Down, 0, 5, b"s3cret", true, 100);
        s.handle_rx(&b[..n], 0).unwrap();
        // Detection time 150 ms: a restarted peer's sequence number is
        // accepted once 300 ms passed without packets.
        let (b, n) = signed(State::Down, 0, 5, b"s3cret", true, 5);
        assert_eq!(s.handle_rx(&b[..n], 299 * MS), Err(RxDrop::AuthSequence));
        s.handle_rx(&b[..n], 300 * MS).unwrap();
    }

    // --- Configuration -------------------------------------------------------

    #[test]
    fn invalid_configurations_are_refused() {
        assert_eq!(
            Session::new(cfg(0, 50_000, 50_000, 3)).unwrap_err(),
            ConfigError::ZeroDiscriminator
        );
        assert_eq!(
            Session::new(cfg(1, 50_000, 50_000, 0)).unwrap_err(),
            ConfigError::ZeroDetectMult
        );
        assert_eq!(
            Session::new(cfg(1, 9_999, 50_000, 3)).unwrap_err(),
            ConfigError::IntervalTooShort(9_999)
        );
        let mut s = session();
        assert!(s.set_params(10_000, 9_000, 3).is_err());
        assert!(s.set_params(10_000, 10_000, 3).is_ok());
    }

    #[test]
    fn session_debug_never_shows_the_secret() {
        let mut c = cfg(1, 50_000, 50_000, 3);
        c.auth = Some(AuthConfig::new(1, b"topsecretkey", false).unwrap());
        let s = Session::new(c.clone()).unwrap();
        assert!(!format!("{c:?}").contains("topsecretkey"));
        assert!(!format!("{s:?}").contains("topsecretkey"));
        assert!(!format!("{s:?}").contains("116, 111, 112")); // "top" as bytes
    }

    // --- Two sessions on simulated time --------------------------------------

    struct Sim {
        s: [Session; 2],
        now: u64,
        latency: u64,
        /// (deliver at, to, bytes, len)
        wire: Vec<(u64, usize, [u8; MAX_PACKET_LEN], usize)>,
        dead: [bool; 2],
        /// (time, side, event)
        log: Vec<(u64, usize, SessionEvent)>,
    }

    impl Sim {
        fn new(a: SessionConfig, b: SessionConfig, latency: u64) -> Sim {
            Sim {
                s: [Session::new(a).unwrap(), Session::new(b).unwrap()],
                now: 0,
                latency,
                wire: Vec::new(),
                dead: [false; 2],
                log: Vec::new(),
            }
        }

        fn run_until(&mut self, until: u64) {
            for _ in 0..10_000_000 {
                let mut next = self.wire.iter().map(|w| w.0).min();
                for i in 0..2 {
                    if !self.dead[i] {
                        next = match (next, self.s[i].poll_timeout()) {
                            (Some(a), Some(b)) => Some(a.min(b)),
                            (a, b) => a.or(b),
                        };
                    }
                }
                let Some(t) = next.filter(|t| *t <= until) else {
                    self.now = until;
                    return;
                };
                self.now = self.now.max(t);
                let now = self.now;
                let (due, rest): (Vec<_>, Vec<_>) = self.wire.drain(..).partition(|w| w.0 <= now);
                self.wire = rest;
                for (_, to, b, n) in due {
                    if !self.dead[to] {
                        self.s[to].handle_rx(&b[..n], now).unwrap();
                    }
                }
                for i in 0..2 {
                    if self.dead[i] {
                        continue;
                    }
                    self.s[i].handle_timeout(now);
                    let mut buf = [0u8; MAX_PACKET_LEN];
                    while let Some(n) = self.s[i].poll_transmit(now, &mut buf) {
                        self.wire.push((now + self.latency, 1 - i, buf, n));
                    }
                    while let Some(e) = self.s[i].poll_event() {
                        self.log.push((now, i, e));
                    }
                }
            }
            panic!("simulation did not settle");
        }
    }

    #[test]
    fn two_sessions_come_up_in_both_directions_and_agree_on_timers() {
        let mut sim = Sim::new(cfg(11, 50_000, 50_000, 3), cfg(22, 100_000, 20_000, 5), MS);
        sim.run_until(5_000 * MS);
        let [a, b] = &sim.s;
        assert_eq!((a.state(), b.state()), (State::Up, State::Up));
        assert_eq!((a.remote_discr(), b.remote_discr()), (22, 11));
        assert!(!a.is_polling() && !b.is_polling());
        // a sends at max(50, b's rx 20) = 50 ms; b at max(100, 50) = 100 ms.
        assert_eq!((a.tx_interval_us(), b.tx_interval_us()), (50_000, 100_000));
        // a detects with b's mult 5 × max(50, 100); b with 3 × max(20, 50).
        assert_eq!(a.detection_time_ns(), Some(500 * MS));
        assert_eq!(b.detection_time_ns(), Some(150 * MS));
        assert!(sim
            .log
            .iter()
            .any(|(_, i, e)| *i == 0
                && matches!(e, SessionEvent::StateChanged { to: State::Up, .. })));
        assert_eq!(
            a.counters().rx_drops.total() + b.counters().rx_drops.total(),
            0
        );
        // Up within a couple of slow (1 s) intervals.
        let up_at = sim
            .log
            .iter()
            .filter(|(_, _, e)| matches!(e, SessionEvent::StateChanged { to: State::Up, .. }))
            .map(|(t, _, _)| *t)
            .max()
            .unwrap();
        assert!(up_at < 2_100 * MS, "{up_at}");
    }

    #[test]
    fn two_authenticated_sessions_come_up() {
        for meticulous in [false, true] {
            let mut a = cfg(11, 10_000, 10_000, 3);
            let mut b = cfg(22, 10_000, 10_000, 3);
            a.auth = Some(AuthConfig::new(3, b"shared", meticulous).unwrap());
            b.auth = Some(AuthConfig::new(3, b"shared", meticulous).unwrap());
            let mut sim = Sim::new(a, b, MS);
            sim.run_until(5_000 * MS);
            assert_eq!(sim.s[0].state(), State::Up);
            assert_eq!(sim.s[1].state(), State::Up);
            assert_eq!(sim.s[0].counters().rx_drops.total(), 0);
            assert!(sim.s[0].counters().rx_ok > 200);
        }
    }

    #[test]
    fn dead_peer_is_detected_within_mult_times_interval_plus_5ms() {
        for (interval_us, mult) in [(10_000u32, 3u8), (50_000, 3), (10_000, 1), (20_000, 5)] {
            let mut sim = Sim::new(
                cfg(11, interval_us, interval_us, mult),
                cfg(22, interval_us, interval_us, mult),
                0,
            );
            sim.run_until(3_000 * MS);
            assert_eq!(sim.s[0].state(), State::Up);
            let died = sim.now;
            sim.dead[1] = true;
            sim.run_until(died + 2_000 * MS);
            let (t, _, _) = sim
                .log
                .iter()
                .find(|(t, i, e)| {
                    *t >= died
                        && *i == 0
                        && matches!(
                            e,
                            SessionEvent::StateChanged {
                                to: State::Down,
                                ..
                            }
                        )
                })
                .copied()
                .expect("went down");
            let bound = u64::from(mult) * u64::from(interval_us) * 1_000 + 5 * MS;
            assert!(t - died <= bound, "{interval_us} x {mult}: {} ns", t - died);
            assert_eq!(sim.s[0].diag(), Diag::ControlDetectionTimeExpired);
        }
    }

    #[test]
    fn sessions_recover_after_a_peer_restart() {
        let mut sim = Sim::new(cfg(11, 50_000, 50_000, 3), cfg(22, 50_000, 50_000, 3), MS);
        sim.run_until(3_000 * MS);
        // The peer restarts with a new discriminator.
        sim.s[1] = Session::new(cfg(33, 50_000, 50_000, 3)).unwrap();
        sim.run_until(8_000 * MS);
        assert_eq!(sim.s[0].state(), State::Up);
        assert_eq!(sim.s[0].remote_discr(), 33);
        assert_eq!(sim.s[1].state(), State::Up);
    }
}
