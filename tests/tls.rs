//! The signal connection through TLS, as users deploy livekit-server: behind a TLS terminator
//! whose certificate their own CA signed. The test makes the CA and runs the terminator;
//! `dtbridge run` and `dtbridge record` reach the server through `wss://` when they trust the
//! CA through `[livekit] ca_file` or `SSL_CERT_FILE`, and without either both stop with exit
//! status 3 and say what to do.

mod common;

use common::process::{Process, recorded_so_far, run_summary, summary_json, write_operator_config};
use common::server::{TempDir, TestServer};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

/// The topic the robot's synthetic camera sends, 10 frames a second.
const TOPIC: &str = "/cam/depth/image_rect_raw";
/// Frames that must be recorded before the processes are stopped.
const RECORDED: u64 = 10;
/// Generous: a debug build joining on a loaded 2-core machine.
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);

/// A CA made for one test, and a server certificate it signed for the test's address.
struct Pki {
    /// The CA certificate, PEM.
    ca_file: PathBuf,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivatePkcs8KeyDer<'static>,
}

impl Pki {
    /// Writes the CA certificate to `dir/ca.pem`; the server certificate names `ip`, the
    /// host of the URL the clients use.
    fn new(dir: &Path, ip: &str) -> Pki {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name.push(DnType::CommonName, "dtbridge test CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();

        let mut server = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        server.subject_alt_names.push(SanType::IpAddress(ip.parse().unwrap()));
        let key = KeyPair::generate().unwrap();
        let certificate = server.signed_by(&key, &ca).unwrap();
        Pki {
            ca_file,
            server_chain: vec![certificate.der().clone()],
            server_key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        }
    }

    fn server_config(&self) -> rustls::ServerConfig {
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            self.server_chain.clone(),
            PrivateKeyDer::Pkcs8(self.server_key.clone_key()),
        )
        .unwrap()
    }
}

/// A TLS terminator in front of a livekit-server, as nginx is in front of users' servers: TLS
/// on a port of its own, plain TCP on to the server. It carries the signal connection only;
/// the media goes to the server's ICE candidates directly. Stops when dropped.
struct Terminator {
    url: String,
    /// TLS handshakes that succeeded: each is a client that trusted the certificate.
    handshakes: Arc<AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
}

