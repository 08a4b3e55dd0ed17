//! The transport to a LiveKit server: the signal connection from `livekit-signaling` and one
//! WebRTC peer connection from the pure-Rust `webrtc` crate.
//!
//! The client joins in single peer connection mode: it offers, the server answers, and data
//! track packets travel both ways on the client's `_data_track` channel (unordered,
//! retransmitted for a bounded time). The three well-known channels are opened in-band, or
//! negotiated out of band with fixed stream ids when the server speaks signal protocol 18 or
//! later.

use super::RoomError;
use super::connect::{ConnectOptions, Credentials};
use super::link::{LinkMeter, LinkState, SAMPLE_INTERVAL};
use super::transport::{
    Counters, FrameQueue, TRANSPORT_EVENT_CAPACITY, Transport, TransportEvent, TransportEvents,
};
use bytes::{Bytes, BytesMut};
use livekit_protocol as proto;
use livekit_signaling::{SignalClient, SignalError, SignalEvent, SignalEvents, SignalOptions};
use proto::signal_request::Message as Request;
use proto::signal_response::Message as Response;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, mpsc, watch};
use tokio::task::JoinHandle;
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelInit};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateInit, RTCIceGatheringState, RTCIceServer, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, RTCSessionDescription, SettingEngineBuilder,
};

const RELIABLE_LABEL: &str = "_reliable";
const LOSSY_LABEL: &str = "_lossy";
const DATA_TRACK_LABEL: &str = "_data_track";
/// SCTP stream ids of the negotiated channels; the server uses the same ones.
/// First signal protocol version whose servers expect them.
const NEGOTIATED_CHANNELS_PROTOCOL: i32 = 18;
const RELIABLE_STREAM_ID: u16 = 100;
const LOSSY_STREAM_ID: u16 = 101;
const DATA_TRACK_STREAM_ID: u16 = 102;

/// How long SCTP keeps retransmitting a lost piece of a data track packet before abandoning
/// it. Retransmitting at all is what lets a camera frame of some 30 SCTP chunks survive 1%
/// random loss (without it, a quarter of them are lost); the limit keeps a frame from arriving
/// later than an operator still wants it: a few round trips of a satellite link, as long as a
/// normal-priority frame may wait in dtbridge (`max_latency_ms`).
const DATA_TRACK_PACKET_LIFETIME_MS: u16 = 300;

/// What a data channel promises about its messages, as its `RTCDataChannelInit` says it.
#[derive(Clone, Copy)]
enum Delivery {
    /// Ordered, retransmitted until acknowledged.
    Reliable,
    /// Unordered, sent once.
    Lossy,
    /// Unordered, retransmitted for at most this many milliseconds after it was handed to SCTP.
    Timed(u16),
}

impl Delivery {
    fn init(self) -> RTCDataChannelInit {
        match self {
            Delivery::Reliable => RTCDataChannelInit { ordered: true, ..Default::default() },
            Delivery::Lossy => RTCDataChannelInit {
                ordered: false,
                max_retransmits: Some(0),
                ..Default::default()
            },
            Delivery::Timed(lifetime_ms) => RTCDataChannelInit {
                ordered: false,
                max_packet_life_time: Some(lifetime_ms),
                ..Default::default()
            },
        }
    }
}

/// Bytes SCTP may hold unacknowledged per channel before a send waits. The link scheduler
/// keeps far less in flight; this bounds memory for callers that do not pace their frames.
const SEND_BUFFER_LIMIT: usize = 256 * 1024;
/// The least congestion window of the SCTP association (vendor/rtc-sctp/PATCHES.md): all a
/// data channel may hold, so SCTP's own loss-based window never keeps in its first-in-first-
/// out queue what the link scheduler let go, its delay-based window being the congestion
/// control of what dtbridge sends.
const SCTP_MIN_SEND_WINDOW: u32 = (SEND_BUFFER_LIMIT + super::track::PACKET_BYTES) as u32;
/// Bytes of whole frames waiting for the send buffer; beyond this the oldest frames go. Like
/// the send buffer, a bound for unpaced callers: paced ones leave this queue empty.
const FRAME_QUEUE_BYTES: usize = 4 * 1024 * 1024;
/// SCTP receive window. The default 1 MiB lets the server burst more than the kernel's
/// default UDP receive buffer (208 KiB) holds, and on an unreliable channel every datagram
/// the kernel drops loses a whole frame.
const SCTP_RECEIVE_WINDOW: u32 = 128 * 1024;
/// How long to wait for local ICE candidates before sending the offer without the rest.
const GATHER_TIMEOUT: Duration = Duration::from_secs(2);

/// First and longest wait between reconnection attempts. The longest bounds how long frames
/// stay away once the server is back: joining takes about a second more, and frames must flow
/// within 2 s. An attempt against a server that is down costs one refused connection, and one
/// against an unreachable host waits for its connect timeout.
const RECONNECT_BACKOFF: (Duration, Duration) =
    (Duration::from_millis(250), Duration::from_millis(500));
/// How long resuming a session whose signal connection dropped is tried before it is joined
/// again in full. The signal's ping times out 10 to 15 s into a cut, and livekit-server gives
/// up on a participant it has not heard from for about 20 s (it then refuses the resume:
/// `StateMismatch`), so a resume is possible only within seconds of the loss; longer waits
/// are for a server that is slow to answer, and a refusal ends them at once.
const RESUME_WINDOW: Duration = Duration::from_secs(15);
/// While the server does not answer at all (a cut link drops every packet), a fresh TCP
/// connection is tried this often, each given this long: a join started during the cut would
/// wait out its connect timeout and the kernel's growing SYN retries (1, 2, 4, 8 s) after the
/// link is back, a probe reaches the server within this long of its return.
const REACHABLE_PROBE: Duration = Duration::from_secs(1);

