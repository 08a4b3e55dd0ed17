//! Errors a room reports, each naming what to fix.

use std::time::Duration;

/// An error from joining a room, publishing, or talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    /// The connection settings are incomplete or malformed.
    #[error("invalid connection settings: {0}")]
    Config(String),

    /// The server refused the access token (wrong key or secret, expired token, wrong room).
    #[error("the server rejected the access token (HTTP {status}): {reason}")]
    Auth {
        /// HTTP status the server answered with.
        status: u16,
        /// The server's own explanation.
        reason: String,
    },

    /// The server could not be reached or the connection could not be set up.
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// The URL that was tried.
        url: String,
        /// What went wrong.
        reason: String,
    },

    /// Something did not complete in time.
    #[error("{what} timed out after {after:?}")]
    Timeout {
        /// What was being waited for.
        what: String,
        /// How long it was given.
        after: Duration,
    },

    /// The token lacks the `canPublishData` grant.
    #[error(
        "not allowed to publish data track '{track}': the access token lacks the canPublishData grant"
    )]
    NotAllowed {
        /// The track that was refused.
        track: String,
    },

    /// This participant already publishes a track with that name.
    #[error("a data track named '{track}' is already published by this participant")]
    DuplicateName {
        /// The name in use.
        track: String,
    },

    /// The track name is empty or too long.
    #[error("invalid data track name '{track}': {reason}")]
    InvalidName {
        /// The rejected name (shortened when very long).
        track: String,
        /// Why it was rejected.
        reason: String,
    },

    /// Schema metadata is inconsistent, or its definition could not be stored or fetched.
    #[error("schema '{schema}': {reason}")]
    Schema {
        /// The schema id.
        schema: String,
        /// What went wrong.
        reason: String,
    },

    /// The room is no longer connected.
    #[error("room disconnected: {0}")]
    Disconnected(String),

    /// The operating system refused a resource the room needs (a thread, a socket).
    #[error("{0}")]
    Internal(String),

    /// The server answered a request with an error not covered above.
    #[error("the server refused the request: {0}")]
    Refused(String),
}

/// Shortens a name for an error message so a 10,000-character name does not flood the log.
pub(crate) fn shorten(name: &str) -> String {
    const KEEP: usize = 40;
    if name.chars().count() <= KEEP {
        name.to_string()
    } else {
        let head: String = name.chars().take(KEEP).collect();
        format!("{head}... ({} chars)", name.chars().count())
    }
}
