//! The participant's engine: drives the `livekit-datatrack` managers from the transport's
//! signal messages and packets, and turns their output into signal requests, packets and
//! room events. Protocol conversions happen here and nowhere else.

use super::e2ee::{Decryptor, Encryptor};
use super::error::shorten;
use super::track::{LocalTrack, TrackOptions};
use super::transport::{Counters, Transport, TransportEvent, TransportEvents, TransportStats};
use super::{
    DataTrackSchemaId, RemoteDataTrack, RoomError, RoomEvent, RoomEvents, SharedKeys, Undecryptable,
};
use crate::util::lock;
use futures::StreamExt;
use livekit_datatrack::api::{PublishError, RemoteDataTrackPipelineOptions};
use livekit_datatrack::backend::{local, remote};
use livekit_protocol as proto;
use proto::signal_request::Message as Request;
use proto::signal_response::Message as Response;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// Largest schema definition the server stores as a data blob.
const MAX_SCHEMA_BYTES: usize = 50 * 1024;

/// How long a data blob request may take.
const BLOB_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How long leaving may take in all: the server confirming every unpublish, then the leave
/// message written to the signal connection.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(2);

type Pending = Arc<Mutex<HashMap<u32, oneshot::Sender<Result<Response, String>>>>>;

/// The remote tracks currently published, for [`RoomEvent::TrackUnpublished`] (which carries
/// only a sid) and for the publishers known before a reconnect. Looked up by the track's
/// current sid, which the data track core updates when a publisher republishes.
type RemoteTracks = Arc<Mutex<Vec<RemoteDataTrack>>>;

/// Frames of one remote track reassembled at once. The packets of a frame larger than one
/// packet arrive out of order whenever one is retransmitted (the data track channel is
/// unordered), and the next frame's may come first; the vendored depacketizer puts a frame
/// together in any order (vendor/livekit-datatrack/PATCHES.md), as long as it is among the
/// newest three. Each holds at most `MAX_FRAME_BYTES`.
const REORDER_FRAMES: usize = 3;

pub(crate) struct Engine {
    identity: String,
    room_name: String,
    local: local::ManagerInput,
    remote: remote::ManagerInput,
    requests: Arc<Requests>,
    left: AtomicBool,
    /// Whether the current session knows this participant's tracks; shared with every
    /// [`LocalTrack`], which refuses frames while it is false.
    online: Arc<AtomicBool>,
    events: mpsc::UnboundedSender<RoomEvent>,
    /// Opens remote frames; counts those it cannot.
    decryptor: Arc<Decryptor>,
}

/// Request/response exchanges with the server, and the schema definitions this participant
/// stored (kept so that tracks sharing a schema store it once, a conflicting redefinition is
/// caught here, and a new session after a reconnect gets them again).
struct Requests {
    transport: Arc<dyn Transport>,
    pending: Pending,
    next_request_id: AtomicU32,
    schemas: tokio::sync::Mutex<HashMap<proto::DataBlobKey, String>>,
    /// Handles of this participant's tracks that the server of the current session holds:
    /// added by its publish responses, removed by its unpublish responses (or its answer
    /// that it holds no such track). What leaving waits for.
    server_tracks: watch::Sender<HashSet<u32>>,
}

