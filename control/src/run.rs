//! Bring-up, the control loop and teardown of `patronus run`.
//!
//! Order matters for a clean exit: workers stop polling and flush their tx
//! buffers, then ports are stopped and closed (freeing the mbufs their
//! queues hold), then the mempool is freed and EAL cleaned up.

use crate::api::ApiState;
use crate::apisnap::ApiLink;
use crate::config::{Config, DeviceKind, PortRole};
use crate::controlplane::ControlPlane;
use crate::neighbors::{NeighborDriver, PortNeighbors};
use crate::wgconfig::WireguardConfig;
use crate::wgdriver::{self, WgDriver, WgShared};
use patronus_dataplane::dpdk::{self, DpdkError, Eal, EalMemory, Mempool, Port, PortConfig};
use patronus_dataplane::dpi::engine::DpiEngine;
use patronus_dataplane::flowsample::{FlowSampler, PolicyTelemetry};
use patronus_dataplane::forward::{ForwardEntry, Forwarder};
use patronus_dataplane::nexthop::{NeighborTables, NextHop, Resolver};
use patronus_dataplane::policy::{self, AppPolicy};
use patronus_dataplane::punt::WorkerRings;
use patronus_dataplane::qos::{PortShares, QosCounters, Scheduler, ShareBalancer};
use patronus_dataplane::stats::{DropReason, WorkerCounters, WorkerSnapshot};
use patronus_dataplane::steer::{SteerPublisher, SteerReader};
use patronus_dataplane::wg::datapath::{DataPathConfig, Path, WgDataPath};
use patronus_dataplane::wire::ethernet::Address;
use patronus_dataplane::worker::{Polling, PortQueues, Processor, Shaper, Worker};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Dpdk(#[from] DpdkError),
    #[error("worker on CPU {core}: {why}")]
    Worker { core: usize, why: String },
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// The EAL argument list for a config.
pub fn eal_args(config: &Config, memory: &EalMemory) -> Vec<String> {
    let mut args = vec![
        "-l".to_string(),
        config.control_core.to_string(),
        "--main-lcore".to_string(),
        config.control_core.to_string(),
        "--no-telemetry".to_string(),
    ];
    args.extend(memory.args.iter().cloned());
    let mut any_pci = false;
    for port in &config.ports {
        match &port.device {
            DeviceKind::Pci(addr) => {
                any_pci = true;
                args.push("-a".into());
                args.push(addr.clone());
            }
            DeviceKind::Vdev(dev) => args.push(format!("--vdev={dev}")),
        }
    }
    if !any_pci {
        args.push("--no-pci".into());
    }
    args.extend(config.extra_eal_args.iter().cloned());
    args
}

pub fn run(config: &Config) -> Result<(), RunError> {
    // Signals first, so a Ctrl-C during a slow bring-up still shuts down cleanly.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).map_err(RunError::Signals)?;
    }

    log::info!("configuration {} is valid", config.path.display());
    let memory = EalMemory::choose(config.hugepages, config.memory_mb, &config.file_prefix);
    if let Some(reason) = &memory.fallback_reason {
        log::warn!(
            "hugepages unavailable ({reason}); falling back to --no-huge -m {}",
            config.memory_mb
        );
    }
    let args = eal_args(config, &memory);
    log::info!("starting EAL: {}", args.join(" "));
    let _eal = Eal::init(&args)?;
    log::info!(
        "{} up, memory: {:?}, TSC {} MHz",
        Eal::version(),
        memory.mode,
        dpdk::tsc_hz() / 1_000_000
    );

    let pool = Mempool::new(
        "patronus_pool",
        config.mbufs,
        config.mempool_cache,
        config.data_room,
    )?;
    let in_use_at_start = pool.in_use();
    let queues = config.worker_cores.len() as u16;
    let mut ports = Vec::with_capacity(config.ports.len());
    for p in &config.ports {
        let id = Port::find(&p.device_string)?;
        let port_config = PortConfig {
            queues,
            rx_descriptors: p.rx_descriptors,
            tx_descriptors: p.tx_descriptors,
            mtu: p.mtu,
            promiscuous: true,
        };
        let port = Port::start(id, &p.name, &port_config, &pool)?;
        let mac = Address(port.mac_addr()?);
        let link = port.link()?;
        log::info!(
            "port {} ({:?}): id {}, driver {}, MAC {mac}, {} queue pair(s){}, link {} {} Mbit/s",
            p.name,
            p.role,
            id,
            port.driver(),
            queues,
            if port.rss() {
                " with symmetric RSS"
            } else {
                ""
            },
            if link.up { "up" } else { "down" },
            link.speed_mbps
        );
        ports.push(port);
    }
    let neighbor_tables = NeighborTables::new(ports.len());
    let forwarder = build_forwarder(config, &ports, &neighbor_tables)?;

    // The punt/inject rings of every worker, and WireGuard's command rings
    // and per-peer activity. Declared after the pool and ports, so the
    // mbufs they may hold are freed before the pool is.
    let rings: Vec<WorkerRings> = config
        .worker_cores
        .iter()
        .map(|_| WorkerRings::new(4096))
        .collect();
    let wg_shared = config
        .wireguard
        .as_ref()
        .map(|wg| WgShared::new(wg.peers.len(), config.worker_cores.len()));
    let wg_paths = match &config.wireguard {
        Some(wg) => peer_paths(wg, &ports)?,
        None => Vec::new(),
    };
    let wg_datapath = match (&config.wireguard, &wg_shared) {
        (Some(wg), Some(_)) => Some(datapath_config(config, wg, &ports)?),
        _ => None,
    };

    let counters: Vec<WorkerCounters> = config
        .worker_cores
        .iter()
        .map(|_| WorkerCounters::default())
        .collect();
    let ready = AtomicUsize::new(0);
    let failure: Mutex<Option<RunError>> = Mutex::new(None);
    let wg_driver = match (&config.wireguard, &wg_shared, &wg_datapath) {
        (Some(wg), Some(shared), Some(dp)) => Some(WgDriver::new(
            wg,
            dp.clone(),
            shared,
            &rings,
            &pool,
            forwarder
                .resolver()
                .expect("the daemon's forwarder resolves next hops")
                .clone(),
            wg_paths.iter().flatten().copied().collect(),
        )),
        _ => None,
    };
    let mut neighbor_ports = Vec::with_capacity(ports.len());
    for (port, p) in ports.iter().zip(&config.ports) {
        neighbor_ports.push(PortNeighbors {
            mac: Address(port.mac_addr()?),
            addresses: p.addresses.clone(),
        });
    }
    let neighbors =
        NeighborDriver::new(neighbor_ports, Arc::clone(&neighbor_tables), &rings, &pool);
    let mut control = ControlPlane::new(&rings, wg_driver, neighbors);
    // BFD and SLA send their own UDP through worker 0's inject ring.
    let macs = ports
        .iter()
        .map(|p| p.mac_addr().map(Address))
        .collect::<Result<Vec<_>, _>>()?;
    let injector = || {
        let resolver = forwarder
            .resolver()
            .expect("the daemon's forwarder resolves next hops")
            .clone();
        crate::inject::UdpInjector::new(macs.clone(), resolver, &rings, &pool)
    };
    let bfd_specs = crate::bfddriver::session_specs(config);
    if !bfd_specs.is_empty() {
        control.bfd = Some(
            crate::bfddriver::BfdDriver::new(bfd_specs, injector()).map_err(|why| {
                RunError::Worker {
                    core: config.control_core,
                    why,
                }
            })?,
        );
    }

    // SLA: probes on the paths of peers with `sla = true`, and the
    // steering table the workers' policies read.
    let steer = config.sla.as_ref().map(|s| {
        Arc::new(SteerPublisher::new(crate::sladriver::steering_table(
            &s.policies,
            config.wireguard.as_ref().map_or(0, |w| w.peers.len()),
        )))
    });
    if let (Some(sla), Some(wg), Some(shared), Some(steer)) =
        (&config.sla, &config.wireguard, &wg_shared, &steer)
    {
        let local_id = crate::sladriver::node_id(wg.private_key.public_key().as_bytes());
        control.sla = Some(
            crate::sladriver::SlaDriver::new(
                sla,
                local_id,
                wg.peers.len(),
                sla_peer_specs(config, wg),
                injector(),
                &shared.activity,
                Arc::clone(steer),
            )
            .map_err(|why| RunError::Worker {
                core: config.control_core,
                why,
            })?,
        );
    }

    // QoS: one set of rate shares per shaped WAN port, rebalanced by the
    // control thread; each worker's scheduler counters, for the stats.
    let tsc_hz = dpdk::tsc_hz();
    let workers = config.worker_cores.len();
    let qos_shares: Vec<(usize, Arc<PortShares>)> = match &config.qos {
        Some(q) => q
            .ports
            .iter()
            .map(|p| {
                PortShares::new(p.rate_bps, workers)
                    .map(|s| (p.port, Arc::new(s)))
                    .ok_or_else(|| RunError::Worker {
                        core: config.control_core,
                        why: format!("qos: cannot share a port among {workers} workers"),
                    })
            })
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    let mut qos_counters: Vec<(usize, usize, Arc<QosCounters>)> = Vec::new();
    let mut balancers: Vec<ShareBalancer> = qos_shares
        .iter()
        .map(|(_, s)| ShareBalancer::new(Arc::clone(s), tsc_hz))
        .collect();

    // The management API: its own thread, pinned to the control core; the
    // control loop feeds it snapshots and applies its commands.
    let api_handle = match &config.api {
        Some(api_config) => {
            let state = Arc::new(ApiState::new(env!("CARGO_PKG_VERSION")));
            let handle =
                crate::api::spawn(api_config.clone(), Arc::clone(&state)).map_err(|e| {
                    RunError::Worker {
                        core: config.control_core,
                        why: format!("api: {e}"),
                    }
                })?;
            log::info!(
                "api: listening on {}{}",
                handle.local_addr(),
                if api_config.tls.is_some() {
                    " (https)"
                } else {
                    ""
                }
            );
            Some((handle, state))
        }
        None => None,
    };
    // Per worker, the DPI counters and flow samples the API reports.
    let telemetry: Vec<Arc<PolicyTelemetry>> = match &api_handle {
        Some(_) => {
            let engine = config
                .dpi
                .as_ref()
                .and_then(|d| DpiEngine::new(d.engine.clone()).ok());
            config
                .worker_cores
                .iter()
                .map(|_| Arc::new(PolicyTelemetry::new(engine.as_ref())))
                .collect()
        }
        None => Vec::new(),
    };
    let mut api_link = api_handle
        .as_ref()
        .map(|(_, state)| ApiLink::new(Arc::clone(state), config, tsc_hz, telemetry.clone()));

    let polling_since = Instant::now();
    std::thread::scope(|scope| {
        for (w, &core) in config.worker_cores.iter().enumerate() {
            let queues: Vec<PortQueues<'_>> = ports
                .iter()
                .map(|p| {
                    let (rx, tx) = p
                        .queue_pair(w as u16)
                        .expect("each port has one queue pair per worker");
                    PortQueues { rx, tx }
                })
                .collect();
            let ctx = WorkerContext {
                index: w,
                core,
                polling: config.polling,
                counters: &counters[w],
                stop: &stop,
                ready: &ready,
                failure: &failure,
            };
            match (&config.wireguard, &wg_shared, &wg_datapath) {
                (Some(wg), Some(shared), Some(dp)) => {
                    let endpoints: Vec<_> = wg.peers.iter().map(|p| p.endpoint).collect();
                    let processor = WgDataPath::new(
                        DataPathConfig {
                            worker: w as u8,
                            ..dp.clone()
                        },
                        wgdriver::routes(wg),
                        &endpoints,
                        &shared.activity,
                        &shared.commands[w],
                        forwarder.clone(),
                    );
                    let mut processor =
                        processor.drop_unknown_destinations(config.drop_unknown_destinations);
                    for (peer, paths) in wg_paths.iter().enumerate() {
                        if !paths.is_empty() {
                            processor
                                .set_paths(peer as u32, paths)
                                .expect("validated: at most MAX_PATHS paths");
                        }
                    }
                    let shapers = match worker_shapers(config, &qos_shares, w, tsc_hz) {
                        Ok(s) => s,
                        Err(why) => {
                            fail_startup(&failure, &stop, config.control_core, why);
                            break;
                        }
                    };
                    for (port, shaper) in &shapers {
                        qos_counters.push((w, *port, Arc::clone(shaper.scheduler().counters())));
                    }
                    if config.dpi.is_none() && config.qos.is_none() && config.sla.is_none() {
                        spawn_worker(scope, ctx, queues, processor, &rings, shapers);
                    } else {
                        let app_policy =
                            match worker_policy(config, tsc_hz, steer.as_ref(), telemetry.get(w)) {
                                Ok(p) => p,
                                Err(why) => {
                                    fail_startup(&failure, &stop, config.control_core, why);
                                    break;
                                }
                            };
                        let mut processor = processor.with_policy(app_policy);
                        let shaped: Vec<u8> = shapers.iter().map(|(p, _)| *p as u8).collect();
                        processor.set_qos(config.qos.as_ref().map(|q| q.dscp_out), &shaped);
                        spawn_worker(scope, ctx, queues, processor, &rings, shapers);
                    }
                }
                _ => spawn_worker(scope, ctx, queues, forwarder.clone(), &rings, Vec::new()),
            }
        }
        control_loop(
            config,
            &ports,
            &counters,
            &ready,
            &stop,
            &mut control,
            QosControl {
                balancers: &mut balancers,
                counters: &qos_counters,
                api: api_link.as_mut(),
            },
        );
    });
    if let Some((handle, state)) = api_handle {
        state.set_ready(false);
        handle.shutdown();
    }

    if let Some(err) = failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(err);
    }
    print_summary(config, &ports, &counters, polling_since.elapsed());
    if let Some(driver) = &control.wg {
        for line in driver.summary() {
            println!("  {line}");
        }
    }
    if let Some(bfd) = &control.bfd {
        for line in bfd.summary() {
            println!("{line}");
        }
    }
    if let Some(sla) = &mut control.sla {
        for line in sla.summary() {
            println!("{line}");
        }
    }
    for line in qos_lines(config, &qos_counters) {
        println!("{line}");
    }
    let stats = control.stats;
    let n = control.neighbors.stats;
    println!(
        "  control thread: {} echo replies, {} packets for the node dropped, {} unhandled; ARP/ND: {} replies, {} probes, {} resolved, {} failed, {} frames dropped waiting",
        stats.echo_replies, stats.local_dropped, stats.unhandled, n.replies_sent, n.probes_sent, n.resolved, n.failed, n.frames_dropped
    );
    // Free what the control side and the rings still hold before checking
    // for leaks.
    drop(control);
    drop(wg_shared);
    drop(rings);
    drop(ports);
    let leaked = pool.in_use().saturating_sub(in_use_at_start);
    if leaked > 0 {
        log::warn!("{leaked} mbufs were not returned to the pool");
    } else {
        log::info!("all mbufs returned to the pool");
    }
    drop(pool);
    println!("patronus: stopped cleanly");
    Ok(())
}