type Pc = Arc<dyn PeerConnection>;

/// The connection to a server, re-established in full whenever it is lost, until closed.
pub(crate) struct ServerTransport {
    session: std::sync::Mutex<Session>,
    queue: Arc<FrameQueue>,
    counters: Arc<Counters>,
    link: Arc<LinkMeter>,
    closing: watch::Sender<bool>,
}

/// One joined session: a signal connection and a peer connection with its tasks.
#[derive(Clone)]
struct Session {
    signal: Arc<SignalClient>,
    pc: Pc,
    negotiator: Arc<Negotiator>,
    /// The peer connection's state, as it reports it.
    pc_state: watch::Receiver<RTCPeerConnectionState>,
    tasks: Arc<Tasks>,
    forwarding: Arc<watch::Sender<bool>>,
    /// Becomes true when the server closes the signal connection.
    signal_closed: watch::Receiver<bool>,
}

impl Session {
    /// Starts passing the server's messages to the room, once it has the join response.
    fn forward_signals(&self) {
        self.forwarding.send_replace(true);
    }

    async fn close(&self) {
        self.signal.close().await;
        _ = self.pc.close().await;
        self.tasks.abort();
    }
}

/// The tasks of one session, aborted when it closes, and also when the last handle goes
/// away: an attempt to join that is given up (its timeout, or the room leaving meanwhile)
/// must not leave tasks behind that take frames from the shared queue or report losses.
struct Tasks(std::sync::Mutex<Vec<JoinHandle<()>>>);

impl Tasks {
    fn push(&self, task: JoinHandle<()>) {
        crate::util::lock(&self.0).push(task);
    }

    fn abort(&self) {
        for task in crate::util::lock(&self.0).iter() {
            task.abort();
        }
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        self.abort();
    }
}

/// Where the tasks of one session report its loss; each session has its own, so a loss
/// reported by an attempt that failed can never end the session that follows it.
type Losses = mpsc::UnboundedReceiver<Loss>;

/// How a session ended.
#[derive(Debug)]
enum Loss {
    /// The signal connection dropped (its ping timed out, or it closed) while the peer
    /// connection may still be up: resuming the session may work.
    Signal(String),
    /// The connection dropped; joining again may work.
    Recoverable(String),
    /// The server ended the session for good (participant removed, room closed).
    Final(String),
}

/// What the tasks of one session share.
struct SessionIo {
    events: mpsc::Sender<TransportEvent>,
    queue: Arc<FrameQueue>,
    counters: Arc<Counters>,
    link: Arc<LinkMeter>,
    /// SCTP's count of abandoned messages when this transport started (it counts the whole
    /// process).
    abandoned_at_start: u64,
    /// The newest access token the server sent (`RefreshToken`: when a session starts, then
    /// every 5 minutes, valid for at least 10). A ready token may have expired by the time
    /// the connection is lost; this one joins again instead. Never logged.
    refreshed_token: std::sync::Mutex<Option<String>>,
}

impl ServerTransport {
    /// Joins the room and opens the data path; returns the join response and the event
    /// stream once `_data_track` is open. From then on, a lost connection is re-established
    /// in the background (`TransportEvent::Reconnecting` / `Reconnected`).
    pub async fn connect(
        options: &ConnectOptions,
    ) -> Result<(Arc<Self>, proto::JoinResponse, TransportEvents), RoomError> {
        super::tls::register(options.ca_bundle.as_ref())?;
        let (events_tx, events_rx) = mpsc::channel(TRANSPORT_EVENT_CAPACITY);
        let counters = Arc::new(Counters::default());
        let link = Arc::new(LinkMeter::new());
        let io = Arc::new(SessionIo {
            events: events_tx,
            queue: Arc::new(FrameQueue::new(FRAME_QUEUE_BYTES, counters.clone(), link.clone())),
            counters: counters.clone(),
            link: link.clone(),
            abandoned_at_start: rtc_sctp::abandoned_messages(),
            refreshed_token: std::sync::Mutex::new(None),
        });
        let (session, join, lost_rx) = open_session(options, &io).await?;
        session.forward_signals();
        let transport = Arc::new(ServerTransport {
            session: std::sync::Mutex::new(session),
            queue: io.queue.clone(),
            counters,
            link,
            closing: watch::channel(false).0,
        });
        tokio::spawn(supervise(Arc::downgrade(&transport), options.clone(), io, lost_rx));
        Ok((transport, join, events_rx))
    }

    fn session(&self) -> Session {
        crate::util::lock(&self.session).clone()
    }
}

