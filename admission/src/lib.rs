//! Admitting connections: a bound on all of a server's connections and on
//! those of any one client, so one client (or one network) cannot hold
//! every connection a server has while the rest wait.
//!
//! A client is its IPv4 address, or its IPv6 /64: a subscriber is given a
//! whole /64, so counting single IPv6 addresses would let one client count
//! as 2^64. Trusted peers (the front door in front of a PoP, whose clients
//! all arrive from its address) are bounded only by the total.
//!
//! A connection past a bound is not left in the listen queue, where it
//! would sit in front of every healthy client's connection and health
//! check: [`Admission::accept`] accepts it, answers [`Refused::response`]
//! (a 503 with a problem body) and closes it at once.

use problem::Problem;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};

mod listen;
mod open_files;
pub mod tls;

pub use listen::{LISTEN_BACKLOG, bind};
pub use open_files::{OPEN_FILES_RESERVE, raise_open_files_limit};

/// How many connections a server holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// All connections at once.
    pub total: usize,
    /// Connections at once from one client (see the module docs).
    pub per_client: usize,
    /// Peers bounded only by `total`.
    pub trusted: Vec<IpAddr>,
}

impl Limits {
    /// These limits with `total` lowered, if need be, to what `open_files`
    /// descriptors can hold beside [`OPEN_FILES_RESERVE`] for the rest.
    pub fn within_open_files(mut self, open_files: u64) -> Limits {
        let room = open_files.saturating_sub(OPEN_FILES_RESERVE).max(1);
        self.total = self.total.min(usize::try_from(room).unwrap_or(usize::MAX));
        self
    }
}

/// Who a connection counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Client {
    V4(u32),
    /// The upper 64 bits of the address.
    V6Network(u64),
}