/// What one worker thread needs besides its queues and processor.
struct WorkerContext<'a> {
    index: usize,
    core: usize,
    polling: Polling,
    counters: &'a WorkerCounters,
    stop: &'a AtomicBool,
    ready: &'a AtomicUsize,
    failure: &'a Mutex<Option<RunError>>,
}

/// Starts one pinned, lcore-registered worker thread running `processor`.
fn spawn_worker<'scope, 'env, P: Processor + Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    ctx: WorkerContext<'scope>,
    queues: Vec<PortQueues<'scope>>,
    processor: P,
    rings: &'scope [WorkerRings],
    shapers: Vec<(usize, Shaper<'scope>)>,
) {
    let WorkerContext {
        index: w,
        core,
        polling,
        counters,
        stop,
        ready,
        failure,
    } = ctx;
    let fail = move |why: String| {
        failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(RunError::Worker { core, why });
        stop.store(true, Ordering::SeqCst);
    };
    let spawned = std::thread::Builder::new()
        .name(format!("patronus-w{w}"))
        .spawn_scoped(scope, move || {
            if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                return fail("cannot pin the thread to this CPU".into());
            }
            let registration = match dpdk::register_thread() {
                Ok(r) => r,
                Err(e) => return fail(e.to_string()),
            };
            let mut worker = match Worker::new(queues, processor, counters, polling) {
                Ok(w) => w,
                Err(e) => return fail(e),
            };
            worker = worker.with_rings(rings, w);
            for (port, shaper) in shapers {
                worker = match worker.with_shaper(port, shaper) {
                    Ok(w) => w,
                    Err(e) => return fail(e),
                };
            }
            log::info!(
                "worker {w} polling on CPU {core} as lcore {}",
                registration.lcore_id()
            );
            ready.fetch_add(1, Ordering::SeqCst);
            worker.run(stop);
            drop(worker);
            drop(registration);
        });
    if let Err(e) = spawned {
        fail(e.to_string());
    }
}

