//! A LiveKit room client for data tracks, with no native libraries.
//!
//! The pieces are LiveKit's own Rust cores: `livekit-signaling` for the signal connection,
//! `livekit-datatrack` for packetization, handles, subscriptions and reassembly, and
//! `livekit-protocol` for the messages. WebRTC (ICE, DTLS, SCTP data channels) comes from the
//! pure-Rust `webrtc` crate.
//!
//! A [`Room`] is one participant. It joins either a LiveKit server ([`Room::connect`]) or an
//! in-process [`LoopbackHub`], which speaks the same signal protocol so that everything above
//! the transport (the `livekit-datatrack` managers, schemas, events, errors) is the same code.

mod abandoned;
mod connect;
mod e2ee;
mod encoding;
mod engine;
mod error;
mod link;
mod loopback;
mod server;
mod timestamp;
mod tls;
mod track;
mod transport;
mod udp;

pub use connect::{
    ConnectOptions, Credentials, ENV_API_KEY, ENV_API_SECRET, ENV_TOKEN, ENV_URL, Grants,
};
pub use e2ee::{DecryptFailure, Decryptor, Encryptor, MAX_KEYS, SharedKeys, Undecryptable};
pub use encoding::{frame_encoding, frame_encoding_name, schema_encoding, schema_encoding_name};
pub use error::RoomError;
pub use link::{LinkState, MIN_RTT_WINDOW, RATE_WINDOW, RECENT_RTT_WINDOW};
pub use livekit_datatrack::api::{
    DataTrackFrame, DataTrackFrameEncoding, DataTrackInfo, DataTrackSchemaEncoding,
    DataTrackSchemaId, DataTrackSid, DataTrackStream, DataTrackSubscribeOptions, RemoteDataTrack,
};
pub use loopback::LoopbackHub;
pub use timestamp::{TimestampUnit, user_timestamp_ns};
pub use tls::CaBundle;
pub use track::{
    LocalTrack, MAX_FRAME_BYTES, MAX_TRACK_NAME_CHARS, PushError, TrackOptions, wire_len,
};
pub use transport::TransportStats;

use engine::Engine;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Something that happened in the room, in the order it happened.
#[derive(Debug)]
pub enum RoomEvent {
    /// A remote participant published a data track (also sent for every track that already
    /// existed when this participant joined).
    TrackPublished(RemoteDataTrack),
    /// A remote participant unpublished a data track (or left).
    TrackUnpublished {
        /// Server-assigned id of the track that went away.
        sid: DataTrackSid,
        /// Identity of the participant who had published it.
        publisher_identity: String,
        /// The track's name.
        name: String,
    },
    /// The signal connection to the server was lost; the room is resuming its session.
    /// Frames pushed meanwhile queue (and go stale after their deadline).
    Resuming {
        /// What was lost, in words.
        reason: String,
    },
    /// The session was resumed: tracks and subscriptions were kept.
    Resumed,
    /// The connection to the server was lost; the room is joining again. Frames pushed
    /// meanwhile are refused with `PushError::QueueFull`.
    Reconnecting {
        /// What was lost, in words.
        reason: String,
    },
    /// The room joined again: local tracks are published again and subscriptions renewed
    /// (remote tracks that still exist keep their `RemoteDataTrack`).
    Reconnected,
    /// The room is gone: left, or ended by the server.
    Disconnected {
        /// Why, in words.
        reason: String,
    },
}

/// The stream of [`RoomEvent`]s of one [`Room`].
pub type RoomEvents = mpsc::UnboundedReceiver<RoomEvent>;

/// One participant in a room, publishing and subscribing to data tracks.
///
/// Cloning is cheap; the room stays joined until [`Room::leave`] or the last clone is dropped.
#[derive(Clone)]
pub struct Room {
    engine: Arc<Engine>,
}

impl Room {
    /// Joins a room on a LiveKit server.
    ///
    /// Returns once the data path is open, so tracks can be published right away.
    pub async fn connect(options: ConnectOptions) -> Result<(Room, RoomEvents), RoomError> {
        let timeout = options.connect_timeout;
        let (transport, join, transport_events) =
            tokio::time::timeout(timeout, server::ServerTransport::connect(&options))
                .await
                .map_err(|_| RoomError::Timeout {
                    what: format!("joining the room at {}", options.url),
                    after: timeout,
                })??;
        let (engine, events) = Engine::start(transport, join, transport_events, options.e2ee)?;
        Ok((Room { engine }, events))
    }

    /// This participant's identity.
    pub fn identity(&self) -> &str {
        self.engine.identity()
    }

    /// The room's name.
    pub fn name(&self) -> &str {
        self.engine.room_name()
    }

    /// Publishes a data track.
    ///
    /// When the options carry a schema definition, it is stored on the server first (as a
    /// data blob keyed by the schema id), so subscribers can fetch it with
    /// [`Room::schema_definition`].
    pub async fn publish_track(&self, options: TrackOptions) -> Result<LocalTrack, RoomError> {
        self.engine.publish_track(options).await
    }

    /// Fetches the schema definition a remote track's publisher stored for its schema id.
    pub async fn schema_definition(&self, track: &RemoteDataTrack) -> Result<String, RoomError> {
        self.engine.schema_definition(track).await
    }

    /// Remote frames dropped because they could not be decrypted, by publisher and reason.
    pub fn undecryptable(&self) -> Vec<Undecryptable> {
        self.engine.undecryptable()
    }

    /// Counters of the transport below this room (frames and packets dropped, bytes moved).
    pub fn transport_stats(&self) -> TransportStats {
        self.engine.transport_stats()
    }

    /// The transport's view of the link: bytes in flight, delivery rate and round trip,
    /// updated as frames leave and are acknowledged.
    pub fn link(&self) -> tokio::sync::watch::Receiver<LinkState> {
        self.engine.link()
    }

    /// Bytes the transport may leave unacknowledged in the data channel, whose queue is first
    /// in, first out; beyond them frames wait in the transport, where small frames overtake
    /// the rest of large ones. Unlimited until set (the link scheduler sets it).
    pub fn set_send_window(&self, bytes: u64) {
        self.engine.set_send_window(bytes)
    }

    /// Unpublishes every local track and waits for the server to confirm, tells the server
    /// this participant is leaving, and closes the connection; within about 2 s even when
    /// the server does not answer.
    pub async fn leave(&self) {
        self.engine.leave().await
    }
}
