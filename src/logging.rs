//! Log output of dtbridge's programs: to stderr, colour only for a terminal, `RUST_LOG`
//! honoured, and what must never be logged filtered out whatever it says.

/// Installs the process's log subscriber.
pub fn init() {
    // The ICE gatherer logs an error per unresolvable STUN server and connection (an offline
    // robot, livekit-server's default public STUN servers); the transport says it once. The
    // data track core logs an error per frame it cannot decrypt (every frame, with a wrong
    // key); the decryptor says it once per publisher and counts the rest.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "dtbridge=info,warn,webrtc::peer_connection::transport::stun_gatherer=off,\
             livekit_datatrack::remote::pipeline=off",
        )
    });
    // The WebSocket client logs its handshake request whole at trace, the access token in its
    // `Authorization` header with it: that line never shows, whatever RUST_LOG says.
    let without_token = tracing_subscriber::filter::filter_fn(|metadata| {
        !(metadata.target() == "tungstenite::handshake::client"
            && *metadata.level() == tracing::Level::TRACE)
    });
    // Colour codes only for a terminal: in files and journals they are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    use tracing_subscriber::prelude::*;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(ansi)
                .with_filter(filter)
                .with_filter(without_token),
        )
        .init();
}