/// Records a start-up failure and stops whatever already runs.
fn fail_startup(failure: &Mutex<Option<RunError>>, stop: &AtomicBool, core: usize, why: String) {
    failure
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert(RunError::Worker { core, why });
    stop.store(true, Ordering::SeqCst);
}

/// Worker `w`'s QoS schedulers, one per shaped port, each starting at
/// the worker's share of the port rate.
fn worker_shapers<'s>(
    config: &Config,
    shares: &'s [(usize, Arc<PortShares>)],
    w: usize,
    tsc_hz: u64,
) -> Result<Vec<(usize, Shaper<'s>)>, String> {
    let Some(qos) = &config.qos else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for ((port, share), shaped) in shares.iter().zip(&qos.ports) {
        let rate = share.share_bps(w).max(1);
        let sc = qos.scheduler_config(tsc_hz, rate, shaped);
        let scheduler = Scheduler::new(&sc, dpdk::tsc())
            .map_err(|e| format!("qos on port {}: {e}", config.ports[*port].name))?;
        out.push((
            *port,
            Shaper::new(scheduler, Some((share.as_ref(), w)), tsc_hz),
        ));
    }
    Ok(out)
}

/// A worker's policy: its own DPI engine and flow table (with `[dpi]`),
/// the class map and the WAN port preferences.
fn worker_policy(
    config: &Config,
    tsc_hz: u64,
    steer: Option<&Arc<SteerPublisher>>,
    telemetry: Option<&Arc<PolicyTelemetry>>,
) -> Result<AppPolicy, String> {
    let (inspector, apps) = match &config.dpi {
        Some(d) => {
            let mut engine_config = d.engine.clone();
            engine_config.ticks_per_sec = tsc_hz;
            let engine = DpiEngine::new(engine_config).map_err(|e| e.to_string())?;
            let resolve = |name: &str| engine.app_id(name);
            let apps: Vec<_> = config
                .policy
                .app_port
                .iter()
                .map(|(name, port)| (resolve(name), *port))
                .collect();
            let qos_apps: Vec<_> = config
                .qos
                .iter()
                .flat_map(|q| &q.app_classes)
                .map(|(name, class)| (resolve(name), *class))
                .collect();
            let inspector = policy::inspector(
                engine,
                d.flows as usize,
                tsc_hz,
                u64::from(d.tcp_idle_secs),
                u64::from(d.other_idle_secs),
            )?;
            (Some(inspector), (apps, qos_apps))
        }
        None => (None, (Vec::new(), Vec::new())),
    };
    let mut classes = config
        .qos
        .as_ref()
        .map(|q| q.class_map.clone())
        .unwrap_or_default();
    for (app, class) in &apps.1 {
        if let Some(app) = app {
            classes.set_app(*app, *class);
        }
    }
    let mut p = AppPolicy::new(inspector, classes);
    for (category, port) in &config.policy.category_port {
        p.prefer_category(*category, *port as u8);
    }
    for (app, port) in &apps.0 {
        if let Some(app) = app {
            p.prefer_app(*app, *port as u8);
        }
    }
    if let Some(steer) = steer {
        p = p.with_steering(SteerReader::new(Arc::clone(steer)));
    }
    if let Some(t) = telemetry {
        p = p.with_telemetry(Arc::clone(t), FlowSampler::DEFAULT_EVERY);
    }
    Ok(p)
}