/// Waits for the session to be lost, then reconnects with growing pauses until it succeeds
/// or the transport is closed.
async fn supervise(
    transport: std::sync::Weak<ServerTransport>,
    options: ConnectOptions,
    io: Arc<SessionIo>,
    mut lost_rx: Losses,
) {
    loop {
        let Some(loss) = lost_rx.recv().await else { return };
        let Some(strong) = transport.upgrade() else { return };
        if *strong.closing.borrow() {
            return;
        }
        let loss = match loss {
            Loss::Signal(reason) if options.resume_session => {
                let session = strong.session();
                let closing = strong.closing.subscribe();
                drop(strong);
                match resume(&session, &options, &io, &reason, &mut lost_rx, closing).await {
                    Resumed::Yes => continue,
                    Resumed::Closing => return,
                    Resumed::No(Loss::Final(why)) => Loss::Final(why),
                    Resumed::No(Loss::Signal(why) | Loss::Recoverable(why)) => {
                        Loss::Recoverable(format!("{reason}; resuming failed: {why}"))
                    }
                }
            }
            other => other,
        };
        let Some(strong) = transport.upgrade() else { return };
        let reason = match loss {
            Loss::Signal(reason) | Loss::Recoverable(reason) => reason,
            Loss::Final(reason) => {
                strong.session().close().await;
                _ = io.events.send(TransportEvent::Closed(reason)).await;
                return;
            }
        };
        let mut closing = strong.closing.subscribe();
        strong.session().close().await;
        drop(strong);
        io.queue.discard_all();
        tracing::warn!("connection to {} lost ({reason}); reconnecting", options.url);
        let lost_at = tokio::time::Instant::now();
        if io.events.send(TransportEvent::Reconnecting(reason)).await.is_err() {
            return;
        }
        let mut backoff = RECONNECT_BACKOFF.0;
        let mut attempts = 0u32;
        let (session, join, new_lost_rx) = loop {
            tokio::select! {
                _ = reachable(&options) => {}
                _ = closing.wait_for(|closing| *closing) => return,
            }
            attempts += 1;
            let attempt =
                tokio::time::timeout(options.connect_timeout, open_session(&options, &io));
            let failure = tokio::select! {
                outcome = attempt => match outcome {
                    Ok(Ok(joined)) => break joined,
                    Ok(Err(err)) => err.to_string(),
                    Err(_) => format!("no answer within {:?}", options.connect_timeout),
                },
                _ = closing.wait_for(|closing| *closing) => return,
            };
            tracing::info!(
                "reconnecting to {} failed: {failure}; retrying in {backoff:?}",
                options.url
            );
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = closing.wait_for(|closing| *closing) => return,
            }
            backoff = (backoff * 2).min(RECONNECT_BACKOFF.1);
        };
        let Some(strong) = transport.upgrade() else {
            session.close().await;
            return;
        };
        *crate::util::lock(&strong.session) = session.clone();
        drop(strong);
        lost_rx = new_lost_rx;
        tracing::info!(
            "reconnected to {} after {:.1} s ({attempts} attempt{})",
            options.url,
            lost_at.elapsed().as_secs_f64(),
            if attempts == 1 { "" } else { "s" }
        );
        if io.events.send(TransportEvent::Reconnected(Box::new(join))).await.is_err() {
            return;
        }
        session.forward_signals();
    }
}

/// What became of an attempt to resume a session.
enum Resumed {
    /// The session goes on: same participant, same tracks and subscriptions.
    Yes,
    /// Not resumed: the session must be joined again, or (`Loss::Final`) it ended.
    No(Loss),
    /// The transport is closing.
    Closing,
}

/// Resumes `session` after its signal connection was lost for `reason`: reopens the signal
/// connection as the same participant (the server keeps its tracks and subscriptions), the
/// peer connection untouched. Frames keep queueing meanwhile, and those that waited past
/// their deadline go as stale. Attempts go on while the server stays unreachable, and start
/// over when the reopened signal connection drops again before the peer connection is back
/// (`lost`: the server closes it when its side of the peer connection fails, which can happen
/// just after a link returns), for at most [`RESUME_WINDOW`].
async fn resume(
    session: &Session,
    options: &ConnectOptions,
    io: &SessionIo,
    reason: &str,
    lost: &mut Losses,
    mut closing: watch::Receiver<bool>,
) -> Resumed {
    tracing::warn!("signal connection to {} lost ({reason}); resuming the session", options.url);
    if io.events.send(TransportEvent::Resuming(reason.to_string())).await.is_err() {
        return Resumed::Closing;
    }
    let lost_at = tokio::time::Instant::now();
    let attempts = async {
        let mut backoff = RECONNECT_BACKOFF.0;
        loop {
            // Losses of the connection being replaced are this resume's reason; any other
            // ends it.
            while let Ok(loss) = lost.try_recv() {
                if !matches!(loss, Loss::Signal(_)) {
                    return Err(loss);
                }
            }
            reachable(options).await;
            let restart = session.signal.restart(proto::ReconnectReason::RrSignalDisconnected);
            let failure = match tokio::time::timeout(options.connect_timeout, restart).await {
                Ok(Ok(_)) => tokio::select! {
                    restarted = restart_ice(session, options.connect_timeout) => {
                        return restarted.map_err(Loss::Recoverable);
                    }
                    loss = lost.recv() => match loss {
                        Some(Loss::Signal(why)) => {
                            tracing::info!("resuming: the signal connection dropped again ({why}); starting over");
                            continue;
                        }
                        Some(loss) => return Err(loss),
                        None => return Err(Loss::Recoverable("the session's tasks ended".into())),
                    },
                },
                Ok(Err(err)) => err,
                Err(_) => {
                    tracing::info!("resuming: no answer within {:?}", options.connect_timeout);
                    continue;
                }
            };
            // A server that answers and refuses will not change its mind: join again.
            if !matches!(failure, SignalError::Connection(_) | SignalError::Timeout(_)) {
                return Err(Loss::Recoverable(signal_error(&options.url, failure).to_string()));
            }
            tracing::info!("resuming failed: {failure}; retrying in {backoff:?}");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RECONNECT_BACKOFF.1);
        }
    };
    let outcome = tokio::select! {
        outcome = tokio::time::timeout(RESUME_WINDOW, attempts) => outcome,
        _ = closing.wait_for(|closing| *closing) => return Resumed::Closing,
    };
    match outcome {
        Ok(Ok(())) => {
            session.signal.set_reconnected().await;
            tracing::info!(
                "resumed the session with {} after {:.1} s",
                options.url,
                lost_at.elapsed().as_secs_f64()
            );
            match io.events.send(TransportEvent::Resumed).await {
                Ok(()) => Resumed::Yes,
                Err(_) => Resumed::Closing,
            }
        }
        Ok(Err(loss)) => Resumed::No(loss),
        Err(_) => Resumed::No(Loss::Recoverable(format!("not resumed within {RESUME_WINDOW:?}"))),
    }
}

