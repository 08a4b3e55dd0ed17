//! The participant's engine: drives the `livekit-datatrack` managers from the transport's
//! signal messages and packets, and turns their output into signal requests, packets and
//! room events. Protocol conversions happen here and nowhere else.

use super::error::shorten;
use super::track::{LocalTrack, TrackOptions};
use super::transport::{Counters, Transport, TransportEvent, TransportEvents, TransportStats};
use super::{
    DataTrackSchemaId, DataTrackSid, RemoteDataTrack, RoomError, RoomEvent, RoomEvents, lock,
};
use futures::StreamExt;
use livekit_datatrack::api::PublishError;
use livekit_datatrack::backend::{local, remote};
use livekit_protocol as proto;
use proto::signal_request::Message as Request;
use proto::signal_response::Message as Response;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Largest schema definition the server stores as a data blob.
const MAX_SCHEMA_BYTES: usize = 50 * 1024;

/// How long a data blob request may take.
const BLOB_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

type Pending = Arc<Mutex<HashMap<u32, oneshot::Sender<Result<Response, String>>>>>;

/// Publisher identity and name of each remote track, for [`RoomEvent::TrackUnpublished`].
type RemoteNames = Arc<Mutex<HashMap<DataTrackSid, (String, String)>>>;

pub(crate) struct Engine {
    identity: String,
    room_name: String,
    transport: Arc<dyn Transport>,
    local: local::ManagerInput,
    remote: remote::ManagerInput,
    pending: Pending,
    next_request_id: AtomicU32,
    /// Schema definitions this participant stored, so that tracks sharing a schema store it
    /// once and a conflicting redefinition is caught here.
    schemas: tokio::sync::Mutex<HashMap<proto::DataBlobKey, String>>,
    left: AtomicBool,
    events: mpsc::UnboundedSender<RoomEvent>,
}

impl Engine {
    pub fn start(
        transport: Arc<dyn Transport>,
        mut join: proto::JoinResponse,
        transport_events: TransportEvents,
    ) -> (Arc<Engine>, RoomEvents) {
        let (local_manager, local, local_out) = local::Manager::new(local::ManagerOptions {
            encryption_provider: None,
        });
        let (remote_manager, remote, remote_out) = remote::Manager::new(remote::ManagerOptions {
            decryption_provider: None,
        });
        tokio::spawn(local_manager.run());
        tokio::spawn(remote_manager.run());

        let identity = join
            .participant
            .as_ref()
            .map(|p| p.identity.clone())
            .unwrap_or_default();
        let room_name = join
            .room
            .as_ref()
            .map(|r| r.name.clone())
            .unwrap_or_default();
        match remote::event_from_join(&mut join) {
            Ok(initial) => _ = send_input(&remote, initial.into()),
            Err(err) => tracing::warn!("ignoring malformed track list in join response: {err}"),
        }

        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let pending = Pending::default();
        let names = RemoteNames::default();

        tokio::spawn(forward_local_output(local_out, transport.clone()));
        tokio::spawn(forward_remote_output(
            remote_out,
            transport.clone(),
            names,
            events_tx.clone(),
        ));
        tokio::spawn(
            Inbound {
                identity: identity.clone(),
                local: local.clone(),
                remote: remote.clone(),
                counters: transport.counters().clone(),
                pending: pending.clone(),
                events: events_tx.clone(),
            }
            .run(transport_events),
        );

        let engine = Engine {
            identity,
            room_name,
            transport,
            local,
            remote,
            pending,
            next_request_id: AtomicU32::new(1),
            schemas: Default::default(),
            left: AtomicBool::new(false),
            events: events_tx,
        };
        (Arc::new(engine), events_rx)
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    pub fn room_name(&self) -> &str {
        &self.room_name
    }

    pub fn transport_stats(&self) -> TransportStats {
        self.transport.counters().snapshot()
    }

    pub async fn publish_track(&self, options: TrackOptions) -> Result<LocalTrack, RoomError> {
        self.ensure_joined()?;
        options.validate_name()?;
        if let (Some(id), Some(definition)) = (&options.schema, &options.schema_definition) {
            self.define_schema(id, definition).await?;
        }
        self.local
            .publish_track(options.to_datatrack_options())
            .await
            .map(LocalTrack::new)
            .map_err(|err| publish_error(err, &options))
    }

    async fn define_schema(
        &self,
        id: &DataTrackSchemaId,
        definition: &str,
    ) -> Result<(), RoomError> {
        let schema_error = |reason: String| RoomError::Schema {
            schema: id.name().into(),
            reason,
        };
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
        let blob = proto::DataBlob {
            key: Some(key.clone()),
            contents: definition.into(),
        };
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

    pub async fn schema_definition(&self, track: &RemoteDataTrack) -> Result<String, RoomError> {
        self.ensure_joined()?;
        let Some(id) = track.info().schema() else {
            return Err(RoomError::Schema {
                schema: String::new(),
                reason: format!("track '{}' has no schema id", track.info().name()),
            });
        };
        let schema_error = |reason: String| RoomError::Schema {
            schema: id.name().into(),
            reason,
        };
        let publisher = track.publisher_identity().to_string();
        let response = self
            .request(|request_id| {
                Request::GetDataBlobRequest(proto::GetDataBlobRequest {
                    request_id,
                    participant_identity: publisher.clone(),
                    key: Some(id.clone().into()),
                })
            })
            .await
            .map_err(|err| {
                schema_error(format!(
                    "fetching the definition from '{publisher}' failed: {err}"
                ))
            })?;
        let Response::GetDataBlobResponse(response) = response else {
            return Err(schema_error(
                "unexpected response to a data blob request".into(),
            ));
        };
        let blob = response
            .blob
            .ok_or_else(|| schema_error("the server sent no blob".into()))?;
        String::from_utf8(blob.contents)
            .map_err(|_| schema_error("the stored definition is not UTF-8 text".into()))
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

    fn ensure_joined(&self) -> Result<(), RoomError> {
        if self.left.load(Ordering::Acquire) {
            return Err(RoomError::Disconnected(
                "this participant has left the room".into(),
            ));
        }
        Ok(())
    }

    pub async fn leave(&self) {
        if self.left.swap(true, Ordering::AcqRel) {
            return;
        }
        _ = send_input(&self.local, local::InputEvent::Shutdown);
        _ = send_input(&self.remote, remote::InputEvent::Shutdown);
        let leave = proto::LeaveRequest {
            can_reconnect: false,
            reason: proto::DisconnectReason::ClientInitiated.into(),
            action: proto::leave_request::Action::Disconnect.into(),
            regions: None,
        };
        self.transport.send_signal(Request::Leave(leave)).await;
        self.transport.close().await;
        _ = self.events.send(RoomEvent::Disconnected {
            reason: "left the room".into(),
        });
    }
}

/// The engine's inbound side: everything the transport delivers.
struct Inbound {
    identity: String,
    local: local::ManagerInput,
    remote: remote::ManagerInput,
    counters: Arc<Counters>,
    pending: Pending,
    events: mpsc::UnboundedSender<RoomEvent>,
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
                TransportEvent::Closed(reason) => {
                    _ = self.events.send(RoomEvent::Disconnected { reason });
                    break;
                }
            }
        }
        lock(&self.pending).clear();
    }

