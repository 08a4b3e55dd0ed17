//! Whom the connections to the server trust. `livekit-signaling` opens its WebSocket and makes
//! its HTTPS requests (`/rtc/validate`, LiveKit Cloud's region list) through the client that
//! `livekit-net` has registered, and its built-in one trusts only the web PKI roots compiled
//! into it. So the process registers its own: `tokio-tungstenite` and `reqwest`, both with one
//! rustls configuration that trusts, in this order,
//!
//! 1. the certificates of `[livekit] ca_file` ([`CaBundle`]), when set;
//! 2. the operating system's: `SSL_CERT_FILE` and `SSL_CERT_DIR` when set, else the
//!    distribution's bundle (`rustls-native-certs`);
//! 3. the web PKI roots (`webpki-roots`), only when the system has none (a minimal container).
//!
//! `livekit-net` takes one client per process, so a process trusts one `ca_file`.

use super::RoomError;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use livekit_net::{
    Header, HttpClient, HttpMethod, HttpResponse, TransportError, WsClient, WsConnectResult,
    WsConnection,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{CertificateError, RootCertStore};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

/// CA certificates to trust besides the system's: the PEM file of `[livekit] ca_file`.
#[derive(Clone, PartialEq, Eq)]
pub struct CaBundle {
    path: PathBuf,
    certificates: Vec<CertificateDer<'static>>,
}

impl std::fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CaBundle({}, {} certificates)", self.path.display(), self.certificates.len())
    }
}

impl CaBundle {
    /// Reads the PEM certificates in `path`; other PEM sections (a private key) are skipped.
    /// An unreadable file, a malformed one, or one without a certificate is an error: a
    /// `ca_file` that trusts nothing must not look like one that works.
    pub fn load(path: &Path) -> Result<Self, String> {
        let unreadable = |err: rustls::pki_types::pem::Error| match err {
            rustls::pki_types::pem::Error::Io(err)
                if err.kind() == std::io::ErrorKind::NotFound =>
            {
                format!("{}: no such file", path.display())
            }
            rustls::pki_types::pem::Error::Io(err) => {
                format!("{}: cannot read: {err}", path.display())
            }
            other => format!("{}: not a PEM file: {other}", path.display()),
        };
        let certificates = CertificateDer::pem_file_iter(path)
            .map_err(unreadable)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(unreadable)?;
        if certificates.is_empty() {
            return Err(format!(
                "{}: no certificate in it (expected PEM blocks `-----BEGIN CERTIFICATE-----`)",
                path.display()
            ));
        }
        for (i, certificate) in certificates.iter().enumerate() {
            RootCertStore::empty().add(certificate.clone()).map_err(|err| {
                format!("{}: certificate {} is not a usable CA: {err}", path.display(), i + 1)
            })?;
        }
        Ok(Self { path: path.to_path_buf(), certificates })
    }
}

/// The trust the process registered with `livekit-net`, once it has.
struct Registered {
    ca: Option<CaBundle>,
}

static REGISTERED: Mutex<Option<Registered>> = Mutex::new(None);

/// Makes the signal connections of this process trust the system's CAs and `ca` (the module
/// documentation has the order); done once, and an error if a later call asks for another
/// `ca`.
pub(crate) fn register(ca: Option<&CaBundle>) -> Result<(), RoomError> {
    let mut registered = crate::util::lock(&REGISTERED);
    if let Some(registered) = registered.as_ref() {
        if registered.ca.as_ref() == ca {
            return Ok(());
        }
        return Err(RoomError::Config(
            "this process already connects with another livekit.ca_file; one process trusts \
             one (run a second dtbridge for the other server)"
                .into(),
        ));
    }
    let transport = Arc::new(TrustingTransport::new(ca)?);
    livekit_net::set_ws_client(transport.clone());
    livekit_net::set_http_client(transport);
    *registered = Some(Registered { ca: ca.cloned() });
    Ok(())
}

