//! The kernel-route gate: one route per anycast prefix in the kernel's main table, added and removed over
//! rtnetlink, that FRR's `bgp network import-check` waits for.
//!
//! Why a kernel route: the `network P` statements can then stay in `frr.conf`, where `frr-reload.py` and
//! a bgpd restart keep them, and still announce nothing until nsbeacon has verified DNS. bgpd offers a
//! `network P` only while zebra's RIB has a selected, non-BGP route for exactly P (import-check, on by
//! default in FRR 8); zebra imports every route of the main table with a protocol it does not own as a
//! `K` (kernel) route. So nsbeacon's route for P opens the gate and its removal closes it:
//! - `frr-reload.py` never touches kernel routes: a reload while announced changes nothing upstream;
//! - a bgpd (or zebra) restart keeps them: bgpd re-announces as soon as its session is up;
//! - a reboot clears them: nothing is announced until nsbeacon has verified DNS again.
//!
//! The route is `P dev lo proto N` (N = [`KernelRouteGate::protocol`], 53 by default): nsbeacon only ever
//! adds, finds and deletes routes of its own protocol number, never another program's.
//!
//! The catch, checked by the read-back: any other selected route for exactly P (most often the anycast
//! address configured on `lo`, which zebra turns into a *connected* route) satisfies import-check by itself,
//! and then bgpd announces P whether or not the gate is open. The node must make the anycast address local
//! without an interface address (an "AnyIP" route: `ip route add local P dev lo table local`, which zebra
//! ignores), as frr-templates/README.md explains.
//!
//! The rtnetlink socket lives in the network namespace it was created in: nsbeacon's own, or the one named
//! by [`KernelRouteGate::netns`] (a file such as `/run/netns/NAME`), entered by a short-lived helper thread
//! only to create the socket.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
};
use rtnetlink::{Handle, RouteMessageBuilder};
use tokio::time::Instant;

use super::FrrError;

/// The default protocol number of nsbeacon's kernel routes (`proto 53` in `ip route`; 53 as in DNS). Not
/// assigned in iproute2's `rt_protos`, and not one zebra treats as its own.
pub const DEFAULT_KERNEL_ROUTE_PROTOCOL: u8 = 53;

/// Where and how nsbeacon installs its gate routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelRouteGate {
    /// The `rtm_protocol` of nsbeacon's routes: how nsbeacon recognises its own routes (and the only
    /// routes it ever deletes). Validated by [`validate_protocol`].
    pub protocol: u8,
    /// The network namespace of FRR's zebra when it is not nsbeacon's own (a file such as
    /// `/run/netns/NAME`); `None`: nsbeacon's namespace.
    pub netns: Option<PathBuf>,
}

impl Default for KernelRouteGate {
    /// Protocol [`DEFAULT_KERNEL_ROUTE_PROTOCOL`] in nsbeacon's own network namespace.
    fn default() -> KernelRouteGate {
        KernelRouteGate {
            protocol: DEFAULT_KERNEL_ROUTE_PROTOCOL,
            netns: None,
        }
    }
}

/// Why a protocol number cannot mark nsbeacon's kernel routes, `None` if it can.
///
/// Refused: 0-4 (unspec, redirect, kernel, boot: the default of `ip route add`, static), zebra's own
/// numbers (11, 186-199: zebra would take the route for one of its own and delete it at start) and the
/// numbers of other routing daemons in iproute2's list (BIRD 12, ... keepalived 18, babel 42, openr 99),
/// so nsbeacon never mistakes another program's route for its own.
pub fn protocol_problem(protocol: u8) -> Option<&'static str> {
    match protocol {
        0..=4 => Some("0-4 are the kernel's own (unspec, redirect, kernel, boot, static)"),
        11 | 186..=199 => {
            Some("11 and 186-199 belong to FRR: zebra would take the route for its own")
        }
        8..=10 | 12..=16 | 18 | 42 | 99 => {
            Some("it is another routing daemon's number in iproute2's rt_protos")
        }
        _ => None,
    }
}

/// Checks a protocol number for nsbeacon's routes.
pub(crate) fn validate_protocol(protocol: u8) -> Result<(), FrrError> {
    match protocol_problem(protocol) {
        None => Ok(()),
        Some(reason) => Err(FrrError::InvalidKernelProtocol {
            protocol,
            reason: reason.to_owned(),
        }),
    }
}

/// The main routing table: the one zebra reads in the default VRF.
const MAIN_TABLE: u32 = 254;

