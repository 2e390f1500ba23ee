//! WireGuard, compatible with every stock implementation (the WireGuard
//! whitepaper, J. A. Donenfeld, revision e2da747).
//!
//! Pure, sans-I/O protocol code: nothing here reads a clock, draws
//! randomness except through an argument, or touches a socket.
//!
//! - [`keys`], [`crypto`], [`messages`], [`tai64n`], [`noise`], [`cookie`],
//!   [`ratelimit`]: the Noise_IKpsk2 handshake and the DoS defences
//!   (whitepaper 5.4, 5.3), run on the control thread.
//! - [`timers`]: the per-peer timer state machine (whitepaper 6).
//! - [`replay`], [`session`], [`transport`]: transport data messages,
//!   encrypted and decrypted in place (whitepaper 5.4.6).
//! - [`allowed_ips`]: cryptokey routing (whitepaper 2).
//! - [`datapath`]: the worker's processor that ties the data path together.
//!
//! See docs/wireguard.md.

#![forbid(unsafe_code)]

pub mod allowed_ips;
pub mod cookie;
pub mod crypto;
pub mod datapath;
pub mod device;
pub mod keys;
pub mod lpm4;
pub mod messages;
pub mod noise;
pub mod ratelimit;
pub mod replay;
pub mod session;
pub mod tai64n;
pub mod timers;
pub mod transport;
