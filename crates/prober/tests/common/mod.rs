//! Test support: a hostile DNS responder (UDP + TCP on 127.0.0.1) that misbehaves in one chosen way.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use nsbeacon_prober::proto::op::{Edns, Message, MessageType, Query};
use nsbeacon_prober::proto::rr::rdata::A;
use nsbeacon_prober::proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

/// How the responder misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// A correct authoritative answer (A 192.0.2.1).
    Correct,
    /// Never answers.
    Silence,
    /// Answers with bytes that are not a DNS message.
    Garbage,
    /// A correct answer with the ID plus one.
    WrongId,
    /// A correct answer to another question.
    WrongQuestion,
    /// TC=1 and no answers on UDP; correct on TCP.
    Truncated,
    /// TCP: sends a length prefix announcing 100 bytes, then nothing. UDP: correct.
    StallAfterPrefix,
    /// UDP: the correct answer, but sent from 127.0.0.2. TCP: correct.
    OtherSource,
    /// A correct answer without the AA flag.
    NoAa,
    /// UDP: drops every query whose message ID it sees for the first time and answers a resent one (a
    /// lost datagram). TCP: correct.
    DropFirst,
}

/// A running hostile responder; aborted on drop.
pub struct Hostile {
    addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl Hostile {
    /// Where it listens (same port for UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn answer(query: &Message, behaviour: Behaviour) -> Message {
    let mut reply = Message::new(
        query.metadata.id,
        MessageType::Response,
        query.metadata.op_code,
    );
    reply.metadata.authoritative = behaviour != Behaviour::NoAa;
    let question = query.queries.first().cloned().unwrap_or_else(|| {
        Query::query(Name::from_str("example.com.").expect("name"), RecordType::A)
    });
    if behaviour == Behaviour::WrongQuestion {
        reply.add_query(Query::query(
            Name::from_str("other.example.").expect("name"),
            question.query_type(),
        ));
    } else {
        reply.add_query(question.clone());
    }
    if behaviour == Behaviour::WrongId {
        reply.metadata.id = query.metadata.id.wrapping_add(1);
    }
    if behaviour == Behaviour::Truncated {
        reply.metadata.truncation = true;
    } else {
        reply.add_answer(Record::from_rdata(
            question.name().clone(),
            300,
            RData::A(A::new(192, 0, 2, 1)),
        ));
    }
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    reply.set_edns(edns);
    reply
}

fn reply_bytes(packet: &[u8], behaviour: Behaviour) -> Option<Vec<u8>> {
    if behaviour == Behaviour::Garbage {
        return Some(b"\xde\xad\xbe\xef this is not DNS at all \xff\xff\xff".to_vec());
    }
    let query = Message::from_vec(packet).ok()?;
    answer(&query, behaviour).to_vec().ok()
}

/// Starts a responder with `behaviour` on 127.0.0.1 and a free port.
pub async fn hostile(behaviour: Behaviour) -> Hostile {
    let port = nsbeacon_testkit::free_port();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let udp = UdpSocket::bind(addr).await.expect("bind hostile UDP");
    let tcp = TcpListener::bind(addr).await.expect("bind hostile TCP");
    // For OtherSource: a second socket on 127.0.0.2 (all of 127/8 is loopback on Linux).
    let other = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 2), 0))
        .await
        .expect("bind 127.0.0.2");

    let udp_task = tokio::spawn(async move {
        let mut buf = vec![0u8; 65535];
        let mut seen_ids = std::collections::HashSet::new();
        loop {
            let Ok((len, from)) = udp.recv_from(&mut buf).await else {
                return;
            };
            if behaviour == Behaviour::DropFirst
                && len >= 2
                && seen_ids.insert(u16::from_be_bytes([buf[0], buf[1]]))
            {
                continue;
            }
            let udp_behaviour = match behaviour {
                Behaviour::StallAfterPrefix | Behaviour::DropFirst => Behaviour::Correct,
                b => b,
            };
            if udp_behaviour == Behaviour::Silence {
                continue;
            }
            let Some(bytes) = reply_bytes(&buf[..len], udp_behaviour) else {
                continue;
            };
            let socket = if udp_behaviour == Behaviour::OtherSource {
                &other
            } else {
                &udp
            };
            let _ = socket.send_to(&bytes, from).await;
        }
    });
    let tcp_task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = tcp.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let tcp_behaviour = match behaviour {
                    Behaviour::Truncated | Behaviour::OtherSource => Behaviour::Correct,
                    b => b,
                };
                let mut prefix = [0u8; 2];
                if stream.read_exact(&mut prefix).await.is_err() {
                    return;
                }
                let mut packet = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
                if stream.read_exact(&mut packet).await.is_err() {
                    return;
                }
                match tcp_behaviour {
                    Behaviour::Silence => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    Behaviour::StallAfterPrefix => {
                        let _ = stream.write_all(&100u16.to_be_bytes()).await;
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    b => {
                        if let Some(bytes) = reply_bytes(&packet, b) {
                            let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
                            framed.extend_from_slice(&bytes);
                            let _ = stream.write_all(&framed).await;
                            // Keep the connection open a while, like a real server would.
                            tokio::time::sleep(Duration::from_secs(5)).await;
                        }
                    }
                }
            });
        }
    });
    Hostile {
        addr,
        tasks: vec![udp_task, tcp_task],
    }
}