/// `EEXIST`: the kernel already has a route with the same key (prefix, table, metric).
const EEXIST: i32 = 17;
/// `ESRCH`: no such route (someone else deleted it first).
const ESRCH: i32 = 3;

/// The gate: a lazily opened rtnetlink connection plus the protocol number.
#[derive(Debug)]
pub(crate) struct Gate {
    config: KernelRouteGate,
    handle: tokio::sync::Mutex<Option<Handle>>,
}

impl Gate {
    /// A gate that opens its netlink socket at first use (so nsbeacon can start without privileges
    /// checks failing early, and inside the tokio runtime that drives it).
    pub(crate) fn new(config: KernelRouteGate) -> Result<Gate, FrrError> {
        validate_protocol(config.protocol)?;
        Ok(Gate {
            config,
            handle: tokio::sync::Mutex::new(None),
        })
    }

    /// The protocol number of nsbeacon's routes.
    pub(crate) fn protocol(&self) -> u8 {
        self.config.protocol
    }

    /// Whether nsbeacon's route for `prefix` is in the main table.
    pub(crate) async fn present(
        &self,
        prefix: &IpNet,
        deadline: Instant,
    ) -> Result<bool, FrrError> {
        let result = self
            .bounded(deadline, "read", prefix, async {
                let handle = self.handle().await?;
                let routes = self.own_routes(&handle, prefix).await?;
                Ok(!routes.is_empty())
            })
            .await;
        self.forget_on_error(&result).await;
        result
    }

    /// Adds nsbeacon's route for `prefix` unless it is there already. A default route is refused: as a
    /// gate it would send every packet of the node without a better route into `lo`.
    pub(crate) async fn add(&self, prefix: &IpNet, deadline: Instant) -> Result<(), FrrError> {
        if prefix.prefix_len() == 0 {
            return Err(self.default_route_refused(prefix));
        }
        let result = self
            .bounded(deadline, "add", prefix, async {
                let handle = self.handle().await?;
                if !self.own_routes(&handle, prefix).await?.is_empty() {
                    return Ok(());
                }
                let lo = loopback_index(&handle)
                    .await
                    .map_err(|e| self.failure("add", prefix, e))?;
                let message = self.route_message(prefix, lo, None)?;
                match handle.route().add(message).execute().await {
                    Ok(()) => Ok(()),
                    Err(rtnetlink::Error::NetlinkError(e)) if -e.raw_code() == EEXIST => {
                        Err(FrrError::KernelRouteConflict {
                            prefix: *prefix,
                            protocol: self.config.protocol,
                        })
                    }
                    Err(e) => Err(self.failure("add", prefix, e)),
                }
            })
            .await;
        self.forget_on_error(&result).await;
        result
    }

    /// Deletes nsbeacon's route(s) for `prefix`, if any; never another protocol's.
    pub(crate) async fn remove(&self, prefix: &IpNet, deadline: Instant) -> Result<(), FrrError> {
        let result = self
            .bounded(deadline, "remove", prefix, async {
                let handle = self.handle().await?;
                for route in self.own_routes(&handle, prefix).await? {
                    match handle.route().del(route).execute().await {
                        Ok(()) => {}
                        Err(rtnetlink::Error::NetlinkError(e)) if -e.raw_code() == ESRCH => {}
                        Err(e) => return Err(self.failure("remove", prefix, e)),
                    }
                }
                Ok(())
            })
            .await;
        self.forget_on_error(&result).await;
        result
    }

    /// Runs `op` until `deadline`, turning a late answer into [`FrrError::KernelRouteTimeout`].
    async fn bounded<T>(
        &self,
        deadline: Instant,
        operation: &'static str,
        prefix: &IpNet,
        op: impl Future<Output = Result<T, FrrError>>,
    ) -> Result<T, FrrError> {
        let started = Instant::now();
        match tokio::time::timeout_at(deadline, op).await {
            Ok(result) => result,
            Err(_) => Err(FrrError::KernelRouteTimeout {
                operation,
                prefix: *prefix,
                waited: started.elapsed(),
            }),
        }
    }

    /// Drops the connection after a failure, so the next call opens a fresh one (a dead connection task
    /// fails every request).
    async fn forget_on_error<T>(&self, result: &Result<T, FrrError>) {
        if result.is_err() {
            *self.handle.lock().await = None;
        }
    }

