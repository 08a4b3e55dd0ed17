//! The in-process loopback room: publishers and subscribers in one process, no server.
//!
//! [`LoopbackHub`] plays the part of the SFU for data tracks and nothing more: it answers the
//! same signal messages a LiveKit server answers (publish, unpublish, subscribe, data blobs,
//! leave), tells participants about each other's tracks, and forwards each packet to the
//! subscribers after rewriting its track handle to the subscriber's handle, as the SFU does.
//! Frames go through the real `livekit-datatrack` packetizer and depacketizer on both ends.
//! It is not a network: there is no loss, no latency and no bandwidth limit beyond the
//! bounded queues, whose drops are counted like the network transport's.

use super::engine::Engine;
use super::track::MAX_TRACK_NAME_CHARS;
use super::transport::{
    Counters, PACKET_HANDLE_OFFSET, TRANSPORT_EVENT_CAPACITY, Transport, TransportEvent,
};
use super::{LinkState, Room, RoomError, RoomEvents, SharedKeys};
use crate::util::lock;
use bytes::{Bytes, BytesMut};
use livekit_protocol as proto;
use proto::request_response::Reason;
use proto::signal_request::Message as Request;
use proto::signal_response::Message as Response;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch};

/// An in-process room that [`Room`]s join with [`LoopbackHub::join`].
#[derive(Clone)]
pub struct LoopbackHub {
    state: Arc<Mutex<HubState>>,
}

#[derive(Default)]
struct HubState {
    room: String,
    members: HashMap<String, Member>,
    next_sid: u64,
}

struct Member {
    sid: String,
    events: mpsc::Sender<TransportEvent>,
    counters: Arc<Counters>,
    can_publish_data: bool,
    /// Published tracks by publisher handle.
    tracks: HashMap<u32, proto::DataTrackInfo>,
    /// This member's subscriptions: subscriber handle -> track sid.
    subscriptions: HashMap<u32, String>,
    blobs: HashMap<proto::DataBlobKey, Vec<u8>>,
}

impl LoopbackHub {
    /// A new, empty room with the given name.
    pub fn new(room: impl Into<String>) -> Self {
        let state = HubState { room: room.into(), ..Default::default() };
        Self { state: Arc::new(Mutex::new(state)) }
    }

    /// Joins as `identity`, allowed to publish.
    pub fn join(&self, identity: &str) -> Result<(Room, RoomEvents), RoomError> {
        self.join_with(identity, true, None)
    }

    /// Joins as `identity`; `can_publish_data` plays the token grant of the same name, `e2ee`
    /// as in [`ConnectOptions::e2ee`](super::ConnectOptions::e2ee).
    pub fn join_with(
        &self,
        identity: &str,
        can_publish_data: bool,
        e2ee: Option<Arc<SharedKeys>>,
    ) -> Result<(Room, RoomEvents), RoomError> {
        let (events_tx, events_rx) = mpsc::channel(TRANSPORT_EVENT_CAPACITY);
        let counters = Arc::new(Counters::default());
        let join = {
            let mut state = lock(&self.state);
            if state.members.contains_key(identity) {
                return Err(RoomError::Config(format!(
                    "identity '{identity}' is already in loopback room '{}'",
                    state.room
                )));
            }
            state.next_sid += 1;
            let member = Member {
                sid: format!("PA_loopback{}", state.next_sid),
                events: events_tx,
                counters: counters.clone(),
                can_publish_data,
                tracks: HashMap::new(),
                subscriptions: HashMap::new(),
                blobs: HashMap::new(),
            };
            let participant = member.info(identity);
            state.members.insert(identity.to_string(), member);
            state.broadcast_update(identity);
            proto::JoinResponse {
                room: Some(proto::Room { name: state.room.clone(), ..Default::default() }),
                participant: Some(participant),
                other_participants: state
                    .members
                    .iter()
                    .filter(|(other, _)| other.as_str() != identity)
                    .map(|(other, member)| member.info(other))
                    .collect(),
                ..Default::default()
            }
        };
        let transport = LoopbackTransport {
            hub: self.clone(),
            identity: identity.to_string(),
            counters,
            link: watch::channel(LinkState::UNLIMITED).0,
        };
        let (engine, events) = Engine::start(Arc::new(transport), join, events_rx, e2ee)?;
        Ok((Room { engine }, events))
    }
}