    fn on_signal(&self, message: Response) {
        match message {
            Response::PublishDataTrackResponse(response) => {
                match local::SfuPublishResponse::try_from(response) {
                    Ok(event) => _ = send_input(&self.local, event.into()),
                    Err(err) => tracing::warn!("malformed publish response: {err}"),
                }
            }
            Response::UnpublishDataTrackResponse(response) => {
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
            Response::Leave(leave) => {
                let reason = format!(
                    "the server closed the session ({:?})",
                    proto::DisconnectReason::try_from(leave.reason)
                        .unwrap_or(proto::DisconnectReason::UnknownReason)
                );
                _ = self.events.send(RoomEvent::Disconnected { reason });
            }
            _ => {}
        }
    }

    fn on_request_response(&self, response: proto::RequestResponse) {
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
        if let Some(tx) = lock(&self.pending).remove(&request_id) {
            _ = tx.send(result);
        }
    }
}

async fn forward_local_output(mut output: local::ManagerOutput, transport: Arc<dyn Transport>) {
    while let Some(event) = output.next().await {
        match event {
            local::OutputEvent::SfuPublishRequest(request) => {
                transport
                    .send_signal(Request::PublishDataTrackRequest(request.into()))
                    .await
            }
            local::OutputEvent::SfuUnpublishRequest(request) => {
                transport
                    .send_signal(Request::UnpublishDataTrackRequest(request.into()))
                    .await
            }
            local::OutputEvent::PacketsAvailable(packets) => transport.send_frame(packets),
        }
    }
}

async fn forward_remote_output(
    mut output: remote::ManagerOutput,
    transport: Arc<dyn Transport>,
    names: RemoteNames,
    events: mpsc::UnboundedSender<RoomEvent>,
) {
    while let Some(event) = output.next().await {
        match event {
            remote::OutputEvent::SfuUpdateSubscription(update) => {
                transport
                    .send_signal(Request::UpdateDataSubscription(update.into()))
                    .await
            }
            remote::OutputEvent::TrackPublished(published) => {
                let track = published.track;
                let entry = (
                    track.publisher_identity().to_string(),
                    track.info().name().into(),
                );
                lock(&names).insert(track.info().sid(), entry);
                _ = events.send(RoomEvent::TrackPublished(track));
            }
            remote::OutputEvent::TrackUnpublished(unpublished) => {
                let (publisher_identity, name) =
                    lock(&names).remove(&unpublished.sid).unwrap_or_default();
                let sid = unpublished.sid;
                _ = events.send(RoomEvent::TrackUnpublished {
                    sid,
                    publisher_identity,
                    name,
                });
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
        PublishError::InvalidName => RoomError::InvalidName {
            track,
            reason: "the server refused the name".into(),
        },
        PublishError::Timeout => RoomError::Timeout {
            what: format!("publishing data track '{track}' (is the server >= 1.13.3?)"),
            after: Duration::from_secs(10),
        },
        PublishError::Disconnected => RoomError::Disconnected("while publishing".into()),
        PublishError::InvalidSchema(err) => RoomError::Schema {
            schema: options
                .schema
                .as_ref()
                .map(|s| s.name().to_string())
                .unwrap_or_default(),
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