/// Restarts ICE on a resumed session's peer connection (the server no longer answers checks
/// with the old credentials after a long silence) and waits up to `timeout` for it to be
/// connected again. The DTLS and SCTP associations, and so the data channels, go on.
async fn restart_ice(session: &Session, timeout: Duration) -> Result<(), String> {
    let offer =
        session.negotiator.offer(true).await.map_err(|err| format!("ICE restart: {err}"))?;
    session.signal.send(Request::Offer(offer)).await;
    let mut state = session.pc_state.clone();
    let connected = state.wait_for(|state| *state == RTCPeerConnectionState::Connected);
    match tokio::time::timeout(timeout, connected).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => Err("the peer connection closed".into()),
        Err(_) => Err(format!("the peer connection did not connect again within {timeout:?}")),
    }
}

/// How long an ICE server's name may take to resolve before ICE goes on without it. The
/// gatherer hands over no candidate before its lookups end, and a name that does not resolve
/// (an offline robot, a container without outside DNS, livekit-server's default public STUN
/// servers) took 10 s to fail there: longer than the offer waits for candidates, so the join
/// timed out.
const ICE_RESOLVE_TIMEOUT: Duration = Duration::from_secs(1);

/// The server's ICE servers whose names resolve within [`ICE_RESOLVE_TIMEOUT`], all looked up
/// at once. The others are left out and said once per process and host (the default log
/// filter in `cli.rs` silences the gatherer's own error per server and connection).
async fn resolvable_ice_servers(servers: &[proto::IceServer]) -> Vec<RTCIceServer> {
    static REPORTED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let urls = servers.iter().flat_map(|server| server.urls.iter().map(move |url| (server, url)));
    let lookups = urls.map(|(server, url)| async move {
        let Some((host, port)) = ice_server_address(url) else { return (server, url, Ok(())) };
        let lookup = tokio::net::lookup_host((host.as_str(), port));
        let why = match tokio::time::timeout(ICE_RESOLVE_TIMEOUT, lookup).await {
            Ok(Ok(_)) => None,
            Ok(Err(err)) => Some(err.to_string()),
            Err(_) => Some(format!("no answer within {ICE_RESOLVE_TIMEOUT:?}")),
        };
        (server, url, why.map(|why| (host, why)).map_or(Ok(()), Err))
    });
    let mut resolvable = Vec::new();
    for (server, url, resolved) in futures::future::join_all(lookups).await {
        match resolved {
            Ok(()) => resolvable.push(RTCIceServer {
                urls: vec![url.clone()],
                username: server.username.clone(),
                credential: server.credential.clone(),
            }),
            Err((host, why)) => {
                let mut reported = crate::util::lock(&REPORTED);
                if !reported.contains(&host) {
                    reported.push(host);
                    let url = crate::text::printable(url);
                    tracing::warn!(
                        "ICE server {url} is not reachable ({why}); connecting without it"
                    );
                }
            }
        }
    }
    resolvable
}

/// Host and port of a `stun:`, `stuns:`, `turn:` or `turns:` URL (RFC 7064, RFC 7065).
fn ice_server_address(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once(':')?;
    let default_port = match scheme {
        "stun" | "turn" => 3478,
        "stuns" | "turns" => 5349,
        _ => return None,
    };
    let authority = rest.split('?').next()?;
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed.split_once(']')?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port = port.map_or(Some(default_port), |port| port.parse().ok())?;
    (!host.is_empty()).then(|| (host.to_string(), port))
}

/// The local addresses to gather ICE candidates on: [`ConnectOptions::ice_udp_addrs`], or
/// every interface, plus loopback when the server is on it.
async fn ice_udp_addrs(options: &ConnectOptions) -> Vec<String> {
    if !options.ice_udp_addrs.is_empty() {
        return options.ice_udp_addrs.clone();
    }
    let mut addrs = vec!["0.0.0.0:0".to_string()];
    let server_on_loopback = match options.server_address() {
        Ok((host, port)) => tokio::net::lookup_host((host.as_str(), port))
            .await
            .is_ok_and(|mut resolved| resolved.any(|addr| addr.ip().is_loopback())),
        Err(_) => false,
    };
    if server_on_loopback {
        addrs.push("127.0.0.1:0".into());
    }
    addrs
}

