//! The TCP connection states the firewall tracks and the transitions
//! between them, judged from the flags and the direction of each segment
//! only ("window-free", like Linux nf_conntrack with `be_liberal` and pf
//! with `sloppy` state): sequence and acknowledgement numbers are not
//! checked, so a segment is valid if its flags make sense for the state
//! and for the side that sent it.
//!
//! The states are RFC 9293's (section 3.3.2) seen from the middle, as
//! nf_conntrack names them: `SynSent` (the originator's SYN), `SynRecv`
//! (the responder's SYN-ACK), `Established` (the originator's ACK of it),
//! `FinWait` (one side's FIN), `CloseWait` (that FIN acknowledged, the
//! other side may still send), `LastAck` (both FINs sent), `TimeWait` (the
//! last FIN acknowledged) and `Close` (a RST). Simultaneous open (RFC 9293
//! figure 7) is not followed: a SYN from the responder is invalid.
//!
//! A RST closes the connection from any state, without the sequence check
//! RFC 9293 section 3.10.7 (and RFC 5961) would make: the price of
//! window-free tracking is that whoever can guess a 5-tuple can close its
//! entry, as with nf_conntrack's `be_liberal`. The endpoints still check.
//!
//! Valid flag combinations, after ignoring PSH, URG, ECE and CWR: SYN,
//! SYN+ACK, RST, RST+ACK, FIN+ACK and ACK. Everything else (no flags,
//! FIN alone, SYN+FIN, SYN+RST, ...) is invalid in every state.

use super::Dir;

/// A tracked TCP connection's state. The discriminants are the firewall's
/// state codes (`super::State`), 1 to 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TcpState {
    SynSent = 1,
    SynRecv,
    Established,
    FinWait,
    CloseWait,
    LastAck,
    TimeWait,
    Close,
}

impl TcpState {
    pub const ALL: [TcpState; 8] = [
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::Established,
        TcpState::FinWait,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::TimeWait,
        TcpState::Close,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            TcpState::SynSent => "syn_sent",
            TcpState::SynRecv => "syn_recv",
            TcpState::Established => "established",
            TcpState::FinWait => "fin_wait",
            TcpState::CloseWait => "close_wait",
            TcpState::LastAck => "last_ack",
            TcpState::TimeWait => "time_wait",
            TcpState::Close => "close",
        }
    }

    /// The handshake has not completed: such a connection counts against
    /// the firewall's embryonic quota and may be evicted for a new flow.
    pub const fn is_embryonic(self) -> bool {
        matches!(self, TcpState::SynSent | TcpState::SynRecv)
    }
}

/// What a segment is, from its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    Syn,
    SynAck,
    /// FIN+ACK.
    Fin,
    /// ACK, with or without data.
    Ack,
    /// RST, with or without ACK.
    Rst,
    /// A combination no TCP sends (no flags, FIN alone, SYN+FIN, ...).
    Invalid,
}

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

impl Segment {
    /// Classifies the TCP flags byte (header byte 13).
    pub const fn from_flags(flags: u8) -> Segment {
        match flags & (FIN | SYN | RST | ACK) {
            SYN => Segment::Syn,
            x if x == SYN | ACK => Segment::SynAck,
            x if x == FIN | ACK => Segment::Fin,
            ACK => Segment::Ack,
            RST => Segment::Rst,
            x if x == RST | ACK => Segment::Rst,
            _ => Segment::Invalid,
        }
    }
}

/// Why a segment was refused. It changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpInvalid {
    /// An impossible flag combination.
    Flags,
    /// A SYN-ACK from the side that sent the SYN, or with no SYN tracked.
    SynAckWithoutSyn,
    /// Data, ACK or FIN before the handshake completed.
    BeforeHandshake,
    /// Anything else the state does not expect (a SYN on an open
    /// connection, a responder's SYN, segments after a RST).
    Unexpected,
}

/// The result of a valid segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The connection goes to `state`; `fin_by_reply` records which side
    /// sent the first FIN (meaningful from `FinWait` on).
    To { state: TcpState, fin_by_reply: bool },
    /// A SYN on a connection that has finished (`TimeWait` or `Close`): a
    /// new connection on the same 5-tuple, to be judged as a new flow.
    Reopen,
}

