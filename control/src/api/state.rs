//! What the API serves and how it talks to the daemon: the one object both
//! sides share.
//!
//! The daemon's control loop owns the truth. It *publishes* a whole
//! [`Snapshot`] now and then (an RCU-style swap: readers never block the
//! control loop, and a request sees one consistent snapshot), pushes
//! [`Event`]s, sets readiness, and *polls* for configuration commands
//! without blocking. The API side validates a change against the current
//! snapshot, sends it as a [`ConfigCommand`] and waits (asynchronously,
//! bounded) for the daemon's [`Responder`] reply. Everything on the daemon
//! side is non-async and non-blocking, so it fits the control loop's
//! millisecond budget.

use super::model::{
    Cores, Event, EventPage, Flow, Path, Peer, Policy, Port, SlaClass, Stats, Status,
};
use arc_swap::ArcSwap;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, oneshot, watch};

/// Events kept for `GET /api/v1/events` and for SSE clients that resume
/// with `Last-Event-ID`.
pub const EVENT_RING: usize = 4096;
/// Commands queued to the daemon at most; beyond that the API answers 503
/// rather than queueing without bound.
const COMMAND_QUEUE: usize = 16;
/// Live events buffered per SSE client; one that falls further behind is
/// caught up from the ring.
const BROADCAST: usize = 256;

/// Everything the daemon publishes, swapped in whole.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub cores: Cores,
    pub ports: Vec<Port>,
    pub peers: Vec<Peer>,
    pub paths: Vec<Path>,
    /// The daemon's top flows by bytes (it keeps this bounded; the API
    /// sorts and truncates again to the request's `limit`).
    pub flows: Vec<Flow>,
    pub stats: Stats,
    pub sla_classes: Vec<SlaClass>,
    /// In match order.
    pub policies: Vec<Policy>,
    /// Application names the DPI table knows, for validating policies
    /// (empty: not checked).
    pub apps: Vec<String>,
}

/// A configuration change for the daemon to apply, already validated
/// against the snapshot the API had.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigCommand {
    /// Create, or replace the class of that name.
    SetSlaClass(SlaClass),
    RemoveSlaClass(String),
    /// Create (appended: matched last), or replace the policy of that name
    /// in place (its match position stays).
    SetPolicy(Policy),
    RemovePolicy(String),
    /// Write the running configuration back to the config file.
    Save,
}

/// The daemon's answer to one command. Dropping it unanswered makes the
/// API reply 503.
#[derive(Debug)]
pub struct Responder(oneshot::Sender<Result<(), String>>);

impl Responder {
    /// `Ok` once the change is live (and included in every snapshot
    /// published from now on); `Err` with a message for the operator.
    pub fn send(self, result: Result<(), String>) {
        // The request may have timed out and gone: nothing to tell then.
        let _ = self.0.send(result);
    }
}

/// Why a command did not get through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CommandError {
    /// Queue full, no daemon, or the daemon dropped the responder.
    Unavailable(&'static str),
    /// The daemon refused or failed.
    Rejected(String),
}

struct Events {
    ring: VecDeque<Event>,
    next_seq: u64,
}

/// The state shared by the daemon and the API thread. Create it once,
/// wrap it in an `Arc`, hand one to [`super::server::spawn`] and keep one
/// in the control loop.
pub struct ApiState {
    version: String,
    started: Instant,
    snapshot: ArcSwap<Snapshot>,
    ready: AtomicBool,
    events: Mutex<Events>,
    live: broadcast::Sender<Event>,
    commands_tx: SyncSender<(ConfigCommand, Responder)>,
    commands_rx: Mutex<Receiver<(ConfigCommand, Responder)>>,
    /// Serialises config writes so that two requests cannot both validate
    /// against the same snapshot (two creates of one name).
    pub(crate) write_lock: tokio::sync::Mutex<()>,
    /// Flipped once at shutdown so that endless SSE streams end and the
    /// server can drain.
    pub(crate) closing: watch::Sender<bool>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("version", &self.version)
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind
    // (a ring, a receiver): still usable, so recover rather than cascade.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl ApiState {
    /// `version` is what `/api/v1/status` reports; uptime counts from now.
    pub fn new(version: &str) -> ApiState {
        let (commands_tx, commands_rx) = mpsc::sync_channel(COMMAND_QUEUE);
        ApiState {
            version: version.to_string(),
            started: Instant::now(),
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            ready: AtomicBool::new(false),
            events: Mutex::new(Events {
                ring: VecDeque::with_capacity(EVENT_RING),
                next_seq: 1,
            }),
            live: broadcast::channel(BROADCAST).0,
            commands_tx,
            commands_rx: Mutex::new(commands_rx),
            write_lock: tokio::sync::Mutex::new(()),
            closing: watch::channel(false).0,
        }
    }

    // ---- daemon side: non-async, never blocks for long ----

    /// Replace the snapshot. Requests in flight keep the one they loaded.
    pub fn publish(&self, snapshot: Snapshot) {
        self.snapshot.store(Arc::new(snapshot));
    }

