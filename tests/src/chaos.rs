//! A chaos proxy for outage tests: TCP in front of PostgreSQL or Redis that
//! forwards until told to black-hole — then it cuts every connection and
//! accepts new ones without ever answering (a server that hangs, the worst
//! kind of outage), until told to forward again.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::{
    io::AsyncReadExt,
    net::{TcpListener, TcpStream},
    task::AbortHandle,
};

/// A running proxy; dropping it stops accepting.
pub struct ChaosProxy {
    pub addr: SocketAddr,
    blackhole: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    acceptor: AbortHandle,
}

impl ChaosProxy {
    /// Forwards a random local port to `upstream`.
    pub async fn start(upstream: SocketAddr) -> ChaosProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the chaos proxy");
        let addr = listener.local_addr().expect("proxy address");
        let blackhole = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (hole, conns) = (blackhole.clone(), connections.clone());
        let acceptor = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let hole = hole.clone();
                let task = tokio::spawn(async move {
                    if hole.load(Ordering::SeqCst) {
                        // Read and drop: never a byte back.
                        let mut sink = [0u8; 4096];
                        while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
                        return;
                    }
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                conns
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(task.abort_handle());
            }
        })
        .abort_handle();
        ChaosProxy {
            addr,
            blackhole,
            connections,
            acceptor,
        }
    }

    /// Cuts every connection; new ones are accepted and never answered.
    pub fn blackhole(&self) {
        self.blackhole.store(true, Ordering::SeqCst);
        for c in self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            c.abort();
        }
    }

    /// Forwards again (to new connections; black-holed ones stay silent).
    pub fn restore(&self) {
        self.blackhole.store(false, Ordering::SeqCst);
    }
}

/// `url` (`scheme://[user@]host:port/…`) with its host and port replaced
/// by `proxy`.
pub fn url_via(proxy: SocketAddr, url: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let (user, rest) = match rest.rsplit_once('@') {
        Some((user, rest)) => (format!("{user}@"), rest),
        None => (String::new(), rest),
    };
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    format!("{scheme}://{user}{proxy}{path}")
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        self.blackhole();
    }
}

/// The `host:port` of a `scheme://[user@]host:port/…` URL.
pub fn socket_of(url: &str) -> SocketAddr {
    let rest = url.split_once("://").expect("a URL with a scheme").1;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let host_port = rest.split('/').next().expect("host and port");
    host_port
        .parse()
        .unwrap_or_else(|_| panic!("`{host_port}` is not an IP address and port"))
}
