//! Turns BIRD's echoed log into immediate read-backs by the reconciler.
//!
//! `birdc configure` restarts every protocol nsbeacon enabled (the templates declare them `disabled`, and
//! BIRD restarts a protocol whose configured `disabled` differs from its current state), and a restarted
//! BIRD starts with all of them disabled. Configuration management often reconfigures BIRD on every node at
//! once; waiting for the next reconcile interval would then withdraw the service everywhere for that long.
//! With the log watched, nsbeacon re-enables what it wants within milliseconds: the upstream sees a
//! withdrawal and a re-announcement close together instead of an outage.
//!
//! The text of the lines is never interpreted (it is only logged at debug level): a burst of lines is a
//! hint, and the read-back decides by BIRD's reply codes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nsbeacon_routing::bird::{BirdLogEvent, BirdLogWatch};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

/// Quiet time that ends a burst of log lines (`Reconfiguring`, `Disabling protocol ...`, `Reconfigured`
/// arrive together).
const BURST_QUIET: Duration = Duration::from_millis(20);
/// Longest a burst may delay the read-back: under a continuous log (BGP debug output, say) the reconciler
/// reads back at most this often because of the log.
const BURST_MAX: Duration = Duration::from_millis(250);

/// Watches BIRD's log on its control socket at `socket` until `stop`, notifying `nudge` after each
/// reconnect and after each burst of log lines.
pub async fn watch(
    socket: PathBuf,
    timeout: Duration,
    nudge: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut log = BirdLogWatch::new(socket.clone(), timeout);
    let mut was_connected = false;
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => return,
            event = log.next() => event,
        };
        match event {
            Ok(BirdLogEvent::Connected) => {
                if was_connected {
                    info!(socket = %socket.display(), "BIRD's control socket is back; reading every target back now");
                } else {
                    debug!(socket = %socket.display(), "watching BIRD's log for reconfigurations and restarts");
                }
                was_connected = true;
                nudge.notify_one();
            }
            Ok(BirdLogEvent::Line(line)) => {
                debug!(%line, "BIRD log");
                let burst_end = Instant::now() + BURST_MAX;
                loop {
                    let quiet_end = (Instant::now() + BURST_QUIET).min(burst_end);
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep_until(quiet_end) => break,
                        next = log.next() => match next {
                            Ok(BirdLogEvent::Line(line)) => debug!(%line, "BIRD log"),
                            Ok(_) | Err(_) => break,
                        },
                    }
                }
                nudge.notify_one();
            }
            Ok(_) => nudge.notify_one(),
            Err(e) => debug!(error = %e, "BIRD log watch interrupted; reconnecting"),
        }
    }
}
