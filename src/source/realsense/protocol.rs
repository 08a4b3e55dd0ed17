//! What the camera driver process (`dtbridge-realsense`) and the bridge say to each other. The
//! bridge writes the source's configuration to the driver's stdin as one JSON document and
//! closes stdin to stop it; the driver writes [`DriverMessage`]s to its stdout, each as a
//! little-endian `u32` length and that many bytes: the message's bulk (an image's pixels, a
//! serialized sample, a failure's text), then its fields, then a fixed [`TRAILER_BYTES`]-byte
//! trailer (kind, topic, stamp, and the length of the fields).
//!
//! Pixels go first and whole so that neither side copies them: the driver writes them from
//! the frame's buffer, and the bridge reads the message into one buffer that, cut after the
//! pixels, is the image's data. Images cross as `sensor_msgs/msg/Image` (the fields as CDR), so
//! the bridge still chooses zstd or JPEG per route.

use crate::codec::cdr;
use crate::codec::ros::Image;
use crate::source::Payload;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::RealsenseConfig;

/// Largest message accepted: an 8192 x 8192 RGB image (the largest the configuration allows)
/// and its header. A longer length is a corrupt stream, not a frame.
pub const MAX_MESSAGE_BYTES: usize = 8192 * 8192 * 3 + 64 * 1024;

/// What the driver is asked to do: stream this source's camera or recording.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DriverRequest {
    /// The source's configuration.
    pub config: RealsenseConfig,
    /// Its recording, resolved against the configuration's directory.
    pub file: Option<PathBuf>,
}

/// One message from the driver.
#[derive(Debug, Clone)]
pub enum DriverMessage {
    /// A sample of the topic at this index of the source's topic list
    /// (`RealsenseConfig::outputs().topics()`), stamped `stamp_ns`.
    Sample { topic: u16, stamp_ns: u64, payload: Payload },
    /// The recording ended; nothing more comes.
    Ended,
    /// The camera or recording failed: worth another try unless `fatal`.
    Failed { fatal: bool, message: String },
}

const KIND_ENCODED: u8 = 1;
const KIND_IMAGE: u8 = 2;
const KIND_ENDED: u8 = 3;
const KIND_FAILED: u8 = 4;
const KIND_FATAL: u8 = 5;
/// The trailer: kind (1 byte), topic (2), stamp (8), length of the fields before it (4).
pub const TRAILER_BYTES: usize = 15;

