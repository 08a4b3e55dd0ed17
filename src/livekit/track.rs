//! Local tracks: what to publish and how frames are pushed.

use super::error::shorten;
use super::{DataTrackFrameEncoding, DataTrackInfo, DataTrackSchemaId, RoomError};
use bytes::Bytes;
use livekit_datatrack::api::{DataTrackFrame, LocalDataTrack, PushFrameErrorReason};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Longest track name the server accepts, in characters.
pub const MAX_TRACK_NAME_CHARS: usize = 256;

/// Largest frame payload a subscriber can reassemble, in bytes.
///
/// `livekit-datatrack` cuts frames into packets of at most [`PACKET_BYTES`], 24 of which are
/// the packet header with the user timestamp extension, and every LiveKit receiver keeps at
/// most 128 packets per frame; a larger frame would be sent and silently dropped at every
/// subscriber.
pub const MAX_FRAME_BYTES: usize = 128 * (PACKET_BYTES - PACKET_OVERHEAD);

/// Largest data track packet `livekit-datatrack` writes, header included: 65,535 in dtbridge's
/// copy of it, so that frames up to 64 KB travel as one packet SCTP can retransmit
/// (vendor/livekit-datatrack/PATCHES.md).
pub(crate) const PACKET_BYTES: usize = 65_535;
/// Header bytes of a data track packet carrying the user timestamp extension.
const PACKET_OVERHEAD: usize = 24;

/// Bytes a frame of `payload_len` bytes takes on the data channel once cut into packets.
pub fn wire_len(payload_len: usize) -> usize {
    let packets = payload_len.div_ceil(PACKET_BYTES - PACKET_OVERHEAD).max(1);
    payload_len + packets * PACKET_OVERHEAD
}

/// What to publish: a name and, for typed tracks, the frame encoding and schema.
#[derive(Debug, Clone)]
pub struct TrackOptions {
    /// Track name, unique per publisher, 1 to [`MAX_TRACK_NAME_CHARS`] characters.
    pub name: String,
    /// How frames are encoded (e.g. CDR), if the track is typed.
    pub frame_encoding: Option<DataTrackFrameEncoding>,
    /// The schema id (e.g. `sensor_msgs/msg/Image` in `ros2msg`), if the track is typed.
    pub schema: Option<DataTrackSchemaId>,
    /// The schema's definition text, stored on the server for subscribers to fetch.
    pub schema_definition: Option<String>,
}

impl TrackOptions {
    /// An untyped track: frames are opaque bytes.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), frame_encoding: None, schema: None, schema_definition: None }
    }

    /// Sets the frame encoding.
    pub fn with_frame_encoding(mut self, encoding: DataTrackFrameEncoding) -> Self {
        self.frame_encoding = Some(encoding);
        self
    }

    /// Sets the schema id and the definition text stored for it.
    pub fn with_schema(mut self, id: DataTrackSchemaId, definition: impl Into<String>) -> Self {
        self.schema = Some(id);
        self.schema_definition = Some(definition.into());
        self
    }

    /// Checks the name before anything is sent: the server would refuse it anyway, but
    /// without saying which limit was hit.
    pub(crate) fn validate_name(&self) -> Result<(), RoomError> {
        let chars = self.name.chars().count();
        let reason = if chars == 0 {
            "a track name must not be empty".to_string()
        } else if chars > MAX_TRACK_NAME_CHARS {
            format!("it has {chars} characters, at most {MAX_TRACK_NAME_CHARS} are allowed")
        } else {
            return Ok(());
        };
        Err(RoomError::InvalidName { track: shorten(&self.name), reason })
    }

    pub(crate) fn to_datatrack_options(&self) -> livekit_datatrack::api::DataTrackOptions {
        let mut options = livekit_datatrack::api::DataTrackOptions::new(self.name.clone());
        if let Some(encoding) = &self.frame_encoding {
            options = options.with_frame_encoding(encoding.clone());
        }
        if let Some(schema) = &self.schema {
            options = options.with_schema(schema.clone());
        }
        options
    }
}

/// Why a frame was not accepted by [`LocalTrack::try_push`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The frame is larger than [`MAX_FRAME_BYTES`].
    #[error("frame of {len} bytes exceeds the data track limit of {max} bytes")]
    TooLarge {
        /// Payload size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The track's send queue is full, or the room is reconnecting and the track is not
    /// published again yet; the frame was not queued (the caller decides whether to drop it
    /// or retry later).
    #[error("the track's send queue is full")]
    QueueFull,
    /// The track is no longer published.
    #[error("the track is no longer published")]
    Unpublished,
}

/// A data track published by this participant.
#[derive(Debug, Clone)]
pub struct LocalTrack {
    track: LocalDataTrack,
    /// False while the room has no session that knows this track (reconnecting, until the
    /// track is republished): a frame accepted then would be sent where nobody forwards it.
    online: Arc<AtomicBool>,
}

impl LocalTrack {
    pub(crate) fn new(track: LocalDataTrack, online: Arc<AtomicBool>) -> Self {
        Self { track, online }
    }

    /// Name, sid, encoding and schema of the track.
    pub fn info(&self) -> &DataTrackInfo {
        self.track.info()
    }

    /// Queues a frame without waiting. `user_timestamp_ms` is by convention the sample's
    /// time as UNIX milliseconds.
    pub fn try_push(
        &self,
        payload: impl Into<Bytes>,
        user_timestamp_ms: Option<u64>,
    ) -> Result<(), PushError> {
        let payload = payload.into();
        if payload.len() > MAX_FRAME_BYTES {
            return Err(PushError::TooLarge { len: payload.len(), max: MAX_FRAME_BYTES });
        }
        if !self.online.load(Ordering::Acquire) {
            return Err(PushError::QueueFull);
        }
        let mut frame = DataTrackFrame::new(payload);
        if let Some(ts) = user_timestamp_ms {
            frame = frame.with_user_timestamp(ts);
        }
        self.track.try_push(frame).map_err(|err| match err.reason() {
            PushFrameErrorReason::QueueFull => PushError::QueueFull,
            PushFrameErrorReason::TrackUnpublished => PushError::Unpublished,
        })
    }

    /// Counts into `counter` this track's packets that the network lost: sent, and given up
    /// on by SCTP when not acknowledged within their lifetime (never, in process).
    pub fn count_lost_packets(&self, counter: Arc<AtomicU64>) {
        super::abandoned::count_for(self.info().pub_handle(), counter);
    }

    /// Whether the track is still published.
    pub fn is_published(&self) -> bool {
        self.track.is_published()
    }

    /// Unpublishes the track; subscribers see it go away.
    pub fn unpublish(&self) {
        self.track.unpublish()
    }
}