/// The peers to probe (`sla = true`) and their paths, named as BFD names
/// them; a path's capacity for spreading is its port's QoS rate.
fn sla_peer_specs(config: &Config, wg: &WireguardConfig) -> Vec<crate::sladriver::SlaPeerSpec> {
    let rate = |port: usize| {
        config
            .qos
            .iter()
            .flat_map(|q| &q.ports)
            .find(|p| p.port == port)
            .map_or(0, |p| p.rate_bps)
    };
    wg.peers
        .iter()
        .enumerate()
        .filter(|(_, p)| p.sla)
        .map(|(peer, p)| crate::sladriver::SlaPeerSpec {
            peer: peer as u32,
            name: p.name.clone(),
            node_id: crate::sladriver::node_id(p.public_key.as_bytes()),
            paths: p
                .paths
                .iter()
                .enumerate()
                .map(|(i, pc)| crate::sladriver::SlaPathSpec {
                    path: i as u8,
                    name: format!("{} path {} ({})", p.name, i + 1, config.ports[pc.port].name),
                    port: pc.port as u8,
                    local: pc.local_ip,
                    remote: *pc.endpoint.ip(),
                    capacity_bps: rate(pc.port),
                })
                .collect(),
        })
        .collect()
}

/// The WireGuard data path's view of the node: ports, MACs, our address.
fn datapath_config(
    config: &Config,
    wg: &WireguardConfig,
    ports: &[Port],
) -> Result<DataPathConfig, RunError> {
    let (lan, wan) = (
        first_port(config, PortRole::Lan),
        first_port(config, PortRole::Wan),
    );
    Ok(DataPathConfig {
        lan_port: lan as u8,
        wan_port: wan as u8,
        lan_src_mac: Address(ports[lan].mac_addr()?),
        lan_dst_mac: config.ports[lan]
            .next_hop_mac
            .unwrap_or(Address::UNSPECIFIED),
        wan_src_mac: Address(ports[wan].mac_addr()?),
        wan_dst_mac: config.ports[wan]
            .next_hop_mac
            .unwrap_or(Address::UNSPECIFIED),
        local_ip: wg.address,
        listen_port: wg.listen_port,
        index_mask: WgDriver::random_index_mask(),
        tsc_hz: dpdk::tsc_hz(),
        worker: 0,
        workers: config.worker_cores.len() as u8,
        tunnel_mtu: wg.mtu,
        lan_ipv4: config.ports[lan]
            .addresses
            .iter()
            .find_map(|(a, _)| match a {
                std::net::IpAddr::V4(v4) => Some(*v4),
                _ => None,
            }),
        lan_ipv6: config.ports[lan]
            .addresses
            .iter()
            .find_map(|(a, _)| match a {
                std::net::IpAddr::V6(v6) => Some(*v6),
                _ => None,
            }),
    })
}