/// The rustls configuration of every connection to the server.
fn client_config(ca: Option<&CaBundle>) -> Result<rustls::ClientConfig, RoomError> {
    let mut roots = RootCertStore::empty();
    if let Some(ca) = ca {
        roots.add_parsable_certificates(ca.certificates.iter().cloned());
    }
    let system = rustls_native_certs::load_native_certs();
    for err in &system.errors {
        tracing::warn!("reading the system's CA certificates: {err}");
    }
    let (added, _ignored) = roots.add_parsable_certificates(system.certs);
    if added == 0 {
        tracing::info!(
            "no CA certificates in the system store; trusting the web PKI roots built in"
        );
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map(|builder| builder.with_root_certificates(roots).with_no_client_auth())
        .map_err(|err| RoomError::Internal(format!("cannot set up TLS: {err}")))
}

/// The WebSocket and HTTP client `livekit-net` hands to `livekit-signaling`.
struct TrustingTransport {
    tls: Arc<rustls::ClientConfig>,
    /// One client for all requests: it pools connections, and so TLS sessions.
    http: reqwest::Client,
}

impl TrustingTransport {
    fn new(ca: Option<&CaBundle>) -> Result<Self, RoomError> {
        let tls = client_config(ca)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls.clone())
            .build()
            .map_err(|err| RoomError::Internal(format!("cannot set up HTTPS: {err}")))?;
        Ok(Self { tls: Arc::new(tls), http })
    }
}

#[async_trait::async_trait]
impl WsClient for TrustingTransport {
    async fn connect(
        &self,
        url: String,
        headers: Vec<Header>,
        timeout_ms: u64,
    ) -> Result<WsConnectResult, TransportError> {
        let mut request =
            url.into_client_request().map_err(|err| TransportError::Connection(err.to_string()))?;
        for header in headers {
            let name = HeaderName::try_from(header.name)
                .map_err(|_| TransportError::Other("bad header name".into()))?;
            let value = HeaderValue::try_from(header.value)
                .map_err(|_| TransportError::Other("bad header value".into()))?;
            request.headers_mut().insert(name, value);
        }
        let connecting = tokio_tungstenite::connect_async_tls_with_config(
            request,
            None,
            false,
            Some(Connector::Rustls(self.tls.clone())),
        );
        let (stream, _) = tokio::time::timeout(Duration::from_millis(timeout_ms), connecting)
            .await
            .map_err(|_| TransportError::Timeout)?
            .map_err(|err| match err {
                // A refused upgrade (401, 404, 503): livekit-signaling decides by the status.
                WsError::Http(response) => {
                    TransportError::Http { status: response.status().as_u16() }
                }
                other => TransportError::Connection(describe(&other)),
            })?;
        let (writer, reader) = stream.split();
        let connection = Arc::new(Connection {
            writer: tokio::sync::Mutex::new(writer),
            reader: tokio::sync::Mutex::new(reader),
        });
        Ok(WsConnectResult { connection })
    }
}

#[async_trait::async_trait]
impl HttpClient for TrustingTransport {
    async fn request(
        &self,
        method: HttpMethod,
        url: String,
        headers: Vec<Header>,
        body: Option<Vec<u8>>,
    ) -> Result<HttpResponse, TransportError> {
        let mut request = match method {
            HttpMethod::Get => self.http.get(url),
            HttpMethod::Post => self.http.post(url),
        };
        for header in headers {
            request = request.header(header.name, header.value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response =
            request.send().await.map_err(|err| TransportError::Connection(describe(&err)))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(name, value)| {
                let value = value.to_str().ok()?;
                Some(Header { name: name.to_string(), value: value.to_string() })
            })
            .collect();
        let body = response.bytes().await.map_err(|err| TransportError::Other(describe(&err)))?;
        Ok(HttpResponse { status, headers, body: body.to_vec() })
    }
}

type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One open signal WebSocket: binary messages both ways, pings answered here.
struct Connection {
    writer: tokio::sync::Mutex<SplitSink<Stream, Message>>,
    reader: tokio::sync::Mutex<SplitStream<Stream>>,
}

#[async_trait::async_trait]
impl WsConnection for Connection {
    async fn send(&self, frame: Vec<u8>) -> Result<(), TransportError> {
        let mut writer = self.writer.lock().await;
        writer
            .send(Message::Binary(frame.into()))
            .await
            .map_err(|err| TransportError::Connection(err.to_string()))
    }