impl Engine {
    pub fn start(
        transport: Arc<dyn Transport>,
        mut join: proto::JoinResponse,
        transport_events: TransportEvents,
        e2ee: Option<Arc<SharedKeys>>,
    ) -> Result<(Arc<Engine>, RoomEvents), RoomError> {
        let encryptor = e2ee.clone().map(|keys| Arc::new(Encryptor::new(keys)) as _);
        let (local_manager, local, local_out) =
            local::Manager::new(local::ManagerOptions { encryption_provider: encryptor });
        // Always a decryptor, keys or not: without one the core passes an encrypted track's
        // frames on still sealed.
        let decryptor = Arc::new(Decryptor::new(e2ee));
        let (remote_manager, remote, remote_out) = remote::Manager::new(remote::ManagerOptions {
            decryption_provider: Some(decryptor.clone()),
        });
        tokio::spawn(local_manager.run());

        let identity = join.participant.as_ref().map(|p| p.identity.clone()).unwrap_or_default();
        let room_name = join.room.as_ref().map(|r| r.name.clone()).unwrap_or_default();
        match remote::event_from_join(&mut join) {
            Ok(initial) => _ = send_input(&remote, initial.into()),
            Err(err) => tracing::warn!("ignoring malformed track list in join response: {err}"),
        }

        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let remote_tracks = RemoteTracks::default();
        let requests = Arc::new(Requests {
            transport: transport.clone(),
            pending: Pending::default(),
            next_request_id: AtomicU32::new(1),
            schemas: Default::default(),
            server_tracks: watch::channel(HashSet::new()).0,
        });
        let online = Arc::new(AtomicBool::new(true));

        tokio::spawn(forward_local_output(local_out, transport.clone()));
        tokio::spawn(forward_remote_output(
            remote_out,
            transport.clone(),
            remote_tracks.clone(),
            events_tx.clone(),
        ));
        let inbound = Inbound {
            identity: identity.clone(),
            local: local.clone(),
            remote: remote.clone(),
            counters: transport.counters().clone(),
            requests: requests.clone(),
            remote_tracks,
            events: events_tx.clone(),
            online: online.clone(),
            republishing: Mutex::new(None),
        };
        receive_thread(remote_manager, inbound, transport_events)?;

        let engine = Engine {
            identity,
            room_name,
            local,
            remote,
            requests,
            left: AtomicBool::new(false),
            online,
            events: events_tx,
            decryptor,
        };
        Ok((Arc::new(engine), events_rx))
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    pub fn room_name(&self) -> &str {
        &self.room_name
    }

    pub fn undecryptable(&self) -> Vec<Undecryptable> {
        self.decryptor.undecryptable()
    }

    pub fn transport_stats(&self) -> TransportStats {
        self.requests.transport.counters().snapshot()
    }

    pub fn link(&self) -> tokio::sync::watch::Receiver<super::LinkState> {
        self.requests.transport.link()
    }

    pub fn set_send_window(&self, bytes: u64) {
        self.requests.transport.set_send_window(bytes)
    }

    pub async fn publish_track(&self, options: TrackOptions) -> Result<LocalTrack, RoomError> {
        self.ensure_joined()?;
        options.validate_name()?;
        if let (Some(id), Some(definition)) = (&options.schema, &options.schema_definition) {
            self.requests.define_schema(id, definition).await?;
        }
        self.local
            .publish_track(options.to_datatrack_options())
            .await
            .map(|track| LocalTrack::new(track, self.online.clone()))
            .map_err(|err| publish_error(err, &options))
    }

    pub async fn schema_definition(&self, track: &RemoteDataTrack) -> Result<String, RoomError> {
        self.ensure_joined()?;
        let Some(id) = track.info().schema() else {
            return Err(RoomError::Schema {
                schema: String::new(),
                reason: format!(
                    "track '{}' has no schema id",
                    crate::text::printable(track.info().name())
                ),
            });
        };
        let schema_error = |reason: String| RoomError::Schema { schema: id.name().into(), reason };
        let publisher = track.publisher_identity().to_string();
        let response = self
            .requests
            .request(|request_id| {
                Request::GetDataBlobRequest(proto::GetDataBlobRequest {
                    request_id,
                    participant_identity: publisher.clone(),
                    key: Some(id.clone().into()),
                })
            })
            .await
            .map_err(|err| {
                schema_error(format!("fetching the definition from '{publisher}' failed: {err}"))
            })?;
        let Response::GetDataBlobResponse(response) = response else {
            return Err(schema_error("unexpected response to a data blob request".into()));
        };
        let blob = response.blob.ok_or_else(|| schema_error("the server sent no blob".into()))?;
        String::from_utf8(blob.contents)
            .map_err(|_| schema_error("the stored definition is not UTF-8 text".into()))
    }

    fn ensure_joined(&self) -> Result<(), RoomError> {
        if self.left.load(Ordering::Acquire) {
            return Err(RoomError::Disconnected("this participant has left the room".into()));
        }
        Ok(())
    }

    /// Unpublishes every track, waits (up to [`LEAVE_TIMEOUT`] in all) for the server to
    /// confirm, tells it this participant leaves, and closes the connection.
    ///
    /// The managers' own unpublish requests on shutdown go out on their own time and would
    /// race with the leave and the close: a request lost to the close leaves its track
    /// listed for late joiners until the server gives up on the participant.
    pub async fn leave(&self) {
        if self.left.swap(true, Ordering::AcqRel) {
            return;
        }
        let deadline = tokio::time::Instant::now() + LEAVE_TIMEOUT;
        // While reconnecting no server holds the tracks, and nobody would answer.
        if self.online.load(Ordering::Acquire) {
            self.unpublish_all(deadline).await;
        }
        _ = send_input(&self.local, local::InputEvent::Shutdown);
        _ = send_input(&self.remote, remote::InputEvent::Shutdown);
        let leave = proto::LeaveRequest {
            can_reconnect: false,
            reason: proto::DisconnectReason::ClientInitiated.into(),
            action: proto::leave_request::Action::Disconnect.into(),
            regions: None,
        };
        let transport = &self.requests.transport;
        // Returns once the server has acted on it (it closes the connection), so the close
        // cannot overtake it.
        let sent = tokio::time::timeout_at(deadline, transport.send_signal(Request::Leave(leave)));
        if sent.await.is_err() {
            tracing::warn!("the leave message was not sent within {LEAVE_TIMEOUT:?}; closing");
        }
        transport.close().await;
        _ = self.events.send(RoomEvent::Disconnected { reason: "left the room".into() });
    }

    /// Asks the server to unpublish every track it holds for this participant, including
    /// any whose publish response arrives meanwhile, until it holds none or `deadline`.
    async fn unpublish_all(&self, deadline: tokio::time::Instant) {
        let mut held = self.requests.server_tracks.subscribe();
        let mut requested = HashSet::new();
        loop {
            let pending: Vec<u32> = held.borrow_and_update().iter().copied().collect();
            if pending.is_empty() {
                return;
            }
            for pub_handle in pending.iter().copied().filter(|handle| requested.insert(*handle)) {
                let request = proto::UnpublishDataTrackRequest { pub_handle };
                self.requests
                    .transport
                    .send_signal(Request::UnpublishDataTrackRequest(request))
                    .await;
            }
            match tokio::time::timeout_at(deadline, held.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return,
                Err(_) => {
                    tracing::warn!(
                        "leaving with {} track(s) the server did not confirm unpublished \
                         within {LEAVE_TIMEOUT:?}",
                        pending.len()
                    );
                    return;
                }
            }
        }
    }
}

impl Requests {
    async fn define_schema(
        &self,
        id: &DataTrackSchemaId,
        definition: &str,
    ) -> Result<(), RoomError> {
        let schema_error = |reason: String| RoomError::Schema { schema: id.name().into(), reason };
        if definition.len() > MAX_SCHEMA_BYTES {
            return Err(schema_error(format!(
                "the definition has {} bytes; the server stores at most {MAX_SCHEMA_BYTES}",
                definition.len()
            )));
        }
        let key: proto::DataBlobKey = id.clone().into();
        let mut schemas = self.schemas.lock().await;
        match schemas.get(&key) {
            Some(stored) if stored == definition => return Ok(()),
            Some(_) => {
                return Err(schema_error(
                    "already defined by this participant with a different definition".into(),
                ));
            }
            None => {}
        }
        let blob = proto::DataBlob { key: Some(key.clone()), contents: definition.into() };
        self.request(|request_id| {
            Request::StoreDataBlobRequest(proto::StoreDataBlobRequest {
                request_id,
                blob: Some(blob),
            })
        })
        .await
        .map_err(|err| schema_error(format!("storing the definition failed: {err}")))?;
        schemas.insert(key, definition.to_string());
        Ok(())
    }