/// Every peer's paths as the data path wants them.
fn peer_paths(wg: &WireguardConfig, ports: &[Port]) -> Result<Vec<Vec<Path>>, RunError> {
    let mut all = Vec::with_capacity(wg.peers.len());
    for peer in &wg.peers {
        let mut paths = Vec::with_capacity(peer.paths.len());
        for p in &peer.paths {
            paths.push(Path {
                port: p.port as u8,
                src_mac: Address(ports[p.port].mac_addr()?),
                local_ip: p.local_ip,
                endpoint: p.endpoint,
            });
        }
        all.push(paths);
    }
    Ok(all)
}

/// The index of the first port with `role` (validation guarantees one).
fn first_port(config: &Config, role: PortRole) -> usize {
    config
        .ports
        .iter()
        .position(|p| p.role == role)
        .expect("validated: a LAN port and at least one WAN port")
}

/// LAN traffic leaves by the first WAN port and WAN traffic by the LAN port.
fn build_forwarder(
    config: &Config,
    ports: &[Port],
    tables: &Arc<NeighborTables>,
) -> Result<Forwarder, RunError> {
    let (lan, wan) = (
        first_port(config, PortRole::Lan),
        first_port(config, PortRole::Wan),
    );
    let mut forwarder = Forwarder::new();
    // LAN traffic leaves by the first WAN port; every WAN port's by the LAN.
    let wans = config
        .ports
        .iter()
        .enumerate()
        .filter(|(_, p)| p.role == PortRole::Wan)
        .map(|(i, _)| i);
    for (from, to) in std::iter::once((lan, wan)).chain(wans.map(|w| (w, lan))) {
        let entry = ForwardEntry {
            out_port: to as u8,
            src_mac: Address(ports[to].mac_addr()?),
            dst_mac: config.ports[to]
                .next_hop_mac
                .unwrap_or(Address::UNSPECIFIED),
        };
        forwarder
            .set(from as u8, entry)
            .map_err(|why| RunError::Worker {
                core: config.control_core,
                why,
            })?;
    }
    // The node answers for its port addresses and its WireGuard address.
    let mut local: Vec<std::net::IpAddr> = config
        .ports
        .iter()
        .flat_map(|p| p.addresses.iter().map(|(a, _)| *a))
        .collect();
    if let Some(wg) = &config.wireguard {
        local.push(wg.address.into());
    }
    forwarder
        .set_local_addresses(&local)
        .map_err(|why| RunError::Worker {
            core: config.control_core,
            why,
        })?;
    // Next hops: a configured MAC, or ARP/ND over the port's subnets.
    let rules = config
        .ports
        .iter()
        .map(|p| match p.next_hop_mac {
            Some(mac) => NextHop::Static(mac),
            None => NextHop::Resolved {
                subnets: p.addresses.clone(),
                gateway: p.gateway,
            },
        })
        .collect();
    forwarder.set_resolver(Resolver::new(Arc::clone(tables), rules));
    Ok(forwarder)
}

