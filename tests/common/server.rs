//! A real livekit-server for one test: built by `scripts/setup-livekit-server.sh`, started on
//! free ports of the test address with data blobs enabled, and killed when dropped.
//!
//! Outside CI a missing binary skips the test with a loud message; in CI (`CI=true`) it fails.

use dtbridge::livekit::{ConnectOptions, Credentials, Grants, Room, RoomEvents};
use std::io::Write;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const API_KEY: &str = "devkey";
pub const API_SECRET: &str = "dtbridge-test-secret-0123456789abcdef";

pub struct TestServer {
    child: Child,
    binary: PathBuf,
    pub ip: String,
    pub port: u16,
    dir: TempDir,
    /// The network namespace it runs in, when not the test's own.
    namespace: Option<String>,
}

/// Where the server binary is: `DTBRIDGE_LIVEKIT_SERVER`, else the newest one the setup
/// script cached.
fn server_binary() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("DTBRIDGE_LIVEKIT_SERVER") {
        return Some(PathBuf::from(path));
    }
    let cache = super::cache_dir();
    let mut built: Vec<PathBuf> = std::fs::read_dir(cache)
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("livekit-server-v"))
        })
        .collect();
    built.sort();
    built.pop()
}

/// True when every prerequisite must be present (CI sets `CI=true`).
pub fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Says loudly that a test is skipped, or fails it in CI.
pub fn skip(test: &str, why: &str) {
    if required() {
        panic!("{test}: {why} (CI=true: nothing may be skipped)");
    }
    // Straight to stderr: the test harness hides eprintln! output of passing tests.
    use std::io::Write as _;
    _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED {test}: {why} ***\n    run `bash scripts/test.sh` to set everything up\n"
    );
}

/// The address tests bind to: `DTBRIDGE_TEST_IP` (a veth address inside the test network
/// namespace, where the Python SDK's libwebrtc can reach it), else 127.0.0.1.
pub fn test_ip() -> String {
    std::env::var("DTBRIDGE_TEST_IP").unwrap_or_else(|_| "127.0.0.1".into())
}

/// Ports for test servers: below the kernel's ephemeral range (`ip_local_port_range`, 32768
/// up), from which every outgoing connection takes its local port. A server's port taken from
/// that range could be a client's the moment the server is killed, and its restart on the same
/// port then fails (`address already in use`; seen with the other tests of a binary running).
const SERVER_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A port of [`SERVER_PORTS`] free for TCP on `ip`.
pub fn free_tcp_port(ip: &str) -> u16 {
    free_port(ip, |port| TcpListener::bind((ip, port)).is_ok())
}

/// A port of [`SERVER_PORTS`] free for UDP on `ip`.
pub fn free_udp_port(ip: &str) -> u16 {
    free_port(ip, |port| UdpSocket::bind((ip, port)).is_ok())
}

/// The next port of [`SERVER_PORTS`] that is `bindable`. Each test process walks the range
/// from its own offset, so tests running side by side never probe the same port.
fn free_port(ip: &str, bindable: impl Fn(u16) -> bool) -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let span = SERVER_PORTS.end - SERVER_PORTS.start;
    let offset = (std::process::id() % u32::from(span)) as u16;
    for _ in 0..span {
        let step = NEXT.fetch_add(1, Ordering::Relaxed) % span;
        let port = SERVER_PORTS.start + (offset + step) % span;
        if bindable(port) {
            return port;
        }
    }
    panic!("no free port in {SERVER_PORTS:?} on {ip}");
}

impl TestServer {
    /// Starts a server, or returns `None` after [`skip`] when the binary is missing.
    pub fn start(test: &str) -> Option<TestServer> {
        Self::start_at(test, test_ip(), None)
    }

    /// Starts a server on `ip` inside the named network namespace (an emulated link's server
    /// side, see `link.rs`).
    pub fn start_in(test: &str, ip: &str, namespace: &str) -> Option<TestServer> {
        Self::start_at(test, ip.to_string(), Some(namespace.to_string()))
    }