    /// Sends a request carrying a fresh request id and waits for its answer: the matching
    /// response, or a `RequestResponse` error.
    async fn request(&self, build: impl FnOnce(u32) -> Request) -> Result<Response, String> {
        let request_id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(request_id, tx);
        self.transport.send_signal(build(request_id)).await;
        let outcome = tokio::time::timeout(BLOB_REQUEST_TIMEOUT, rx).await;
        lock(&self.pending).remove(&request_id);
        match outcome {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err("the room disconnected".into()),
            Err(_) => Err(format!("no answer within {BLOB_REQUEST_TIMEOUT:?}")),
        }
    }

    /// Stores every schema definition again: a session after a full reconnect starts empty.
    async fn restore_schemas(&self) {
        let schemas = self.schemas.lock().await.clone();
        for (key, definition) in schemas {
            let blob = proto::DataBlob { key: Some(key), contents: definition.into_bytes() };
            let stored = self
                .request(|request_id| {
                    Request::StoreDataBlobRequest(proto::StoreDataBlobRequest {
                        request_id,
                        blob: Some(blob),
                    })
                })
                .await;
            if let Err(err) = stored {
                tracing::warn!(
                    "storing a schema definition again after reconnecting failed: {err}"
                );
            }
        }
    }
}

/// Runs the remote data track manager and the inbound loop on a thread of their own with a
/// single-threaded runtime.
///
/// The manager hands each packet to its track's reassembly task through a 16-packet queue and
/// drops what does not fit, without telling anyone. On one thread, the inbound loop's yield
/// after each packet lets the manager and then the reassembly task run before the next packet
/// is handed over, whatever the load on the rest of the process; on a shared multi-threaded
/// runtime the order depends on scheduling, and a burst from a large frame can be cut.
fn receive_thread(
    manager: remote::Manager,
    inbound: Inbound,
    events: TransportEvents,
) -> Result<(), RoomError> {
    let failed = |err: std::io::Error| {
        RoomError::Internal(format!("cannot start the receive thread: {err}"))
    };
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(failed)?;
    std::thread::Builder::new()
        .name("dtbridge-receive".into())
        .spawn(move || {
            runtime.block_on(async move {
                tokio::spawn(manager.run());
                inbound.run(events).await;
            })
        })
        .map_err(failed)?;
    Ok(())
}

/// The engine's inbound side: everything the transport delivers.
struct Inbound {
    identity: String,
    local: local::ManagerInput,
    remote: remote::ManagerInput,
    counters: Arc<Counters>,
    requests: Arc<Requests>,
    remote_tracks: RemoteTracks,
    events: mpsc::UnboundedSender<RoomEvent>,
    online: Arc<AtomicBool>,
    /// Restoring schemas and republishing after the latest reconnect; a new loss cancels it,
    /// so that it cannot declare the tracks online for a session that is already gone.
    republishing: Mutex<Option<JoinHandle<()>>>,
}

impl Inbound {
    async fn run(self, mut transport_events: TransportEvents) {
        while let Some(event) = transport_events.recv().await {
            match event {
                TransportEvent::Packet(packet) => {
                    if !send_input(&self.remote, remote::InputEvent::PacketReceived(packet)) {
                        Counters::add(&self.counters.packets_dropped, 1);
                    }
                    // Let the depacketizer take this packet before the next: the manager
                    // hands packets to each track's pipeline through a 16-packet queue, and
                    // a burst forwarded without yielding would overflow it.
                    tokio::task::yield_now().await;
                }
                TransportEvent::Signal(message) => self.on_signal(*message),
                TransportEvent::Reconnecting(reason) => {
                    self.online.store(false, Ordering::Release);
                    if let Some(task) = lock(&self.republishing).take() {
                        task.abort();
                    }
                    _ = self.events.send(RoomEvent::Reconnecting { reason });
                }
                TransportEvent::Resuming(reason) => {
                    _ = self.events.send(RoomEvent::Resuming { reason });
                }
                TransportEvent::Resumed => _ = self.events.send(RoomEvent::Resumed),
                TransportEvent::Reconnected(join) => self.on_reconnected(*join),
                TransportEvent::Closed(reason) => {
                    _ = self.events.send(RoomEvent::Disconnected { reason });
                    break;
                }
            }
        }
        lock(&self.requests.pending).clear();
    }