impl Member {
    fn info(&self, identity: &str) -> proto::ParticipantInfo {
        proto::ParticipantInfo {
            sid: self.sid.clone(),
            identity: identity.to_string(),
            state: proto::participant_info::State::Active.into(),
            data_tracks: self.tracks.values().cloned().collect(),
            ..Default::default()
        }
    }

    fn send(&self, message: Response) {
        if self.events.try_send(TransportEvent::Signal(Box::new(message))).is_err() {
            tracing::warn!("loopback participant {} is not reading its signal messages", self.sid);
        }
    }
}

impl HubState {
    /// Tells everyone but `identity` about `identity`'s current tracks (none once it left).
    fn broadcast_update(&self, identity: &str) {
        let info = match self.members.get(identity) {
            Some(member) => member.info(identity),
            None => proto::ParticipantInfo {
                identity: identity.to_string(),
                state: proto::participant_info::State::Disconnected.into(),
                ..Default::default()
            },
        };
        let update = proto::ParticipantUpdate { participants: vec![info] };
        for (other, member) in &self.members {
            if other != identity {
                member.send(Response::Update(update.clone()));
            }
        }
    }

    fn track_publisher(&self, track_sid: &str) -> Option<(&String, &Member)> {
        self.members
            .iter()
            .find(|(_, member)| member.tracks.values().any(|track| track.sid == track_sid))
    }

    fn handle(&mut self, identity: &str, message: Request) {
        let Some(member) = self.members.get_mut(identity) else {
            return;
        };
        match message {
            Request::PublishDataTrackRequest(request) => {
                let refusal = if !member.can_publish_data {
                    Some(Reason::NotAllowed)
                } else if request.name.is_empty()
                    || request.name.chars().count() > MAX_TRACK_NAME_CHARS
                {
                    Some(Reason::InvalidName)
                } else if member.tracks.values().any(|track| track.name == request.name) {
                    Some(Reason::DuplicateName)
                } else {
                    None
                };
                if let Some(reason) = refusal {
                    member.send(Response::RequestResponse(proto::RequestResponse {
                        reason: reason.into(),
                        message: format!("{reason:?}"),
                        request: Some(proto::request_response::Request::PublishDataTrack(request)),
                        ..Default::default()
                    }));
                    return;
                }
                self.next_sid += 1;
                let info = proto::DataTrackInfo {
                    pub_handle: request.pub_handle,
                    sid: format!("DTR_loopback{}", self.next_sid),
                    name: request.name,
                    encryption: request.encryption,
                    schema: request.schema,
                    frame_encoding: request.frame_encoding,
                };
                let member = self.members.get_mut(identity).expect("checked above");
                member.tracks.insert(info.pub_handle, info.clone());
                member.send(Response::PublishDataTrackResponse(proto::PublishDataTrackResponse {
                    info: Some(info),
                }));
                self.broadcast_update(identity);
            }
            Request::UnpublishDataTrackRequest(request) => {
                let Some(info) = member.tracks.remove(&request.pub_handle) else {
                    // As the server answers a track it does not hold.
                    member.send(Response::RequestResponse(proto::RequestResponse {
                        reason: proto::request_response::Reason::NotFound.into(),
                        request: Some(proto::request_response::Request::UnpublishDataTrack(
                            request,
                        )),
                        ..Default::default()
                    }));
                    return;
                };
                member.send(Response::UnpublishDataTrackResponse(
                    proto::UnpublishDataTrackResponse { info: Some(info.clone()) },
                ));
                for member in self.members.values_mut() {
                    member.subscriptions.retain(|_, sid| *sid != info.sid);
                }
                self.broadcast_update(identity);
            }
            Request::UpdateDataSubscription(update) => {
                for change in update.updates {
                    let member = self.members.get_mut(identity).expect("checked above");
                    member.subscriptions.retain(|_, sid| *sid != change.track_sid);
                    if change.subscribe {
                        let handle = (1..=u32::from(u16::MAX))
                            .find(|h| !member.subscriptions.contains_key(h))
                            .unwrap_or(u32::from(u16::MAX));
                        member.subscriptions.insert(handle, change.track_sid);
                    }
                }
                let member = &self.members[identity];
                let sub_handles = member
                    .subscriptions
                    .iter()
                    .filter_map(|(handle, track_sid)| {
                        let (publisher, owner) = self.track_publisher(track_sid)?;
                        let published = proto::data_track_subscriber_handles::PublishedDataTrack {
                            publisher_identity: publisher.clone(),
                            publisher_sid: owner.sid.clone(),
                            track_sid: track_sid.clone(),
                        };
                        Some((*handle, published))
                    })
                    .collect();
                member.send(Response::DataTrackSubscriberHandles(
                    proto::DataTrackSubscriberHandles { sub_handles },
                ));
            }
            Request::StoreDataBlobRequest(request) => {
                let Some(blob) = request.blob else { return };
                let key = blob.key.clone().unwrap_or_default();
                member.blobs.insert(key.clone(), blob.contents);
                member.send(Response::StoreDataBlobResponse(proto::StoreDataBlobResponse {
                    request_id: request.request_id,
                    key: Some(key),
                }));
            }
            Request::GetDataBlobRequest(request) => {
                let key = request.key.unwrap_or_default();
                let contents = self
                    .members
                    .get(&request.participant_identity)
                    .and_then(|owner| owner.blobs.get(&key).cloned());
                let member = &self.members[identity];
                member.send(match contents {
                    Some(contents) => Response::GetDataBlobResponse(proto::GetDataBlobResponse {
                        request_id: request.request_id,
                        blob: Some(proto::DataBlob { key: Some(key), contents }),
                    }),
                    None => Response::RequestResponse(proto::RequestResponse {
                        request_id: request.request_id,
                        reason: Reason::NotFound.into(),
                        message: format!(
                            "participant '{}' stored no such data blob",
                            request.participant_identity
                        ),
                        ..Default::default()
                    }),
                });
            }
            Request::Leave(_) => {
                if let Some(member) = self.members.remove(identity) {
                    let sids: Vec<_> = member.tracks.values().map(|t| t.sid.clone()).collect();
                    for other in self.members.values_mut() {
                        other.subscriptions.retain(|_, sid| !sids.contains(sid));
                    }
                }
                self.broadcast_update(identity);
            }
            _ => {}
        }
    }