/// Returns once a TCP connection to the server is answered (accepted, or refused by a server
/// restarting: joining then reports that with its own error and backoff), trying a fresh one
/// every [`REACHABLE_PROBE`] while they go unanswered. A URL without a usable address returns
/// at once: joining reports that problem too.
async fn reachable(options: &ConnectOptions) {
    let Ok((host, port)) = options.server_address() else { return };
    loop {
        let probe = tokio::net::TcpStream::connect((host.as_str(), port));
        if tokio::time::timeout(REACHABLE_PROBE, probe).await.is_ok() {
            return;
        }
    }
}

/// Joins once: signal connection, peer connection, data channels; returns when `_data_track`
/// is open, with the receiver on which the session's tasks report its loss.
async fn open_session(
    options: &ConnectOptions,
    io: &Arc<SessionIo>,
) -> Result<(Session, proto::JoinResponse, Losses), RoomError> {
    let (lost, lost_rx) = mpsc::unbounded_channel();
    // A minted token is minted anew; a ready one gives way to the server's newest, which
    // expires no earlier (livekit-server keeps the original expiry when it is the later).
    let refreshed = crate::util::lock(&io.refreshed_token).clone();
    let token = match (&options.credentials, refreshed) {
        (Credentials::Token(_), Some(refreshed)) => refreshed,
        _ => options.token()?,
    };
    let mut signal_options = SignalOptions::default();
    signal_options.single_peer_connection = true;
    signal_options.auto_subscribe = false;
    signal_options.connect_timeout = options.connect_timeout;
    let (signal, join, signal_events) =
        SignalClient::connect(&options.url, &token, signal_options, None)
            .await
            .map_err(|err| signal_error(&options.url, err))?;
    if !signal.is_single_pc_mode_active() {
        return Err(RoomError::Connect {
            url: options.url.clone(),
            reason: "the server does not offer single peer connection signaling; \
                     data tracks need livekit-server >= 1.13.3"
                .into(),
        });
    }
    let signal = Arc::new(signal);

    let (pc_events_tx, pc_events_rx) = mpsc::unbounded_channel();
    rtc_sctp::set_min_send_window(SCTP_MIN_SEND_WINDOW);
    let ice_servers = resolvable_ice_servers(&join.ice_servers).await;
    let runtime = super::udp::BufferedUdpRuntime::around_default()
        .ok_or_else(|| connect_error(options, "no tokio runtime to run WebRTC on".into()))?;
    let pc = PeerConnectionBuilder::new()
        .with_runtime(runtime)
        .with_configuration(RTCConfigurationBuilder::new().with_ice_servers(ice_servers).build())
        .with_setting_engine(
            SettingEngineBuilder::new()
                // An SFU client has no use for mDNS, and its socket on 5353 may be taken.
                .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
                .with_sctp_max_receive_buffer_size(SCTP_RECEIVE_WINDOW)
                .build(),
        )
        .with_handler(Arc::new(PcEvents(pc_events_tx)))
        .with_udp_addrs(ice_udp_addrs(options).await)
        .with_data_channel_send_buffer_limit(SEND_BUFFER_LIMIT)
        .build()
        .await
        .map_err(|err| connect_error(options, format!("cannot create peer connection: {err}")))?;
    let pc: Pc = Arc::new(pc);

    let server_protocol = join.server_info.as_ref().map_or(0, |info| info.protocol);
    let negotiated = server_protocol >= NEGOTIATED_CHANNELS_PROTOCOL;
    let channel = |label: &'static str, delivery: Delivery, stream_id: u16| {
        let pc = pc.clone();
        async move {
            let init = RTCDataChannelInit {
                negotiated: negotiated.then_some(stream_id),
                ..delivery.init()
            };
            pc.create_data_channel(label, Some(init)).await
        }
    };
    let dc_error = |err: webrtc::error::Error| {
        connect_error(options, format!("cannot create data channel: {err}"))
    };
    let reliable =
        channel(RELIABLE_LABEL, Delivery::Reliable, RELIABLE_STREAM_ID).await.map_err(dc_error)?;
    let lossy = channel(LOSSY_LABEL, Delivery::Lossy, LOSSY_STREAM_ID).await.map_err(dc_error)?;
    let data_track = channel(
        DATA_TRACK_LABEL,
        Delivery::Timed(DATA_TRACK_PACKET_LIFETIME_MS),
        DATA_TRACK_STREAM_ID,
    )
    .await
    .map_err(dc_error)?;

    let (open_tx, mut open_rx) = watch::channel(false);
    let (forwarding, forwarding_rx) = watch::channel(false);
    let (signal_closed_tx, signal_closed) = watch::channel(false);
    let (pc_state_tx, pc_state) = watch::channel(RTCPeerConnectionState::New);
    let negotiator = Arc::new(Negotiator { pc: pc.clone(), pending: Mutex::new(Some(vec![])) });
    let (room_messages_tx, room_messages_rx) = mpsc::unbounded_channel();
    let tasks = vec![
        tokio::spawn(run_signal(
            io.clone(),
            signal_events,
            signal_closed_tx,
            signal.clone(),
            negotiator.clone(),
            room_messages_tx,
            lost.clone(),
        )),
        tokio::spawn(forward_room_messages(room_messages_rx, forwarding_rx, io.events.clone())),
        tokio::spawn(run_pc_events(pc_events_rx, signal.clone(), pc_state_tx, lost.clone())),
        tokio::spawn(drain_channel(reliable)),
        tokio::spawn(drain_channel(lossy)),
        tokio::spawn(receive_packets(data_track.clone(), io.clone(), open_tx, lost)),
    ];
    let session = Session {
        signal: signal.clone(),
        pc,
        negotiator: negotiator.clone(),
        pc_state,
        tasks: Arc::new(Tasks(std::sync::Mutex::new(tasks))),
        forwarding: Arc::new(forwarding),
        signal_closed,
    };

    let offer = match negotiator.offer(false).await {
        Ok(offer) => offer,
        Err(err) => {
            session.close().await;
            return Err(connect_error(options, format!("cannot create offer: {err}")));
        }
    };
    signal.send(Request::Offer(offer)).await;
    if open_rx.wait_for(|open| *open).await.is_err() {
        session.close().await;
        return Err(connect_error(options, "the data channel closed while opening".into()));
    }
    // The sender starts only now: a send on a channel that is not open yet fails, and ends
    // the sender for the whole session. After a reconnect the frame queue is not empty when
    // the session starts (frames pushed while the connection was down), so a sender started
    // with the session died at its first frame and the session never sent another one.
    session.tasks.push(tokio::spawn(send_frames(data_track, io.clone())));
    Ok((session, join, lost_rx))
}