/// The control thread: announces readiness, prints periodic stats, and
/// waits for a stop signal.
fn control_loop(
    config: &Config,
    ports: &[Port],
    counters: &[WorkerCounters],
    ready: &AtomicUsize,
    stop: &AtomicBool,
    control: &mut ControlPlane<'_>,
    qos: QosControl<'_>,
) {
    let QosControl {
        balancers,
        counters: qos_counters,
        mut api,
    } = qos;
    let workers = config.worker_cores.len();
    let started = Instant::now();
    let rebalance_every = Duration::from_millis(
        config
            .qos
            .as_ref()
            .map_or(50, |q| u64::from(q.rebalance_ms)),
    );
    let mut last_rebalance = Instant::now();
    while ready.load(Ordering::SeqCst) < workers && !stop.load(Ordering::SeqCst) {
        if started.elapsed() > Duration::from_secs(30) {
            log::error!("workers did not start within 30 s");
            stop.store(true, Ordering::SeqCst);
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if stop.load(Ordering::SeqCst) {
        return;
    }
    let names: Vec<&str> = ports.iter().map(|p| p.name()).collect();
    println!(
        "patronus: ready: {workers} worker(s) polling ({:?} mode) on CPUs {:?}, ports {}",
        config.polling,
        config.worker_cores,
        names.join(", ")
    );

    let mut last_publish: Option<Instant> = None;
    let interval = Duration::from_secs(config.stats_interval_secs);
    let mut last = counters
        .iter()
        .map(WorkerCounters::snapshot)
        .collect::<Vec<_>>();
    let mut last_at = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        // Punted packets, handshakes and timers want millisecond attention;
        // BFD's deadlines (down to 10 ms intervals) are kept to well under
        // a millisecond: when one is near, sleep to just short of it and
        // spin the rest; otherwise sleep a millisecond.
        control.poll();
        match control.bfd_deadline() {
            Some(due) if due <= Duration::from_millis(2) => {
                if due > Duration::from_micros(200) {
                    std::thread::sleep(due - Duration::from_micros(100));
                }
                let until = Instant::now() + control.bfd_deadline().unwrap_or_default();
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
            }
            _ => std::thread::sleep(
                control
                    .sla_deadline()
                    .map_or(Duration::from_millis(1), |d| {
                        d.clamp(Duration::from_micros(50), Duration::from_millis(1))
                    }),
            ),
        }
        control.poll_bfd();
        if let Some(api) = api.as_deref_mut() {
            api.poll_commands(control);
            if last_publish.is_none_or(|t| t.elapsed() >= crate::apisnap::PUBLISH_EVERY) {
                last_publish = Some(Instant::now());
                api.publish(ports, counters, control, qos_counters);
                // Ready: every worker polls (we are past the wait above) and
                // every port's link is up.
                api.state
                    .set_ready(ports.iter().all(|p| p.link().is_ok_and(|l| l.up)));
            }
        }
        if !balancers.is_empty() && last_rebalance.elapsed() >= rebalance_every {
            last_rebalance = Instant::now();
            let now = dpdk::tsc();
            for b in balancers.iter_mut() {
                b.rebalance(now);
            }
        }
        if !interval.is_zero() && last_at.elapsed() >= interval {
            let secs = last_at.elapsed().as_secs_f64();
            last_at = Instant::now();
            if let Some(wg) = &control.wg {
                for line in wg.stats_lines() {
                    println!("{line}");
                }
            }
            if let Some(bfd) = &control.bfd {
                for line in bfd.lines() {
                    println!("{line}");
                }
            }
            if let Some(sla) = &mut control.sla {
                for line in sla.lines() {
                    println!("{line}");
                }
            }
            for line in qos_lines(config, qos_counters) {
                println!("{line}");
            }
            for (w, c) in counters.iter().enumerate() {
                let now = c.snapshot();
                println!(
                    "{}",
                    core_line(config.worker_cores[w], w, &now.since(&last[w]), secs)
                );
                last[w] = now;
            }
        }
    }
    log::info!("stop requested: workers stop rx, flush tx and exit");
}

/// The control thread's part of QoS (the share balancers it runs and the
/// schedulers' counters it prints and reports) and its link to the API.
struct QosControl<'a> {
    balancers: &'a mut [ShareBalancer],
    /// (worker, port, counters) per scheduler.
    counters: &'a [(usize, usize, Arc<QosCounters>)],
    api: Option<&'a mut ApiLink<'a>>,
}

