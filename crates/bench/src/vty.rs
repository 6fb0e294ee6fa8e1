//! A what-if for part 2: FRR driven over one persistent connection to bgpd's vty socket (the protocol
//! vtysh itself speaks: a NUL-terminated command, a reply ending in `\0\0\0<status>`), instead of one
//! `vtysh` process per operation. Not nsbeacon code; it measures what the process spawn costs.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::BenchError;

/// One open connection to a daemon's vty socket.
#[derive(Debug)]
pub struct VtyConnection {
    stream: UnixStream,
}

impl VtyConnection {
    /// Connects to `socket` (e.g. `STATE_DIR/bgpd.vty`) and enters the privileged node.
    pub fn connect(socket: &Path) -> Result<VtyConnection, BenchError> {
        let stream = UnixStream::connect(socket)
            .map_err(|e| BenchError::new(format!("connect {}: {e}", socket.display())))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| BenchError::new(format!("socket: {e}")))?;
        let mut vty = VtyConnection { stream };
        vty.command("enable")?;
        Ok(vty)
    }

    /// Runs one command; returns its output, or an error with the output when the status is not 0.
    pub fn command(&mut self, command: &str) -> Result<String, BenchError> {
        let mut bytes = command.as_bytes().to_vec();
        bytes.push(0);
        self.stream
            .write_all(&bytes)
            .map_err(|e| BenchError::new(format!("vty write `{command}`: {e}")))?;
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = self
                .stream
                .read(&mut buf)
                .map_err(|e| BenchError::new(format!("vty read after `{command}`: {e}")))?;
            if n == 0 {
                return Err(BenchError::new(format!("vty closed after `{command}`")));
            }
            reply.extend_from_slice(&buf[..n]);
            let len = reply.len();
            if len >= 4 && reply[len - 4..len - 1] == [0, 0, 0] {
                let status = reply[len - 1];
                let text = String::from_utf8_lossy(&reply[..len - 4]).into_owned();
                return if status == 0 {
                    Ok(text)
                } else {
                    Err(BenchError::new(format!(
                        "vty `{command}` returned status {status}: {text}"
                    )))
                };
            }
        }
    }
}