impl Client {
    pub fn of(ip: IpAddr) -> Client {
        match ip {
            IpAddr::V4(v4) => Client::V4(v4.into()),
            // An IPv4 client seen through a dual-stack socket is that
            // IPv4 client.
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Client::V4(v4.into()),
                None => Client::V6Network((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the server holds its limit of {0} connections")]
    Total(usize),
    #[error("this client holds its limit of {0} connections")]
    Client(usize),
}

impl Refused {
    /// A complete HTTP/1.1 answer to write before closing: 503, a problem
    /// body, `Retry-After`, `Connection: close`.
    pub fn response(&self) -> Vec<u8> {
        let detail = match self {
            Refused::Total(_) => format!("{self}; retry shortly"),
            Refused::Client(_) => {
                format!("{self}; reuse the ones it has open (keep-alive) or close some, and retry")
            }
        };
        let body = Problem::unavailable(detail).to_json();
        let mut out = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {}\r\ncontent-length: {}\r\n\
             retry-after: 1\r\nconnection: close\r\n\r\n",
            Problem::CONTENT_TYPE,
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(&body);
        out
    }
}

/// The connections a server holds now, by client.
#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    total: usize,
    by_client: HashMap<Client, usize>,
}

/// One admitted connection; dropping it gives its place back.
#[derive(Debug)]
pub struct Permit {
    admission: Arc<Admission>,
    client: Option<Client>,
}

impl Admission {
    pub fn new(limits: Limits) -> Arc<Admission> {
        Arc::new(Admission {
            limits,
            held: Mutex::new(Held::default()),
        })
    }

    /// The admission of a server process: raises the process's
    /// open-files limit as far as it may go and lowers `limits.total` to
    /// fit it, with a warning when it had to.
    pub fn serving(limits: Limits) -> Arc<Admission> {
        let wanted = limits.total;
        let limits = limits.within_open_files(raise_open_files_limit());
        if limits.total < wanted {
            tracing::warn!(
                max_connections = limits.total,
                wanted,
                "the open-files limit holds fewer connections than configured; raise it (ulimit -n)"
            );
        }
        Admission::new(limits)
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The next connection within the bounds. One past them is answered
    /// and closed here; an accept that fails (out of descriptors, say) is
    /// tried again after a moment, since at once it would only spin.
    /// Cancel-safe, for a `select!` beside a shutdown signal.
    pub async fn accept(
        self: &Arc<Self>,
        listener: &TcpListener,
    ) -> (TcpStream, SocketAddr, Permit) {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            match self.admit(peer.ip()) {
                Ok(permit) => return (stream, peer, permit),
                Err(refused) => {
                    tracing::debug!(%peer, %refused, "connection refused");
                    // A fresh socket's send buffer takes this whole; if
                    // not, the close alone says it.
                    let _ = stream.try_write(&refused.response());
                }
            }
        }
    }

    /// Admits a connection from `peer`, or says which bound it is past.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Permit, Refused> {
        let client = (!self.limits.trusted.contains(&peer)).then(|| Client::of(peer));
        let mut held = self.held.lock().expect("admission lock");
        if held.total >= self.limits.total {
            return Err(Refused::Total(self.limits.total));
        }
        if let Some(client) = client {
            let n = held.by_client.entry(client).or_default();
            if *n >= self.limits.per_client {
                return Err(Refused::Client(self.limits.per_client));
            }
            *n += 1;
        }
        held.total += 1;
        Ok(Permit {
            admission: self.clone(),
            client,
        })
    }

    /// Connections held now.
    pub fn held(&self) -> usize {
        self.held.lock().expect("admission lock").total
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut held = self.admission.held.lock().expect("admission lock");
        held.total -= 1;
        if let Some(client) = self.client
            && let Some(n) = held.by_client.get_mut(&client)
        {
            *n -= 1;
            // Forget clients with nothing open: the map holds only the
            // clients connected now.
            if *n == 0 {
                held.by_client.remove(&client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn admission(total: usize, per_client: usize) -> Arc<Admission> {
        Admission::new(Limits {
            total,
            per_client,
            trusted: vec![ip("10.0.0.1")],
        })
    }

    #[test]
    fn one_client_cannot_take_more_than_its_share() {
        let a = admission(10, 2);
        let first = a.admit(ip("192.0.2.1")).unwrap();
        let _second = a.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(a.admit(ip("192.0.2.1")).unwrap_err(), Refused::Client(2));
        // Others are not affected.
        let _other = a.admit(ip("192.0.2.2")).unwrap();
        // A closed connection gives its place back.
        drop(first);
        let _again = a.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(a.held(), 3);
    }

    #[test]
    fn the_total_bounds_everyone_including_trusted_peers() {
        let a = admission(3, 2);
        let held: Vec<_> = (0..3).map(|_| a.admit(ip("10.0.0.1")).unwrap()).collect();
        assert_eq!(held.len(), 3, "a trusted peer is not bound per client");
        assert_eq!(a.admit(ip("192.0.2.1")).unwrap_err(), Refused::Total(3));
        assert_eq!(a.admit(ip("10.0.0.1")).unwrap_err(), Refused::Total(3));
        drop(held);
        assert_eq!(a.held(), 0);
        assert!(a.held.lock().unwrap().by_client.is_empty());
    }

    #[test]
    fn an_ipv6_client_is_its_slash_64_and_a_mapped_ipv4_client_is_itself() {
        let a = admission(10, 2);
        let _one = a.admit(ip("2001:db8:1:2::1")).unwrap();
        let _two = a.admit(ip("2001:db8:1:2:ffff::9")).unwrap();
        assert_eq!(
            a.admit(ip("2001:db8:1:2::3")).unwrap_err(),
            Refused::Client(2),
            "another address in the same /64"
        );
        let _next_network = a.admit(ip("2001:db8:1:3::1")).unwrap();
        let _v4 = a.admit(ip("192.0.2.7")).unwrap();
        let _v4_again = a.admit(ip("::ffff:192.0.2.7")).unwrap();
        assert_eq!(a.admit(ip("192.0.2.7")).unwrap_err(), Refused::Client(2));
    }

    #[test]
    fn the_total_stays_below_the_open_files_limit() {
        let limits = Limits {
            total: 10_000,
            per_client: 256,
            trusted: Vec::new(),
        };
        assert_eq!(limits.clone().within_open_files(1_024).total, 768);
        assert_eq!(limits.clone().within_open_files(1_048_576).total, 10_000);
        assert_eq!(limits.within_open_files(10).total, 1);
    }

    #[test]
    fn a_refusal_is_a_complete_problem_answer() {
        let bytes = Refused::Client(64).response();
        let text = String::from_utf8(bytes).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains("content-type: application/problem+json"));
        assert!(head.contains("connection: close"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let problem: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(problem["status"], 503);
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("64 connections")
        );
    }
}