    /// Record an event and send it to the live streams. Assigns `seq`
    /// (returned) and, when it is 0, `at_unix`.
    pub fn push_event(&self, mut event: Event) -> u64 {
        let mut events = lock(&self.events);
        event.seq = events.next_seq;
        events.next_seq += 1;
        if event.at_unix == 0.0 {
            event.at_unix = unix_now();
        }
        if events.ring.len() == EVENT_RING {
            events.ring.pop_front();
        }
        events.ring.push_back(event.clone());
        // Sent under the lock so that live order equals seq order; no
        // subscribers is not an error.
        let _ = self.live.send(event);
        events.next_seq - 1
    }

    /// Ready once every port is up and every worker polls (`/readyz`).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// The next configuration command, if any. Apply it, publish a
    /// snapshot that includes it if convenient, then answer with
    /// [`Responder::send`].
    pub fn try_recv_command(&self) -> Option<(ConfigCommand, Responder)> {
        lock(&self.commands_rx).try_recv().ok()
    }

    // ---- API side ----

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn status(&self) -> Status {
        let snap = self.snapshot();
        Status {
            version: self.version.clone(),
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            cores: snap.cores.clone(),
            ports: snap.ports.clone(),
            ready: self.is_ready(),
        }
    }

    /// Events with `seq > after`, oldest first, at most `limit`; without
    /// `after`, the latest `limit`.
    pub fn events_page(&self, after: Option<u64>, limit: usize) -> EventPage {
        let events = lock(&self.events);
        let page: Vec<Event> = match after {
            Some(after) => events
                .ring
                .iter()
                .filter(|e| e.seq > after)
                .take(limit)
                .cloned()
                .collect(),
            None => {
                let skip = events.ring.len().saturating_sub(limit);
                events.ring.iter().skip(skip).cloned().collect()
            }
        };
        let next = page
            .last()
            .map_or(after.unwrap_or(events.next_seq - 1), |e| e.seq);
        EventPage { events: page, next }
    }

    /// A live subscription plus the ring's events after `after`, taken
    /// under one lock so that nothing falls between them.
    pub(crate) fn subscribe(&self, after: u64) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let events = lock(&self.events);
        let rx = self.live.subscribe();
        let backlog = events
            .ring
            .iter()
            .filter(|e| e.seq > after)
            .cloned()
            .collect();
        (backlog, rx)
    }

    /// Send a command and wait for the daemon, at most `timeout`.
    pub(crate) async fn command(
        &self,
        command: ConfigCommand,
        timeout: std::time::Duration,
    ) -> Result<(), CommandError> {
        let (tx, rx) = oneshot::channel();
        match self.commands_tx.try_send((command, Responder(tx))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(CommandError::Unavailable("the daemon is busy"))
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(CommandError::Unavailable("the daemon is not running"))
            }
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(message))) => Err(CommandError::Rejected(message)),
            Ok(Err(_)) => Err(CommandError::Unavailable("the daemon dropped the command")),
            Err(_) => Err(CommandError::Unavailable(
                "the daemon did not answer in time",
            )),
        }
    }

    /// After the daemon accepted a change, show it at once (read your
    /// writes), before the daemon's next publish replaces the snapshot with
    /// one that includes it anyway.
    pub(crate) fn patch(&self, f: impl Fn(&mut Snapshot)) {
        self.snapshot.rcu(|s| {
            let mut s = Snapshot::clone(s);
            f(&mut s);
            s
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_latest_and_assigns_increasing_seqs() {
        let state = ApiState::new("t");
        for i in 0..EVENT_RING + 10 {
            let seq = state.push_event(Event::new("config", format!("e{i}")));
            assert_eq!(seq, i as u64 + 1);
        }
        let page = state.events_page(Some(0), 1000);
        assert_eq!(page.events.len(), 1000);
        assert_eq!(page.events[0].seq, 11, "the ten oldest were overwritten");
        assert_eq!(page.next, 1010);
        let latest = state.events_page(None, 3);
        let seqs: Vec<u64> = latest.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [4104, 4105, 4106]);
        let none = state.events_page(Some(5000), 10);
        assert!(none.events.is_empty());
        assert_eq!(none.next, 5000);
    }

    #[test]
    fn commands_round_trip_without_async_on_the_daemon_side() {
        let state = Arc::new(ApiState::new("t"));
        let daemon = {
            let state = state.clone();
            std::thread::spawn(move || loop {
                if let Some((cmd, reply)) = state.try_recv_command() {
                    assert_eq!(cmd, ConfigCommand::Save);
                    reply.send(Err("disk full".into()));
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            })
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let r = rt.block_on(state.command(ConfigCommand::Save, std::time::Duration::from_secs(5)));
        assert_eq!(r, Err(CommandError::Rejected("disk full".into())));
        daemon.join().unwrap();
    }

    #[test]
    fn a_command_nobody_answers_times_out() {
        let state = ApiState::new("t");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let r =
            rt.block_on(state.command(ConfigCommand::Save, std::time::Duration::from_millis(20)));
        assert!(matches!(r, Err(CommandError::Unavailable(_))));
    }
}