    /// A new session: the server knows nothing of this participant's tracks, subscriptions
    /// and schemas, and remote tracks may have come or gone meanwhile.
    fn on_reconnected(&self, mut join: proto::JoinResponse) {
        let mut update = remote::event_from_join(&mut join).unwrap_or_else(|err| {
            tracing::warn!("ignoring malformed track list in join response: {err}");
            remote::SfuPublicationUpdates { updates: HashMap::new() }
        });
        // Publishers that left while this participant was away are not in the join response:
        // list them with no tracks, so their tracks are reported unpublished.
        for track in lock(&self.remote_tracks).iter() {
            update.updates.entry(track.publisher_identity().to_string()).or_default();
        }
        _ = send_input(&self.remote, update.into());
        _ = send_input(&self.remote, remote::InputEvent::ResendSubscriptionUpdates);
        self.requests.server_tracks.send_replace(HashSet::new());
        let requests = self.requests.clone();
        let local = self.local.clone();
        let events = self.events.clone();
        let online = self.online.clone();
        let task = tokio::spawn(async move {
            // Schemas first, so a subscriber seeing a republished track can fetch its schema.
            requests.restore_schemas().await;
            _ = send_input(&local, local::InputEvent::RepublishTracks);
            // The manager answers in order, so once it has listed its tracks every one of
            // them is republishing and refuses frames until the server has it again.
            local.query_tracks().await;
            online.store(true, Ordering::Release);
            _ = events.send(RoomEvent::Reconnected);
        });
        if let Some(previous) = lock(&self.republishing).replace(task) {
            previous.abort();
        }
    }

