//! A TCP proxy on loopback that plays network and database failures between a node and
//! PostgreSQL:
//! - [`Proxy::cut`], a partition: nothing is forwarded in either direction and nothing is
//!   answered (new connections are accepted and left silent), so the client sees no error,
//!   only silence, as with packets dropped on the way;
//! - [`Proxy::refuse`], the database restarting: every connection is closed at once, new ones
//!   too;
//! - [`Proxy::heal`]: connections held silent are closed (as they would have timed out) and
//!   new ones are forwarded again.

use std::net::SocketAddr;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Open,
    Silent,
    Refusing,
}

pub(crate) struct Proxy {
    pub(crate) addr: SocketAddr,
    mode: watch::Sender<Mode>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    pub(crate) async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mode, watching) = watch::channel(Mode::Open);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, upstream, watching.clone()));
            }
        });
        Proxy { addr, mode, task }
    }

    pub(crate) fn cut(&self) {
        self.mode.send_replace(Mode::Silent);
    }

    pub(crate) fn refuse(&self) {
        self.mode.send_replace(Mode::Refusing);
    }

    pub(crate) fn heal(&self) {
        self.mode.send_replace(Mode::Open);
    }
}

async fn relay(mut client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
    let at_accept = *mode.borrow_and_update();
    if at_accept == Mode::Open {
        let Ok(mut server) = TcpStream::connect(upstream).await else {
            return;
        };
        tokio::select! {
            _ = copy_bidirectional(&mut client, &mut server) => return,
            _ = mode.wait_for(|m| *m != Mode::Open) => {}
        }
    }
    // Held silent until the mode changes (both ends, if connected), then closed.
    if *mode.borrow() == Mode::Silent {
        let _ = mode.wait_for(|m| *m != Mode::Silent).await;
    }
}
