//! Frame stamps in UNIX time (see the module documentation of [`super`]).

use realsense_rust::frame::FrameEx;
use realsense_rust::kind::{Rs2StreamKind, Rs2TimestampDomain};
use std::collections::HashMap;
use std::sync::OnceLock;

/// Per-pipeline bookkeeping of the frames seen.
pub(super) struct StreamState<'a> {
    /// The last frame number published per stream.
    pub(super) last_frame: HashMap<Rs2StreamKind, u64>,
    /// Device time (ms) and UNIX time (ns) that rebased stamps count from.
    pub(super) origin: Option<(f64, u64)>,
    /// The first origin of the session, shared by its pipelines so their stamps agree.
    pub(super) first_stamp: &'a OnceLock<(f64, u64)>,
    /// The newest device time seen (ms).
    pub(super) newest_device_ms: f64,
    /// The stamp given last (UNIX ns).
    pub(super) last_stamp_ns: u64,
}

impl StreamState<'_> {
    /// Whether `frame` was not published yet; remembers it.
    pub(super) fn is_new(&mut self, kind: Rs2StreamKind, frame: &impl FrameEx) -> bool {
        self.last_frame.insert(kind, frame.frame_number()) != Some(frame.frame_number())
    }

    /// The frame's UNIX time stamp (see the module documentation).
    pub(super) fn stamp_ns(&mut self, frame: &impl FrameEx, recording: bool) -> u64 {
        let device_ms = frame.timestamp();
        let host_clock = matches!(
            frame.timestamp_domain(),
            Rs2TimestampDomain::GlobalTime | Rs2TimestampDomain::SystemTime
        );
        if host_clock && !recording {
            return (device_ms * 1e6) as u64;
        }
        let origin = match self.origin {
            Some(origin) if device_ms >= self.newest_device_ms => origin,
            // Never before the previous stamp: playback may have run ahead of its timeline.
            Some(_) => (device_ms, crate::util::now_ns().max(self.last_stamp_ns + 1)),
            None => *self.first_stamp.get_or_init(|| (device_ms, crate::util::now_ns())),
        };
        self.origin = Some(origin);
        self.newest_device_ms = device_ms;
        let (origin_ms, origin_ns) = origin;
        self.last_stamp_ns =
            (origin_ns as i64 + ((device_ms - origin_ms) * 1e6) as i64).max(0) as u64;
        self.last_stamp_ns
    }
}
