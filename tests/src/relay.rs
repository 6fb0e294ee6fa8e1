//! A slow DNS server for the lab: [`SlowRelay`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use nsbeacon_testkit::{DaemonGuard, require_binary};

use crate::Lab;
use crate::lab::NODE_LOCAL_DNS;

/// A UDP relay in the node namespace in front of the node's DNS server that waits `<lab>/relay-delay`
/// seconds (a file, so the delay changes without a restart) before forwarding each query. The kernel
/// here has no `netem` qdisc, so latency is added in user space; for nsbeacon it is a slow server.
pub struct SlowRelay {
    _guard: DaemonGuard,
    delay_file: std::path::PathBuf,
    /// Where the relay listens (127.0.0.54:53 in the node namespace): the address a check queries.
    pub addr: SocketAddr,
}

impl SlowRelay {
    /// Starts the relay with no delay; killed by PID on drop.
    pub fn start(lab: &Lab) -> SlowRelay {
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 54)), 53);
        let delay_file = lab.dir().join("relay-delay");
        std::fs::write(&delay_file, "0").expect("write the relay delay");
        let socat = require_binary("socat");
        // One process per query (socat fork): sleep, then forward and relay the answer. A script file,
        // because socat's address syntax has no escape for the ':' of the forward address.
        let script = lab.dir().join("relay-query.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nsleep \"$(cat {})\"\nexec {} -T 2 - UDP4:{NODE_LOCAL_DNS}\n",
                delay_file.display(),
                socat.display()
            ),
        )
        .expect("write the relay script");
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod the relay script");
        let mut cmd = lab.node_netns().exec(&socat);
        // -t 5: keep the per-query child alive after the query until the delayed answer is back.
        cmd.args(["-t", "5"])
            .arg(format!(
                "UDP4-RECVFROM:{},bind={},fork",
                addr.port(),
                addr.ip()
            ))
            .arg(format!("EXEC:{}", script.display()));
        let guard = DaemonGuard::spawn("slow-relay", cmd, Some(&lab.dir().join("relay.log")));
        SlowRelay {
            _guard: guard,
            delay_file,
            addr,
        }
    }

    /// Delays every query from now on by `delay`.
    pub fn set_delay(&self, delay: Duration) {
        std::fs::write(&self.delay_file, format!("{:.3}", delay.as_secs_f64()))
            .expect("write the relay delay");
    }
}