    fn on_signal(&self, message: Response) {
        match message {
            Response::PublishDataTrackResponse(response) => {
                if let Some(info) = &response.info {
                    self.requests
                        .server_tracks
                        .send_modify(|held| _ = held.insert(info.pub_handle));
                }
                match local::SfuPublishResponse::try_from(response) {
                    Ok(event) => _ = send_input(&self.local, event.into()),
                    Err(err) => tracing::warn!("malformed publish response: {err}"),
                }
            }
            Response::UnpublishDataTrackResponse(response) => {
                if let Some(info) = &response.info {
                    self.requests
                        .server_tracks
                        .send_modify(|held| _ = held.remove(&info.pub_handle));
                }
                match local::SfuUnpublishResponse::try_from(response) {
                    Ok(event) => _ = send_input(&self.local, event.into()),
                    Err(err) => tracing::warn!("malformed unpublish response: {err}"),
                }
            }
            Response::RequestResponse(response) => self.on_request_response(response),
            Response::Update(mut update) => {
                match remote::event_from_participant_update(&mut update, &self.identity) {
                    Ok(event) => _ = send_input(&self.remote, event.into()),
                    Err(err) => tracing::warn!("malformed participant update: {err}"),
                }
            }
            Response::DataTrackSubscriberHandles(handles) => {
                match remote::SfuSubscriberHandles::try_from(handles) {
                    Ok(event) => _ = send_input(&self.remote, event.into()),
                    Err(err) => tracing::warn!("malformed subscriber handles: {err}"),
                }
            }
            Response::StoreDataBlobResponse(ref response) => {
                self.complete(response.request_id, Ok(message.clone()))
            }
            Response::GetDataBlobResponse(ref response) => {
                self.complete(response.request_id, Ok(message.clone()))
            }
            _ => {}
        }
    }

    fn on_request_response(&self, response: proto::RequestResponse) {
        if let Some(proto::request_response::Request::UnpublishDataTrack(request)) =
            &response.request
        {
            // Refused (most likely: not found): either way the server does not hold it.
            self.requests.server_tracks.send_modify(|held| _ = held.remove(&request.pub_handle));
        }
        if let Some(event) = local::publish_result_from_request_response(&response) {
            _ = send_input(&self.local, event.into());
            return;
        }
        if response.reason() == proto::request_response::Reason::Ok {
            return;
        }
        let error = format!("{:?}: {}", response.reason(), response.message);
        self.complete(response.request_id, Err(error));
    }