/// Per shaped port and worker, per class: sent, dropped, queued, delay.
fn qos_lines(config: &Config, counters: &[(usize, usize, Arc<QosCounters>)]) -> Vec<String> {
    let mut out = Vec::new();
    for (w, port, c) in counters {
        let snap = c.snapshot();
        let classes: Vec<String> = patronus_dataplane::qos::QosClass::ALL
            .iter()
            .map(|&class| {
                let k = snap.class(class);
                format!(
                    "{} {} sent/{} dropped/{} queued, p99 {} us",
                    class.name(),
                    k.sent_packets,
                    k.dropped_packets.iter().sum::<u64>(),
                    k.depth_packets,
                    k.delay_percentile_ns(99).map_or(0, |ns| ns / 1000)
                )
            })
            .collect();
        out.push(format!(
            "  qos {} worker {w}: {}",
            config.ports[*port].name,
            classes.join("; ")
        ));
    }
    out
}

fn core_line(core: usize, w: usize, d: &WorkerSnapshot, secs: f64) -> String {
    let secs = secs.max(1e-9);
    let busy = if d.rx_packets() > 0 {
        d.busy_cycles / d.rx_packets()
    } else {
        0
    };
    format!(
        "core {core} (worker {w}): rx {} pkts {:.3} Mpps {:.1} Mbit/s | tx {} pkts {:.1} Mbit/s | drops {}{} | {} cycles/pkt",
        d.rx_packets(),
        d.rx_packets() as f64 / secs / 1e6,
        d.rx_bytes() as f64 * 8.0 / secs / 1e6,
        d.tx_packets(),
        d.tx_bytes() as f64 * 8.0 / secs / 1e6,
        d.dropped(),
        drop_detail(d),
        busy
    )
}

