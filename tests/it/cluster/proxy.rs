//! A TCP proxy on loopback that can play a network partition: while cut, it forwards nothing
//! in either direction and answers nothing (new connections are accepted and left silent), so
//! the client sees no error, only silence, as with packets dropped on the way. When the cut
//! heals, the connections it held are closed (as they would have timed out) and new ones are
//! forwarded again.

use std::net::SocketAddr;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub(crate) struct Proxy {
    pub(crate) addr: SocketAddr,
    cut: watch::Sender<bool>,
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
        let (cut, watching) = watch::channel(false);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, upstream, watching.clone()));
            }
        });
        Proxy { addr, cut, task }
    }

    pub(crate) fn cut(&self) {
        self.cut.send_replace(true);
    }

    pub(crate) fn heal(&self) {
        self.cut.send_replace(false);
    }
}

async fn relay(mut client: TcpStream, upstream: SocketAddr, mut cut: watch::Receiver<bool>) {
    if !*cut.borrow_and_update() {
        let Ok(mut server) = TcpStream::connect(upstream).await else {
            return;
        };
        tokio::select! {
            _ = copy_bidirectional(&mut client, &mut server) => return,
            _ = cut.wait_for(|c| *c) => {}
        }
        // Cut mid-connection: both ends are held, silent, until the partition heals.
        let _ = cut.wait_for(|c| !*c).await;
        return;
    }
    let _ = cut.wait_for(|c| !*c).await;
    drop(client);
}