#[async_trait::async_trait]
impl Transport for ServerTransport {
    /// Sends a message; a `Leave` returns only once the server has closed the connection.
    async fn send_signal(&self, message: Request) {
        let leaving = matches!(message, Request::Leave(_));
        if leaving {
            // The server closes the connection after a leave: that is no loss to recover from.
            self.closing.send_replace(true);
        }
        let session = self.session();
        session.signal.send(message).await;
        if leaving {
            // The server closes the connection once it has removed the participant. Closing
            // first can lose the leave: a socket closed with unread data from the server is
            // reset, and the server may drop the leave it had not read yet (measured: one
            // stop in ten under load left the participant in the room). The caller bounds
            // the wait.
            _ = session.signal_closed.clone().wait_for(|closed| *closed).await;
        }
    }

    fn send_frame(&self, packets: Vec<Bytes>) {
        self.queue.push(packets)
    }

    fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    fn link(&self) -> watch::Receiver<LinkState> {
        self.link.subscribe()
    }

    fn set_send_window(&self, bytes: u64) {
        self.link.set_send_window(bytes)
    }

    async fn close(&self) {
        self.closing.send_replace(true);
        self.session().close().await;
    }
}

/// Offer/answer and ICE candidates of the one peer connection.
struct Negotiator {
    pc: Pc,
    /// Remote candidates that arrived before the remote description; `None` once it is set.
    pending: Mutex<Option<Vec<RTCIceCandidateInit>>>,
}

