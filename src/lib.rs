//! dtbridge: robot data (ROS 2 topics, RealSense frames) on LiveKit data tracks, recorded to MCAP.
//!
//! Data flows one way: source -> route -> track -> (network) -> recorder -> MCAP.
//! This crate holds the LiveKit data track client ([`livekit`]), the benchmarks ([`bench`]) and
//! the command line ([`cli`]).

pub mod bench;
pub mod cli;
pub mod codec;
pub mod config;
pub mod daemon;
pub mod livekit;
pub mod pipeline;
pub mod source;
