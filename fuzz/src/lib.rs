//! What the fuzz targets share: recording frames of one track and reading the file back.

use dtbridge::recorder::{Recorder, RecorderConfig, TrackMeta};
use std::path::PathBuf;

/// A directory of this process's own, emptied for each input.
fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dtbridge-fuzz-{}", std::process::id()));
    _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// Records `frames` (payload and raw user timestamp) of a track announced as `meta`, then
/// checks that the file reads back whole, with no publish time past 2262 (signed 64-bit
/// nanoseconds: a saturated conversion would give `u64::MAX`). Whatever the
/// input, recording must neither panic nor fail: bad frames are counted and dropped.
pub fn record(meta: TrackMeta, frames: &[(Vec<u8>, Option<u64>)]) {
    let dir = scratch_dir();
    let mut recorder =
        Recorder::open(RecorderConfig::new(&dir, "room", "fuzz")).expect("the recorder opens");
    let track = recorder.add_track(meta);
    for (i, (payload, user_timestamp)) in frames.iter().enumerate() {
        let publish = user_timestamp.and_then(|raw| dtbridge::livekit::user_timestamp_ns(raw).0);
        recorder.write(track, payload, 1_000 + i as u64, publish).expect("the frame is written");
    }
    recorder.finish().expect("the recording is finished");
    for entry in std::fs::read_dir(&dir).expect("the scratch directory") {
        let bytes = std::fs::read(entry.expect("an entry").path()).expect("the recording");
        for message in mcap::MessageStream::new(&bytes).expect("an MCAP file") {
            let message = message.expect("a readable message");
            assert!(message.publish_time <= i64::MAX as u64, "{}", message.publish_time);
        }
    }
}