    fn failure(
        &self,
        operation: &'static str,
        prefix: &IpNet,
        error: rtnetlink::Error,
    ) -> FrrError {
        let permission = matches!(&error, rtnetlink::Error::NetlinkError(e) if -e.raw_code() == 1);
        FrrError::KernelRoute {
            operation,
            prefix: *prefix,
            protocol: self.config.protocol,
            reason: if permission {
                "operation not permitted: nsbeacon needs CAP_NET_ADMIN (the systemd unit grants it)"
                    .to_owned()
            } else {
                error.to_string()
            },
        }
    }

    /// The open connection, opening it first if needed.
    async fn handle(&self) -> Result<Handle, FrrError> {
        let mut slot = self.handle.lock().await;
        if let Some(handle) = slot.as_ref() {
            return Ok(handle.clone());
        }
        let (connection, handle) = match &self.config.netns {
            None => open_here(),
            Some(path) => open_in(path).await,
        }?;
        tokio::spawn(connection);
        *slot = Some(handle.clone());
        Ok(handle)
    }

    /// nsbeacon's routes for exactly `prefix` in the main table (normally zero or one).
    async fn own_routes(
        &self,
        handle: &Handle,
        prefix: &IpNet,
    ) -> Result<Vec<RouteMessage>, FrrError> {
        let mut query = RouteMessage::default();
        query.header.address_family = family(prefix);
        query.header.table = RouteHeader::RT_TABLE_MAIN;
        query.header.protocol = RouteProtocol::from(self.config.protocol);
        let mut routes = handle.route().get(query).execute();
        let mut own = Vec::new();
        // The kernel filters by table and protocol (strict checking); the loop checks everything again,
        // for kernels that ignore the filter.
        while let Some(route) = routes
            .try_next()
            .await
            .map_err(|e| self.failure("read", prefix, e))?
        {
            if is_own_route(&route, prefix, self.config.protocol) {
                own.push(route);
            }
        }
        Ok(own)
    }

    /// `P dev lo proto N [metric M]` in the main table (scope link for IPv4, as `ip route add P dev lo`
    /// makes it); without a metric the kernel's default (0 for IPv4, 1024 for IPv6).
    ///
    /// An error, never a message without its destination: that would be a default route.
    fn route_message(
        &self,
        prefix: &IpNet,
        lo: u32,
        metric: Option<u32>,
    ) -> Result<RouteMessage, FrrError> {
        let builder = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(prefix.network(), prefix.prefix_len())
            .map_err(|e| FrrError::KernelRoute {
                operation: "add",
                prefix: *prefix,
                protocol: self.config.protocol,
                reason: e.to_string(),
            })?;
        let scope = match prefix {
            IpNet::V4(_) => RouteScope::Link,
            IpNet::V6(_) => RouteScope::Universe,
        };
        let builder = match metric {
            Some(metric) => builder.priority(metric),
            None => builder,
        };
        Ok(builder
            .output_interface(lo)
            .protocol(RouteProtocol::from(self.config.protocol))
            .scope(scope)
            .table_id(MAIN_TABLE)
            .build())
    }

    /// The metrics of nsbeacon's routes for `prefix`, lowest first (empty: no route). With
    /// `announce_via = "kernel-metric"` the lowest is the one zebra selects and redistributes, so it is the
    /// active variant; a second one exists only for the moment of a switch.
    pub(crate) async fn metrics(
        &self,
        prefix: &IpNet,
        deadline: Instant,
    ) -> Result<Vec<u32>, FrrError> {
        let result = self
            .bounded(deadline, "read", prefix, async {
                let handle = self.handle().await?;
                let mut metrics: Vec<u32> = self
                    .own_routes(&handle, prefix)
                    .await?
                    .iter()
                    .map(route_metric)
                    .collect();
                metrics.sort_unstable();
                Ok(metrics)
            })
            .await;
        self.forget_on_error(&result).await;
        result
    }