    fn start_at(test: &str, ip: String, namespace: Option<String>) -> Option<TestServer> {
        let Some(binary) = server_binary() else {
            skip(test, "livekit-server is not built (scripts/setup-livekit-server.sh)");
            return None;
        };
        let (port, tcp_port, udp_port) = in_own_namespace(namespace.as_deref(), || {
            (free_tcp_port(&ip), free_tcp_port(&ip), free_udp_port(&ip))
        });
        let dir = TempDir::new();
        // datachannel_data_track_target_latency 0s: by default the server drops a data track
        // packet when the subscriber's send buffer holds more than 100 ms at the recent
        // bitrate, so the first multi-megabyte frame after an idle moment is dropped by
        // design. These tests check the client's integrity and order, so they turn that
        // policy off; the benchmark (scripts/bench.sh transport) runs with server defaults.
        let config = format!(
            "port: {port}\n\
             bind_addresses: [\"{ip}\"]\n\
             rtc:\n  tcp_port: {tcp_port}\n  udp_port: {udp_port}\n  use_external_ip: false\n  \
             node_ip: {ip}\n  enable_loopback_candidate: {loopback}\n  \
             datachannel_data_track_target_latency: 0s\n\
             keys:\n  {API_KEY}: {API_SECRET}\n\
             enable_participant_data_blob: true\n\
             logging:\n  level: {level}\n",
            level = std::env::var("DTBRIDGE_TEST_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
            // Behind an emulated link a client never gets connected when the server also
            // offers loopback candidates (the client's own 127.0.0.1 answers nothing there).
            loopback = namespace.is_none(),
        );
        let config_path = dir.0.join("livekit.yaml");
        std::fs::File::create(&config_path).unwrap().write_all(config.as_bytes()).unwrap();
        let child = spawn(&binary, &dir, namespace.as_deref());
        let server = TestServer { child, binary, ip, port, dir, namespace };
        server.wait_ready();
        Some(server)
    }

    /// Kills the server and starts it again on the same ports: to clients, the network
    /// dropped and came back, and every session is gone.
    pub fn restart(&mut self) {
        self.kill();
        self.start_again();
    }

    /// SIGKILLs the server: no leave, no goodbye, every session gone at once.
    pub fn kill(&mut self) {
        _ = self.child.kill();
        _ = self.child.wait();
    }

    /// Starts the server again on the same ports after [`Self::kill`]; returns once it
    /// accepts connections.
    pub fn start_again(&mut self) {
        self.child = spawn(&self.binary, &self.dir, self.namespace.as_deref());
        self.wait_ready();
    }

    /// The server's log so far (its level is `DTBRIDGE_TEST_SERVER_LOG`, default warn).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("server.log")).unwrap_or_default()
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let listening = || {
            while Instant::now() < deadline {
                if TcpStream::connect((self.ip.as_str(), self.port)).is_ok() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            false
        };
        if in_own_namespace(self.namespace.as_deref(), listening) {
            return;
        }
        let log = std::fs::read_to_string(self.dir.0.join("server.log")).unwrap_or_default();
        panic!("livekit-server did not listen on {}:{} within 20 s:\n{log}", self.ip, self.port);
    }

    pub fn url(&self) -> String {
        format!("ws://{}:{}", self.ip, self.port)
    }

    /// Connect options for `identity` in `room` with the given grants.
    pub fn options(&self, room: &str, identity: &str, grants: Grants) -> ConnectOptions {
        let credentials = Credentials::ApiKey {
            key: API_KEY.into(),
            secret: API_SECRET.into(),
            room: room.into(),
            identity: identity.into(),
            grants,
        };
        let mut options = ConnectOptions::new(self.url(), credentials);
        options.ice_udp_addrs = vec![format!("{}:0", self.ip)];
        options
    }

    /// Joins `room` as `identity` with full grants.
    pub async fn join(&self, room: &str, identity: &str) -> (Room, RoomEvents) {
        Room::connect(self.options(room, identity, Grants::default()))
            .await
            .unwrap_or_else(|err| panic!("{identity} cannot join {room}: {err}"))
    }
}

/// A ready access token for [`TestServer`]s, as an operator would hand one to a robot:
/// `room` and `identity` inside, valid for `ttl` from now.
pub fn ready_token(room: &str, identity: &str, grants: Grants, ttl: Duration) -> String {
    livekit_api::access_token::AccessToken::with_api_key(API_KEY, API_SECRET)
        .with_ttl(ttl)
        .with_identity(identity)
        .with_grants(livekit_api::access_token::VideoGrants {
            room_join: true,
            room: room.into(),
            can_publish: Some(false),
            can_publish_data: Some(grants.publish_data),
            can_subscribe: Some(grants.subscribe),
            ..Default::default()
        })
        .to_jwt()
        .expect("a token")
}

/// Runs `work` in `namespace`, or right here without one.
fn in_own_namespace<T: Send>(namespace: Option<&str>, work: impl FnOnce() -> T + Send) -> T {
    match namespace {
        Some(name) => super::link::in_namespace(name, work),
        None => work(),
    }
}

fn spawn(binary: &PathBuf, dir: &TempDir, namespace: Option<&str>) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.0.join("server.log"))
        .unwrap();
    let mut command = match namespace {
        Some(name) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", name]).arg(binary);
            command
        }
        None => Command::new(binary),
    };
    command
        .arg("--config")
        .arg(dir.0.join("livekit.yaml"))
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {}: {err}", binary.display()))
}

impl Drop for TestServer {
    fn drop(&mut self) {
        _ = self.child.kill();
        _ = self.child.wait();
    }
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "dtbridge-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("DTBRIDGE_KEEP_TEST_DIRS").is_some() {
            eprintln!("kept {}", self.0.display());
            return;
        }
        _ = std::fs::remove_dir_all(&self.0);
    }
}