    /// Forwards one frame's packets from `identity` to every subscriber of the track.
    fn forward(&self, identity: &str, packets: &[Bytes]) {
        let Some(first) = packets.first() else { return };
        let Some(publisher) = self.members.get(identity) else {
            return;
        };
        let Some(pub_handle) = first.get(PACKET_HANDLE_OFFSET..PACKET_HANDLE_OFFSET + 2) else {
            return;
        };
        let pub_handle = u32::from(u16::from_be_bytes([pub_handle[0], pub_handle[1]]));
        let Some(track) = publisher.tracks.get(&pub_handle) else {
            return;
        };
        for member in self.members.values() {
            for (&sub_handle, sid) in &member.subscriptions {
                if *sid != track.sid {
                    continue;
                }
                for packet in packets {
                    let mut rewritten = BytesMut::from(&packet[..]);
                    rewritten[PACKET_HANDLE_OFFSET..PACKET_HANDLE_OFFSET + 2]
                        .copy_from_slice(&(sub_handle as u16).to_be_bytes());
                    let delivered =
                        member.events.try_send(TransportEvent::Packet(rewritten.freeze())).is_ok();
                    let counter = if delivered {
                        &member.counters.packets_received
                    } else {
                        &member.counters.packets_dropped
                    };
                    Counters::add(counter, 1);
                }
            }
        }
    }
}

/// A participant's side of the hub.
struct LoopbackTransport {
    hub: LoopbackHub,
    identity: String,
    counters: Arc<Counters>,
    /// Always [`LinkState::UNLIMITED`]: the hub is not a network.
    link: watch::Sender<LinkState>,
}

#[async_trait::async_trait]
impl Transport for LoopbackTransport {
    async fn send_signal(&self, message: Request) {
        lock(&self.hub.state).handle(&self.identity, message);
    }

    fn send_frame(&self, packets: Vec<Bytes>) {
        let bytes: usize = packets.iter().map(Bytes::len).sum();
        lock(&self.hub.state).forward(&self.identity, &packets);
        Counters::add(&self.counters.frames_sent, 1);
        Counters::add(&self.counters.bytes_sent, bytes as u64);
    }

    fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    fn link(&self) -> watch::Receiver<LinkState> {
        self.link.subscribe()
    }

    /// Nothing waits in the hub: frames are forwarded as they come.
    fn set_send_window(&self, _bytes: u64) {}

    /// Nothing to close: the leave request removed the member, which drops its event sender.
    async fn close(&self) {}
}
