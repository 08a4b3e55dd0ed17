//! Turning a sample into a frame: serialize raw images, re-encode images, compress.

use super::plan::TrackPlan;
use crate::codec::image::compress_image;
use crate::codec::ros::Image;
use crate::codec::{CodecError, RosMessage, compress::ZstdCompressor};
use crate::source::{Payload, Sample};
use bytes::Bytes;

/// Per-track encoder state (the zstd context is reused from frame to frame).
pub struct Encoder {
    plan: TrackPlan,
    zstd: Option<ZstdCompressor>,
}

impl Encoder {
    /// An encoder for a planned track.
    pub fn new(plan: TrackPlan) -> Result<Encoder, CodecError> {
        let zstd = plan.zstd_level.map(ZstdCompressor::new).transpose()?;
        Ok(Encoder { plan, zstd })
    }

    /// The frame for `sample`. Raw image data is copied once, into the serialized message;
    /// passed-through bytes are not copied unless compressed.
    pub fn encode(&mut self, sample: &Sample) -> Result<Bytes, CodecError> {
        let message: Bytes = match (&sample.payload, self.plan.image) {
            (Payload::Image(image), None) => image.try_to_cdr()?.into(),
            (Payload::Image(image), Some(codec)) => {
                compress_image(image, codec)?.try_to_cdr()?.into()
            }
            (Payload::Encoded(bytes), None) => bytes.clone(),
            (Payload::Encoded(bytes), Some(codec)) => {
                compress_image(&Image::from_cdr(bytes)?, codec)?.try_to_cdr()?.into()
            }
        };
        match &mut self.zstd {
            Some(zstd) => Ok(zstd.compress(&message)?.into()),
            None => Ok(message),
        }
    }
}

/// The size of a sample as it arrived, for the "before compression" rate.
pub fn sample_len(sample: &Sample) -> usize {
    match &sample.payload {
        Payload::Encoded(bytes) => bytes.len(),
        Payload::Image(image) => image.data.len(),
    }
}