impl Negotiator {
    /// Creates the offer and waits (briefly) for the local candidates to be in it, so the
    /// server can start connectivity checks without waiting for trickled ones. With
    /// `ice_restart`, the offer has new ICE credentials, and the server's candidates wait
    /// for its answer.
    async fn offer(&self, ice_restart: bool) -> webrtc::error::Result<proto::SessionDescription> {
        if ice_restart {
            self.pending.lock().await.get_or_insert_with(Vec::new);
        }
        let options = rtc::peer_connection::configuration::RTCOfferOptions { ice_restart };
        let offer = self.pc.create_offer(Some(options)).await?;
        self.pc.set_local_description(offer).await?;
        let deadline = tokio::time::Instant::now() + GATHER_TIMEOUT;
        while tokio::time::Instant::now() < deadline {
            // The gathering state is only reported through the handler, so poll the SDP.
            let sdp = self.local_sdp().await;
            if sdp.contains("a=end-of-candidates") || sdp.contains("a=candidate") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(session_description("offer", self.local_sdp().await))
    }

    async fn local_sdp(&self) -> String {
        self.pc.local_description().await.map(|d| d.sdp).unwrap_or_default()
    }

    async fn on_answer(&self, sdp: String) -> webrtc::error::Result<()> {
        self.pc.set_remote_description(RTCSessionDescription::answer(sdp)?).await?;
        self.flush_candidates().await
    }

    /// The server renegotiates by sending its own offer; answer it.
    async fn on_offer(&self, sdp: String) -> webrtc::error::Result<proto::SessionDescription> {
        self.pc.set_remote_description(RTCSessionDescription::offer(sdp)?).await?;
        self.flush_candidates().await?;
        let answer = self.pc.create_answer(None).await?;
        self.pc.set_local_description(answer).await?;
        Ok(session_description("answer", self.local_sdp().await))
    }

    async fn on_candidate(&self, candidate: RTCIceCandidateInit) -> webrtc::error::Result<()> {
        let mut pending = self.pending.lock().await;
        match pending.as_mut() {
            Some(queued) => {
                queued.push(candidate);
                Ok(())
            }
            None => self.pc.add_ice_candidate(candidate).await,
        }
    }

    async fn flush_candidates(&self) -> webrtc::error::Result<()> {
        let queued = self.pending.lock().await.take().unwrap_or_default();
        for candidate in queued {
            self.pc.add_ice_candidate(candidate).await?;
        }
        Ok(())
    }
}

fn session_description(kind: &str, sdp: String) -> proto::SessionDescription {
    proto::SessionDescription { r#type: kind.into(), sdp, ..Default::default() }
}

/// Handles the signal messages that concern the peer connection or the access token, and
/// passes the rest on.
async fn run_signal(
    io: Arc<SessionIo>,
    mut signal_events: SignalEvents,
    closed: watch::Sender<bool>,
    signal: Arc<SignalClient>,
    negotiator: Arc<Negotiator>,
    room_messages: mpsc::UnboundedSender<Response>,
    lost: mpsc::UnboundedSender<Loss>,
) {
    while let Some(event) = signal_events.recv().await {
        let message = match event {
            SignalEvent::Message(message) => message,
            SignalEvent::Close(reason) => {
                closed.send_replace(true);
                _ = lost.send(Loss::Signal(format!("signal connection lost: {reason}")));
                // A resumed signal connection's messages arrive on the same stream.
                continue;
            }
        };
        closed.send_if_modified(|closed| std::mem::replace(closed, false));
        if let Response::Leave(leave) = message.as_ref() {
            let why = proto::DisconnectReason::try_from(leave.reason)
                .unwrap_or(proto::DisconnectReason::UnknownReason);
            match leave.action() {
                // The server lost its side of the peer connection and closes this signal
                // connection: resume, whose messages arrive on this same stream.
                proto::leave_request::Action::Resume => {
                    _ = lost.send(Loss::Signal(format!("the server asked to resume ({why:?})")));
                    continue;
                }
                proto::leave_request::Action::Reconnect => {
                    _ = lost.send(Loss::Recoverable(format!(
                        "the server asked to join again ({why:?})"
                    )));
                }
                proto::leave_request::Action::Disconnect => {
                    _ = lost.send(Loss::Final(format!("the server ended the session ({why:?})")));
                }
            }
            return;
        }
        let outcome = match *message {
            Response::RefreshToken(token) => {
                tracing::debug!("the server sent a new access token");
                *crate::util::lock(&io.refreshed_token) = Some(token);
                Ok(())
            }
            Response::Answer(answer) => negotiator.on_answer(answer.sdp).await,
            Response::Offer(offer) => match negotiator.on_offer(offer.sdp).await {
                Ok(answer) => {
                    signal.send(Request::Answer(answer)).await;
                    Ok(())
                }
                Err(err) => Err(err),
            },
            Response::Trickle(trickle) => {
                match serde_json::from_str::<RTCIceCandidateInit>(&trickle.candidate_init) {
                    Ok(candidate) => negotiator.on_candidate(candidate).await,
                    Err(err) => {
                        tracing::warn!("ignoring malformed ICE candidate from the server: {err}");
                        Ok(())
                    }
                }
            }
            other => {
                if room_messages.send(other).is_err() {
                    return;
                }
                Ok(())
            }
        };
        if let Err(err) = outcome {
            _ = lost.send(Loss::Recoverable(format!("WebRTC negotiation failed: {err}")));
            return;
        }
    }
}

/// Passes the server's messages for the room on, holding them until the room has the join
/// response: a participant update sent after the join must not be applied before it. Only the
/// few messages of the connect window wait here.
async fn forward_room_messages(
    mut room_messages: mpsc::UnboundedReceiver<Response>,
    mut forwarding: watch::Receiver<bool>,
    events: mpsc::Sender<TransportEvent>,
) {
    if forwarding.wait_for(|open| *open).await.is_err() {
        return;
    }
    while let Some(message) = room_messages.recv().await {
        if events.send(TransportEvent::Signal(Box::new(message))).await.is_err() {
            return;
        }
    }
}

/// Peer connection events, forwarded from the connection's driver so the handler never blocks it.
enum PcEvent {
    Candidate(RTCPeerConnectionIceEvent),
    State(RTCPeerConnectionState),
}

struct PcEvents(mpsc::UnboundedSender<PcEvent>);

#[async_trait::async_trait]
impl PeerConnectionEventHandler for PcEvents {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        _ = self.0.send(PcEvent::Candidate(event));
    }

    async fn on_ice_gathering_state_change(&self, _state: RTCIceGatheringState) {}

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        _ = self.0.send(PcEvent::State(state));
    }
}

async fn run_pc_events(
    mut pc_events: mpsc::UnboundedReceiver<PcEvent>,
    signal: Arc<SignalClient>,
    pc_state: watch::Sender<RTCPeerConnectionState>,
    lost: mpsc::UnboundedSender<Loss>,
) {
    while let Some(event) = pc_events.recv().await {
        match event {
            PcEvent::Candidate(event) => {
                let Ok(init) = event.candidate.to_json() else {
                    continue;
                };
                let Ok(candidate_init) = serde_json::to_string(&init) else {
                    continue;
                };
                let trickle = proto::TrickleRequest {
                    candidate_init,
                    target: proto::SignalTarget::Publisher.into(),
                    r#final: false,
                };
                signal.send(Request::Trickle(trickle)).await;
            }
            PcEvent::State(RTCPeerConnectionState::Failed) => {
                pc_state.send_replace(RTCPeerConnectionState::Failed);
                _ = lost.send(Loss::Recoverable("the WebRTC connection failed".into()));
                return;
            }
            PcEvent::State(state) => {
                tracing::debug!("peer connection {state}");
                pc_state.send_replace(state);
            }
        }
    }
}

/// Polls a channel this client does not use: every channel shares the SCTP receive window,
/// so an unread one would stall the others.
async fn drain_channel(channel: Arc<dyn DataChannel>) {
    while let Some(event) = channel.poll().await {
        if let DataChannelEvent::OnClose = event {
            return;
        }
    }
}