    fn complete(&self, request_id: u32, result: Result<Response, String>) {
        if let Some(tx) = lock(&self.requests.pending).remove(&request_id) {
            _ = tx.send(result);
        }
    }
}

async fn forward_local_output(mut output: local::ManagerOutput, transport: Arc<dyn Transport>) {
    while let Some(event) = output.next().await {
        match event {
            local::OutputEvent::SfuPublishRequest(request) => {
                transport.send_signal(Request::PublishDataTrackRequest(request.into())).await
            }
            local::OutputEvent::SfuUnpublishRequest(request) => {
                transport.send_signal(Request::UnpublishDataTrackRequest(request.into())).await
            }
            local::OutputEvent::PacketsAvailable(packets) => transport.send_frame(packets),
        }
    }
}

async fn forward_remote_output(
    mut output: remote::ManagerOutput,
    transport: Arc<dyn Transport>,
    remote_tracks: RemoteTracks,
    events: mpsc::UnboundedSender<RoomEvent>,
) {
    while let Some(event) = output.next().await {
        match event {
            remote::OutputEvent::SfuUpdateSubscription(update) => {
                transport.send_signal(Request::UpdateDataSubscription(update.into())).await
            }
            remote::OutputEvent::TrackPublished(published) => {
                published.track.set_pipeline_options(
                    RemoteDataTrackPipelineOptions::default()
                        .with_max_partial_frames(REORDER_FRAMES),
                );
                lock(&remote_tracks).push(published.track.clone());
                _ = events.send(RoomEvent::TrackPublished(published.track));
            }
            remote::OutputEvent::TrackUnpublished(unpublished) => {
                let sid = unpublished.sid;
                let gone = {
                    let mut tracks = lock(&remote_tracks);
                    let index = tracks.iter().position(|track| track.info().sid() == sid);
                    index.map(|index| tracks.swap_remove(index))
                };
                let (publisher_identity, name) = gone
                    .map(|track| {
                        (track.publisher_identity().to_string(), track.info().name().to_string())
                    })
                    .unwrap_or_default();
                _ = events.send(RoomEvent::TrackUnpublished { sid, publisher_identity, name });
            }
        }
    }
}

/// Maps the data track core's publish errors to errors that name the track and the fix.
fn publish_error(err: PublishError, options: &TrackOptions) -> RoomError {
    let track = shorten(&options.name);
    match err {
        PublishError::NotAllowed => RoomError::NotAllowed { track },
        PublishError::DuplicateName => RoomError::DuplicateName { track },
        PublishError::InvalidName => {
            RoomError::InvalidName { track, reason: "the server refused the name".into() }
        }
        PublishError::Timeout => RoomError::Timeout {
            what: format!("publishing data track '{track}' (is the server >= 1.13.3?)"),
            after: Duration::from_secs(10),
        },
        PublishError::Disconnected => RoomError::Disconnected("while publishing".into()),
        PublishError::InvalidSchema(err) => RoomError::Schema {
            schema: options.schema.as_ref().map(|s| s.name().to_string()).unwrap_or_default(),
            reason: err.to_string(),
        },
        other => RoomError::Refused(format!("publishing data track '{track}': {other}")),
    }
}

/// Hands an event to a manager without waiting; false when its queue is full or it stopped.
fn send_input<E>(input: &impl ManagerSend<E>, event: E) -> bool {
    match input.send_event(event) {
        Ok(()) => true,
        Err(err) => {
            tracing::debug!("data track manager did not take an event: {err}");
            false
        }
    }
}

/// The one thing the two manager inputs have in common.
trait ManagerSend<E> {
    fn send_event(&self, event: E) -> Result<(), livekit_datatrack::api::InternalError>;
}

impl ManagerSend<local::InputEvent> for local::ManagerInput {
    fn send_event(
        &self,
        event: local::InputEvent,
    ) -> Result<(), livekit_datatrack::api::InternalError> {
        self.send(event)
    }
}

impl ManagerSend<remote::InputEvent> for remote::ManagerInput {
    fn send_event(
        &self,
        event: remote::InputEvent,
    ) -> Result<(), livekit_datatrack::api::InternalError> {
        self.send(event)
    }
}