/// The first segment of an untracked flow: a SYN starts one in `SynSent`;
/// with `pickup`, an ACK or FIN+ACK picks a connection up mid-stream as
/// `Established` (after a restart or a route change, as nf_conntrack's
/// `tcp_loose`). Anything else is invalid.
pub const fn first(seg: Segment, pickup: bool) -> Result<TcpState, TcpInvalid> {
    match seg {
        Segment::Syn => Ok(TcpState::SynSent),
        Segment::Ack | Segment::Fin if pickup => Ok(TcpState::Established),
        Segment::SynAck => Err(TcpInvalid::SynAckWithoutSyn),
        Segment::Invalid => Err(TcpInvalid::Flags),
        Segment::Ack | Segment::Fin | Segment::Rst => Err(TcpInvalid::BeforeHandshake),
    }
}

/// The transition for segment `seg` sent in direction `dir` on a
/// connection in `state`, whose first FIN (if any) came from the reply
/// side when `fin_by_reply`.
pub fn next(
    state: TcpState,
    fin_by_reply: bool,
    dir: Dir,
    seg: Segment,
) -> Result<Step, TcpInvalid> {
    use Segment as S;
    use TcpState as T;
    let to = |state| {
        Ok(Step::To {
            state,
            fin_by_reply,
        })
    };
    // The side that sent the first FIN, once there is one.
    let fin_side = matches!((fin_by_reply, dir), (true, Dir::Reply) | (false, Dir::Orig));
    match (state, dir, seg) {
        (_, _, S::Invalid) => Err(TcpInvalid::Flags),
        (T::TimeWait | T::Close, _, S::Syn) => Ok(Step::Reopen),
        (T::Close, _, S::Rst) => to(T::Close),
        (T::Close, _, _) => Err(TcpInvalid::Unexpected),
        (_, _, S::Rst) => to(T::Close),
        (T::SynSent, Dir::Orig, S::Syn) => to(T::SynSent),
        (T::SynSent, Dir::Reply, S::SynAck) => to(T::SynRecv),
        (T::SynSent, Dir::Orig, S::SynAck) => Err(TcpInvalid::SynAckWithoutSyn),
        (T::SynSent, Dir::Reply, S::Syn) => Err(TcpInvalid::Unexpected),
        (T::SynSent, _, _) => Err(TcpInvalid::BeforeHandshake),
        (T::SynRecv, Dir::Orig, S::Syn) => to(T::SynRecv),
        (T::SynRecv, Dir::Reply, S::SynAck) => to(T::SynRecv),
        (T::SynRecv, Dir::Orig, S::Ack) => to(T::Established),
        (T::SynRecv, Dir::Orig, S::Fin) => Ok(Step::To {
            state: T::FinWait,
            fin_by_reply: false,
        }),
        (T::SynRecv, Dir::Orig, S::SynAck) => Err(TcpInvalid::SynAckWithoutSyn),
        (T::SynRecv, Dir::Reply, _) => Err(TcpInvalid::BeforeHandshake),
        // A retransmitted SYN-ACK whose ACK was lost: harmless.
        (T::Established, Dir::Reply, S::SynAck) => to(T::Established),
        (_, _, S::Syn | S::SynAck) => Err(TcpInvalid::Unexpected),
        (T::Established, _, S::Ack) => to(T::Established),
        (T::Established, _, S::Fin) => Ok(Step::To {
            state: T::FinWait,
            fin_by_reply: matches!(dir, Dir::Reply),
        }),
        (T::FinWait, _, S::Ack) if !fin_side => to(T::CloseWait),
        (T::FinWait | T::CloseWait, _, S::Fin) if !fin_side => to(T::LastAck),
        (T::FinWait | T::CloseWait, _, S::Ack | S::Fin) => to(state),
        (T::LastAck, _, S::Ack) if fin_side => to(T::TimeWait),
        (T::LastAck | T::TimeWait, _, S::Ack | S::Fin) => to(state),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Dir::{Orig, Reply};
    use Segment as S;
    use TcpState as T;

    fn run(steps: &[(Dir, Segment)]) -> Result<TcpState, (usize, TcpInvalid)> {
        let mut state = first(steps[0].1, false).map_err(|e| (0, e))?;
        let mut fin_by_reply = false;
        for (n, &(dir, seg)) in steps.iter().enumerate().skip(1) {
            match next(state, fin_by_reply, dir, seg).map_err(|e| (n, e))? {
                Step::To {
                    state: s,
                    fin_by_reply: f,
                } => {
                    state = s;
                    fin_by_reply = f;
                }
                Step::Reopen => return Ok(T::SynSent),
            }
        }
        Ok(state)
    }

    #[test]
    fn flags_classify_ignoring_psh_urg_ece_cwr() {
        assert_eq!(Segment::from_flags(0x02), S::Syn);
        assert_eq!(Segment::from_flags(0x02 | 0xc0), S::Syn);
        assert_eq!(Segment::from_flags(0x12), S::SynAck);
        assert_eq!(Segment::from_flags(0x18), S::Ack);
        assert_eq!(Segment::from_flags(0x11 | 0x08), S::Fin);
        assert_eq!(Segment::from_flags(0x04), S::Rst);
        assert_eq!(Segment::from_flags(0x14), S::Rst);
        for bad in [0x00, 0x01, 0x03, 0x06, 0x07, 0x29, 0x13, 0x16, 0xff] {
            assert_eq!(Segment::from_flags(bad), S::Invalid, "{bad:#x}");
        }
    }

    #[test]
    fn handshake_data_and_close_from_the_originator() {
        let s = [
            (Orig, S::Syn),
            (Reply, S::SynAck),
            (Orig, S::Ack),
            (Reply, S::Ack),
            (Orig, S::Fin),
            (Reply, S::Ack),
            (Reply, S::Fin),
            (Orig, S::Ack),
        ];
        for n in 1..=s.len() {
            let want = [
                T::SynSent,
                T::SynRecv,
                T::Established,
                T::Established,
                T::FinWait,
                T::CloseWait,
                T::LastAck,
                T::TimeWait,
            ][n - 1];
            assert_eq!(run(&s[..n]), Ok(want), "after {n} segments");
        }
    }

    #[test]
    fn close_started_by_the_responder_needs_the_originators_final_ack() {
        let base = [
            (Orig, S::Syn),
            (Reply, S::SynAck),
            (Orig, S::Ack),
            (Reply, S::Fin),
            (Orig, S::Fin),
        ];
        assert_eq!(run(&base), Ok(T::LastAck));
        let mut s = base.to_vec();
        // The side that sent the first FIN acknowledges the last one.
        s.push((Orig, S::Ack));
        assert_eq!(run(&s), Ok(T::LastAck));
        s.push((Reply, S::Ack));
        assert_eq!(run(&s), Ok(T::TimeWait));
    }

    #[test]
    fn rst_closes_from_any_open_state() {
        for n in 1..=5 {
            let mut s = [
                (Orig, S::Syn),
                (Reply, S::SynAck),
                (Orig, S::Ack),
                (Orig, S::Fin),
                (Reply, S::Fin),
            ][..n]
                .to_vec();
            s.push((Reply, S::Rst));
            assert_eq!(run(&s), Ok(T::Close), "after {n} segments");
            s.push((Orig, S::Ack));
            assert_eq!(run(&s).unwrap_err().1, TcpInvalid::Unexpected);
        }
    }

    #[test]
    fn a_synack_without_a_syn_from_the_other_side_is_invalid() {
        assert_eq!(first(S::SynAck, true), Err(TcpInvalid::SynAckWithoutSyn));
        assert_eq!(
            run(&[(Orig, S::Syn), (Orig, S::SynAck)]),
            Err((1, TcpInvalid::SynAckWithoutSyn))
        );
    }

    #[test]
    fn data_before_the_handshake_is_invalid_unless_picked_up() {
        assert_eq!(first(S::Ack, false), Err(TcpInvalid::BeforeHandshake));
        assert_eq!(first(S::Ack, true), Ok(T::Established));
        assert_eq!(first(S::Rst, true), Err(TcpInvalid::BeforeHandshake));
        assert_eq!(
            run(&[(Orig, S::Syn), (Orig, S::Ack)]),
            Err((1, TcpInvalid::BeforeHandshake))
        );
        assert_eq!(
            run(&[(Orig, S::Syn), (Reply, S::SynAck), (Reply, S::Ack)]),
            Err((2, TcpInvalid::BeforeHandshake))
        );
    }

    #[test]
    fn invalid_flags_are_refused_in_every_state() {
        for state in TcpState::ALL {
            for dir in [Orig, Reply] {
                assert_eq!(next(state, false, dir, S::Invalid), Err(TcpInvalid::Flags));
            }
        }
    }

    #[test]
    fn a_syn_reopens_only_a_finished_connection() {
        for state in TcpState::ALL {
            let r = next(state, false, Orig, S::Syn);
            match state {
                T::TimeWait | T::Close => assert_eq!(r, Ok(Step::Reopen)),
                T::SynSent | T::SynRecv => assert!(r.is_ok()),
                _ => assert_eq!(r, Err(TcpInvalid::Unexpected), "{state:?}"),
            }
        }
    }
}
