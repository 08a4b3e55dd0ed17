//! What a remote participant announces about a track (its name, schema and encodings) and
//! stamps on its frames, as the recorder and the logs take it: printed names carry no control
//! character, encodings map to data track encodings and back, no publish time saturates.
#![no_main]

use arbitrary::Arbitrary;
use dtbridge::livekit::{
    frame_encoding, frame_encoding_name, schema_encoding, schema_encoding_name,
};
use dtbridge::recorder::TrackMeta;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    publisher: String,
    track: String,
    schema_name: Option<String>,
    schema_encoding: Option<String>,
    schema_text: Option<String>,
    frame_encoding: Option<String>,
    frames: Vec<(Vec<u8>, Option<u64>)>,
}

fuzz_target!(|input: Input| {
    for name in [&input.publisher, &input.track] {
        assert!(!dtbridge::text::printable(name).chars().any(char::is_control));
    }
    if let Some(name) = input.frame_encoding.as_deref().filter(|n| !n.is_empty()) {
        assert_eq!(frame_encoding_name(&frame_encoding(name)).as_deref(), Some(name));
    }
    if let Some(name) = input.schema_encoding.as_deref().filter(|n| !n.is_empty()) {
        assert_eq!(schema_encoding_name(&schema_encoding(name)).as_deref(), Some(name));
    }
    let meta = TrackMeta {
        publisher: input.publisher,
        track: input.track,
        schema_name: input.schema_name,
        schema_encoding: input.schema_encoding,
        schema_text: input.schema_text,
        frame_encoding: input.frame_encoding,
    };
    dtbridge_fuzz::record(meta, &input.frames);
});