    /// Makes `metric` the only metric of nsbeacon's routes for `prefix`, make-before-break: the route with
    /// the new metric is added first, then the others are deleted. zebra keeps both kernel routes (same
    /// type, different metric) and selects the lower one, so bgpd's redistributed path goes from one
    /// variant to the other with an attribute change (an UPDATE at the peers), never through a withdrawal.
    pub(crate) async fn switch_metric(
        &self,
        prefix: &IpNet,
        metric: u32,
        deadline: Instant,
    ) -> Result<(), FrrError> {
        if prefix.prefix_len() == 0 {
            return Err(self.default_route_refused(prefix));
        }
        let result = self
            .bounded(deadline, "add", prefix, async {
                let handle = self.handle().await?;
                let own = self.own_routes(&handle, prefix).await?;
                if !own.iter().any(|r| route_metric(r) == metric) {
                    let lo = loopback_index(&handle)
                        .await
                        .map_err(|e| self.failure("add", prefix, e))?;
                    let message = self.route_message(prefix, lo, Some(metric))?;
                    match handle.route().add(message).execute().await {
                        Ok(()) => {}
                        Err(rtnetlink::Error::NetlinkError(e)) if -e.raw_code() == EEXIST => {
                            return Err(FrrError::KernelRouteConflict {
                                prefix: *prefix,
                                protocol: self.config.protocol,
                            });
                        }
                        Err(e) => return Err(self.failure("add", prefix, e)),
                    }
                }
                for route in own.into_iter().filter(|r| route_metric(r) != metric) {
                    self.delete(&handle, prefix, route).await?;
                }
                Ok(())
            })
            .await;
        self.forget_on_error(&result).await;
        result
    }

    /// Deletes nsbeacon's route for `prefix` with exactly `metric`, if any; a route with another metric
    /// (another variant) stays.
    pub(crate) async fn remove_metric(
        &self,
        prefix: &IpNet,
        metric: u32,
        deadline: Instant,
    ) -> Result<(), FrrError> {
        let result = self
            .bounded(deadline, "remove", prefix, async {
                let handle = self.handle().await?;
                for route in self.own_routes(&handle, prefix).await? {
                    if route_metric(&route) == metric {
                        self.delete(&handle, prefix, route).await?;
                    }
                }
                Ok(())
            })
            .await;
        self.forget_on_error(&result).await;
        result
    }

    /// Deletes one of nsbeacon's routes; already gone counts as done.
    async fn delete(
        &self,
        handle: &Handle,
        prefix: &IpNet,
        route: RouteMessage,
    ) -> Result<(), FrrError> {
        match handle.route().del(route).execute().await {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(e)) if -e.raw_code() == ESRCH => Ok(()),
            Err(e) => Err(self.failure("remove", prefix, e)),
        }
    }

    fn default_route_refused(&self, prefix: &IpNet) -> FrrError {
        FrrError::KernelRoute {
            operation: "add",
            prefix: *prefix,
            protocol: self.config.protocol,
            reason: "a default route cannot be gated by a kernel route (it would route all of the node's \
                     traffic into lo); use announce_via = \"network\" to announce it"
                .to_owned(),
        }
    }
}

/// A route's metric (`RTA_PRIORITY`); 0 when the kernel reports none.
fn route_metric(route: &RouteMessage) -> u32 {
    route
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Priority(p) => Some(*p),
            _ => None,
        })
        .unwrap_or(0)
}

/// Whether `route` is nsbeacon's route for exactly `prefix`: same protocol, main table, same destination.
fn is_own_route(route: &RouteMessage, prefix: &IpNet, protocol: u8) -> bool {
    let header = &route.header;
    if u8::from(header.protocol) != protocol
        || header.address_family != family(prefix)
        || header.destination_prefix_length != prefix.prefix_len()
    {
        return false;
    }
    let mut table = u32::from(header.table);
    let mut destination = None;
    for attribute in &route.attributes {
        match attribute {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(RouteAddress::Inet(a)) => {
                destination = Some(IpAddr::V4(*a))
            }
            RouteAttribute::Destination(RouteAddress::Inet6(a)) => {
                destination = Some(IpAddr::V6(*a))
            }
            _ => {}
        }
    }
    table == MAIN_TABLE && destination == Some(prefix.network())
}

fn family(prefix: &IpNet) -> AddressFamily {
    match prefix {
        IpNet::V4(_) => AddressFamily::Inet,
        IpNet::V6(_) => AddressFamily::Inet6,
    }
}

/// The index of `lo` in the gate's namespace.
async fn loopback_index(handle: &Handle) -> Result<u32, rtnetlink::Error> {
    let mut links = handle.link().get().match_name("lo".to_owned()).execute();
    match links.try_next().await? {
        Some(link) => Ok(link.header.index),
        None => Err(rtnetlink::Error::RequestFailed),
    }
}

type Opened = (
    rtnetlink::proto::Connection<rtnetlink::packet_route::RouteNetlinkMessage>,
    Handle,
);