impl DriverMessage {
    /// Writes the message, length first.
    pub fn write_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        let (kind, topic, stamp_ns, bulk, fields): (u8, u16, u64, &[u8], Vec<u8>) = match self {
            DriverMessage::Sample { topic, stamp_ns, payload: Payload::Encoded(bytes) } => {
                (KIND_ENCODED, *topic, *stamp_ns, bytes, Vec::new())
            }
            DriverMessage::Sample { topic, stamp_ns, payload: Payload::Image(image) } => {
                let header = Image {
                    header: image.header.clone(),
                    height: image.height,
                    width: image.width,
                    encoding: image.encoding.clone(),
                    is_bigendian: image.is_bigendian,
                    step: image.step,
                    data: Vec::new(),
                };
                let fields = cdr::to_vec(&header).map_err(std::io::Error::other)?;
                (KIND_IMAGE, *topic, *stamp_ns, &image.data, fields)
            }
            DriverMessage::Ended => (KIND_ENDED, 0, 0, &[], Vec::new()),
            DriverMessage::Failed { fatal, message } => {
                let kind = if *fatal { KIND_FATAL } else { KIND_FAILED };
                (kind, 0, 0, message.as_bytes(), Vec::new())
            }
        };
        let length = bulk.len() + fields.len() + TRAILER_BYTES;
        let length = u32::try_from(length).map_err(std::io::Error::other)?;
        let mut trailer = [0u8; TRAILER_BYTES];
        trailer[0] = kind;
        trailer[1..3].copy_from_slice(&topic.to_le_bytes());
        trailer[3..11].copy_from_slice(&stamp_ns.to_le_bytes());
        trailer[11..15].copy_from_slice(&(fields.len() as u32).to_le_bytes());
        out.write_all(&length.to_le_bytes())?;
        out.write_all(bulk)?;
        out.write_all(&fields)?;
        out.write_all(&trailer)
    }

    /// Reads the next message; `Ok(None)` at the end of the stream between messages.
    pub async fn read_from(input: &mut (impl AsyncRead + Unpin)) -> Result<Option<Self>, String> {
        let mut length = [0u8; 4];
        // The stream may end before a message, not inside one.
        if input.read(&mut length[..1]).await.map_err(|err| err.to_string())? == 0 {
            return Ok(None);
        }
        input
            .read_exact(&mut length[1..])
            .await
            .map_err(|err| format!("a message cut short: {err}"))?;
        let length = u32::from_le_bytes(length) as usize;
        if length > MAX_MESSAGE_BYTES {
            return Err(format!("a message of {length} bytes (at most {MAX_MESSAGE_BYTES})"));
        }
        if length < TRAILER_BYTES {
            return Err(format!("a message of {length} bytes is too short"));
        }
        // Read into spare capacity: no zeroing of what the pipe overwrites anyway.
        let mut body = Vec::with_capacity(length);
        let read = input
            .take(length as u64)
            .read_to_end(&mut body)
            .await
            .map_err(|err| format!("a message cut short: {err}"))?;
        if read < length {
            return Err(format!("a message cut short: {read} of {length} bytes"));
        }
        Self::parse(body).map(Some)
    }

    fn parse(mut body: Vec<u8>) -> Result<Self, String> {
        let trailer = body.split_off(body.len() - TRAILER_BYTES);
        let kind = trailer[0];
        let topic = u16::from_le_bytes([trailer[1], trailer[2]]);
        let stamp_ns = u64::from_le_bytes(trailer[3..11].try_into().expect("8 bytes"));
        let fields_len = u32::from_le_bytes(trailer[11..15].try_into().expect("4 bytes")) as usize;
        let Some(bulk_len) = body.len().checked_sub(fields_len) else {
            return Err(format!("fields of {fields_len} bytes in a message of {}", body.len()));
        };
        let fields = body.split_off(bulk_len);
        let text = |bulk: Vec<u8>| String::from_utf8_lossy(&bulk).into_owned();
        match kind {
            KIND_ENCODED => {
                let payload = Payload::Encoded(Bytes::from(body));
                Ok(DriverMessage::Sample { topic, stamp_ns, payload })
            }
            KIND_IMAGE => {
                let header: Image = cdr::from_slice(&fields)
                    .map_err(|err| format!("an image that does not decode: {err}"))?;
                let payload = Payload::Image(Arc::new(Image { data: body, ..header }));
                Ok(DriverMessage::Sample { topic, stamp_ns, payload })
            }
            KIND_ENDED => Ok(DriverMessage::Ended),
            KIND_FAILED | KIND_FATAL => {
                Ok(DriverMessage::Failed { fatal: kind == KIND_FATAL, message: text(body) })
            }
            other => Err(format!("unknown message kind {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::header;

    async fn round_trip(message: &DriverMessage) -> DriverMessage {
        let mut bytes = Vec::new();
        message.write_to(&mut bytes).unwrap();
        let mut input = bytes.as_slice();
        let read = DriverMessage::read_from(&mut input).await.unwrap().unwrap();
        assert!(DriverMessage::read_from(&mut input).await.unwrap().is_none());
        read
    }

    #[tokio::test]
    async fn every_message_reads_back_as_written() {
        let image = Image {
            header: header(1_700_000_000_123_456_789, "camera_color_optical_frame"),
            height: 2,
            width: 3,
            encoding: "rgb8".into(),
            is_bigendian: 0,
            step: 9,
            data: (0..18).collect(),
        };
        let sample = DriverMessage::Sample {
            topic: 4,
            stamp_ns: 1_700_000_000_123_456_789,
            payload: Payload::Image(Arc::new(image.clone())),
        };
        let DriverMessage::Sample { topic, stamp_ns, payload: Payload::Image(read) } =
            round_trip(&sample).await
        else {
            panic!("not an image sample");
        };
        assert_eq!((topic, stamp_ns), (4, 1_700_000_000_123_456_789));
        assert_eq!(*read, image);
        let encoded = DriverMessage::Sample {
            topic: 1,
            stamp_ns: 7,
            payload: Payload::Encoded(Bytes::from_static(b"\x00\x01cdr")),
        };
        let DriverMessage::Sample { payload: Payload::Encoded(bytes), .. } =
            round_trip(&encoded).await
        else {
            panic!("not an encoded sample");
        };
        assert_eq!(&bytes[..], b"\x00\x01cdr");
        assert!(matches!(round_trip(&DriverMessage::Ended).await, DriverMessage::Ended));
        let failed = DriverMessage::Failed { fatal: true, message: "no such file".into() };
        let DriverMessage::Failed { fatal, message } = round_trip(&failed).await else {
            panic!("not a failure");
        };
        assert!(fatal);
        assert_eq!(message, "no such file");
    }

    #[tokio::test]
    async fn a_corrupt_stream_is_an_error_not_an_allocation_or_a_panic() {
        let huge = (u32::MAX).to_le_bytes();
        assert!(DriverMessage::read_from(&mut &huge[..]).await.unwrap_err().contains("at most"));
        let trailer = |kind: u8, fields_len: u32| {
            let mut trailer = vec![kind, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            trailer.extend_from_slice(&fields_len.to_le_bytes());
            trailer
        };
        let too_short = vec![KIND_ENDED; TRAILER_BYTES - 1];
        for body in [too_short, trailer(9, 0), trailer(KIND_ENCODED, 1), trailer(KIND_IMAGE, 0)] {
            let mut bytes = (body.len() as u32).to_le_bytes().to_vec();
            bytes.extend_from_slice(&body);
            assert!(DriverMessage::read_from(&mut bytes.as_slice()).await.is_err(), "{body:?}");
        }
        // Cut inside a message: an error, not the end of the stream.
        let mut bytes = Vec::new();
        DriverMessage::Ended.write_to(&mut bytes).unwrap();
        bytes.extend_from_slice(&[40, 0, 0, 0, 1, 2]);
        let mut input = bytes.as_slice();
        assert!(DriverMessage::read_from(&mut input).await.unwrap().is_some());
        assert!(DriverMessage::read_from(&mut input).await.unwrap_err().contains("cut short"));
    }
}
