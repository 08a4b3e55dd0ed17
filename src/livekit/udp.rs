//! The `webrtc` crate's tokio runtime, with larger UDP socket buffers.
//!
//! Data track packets travel on an unreliable SCTP channel, so every datagram the kernel
//! drops from a full socket buffer loses a whole frame. A multi-megabyte frame arrives as a
//! burst of 16 KB packets that the default receive buffer (208 KiB on Linux) cannot hold; the
//! kernel caps the request at `net.core.rmem_max`, which the README's troubleshooting covers.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, Runtime,
};

/// Socket buffer size asked for, per direction.
pub(crate) const UDP_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// Delegates everything to the default runtime but sizes UDP buffers first.
#[derive(Debug)]
pub(crate) struct BufferedUdpRuntime(Arc<dyn Runtime>);

impl BufferedUdpRuntime {
    /// Wraps the default (tokio) runtime; `None` outside a tokio context.
    pub fn around_default() -> Option<Arc<dyn Runtime>> {
        webrtc::runtime::default_runtime().map(|inner| Arc::new(Self(inner)) as Arc<dyn Runtime>)
    }
}

impl Runtime for BufferedUdpRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.0.spawn(future)
    }

    fn spawn_reactor(
        &self,
        reactor_pool_size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        self.0.spawn_reactor(reactor_pool_size, future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        let sock = socket2::SockRef::from(&socket);
        if let Err(err) = sock.set_recv_buffer_size(UDP_BUFFER_BYTES) {
            tracing::warn!("cannot enlarge the UDP receive buffer: {err}");
        }
        if let Err(err) = sock.set_send_buffer_size(UDP_BUFFER_BYTES) {
            tracing::warn!("cannot enlarge the UDP send buffer: {err}");
        }
        self.0.wrap_udp_socket(socket)
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        self.0.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        self.0.connect_tcp(remote_addr)
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        self.0.resolve_host(host)
    }

    fn now(&self) -> Instant {
        self.0.now()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.0.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.0.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.0.block_on(future)
    }

    fn yield_now(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.0.yield_now()
    }

    fn name(&self) -> &'static str {
        self.0.name()
    }
}