/// Opens the rtnetlink socket in nsbeacon's own namespace.
fn open_here() -> Result<Opened, FrrError> {
    let (connection, handle, _) =
        rtnetlink::new_connection_with_strict_check().map_err(|e| FrrError::KernelRouteSocket {
            netns: None,
            reason: e.to_string(),
        })?;
    Ok((connection, handle))
}

/// How long the helper thread may take to enter the namespace and open the socket.
const OPEN_IN_NETNS_BOUND: Duration = Duration::from_secs(5);

/// Opens the rtnetlink socket inside the network namespace `path`: a helper thread enters it (a thread's
/// namespace is its own), creates the socket there (a socket stays in the namespace it was created in)
/// and ends, so no runtime thread ever changes namespace.
async fn open_in(path: &Path) -> Result<Opened, FrrError> {
    let runtime = tokio::runtime::Handle::current();
    let netns = path.to_path_buf();
    let error = |reason: String| FrrError::KernelRouteSocket {
        netns: Some(path.to_path_buf()),
        reason,
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("nsbeacon-netns".to_owned())
        .spawn(move || {
            let result = (|| {
                let file = std::fs::File::open(&netns).map_err(|e| format!("open: {e}"))?;
                nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                    format!("setns: {e} (nsbeacon needs CAP_SYS_ADMIN to enter it)")
                })?;
                let _runtime = runtime.enter();
                rtnetlink::new_connection_with_strict_check()
                    .map(|(connection, handle, _)| (connection, handle))
                    .map_err(|e| e.to_string())
            })();
            let _ = tx.send(result);
        })
        .map_err(|e| error(format!("cannot start the helper thread: {e}")))?;
    match tokio::time::timeout(OPEN_IN_NETNS_BOUND, rx).await {
        Ok(Ok(Ok(opened))) => Ok(opened),
        Ok(Ok(Err(reason))) => Err(error(reason)),
        Ok(Err(_)) => Err(error(
            "the helper thread ended without an answer".to_owned(),
        )),
        Err(_) => Err(error(format!("no answer within {OPEN_IN_NETNS_BOUND:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_numbers() {
        assert!(validate_protocol(DEFAULT_KERNEL_ROUTE_PROTOCOL).is_ok());
        assert!(validate_protocol(250).is_ok());
        for bad in [0, 2, 3, 4, 11, 12, 186, 196, 199, 42] {
            let err = validate_protocol(bad).expect_err("refused");
            assert!(err.to_string().contains(&bad.to_string()), "{err}");
        }
    }

    #[test]
    fn own_routes_are_recognised_by_protocol_table_and_prefix() {
        let prefix: IpNet = "203.0.113.53/32".parse().unwrap();
        let gate = Gate::new(KernelRouteGate::default()).unwrap();
        let ours = gate.route_message(&prefix, 1, None).unwrap();
        assert!(
            ours.attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Destination(_))),
            "{ours:?}"
        );
        assert!(is_own_route(&ours, &prefix, 53));
        assert!(!is_own_route(&ours, &prefix, 54));
        assert!(!is_own_route(
            &ours,
            &"203.0.113.54/32".parse().unwrap(),
            53
        ));
        assert!(!is_own_route(
            &ours,
            &"203.0.113.52/31".parse().unwrap(),
            53
        ));
        let mut other_table = ours.clone();
        other_table
            .attributes
            .retain(|a| !matches!(a, RouteAttribute::Table(_)));
        other_table.attributes.push(RouteAttribute::Table(100));
        assert!(!is_own_route(&other_table, &prefix, 53));
        let v6: IpNet = "2001:db8::53/128".parse().unwrap();
        let ours6 = gate.route_message(&v6, 1, None).unwrap();
        assert!(is_own_route(&ours6, &v6, 53));
        assert!(!is_own_route(&ours6, &prefix, 53));
    }

    #[test]
    fn a_metric_is_carried_and_read_back() {
        let prefix: IpNet = "203.0.113.53/32".parse().unwrap();
        let gate = Gate::new(KernelRouteGate::default()).unwrap();
        let plain = gate.route_message(&prefix, 1, None).unwrap();
        assert_eq!(route_metric(&plain), 0);
        let degraded = gate.route_message(&prefix, 1, Some(54)).unwrap();
        assert_eq!(route_metric(&degraded), 54);
        assert!(is_own_route(&degraded, &prefix, 53));
    }
}
