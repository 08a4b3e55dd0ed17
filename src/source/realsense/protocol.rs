//! What the camera driver process (`dtbridge-realsense`) and the bridge say to each other. The
//! bridge writes the source's configuration to the driver's stdin as one JSON document and
//! closes stdin to stop it; the driver writes [`DriverMessage`]s to its stdout, each as a
//! little-endian `u32` length and that many bytes: a tag, then its fields.
//!
//! Images cross as CDR `sensor_msgs/msg/Image` (a copy of the pixels, which a pipe carries at
//! gigabytes a second), so the bridge still chooses zstd or JPEG per route.

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

const TAG_SAMPLE: u8 = 1;
const TAG_ENDED: u8 = 2;
const TAG_FAILED: u8 = 3;
const PAYLOAD_ENCODED: u8 = 0;
const PAYLOAD_IMAGE: u8 = 1;

impl DriverMessage {
    /// Writes the message, length first.
    pub fn write_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        let mut body = Vec::new();
        match self {
            DriverMessage::Sample { topic, stamp_ns, payload } => {
                body.push(TAG_SAMPLE);
                body.extend_from_slice(&topic.to_le_bytes());
                body.extend_from_slice(&stamp_ns.to_le_bytes());
                match payload {
                    Payload::Encoded(bytes) => {
                        body.push(PAYLOAD_ENCODED);
                        body.extend_from_slice(bytes);
                    }
                    Payload::Image(image) => {
                        body.push(PAYLOAD_IMAGE);
                        cdr::write_to(image.as_ref(), &mut body).map_err(std::io::Error::other)?;
                    }
                }
            }
            DriverMessage::Ended => body.push(TAG_ENDED),
            DriverMessage::Failed { fatal, message } => {
                body.push(TAG_FAILED);
                body.push(u8::from(*fatal));
                body.extend_from_slice(message.as_bytes());
            }
        }
        out.write_all(&(body.len() as u32).to_le_bytes())?;
        out.write_all(&body)
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
        let mut body = vec![0u8; length];
        input.read_exact(&mut body).await.map_err(|err| format!("a message cut short: {err}"))?;
        Self::parse(Bytes::from(body)).map(Some)
    }

    fn parse(body: Bytes) -> Result<Self, String> {
        let short = || format!("a message of {} bytes is too short", body.len());
        let (&tag, rest) = body.split_first().ok_or_else(short)?;
        match tag {
            TAG_SAMPLE => {
                if rest.len() < 11 {
                    return Err(short());
                }
                let topic = u16::from_le_bytes([rest[0], rest[1]]);
                let stamp_ns = u64::from_le_bytes(rest[2..10].try_into().expect("8 bytes"));
                let data = body.slice(12..);
                let payload = match rest[10] {
                    PAYLOAD_ENCODED => Payload::Encoded(data),
                    PAYLOAD_IMAGE => {
                        let image: Image = cdr::from_slice(&data)
                            .map_err(|err| format!("an image that does not decode: {err}"))?;
                        Payload::Image(Arc::new(image))
                    }
                    other => return Err(format!("unknown payload kind {other}")),
                };
                Ok(DriverMessage::Sample { topic, stamp_ns, payload })
            }
            TAG_ENDED => Ok(DriverMessage::Ended),
            TAG_FAILED => {
                let (&fatal, message) = rest.split_first().ok_or_else(short)?;
                let message = String::from_utf8_lossy(message).into_owned();
                Ok(DriverMessage::Failed { fatal: fatal != 0, message })
            }
            other => Err(format!("unknown message tag {other}")),
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
        for body in [&[][..], &[TAG_SAMPLE, 1, 2][..], &[9][..], &[TAG_SAMPLE; 12][..]] {
            let mut bytes = (body.len() as u32).to_le_bytes().to_vec();
            bytes.extend_from_slice(body);
            assert!(DriverMessage::read_from(&mut bytes.as_slice()).await.is_err(), "{body:?}");
        }
        // Cut inside a message: an error, not the end of the stream.
        let mut bytes = Vec::new();
        DriverMessage::Ended.write_to(&mut bytes).unwrap();
        bytes.push(5);
        bytes.push(0);
        let mut input = bytes.as_slice();
        assert!(DriverMessage::read_from(&mut input).await.unwrap().is_some());
        assert!(DriverMessage::read_from(&mut input).await.is_err());
    }
}
