//! dtbridge: robot data (ROS 2 topics, RealSense frames) on LiveKit data tracks, recorded to MCAP.
//!
//! Data flows one way: [`source`] -> [`pipeline`] (route: rate limit, encode, compress) ->
//! track ([`livekit`]) -> (network) -> recorder -> MCAP. [`config`] reads the TOML file,
//! [`codec`] holds the ROS 2 messages and compression, [`daemon`] runs `dtbridge run`. The
//! command line, the demo and the benchmarks are the `dtbridge` binary's (`src/main.rs`).

pub mod codec;
pub mod config;
pub mod daemon;
pub mod duration;
pub mod livekit;
pub mod logging;
mod mcap_record;
pub mod pipeline;
pub mod record;
pub mod recorder;
pub mod scheduler;
pub mod source;
pub mod text;
pub mod topic;
pub mod util;
pub mod view;

/// Entry points for the fuzz targets under `fuzz/` into what is not public otherwise;
/// `cargo fuzz` builds every crate with `--cfg fuzzing`.
#[cfg(fuzzing)]
pub mod fuzzing {
    /// Seals `file` as the recorder seals its own file after a write error, when nothing was
    /// registered in it; returns how many messages the sealed file holds.
    pub fn seal(file: &std::fs::File) -> std::io::Result<u64> {
        let registered = crate::recorder::seal::Registered::default();
        Ok(crate::recorder::seal::seal(file, &registered)?.messages)
    }
}