fn drop_detail(d: &WorkerSnapshot) -> String {
    let parts: Vec<String> = DropReason::ALL
        .iter()
        .filter(|r| d.drop_count(**r) > 0)
        .map(|r| format!("{}={}", r.name(), d.drop_count(*r)))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(" "))
    }
}

fn print_summary(config: &Config, ports: &[Port], counters: &[WorkerCounters], ran: Duration) {
    let secs = ran.as_secs_f64().max(1e-9);
    println!("patronus: summary ({secs:.1} s of polling)");
    for (w, c) in counters.iter().enumerate() {
        let s = c.snapshot();
        println!(
            "  core {} (worker {w}): rx {} pkts {} bytes | tx {} pkts {} bytes, average {:.1} Mbit/s | drops {}{}",
            config.worker_cores[w],
            s.rx_packets(),
            s.rx_bytes(),
            s.tx_packets(),
            s.tx_bytes(),
            s.tx_bytes() as f64 * 8.0 / secs / 1e6,
            s.dropped(),
            drop_detail(&s)
        );
    }
    for port in ports {
        match port.stats() {
            Ok(s) => println!(
                "  port {}: rx {} pkts, tx {} pkts, rx missed {}, rx errors {}, tx errors {}",
                port.name(),
                s.rx_packets,
                s.tx_packets,
                s.rx_missed,
                s.rx_errors,
                s.tx_errors
            ),
            Err(e) => println!("  port {}: stats unavailable: {e}", port.name()),
        }
    }
}