    async fn recv(&self) -> Result<Option<Vec<u8>>, TransportError> {
        let mut reader = self.reader.lock().await;
        loop {
            match reader.next().await {
                Some(Ok(Message::Binary(data))) => return Ok(Some(data.to_vec())),
                Some(Ok(Message::Ping(payload))) => {
                    // A pong that cannot be sent means the connection is going; the next
                    // read says so.
                    _ = self.writer.lock().await.send(Message::Pong(payload)).await;
                }
                // The signal protocol is binary; the rest is WebSocket housekeeping.
                Some(Ok(Message::Pong(_) | Message::Frame(_) | Message::Text(_))) => {}
                Some(Ok(Message::Close(_))) | None => return Ok(None),
                Some(Err(err)) if is_close(&err) => return Ok(None),
                Some(Err(err)) => return Err(TransportError::Connection(err.to_string())),
            }
        }
    }

    async fn close(&self) {
        _ = self.writer.lock().await.close().await;
    }
}

/// Whether a read error is the peer going away rather than a broken connection: a reset
/// without the closing handshake, or TLS closed without `close_notify` (livekit-server and
/// TLS terminators do both).
fn is_close(err: &WsError) -> bool {
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    match err {
        WsError::ConnectionClosed
        | WsError::AlreadyClosed
        | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => true,
        WsError::Io(err) => err.kind() == std::io::ErrorKind::UnexpectedEof,
        _ => false,
    }
}

/// An error connecting to the server as the user needs it: a refused server certificate as
/// its problem and the fix, anything else with its causes.
fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    if let Some(problem) = certificate_error(err) {
        return certificate_advice(problem);
    }
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(err) = cause {
        let more = err.to_string();
        // reqwest and hyper repeat their cause in their own message.
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = err.source();
    }
    text
}

/// The certificate problem rustls found somewhere in `err`'s causes. rustls reports it inside
/// an `io::Error`, whose `source()` skips it.
fn certificate_error<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a CertificateError> {
    let mut cause = Some(err);
    while let Some(err) = cause {
        let inner = err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref());
        let tls = match inner {
            Some(inner) => inner.downcast_ref::<rustls::Error>(),
            None => err.downcast_ref::<rustls::Error>(),
        };
        if let Some(rustls::Error::InvalidCertificate(problem)) = tls {
            return Some(problem);
        }
        cause = err.source();
    }
    None
}

/// What is wrong with the server's certificate, and what to do about it.
fn certificate_advice(problem: &CertificateError) -> String {
    use CertificateError::*;
    match problem {
        UnknownIssuer | BadSignature => format!(
            "the server's certificate is not trusted (invalid peer certificate: {problem}): set \
             [livekit] ca_file = \"/path/to/ca.pem\" or SSL_CERT_FILE to the CA that signed it"
        ),
        NotValidForName | NotValidForNameContext { .. } => format!(
            "the server's certificate is not for the host in the URL (invalid peer \
             certificate: {problem}): connect by a name the certificate lists, or have it \
             issued for this one"
        ),
        Expired | ExpiredContext { .. } | NotValidYet | NotValidYetContext { .. } => format!(
            "the server's certificate is outside its validity period (invalid peer \
             certificate: {problem}): renew it, or check this machine's clock"
        ),
        other => {
            format!("the server's certificate was refused (invalid peer certificate: {other})")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_ca_file_must_hold_a_usable_certificate() {
        let dir = std::env::temp_dir().join(format!("dtbridge-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["ca.test".into()]).unwrap();
        let pem = write(&dir, "ca.pem", &ca.cert.pem());
        let bundle = CaBundle::load(&pem).unwrap();
        assert_eq!(bundle.certificates.len(), 1);

        let missing = CaBundle::load(&dir.join("missing.pem")).unwrap_err();
        assert!(missing.ends_with("missing.pem: no such file"), "{missing}");
        let key_only = write(&dir, "key.pem", &ca.signing_key.serialize_pem());
        let empty = CaBundle::load(&key_only).unwrap_err();
        assert!(empty.contains("no certificate in it"), "{empty}");
        let garbage = write(
            &dir,
            "garbage.pem",
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
        );
        let unusable = CaBundle::load(&garbage).unwrap_err();
        assert!(unusable.contains("certificate 1 is not a usable CA"), "{unusable}");
        _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_refused_certificate_is_explained_with_its_fix() {
        let refused = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        let text = describe(&WsError::Io(refused));
        assert!(text.starts_with("the server's certificate is not trusted"), "{text}");
        assert!(text.contains("UnknownIssuer") && text.contains("ca_file"), "{text}");
        let other = describe(&WsError::Io(std::io::ErrorKind::ConnectionRefused.into()));
        assert!(!other.contains("certificate"), "{other}");
    }
}