async fn receive_packets(
    channel: Arc<dyn DataChannel>,
    io: Arc<SessionIo>,
    open: watch::Sender<bool>,
    lost: mpsc::UnboundedSender<Loss>,
) {
    while let Some(event) = channel.poll().await {
        match event {
            DataChannelEvent::OnOpen => {
                _ = open.send(true);
            }
            DataChannelEvent::OnMessage(message) => {
                Counters::add(&io.counters.packets_received, 1);
                let packet = TransportEvent::Packet(message.data.freeze());
                if io.events.send(packet).await.is_err() {
                    return;
                }
            }
            DataChannelEvent::OnClose => break,
            _ => {}
        }
    }
    _ = lost.send(Loss::Recoverable("the data channel closed".into()));
}

/// Writes queued frames to the data channel and, while bytes are in flight, samples what
/// SCTP has released, for the link estimate.
async fn send_frames(channel: Arc<dyn DataChannel>, io: Arc<SessionIo>) {
    let SessionIo { queue, counters, link, abandoned_at_start, .. } = &*io;
    // A new session's channel starts with nothing outstanding: what the last one held is gone.
    link.update(|link| link.on_new_session());
    let mut sampling = tokio::time::interval(SAMPLE_INTERVAL);
    sampling.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            next = queue.pop_packet(), if link.has_room() => {
                let bytes = next.packet.len();
                if let Err(err) = channel.send(BytesMut::from(next.packet)).await {
                    tracing::debug!("data track send stopped: {err}");
                    return;
                }
                link.update(|link| link.on_sent(bytes as u64, Instant::now()));
                Counters::add(&counters.bytes_sent, bytes as u64);
                if next.frame_done {
                    Counters::add(&counters.frames_sent, 1);
                }
            }
            _ = sampling.tick(), if link.in_flight() => {
                let Ok(outstanding) = channel.outstanding_bytes().await else { return };
                let abandoned = rtc_sctp::abandoned_bytes();
                // One data track packet is one SCTP message.
                let packets_abandoned = rtc_sctp::abandoned_messages() - abandoned_at_start;
                counters.packets_abandoned.store(packets_abandoned, Ordering::Relaxed);
                let backlogged = !queue.is_empty();
                link.update(|link| {
                    link.on_outstanding(outstanding as u64, abandoned, backlogged, Instant::now())
                });
            }
        }
    }
}

fn connect_error(options: &ConnectOptions, reason: String) -> RoomError {
    RoomError::Connect { url: options.url.clone(), reason }
}

/// Maps signal errors to what the user must fix: credentials, URL, or the server. The
/// server's reasons quote the token they refuse, so tokens are cut out of them.
fn signal_error(url: &str, err: SignalError) -> RoomError {
    match err {
        SignalError::Client(status, reason) if matches!(status.as_u16(), 401 | 403) => {
            RoomError::Auth { status: status.as_u16(), reason: without_tokens(reason.trim()) }
        }
        SignalError::Handshake { status } if matches!(status.as_u16(), 401 | 403) => {
            RoomError::Auth { status: status.as_u16(), reason: "access denied".into() }
        }
        SignalError::TokenFormat => {
            RoomError::Config("the access token has invalid characters".into())
        }
        SignalError::UrlParse(reason) => {
            RoomError::Config(format!("the server URL '{url}' is not valid: {reason}"))
        }
        other => {
            RoomError::Connect { url: url.to_string(), reason: without_tokens(&other.to_string()) }
        }
    }
}

/// `text` with every access token in it replaced by `<token>`: a JWT is `eyJ` (a JSON
/// header's start, base64url) and the base64url segments and dots that follow.
fn without_tokens(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("eyJ") {
        out.push_str(&rest[..start]);
        out.push_str("<token>");
        rest = &rest[start..];
        let part_of_token = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        rest = &rest[rest.find(|c: char| !part_of_token(c)).unwrap_or(rest.len())..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_cut_out_of_the_servers_reasons() {
        // livekit-server 1.13.5's answer to an expired token.
        let reason = "invalid token: eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3OTV9.dgEY-_x, \
                      error: token has invalid claims: token is expired";
        assert_eq!(
            without_tokens(reason),
            "invalid token: <token>, error: token has invalid claims: token is expired"
        );
        assert_eq!(without_tokens("eyJa.b eyJc"), "<token> <token>");
        assert_eq!(without_tokens("no token here"), "no token here");
        assert_eq!(without_tokens(""), "");
    }

    #[test]
    fn ice_server_urls_give_host_and_port() {
        let address = ice_server_address;
        assert_eq!(
            address("stun:stun.l.google.com:19302"),
            Some(("stun.l.google.com".into(), 19302))
        );
        assert_eq!(
            address("stun:global.stun.twilio.com"),
            Some(("global.stun.twilio.com".into(), 3478))
        );
        assert_eq!(
            address("turns:turn.example.org?transport=tcp"),
            Some(("turn.example.org".into(), 5349))
        );
        assert_eq!(address("turn:10.0.0.1:3479?transport=udp"), Some(("10.0.0.1".into(), 3479)));
        assert_eq!(address("stun:[2001:db8::1]:3478"), Some(("2001:db8::1".into(), 3478)));
        assert_eq!(address("stun:[2001:db8::1]"), Some(("2001:db8::1".into(), 3478)));
        assert_eq!(address("http://example.org"), None);
        assert_eq!(address("stun:host:notaport"), None);
        assert_eq!(address("stun:"), None);
    }
}