impl Terminator {
    fn start(server: &TestServer, tls: rustls::ServerConfig) -> Terminator {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime.block_on(TcpListener::bind((server.ip.as_str(), 0))).unwrap();
        let url = format!("wss://{}:{}", server.ip, listener.local_addr().unwrap().port());
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let upstream = (server.ip.clone(), server.port);
        let handshakes = Arc::new(AtomicUsize::new(0));
        let counted = handshakes.clone();
        runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (acceptor, upstream, counted) =
                    (acceptor.clone(), upstream.clone(), counted.clone());
                tokio::spawn(async move {
                    // A client that does not trust the certificate ends here.
                    let Ok(mut client) = acceptor.accept(client).await else { return };
                    counted.fetch_add(1, Ordering::Relaxed);
                    let Ok(mut server) = TcpStream::connect(upstream).await else { return };
                    _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
        Terminator { url, handshakes, _runtime: runtime }
    }
}

/// How the processes are told to trust the test's CA.
#[derive(Debug, Clone, Copy)]
enum Trust {
    /// `[livekit] ca_file`: the robot's in its file, the operator's through its environment
    /// override (`DTBRIDGE_LIVEKIT__CA_FILE`).
    CaFile,
    /// `SSL_CERT_FILE`, the system trust store's override.
    SslCertFile,
    /// Neither: only the system's CAs, which do not include the test's.
    Nothing,
}

/// A server, its terminator, and the two processes' configurations.
struct Setup {
    server: TestServer,
    dir: TempDir,
    pki: Pki,
    terminator: Terminator,
    robot: PathBuf,
    operator: PathBuf,
}

impl Setup {
    fn start(test: &str, trust: Trust) -> Option<Setup> {
        let server = TestServer::start(test)?;
        let dir = TempDir::new();
        let pki = Pki::new(&dir.0, &server.ip);
        let terminator = Terminator::start(&server, pki.server_config());
        let ca_file = match trust {
            Trust::CaFile => "ca_file = \"ca.pem\"\n",
            Trust::SslCertFile | Trust::Nothing => "",
        };
        let robot = dir.0.join("robot.toml");
        std::fs::write(
            &robot,
            format!(
                "[livekit]\nroom = \"tls\"\nidentity = \"robot\"\n{ca_file}\n\
                 [[sources]]\ntype = \"synthetic\"\nname = \"camera\"\nnamespace = \"/cam\"\n\
                 width = 64\nheight = 48\nfps = 10\nimu_hz = 0\ncolor = false\n\n\
                 [[routes]]\ntopic = \"/**\"\n"
            ),
        )
        .unwrap();
        let operator = write_operator_config(&dir.0, "tls");
        Some(Setup { server, dir, pki, terminator, robot, operator })
    }

    /// `dtbridge ARGS -c CONFIG` to the terminator's `wss://` URL, trusting as `trust` says
    /// and nothing else from the environment.
    fn command(&self, args: &[&str], config: &Path, trust: Trust) -> Command {
        let mut command = Process::command_in(None, args, config, &self.server);
        command
            .env("LIVEKIT_URL", &self.terminator.url)
            .env_remove("SSL_CERT_FILE")
            .env_remove("SSL_CERT_DIR")
            .env_remove("DTBRIDGE_LIVEKIT__CA_FILE");
        match trust {
            Trust::CaFile if config == self.operator.as_path() => {
                command.env("DTBRIDGE_LIVEKIT__CA_FILE", &self.pki.ca_file);
            }
            Trust::SslCertFile => {
                command.env("SSL_CERT_FILE", &self.pki.ca_file);
            }
            Trust::CaFile | Trust::Nothing => {}
        }
        command
    }
}

/// `dtbridge record` and then `dtbridge run` through `wss://`, trusting the server as `trust`
/// says, until [`RECORDED`] frames are recorded; then what run says it sent and what record
/// says it recorded must agree.
fn run_and_record_through_tls(test: &str, trust: Trust) {
    let Some(setup) = Setup::start(test, trust) else { return };
    let record_summary = setup.dir.0.join("record-summary.json");
    let run_summary_path = setup.dir.0.join("run-summary.json");
    let recorder = Process::watch(setup.command(
        &["record", "--summary-json", record_summary.to_str().unwrap()],
        &setup.operator,
        trust,
    ));
    assert!(
        recorder.wait_for("joined room", 1, JOIN_TIMEOUT),
        "dtbridge record joins:\n{}",
        recorder.log()
    );
    let publisher = Process::watch(setup.command(
        &["run", "--summary-json", run_summary_path.to_str().unwrap()],
        &setup.robot,
        trust,
    ));
    assert!(
        publisher.wait_for("joined room", 1, JOIN_TIMEOUT),
        "dtbridge run joins:\n{}",
        publisher.log()
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while recorded_so_far(&recorder.log(), TOPIC) < RECORDED {
        assert!(
            Instant::now() < deadline,
            "fewer than {RECORDED} frames of {TOPIC} recorded:\nrecorder:\n{}\npublisher:\n{}",
            recorder.log(),
            publisher.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (ok, run_log) = publisher.stop();
    assert!(ok, "dtbridge run: {run_log}");
    let (ok, record_log) = recorder.stop();
    assert!(ok, "dtbridge record: {record_log}");

    assert!(
        setup.terminator.handshakes.load(Ordering::Relaxed) >= 2,
        "both processes connect through the TLS terminator"
    );
    let sent = run_summary(&run_summary_path).topics[TOPIC].frames;
    let summary = summary_json(&record_summary);
    let recorded: u64 = summary["summary"]["stats"]["tracks"]
        .as_array()
        .expect("tracks")
        .iter()
        .filter(|track| track["track"] == TOPIC)
        .map(|track| track["frames"].as_u64().expect("frames"))
        .sum();
    eprintln!("{test}: run says it sent {sent} frames of {TOPIC}, record recorded {recorded}");
    // The recorder subscribes after the robot has published: the first frames may not reach
    // it, and nothing it did not send can.
    assert!((RECORDED..=sent).contains(&recorded), "sent {sent}, recorded {recorded}: {summary}");
}

#[test]
fn run_and_record_trust_the_server_through_ca_file() {
    run_and_record_through_tls("run_and_record_trust_the_server_through_ca_file", Trust::CaFile);
}

#[test]
fn run_and_record_trust_the_server_through_ssl_cert_file() {
    run_and_record_through_tls(
        "run_and_record_trust_the_server_through_ssl_cert_file",
        Trust::SslCertFile,
    );
}

#[test]
fn an_untrusted_server_stops_run_and_record_with_status_3_and_the_fix() {
    let test = "an_untrusted_server_stops_run_and_record_with_status_3_and_the_fix";
    let Some(setup) = Setup::start(test, Trust::Nothing) else { return };
    for (args, config) in [(["run"], &setup.robot), (["record"], &setup.operator)] {
        let output = setup.command(&args, config, Trust::Nothing).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        eprintln!("dtbridge {} without trust:\n{stderr}", args[0]);
        assert_eq!(output.status.code(), Some(3), "dtbridge {}: {stderr}", args[0]);
        for says in [
            "the server's certificate is not trusted",
            "UnknownIssuer",
            "[livekit] ca_file = \"/path/to/ca.pem\" or SSL_CERT_FILE",
        ] {
            assert!(stderr.contains(says), "dtbridge {} says {says:?}:\n{stderr}", args[0]);
        }
    }
    assert_eq!(setup.terminator.handshakes.load(Ordering::Relaxed), 0, "no client trusted it");
}
