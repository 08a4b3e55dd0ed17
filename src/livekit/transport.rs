//! The boundary between a room and what carries its traffic: signal messages both ways, data
//! track packets both ways. A LiveKit server (WebSocket + WebRTC) and the in-process loopback
//! hub are the two implementations.

use super::link::{LinkMeter, LinkState};
use bytes::Bytes;
use livekit_protocol as proto;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{Notify, mpsc, watch};

/// What a transport delivers to its room.
#[derive(Debug)]
pub(crate) enum TransportEvent {
    /// A signal message from the server.
    Signal(Box<proto::signal_response::Message>),
    /// A data track packet for one of this participant's subscriptions.
    Packet(Bytes),
    /// The signal connection was lost; the transport is resuming the session. Tracks stay
    /// published and frames keep queueing; `Resumed` or `Reconnecting` follows.
    Resuming(String),
    /// The session was resumed: the server kept this participant's tracks and
    /// subscriptions.
    Resumed,
    /// The connection was lost; the transport is joining again.
    Reconnecting(String),
    /// The transport joined again, as a new session: tracks must be published again and
    /// subscriptions renewed.
    Reconnected(Box<proto::JoinResponse>),
    /// The transport is gone for good.
    Closed(String),
}

/// Receiving end of a transport's events.
pub(crate) type TransportEvents = mpsc::Receiver<TransportEvent>;

/// Capacity of a transport's event channel. Packets wait here while the room hands earlier
/// ones to the depacketizer; a full channel pushes back on the sender (SCTP or the hub).
pub(crate) const TRANSPORT_EVENT_CAPACITY: usize = 1024;

/// What a room sends through its transport.
#[async_trait::async_trait]
pub(crate) trait Transport: Send + Sync + 'static {
    /// Sends a signal message to the server.
    async fn send_signal(&self, message: proto::signal_request::Message);
    /// Queues the packets of one frame for sending, without waiting.
    fn send_frame(&self, packets: Vec<Bytes>);
    /// Counters since the transport started.
    fn counters(&self) -> &Arc<Counters>;
    /// The transport's view of the link, updated as it changes.
    fn link(&self) -> watch::Receiver<LinkState>;
    /// Bytes the transport may leave unacknowledged in SCTP's first-in-first-out queue; the
    /// rest waits in its own queue, where small frames can overtake large ones.
    fn set_send_window(&self, bytes: u64);
    /// Closes the transport; pending frames are dropped.
    async fn close(&self);
}

/// Counters of one transport, for stats lines and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Frames handed to the network.
    pub frames_sent: u64,
    /// Bytes of packets handed to the network.
    pub bytes_sent: u64,
    /// Whole frames dropped because the network was slower than the producer.
    pub frames_dropped: u64,
    /// Packets sent that SCTP gave up on: not acknowledged by the end of their lifetime. The
    /// link lost them (or their retransmissions: a cut, a queue that overflowed), but for the
    /// few whose acknowledgement it lost instead. A frame of up to 64 KB is one packet.
    /// Counted for the whole process.
    pub packets_abandoned: u64,
    /// Packets received for this participant's subscriptions.
    pub packets_received: u64,
    /// Received packets dropped because the depacketizer was not keeping up.
    pub packets_dropped: u64,
}

/// Shared counters behind [`TransportStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub frames_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub frames_dropped: AtomicU64,
    pub packets_abandoned: AtomicU64,
    pub packets_received: AtomicU64,
    pub packets_dropped: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> TransportStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TransportStats {
            frames_sent: get(&self.frames_sent),
            bytes_sent: get(&self.bytes_sent),
            frames_dropped: get(&self.frames_dropped),
            packets_abandoned: get(&self.packets_abandoned),
            packets_received: get(&self.packets_received),
            packets_dropped: get(&self.packets_dropped),
        }
    }
}

/// The transport's send queue, bounded in bytes, that drops the oldest frame when full and
/// hands out one packet at a time: first from frames with a single packet left, in the order
/// they came, then from the oldest frame.
///
/// SCTP sends what it is given first in, first out; the transport gives it only a window's
/// worth at a time (see [`super::link::LinkMeter::has_room`]) and keeps the rest here. Taking
/// the next packet from the frame closest to done lets a small frame (an IMU sample) overtake
/// the rest of a large one (a camera image) instead of waiting for all of it. The link
/// scheduler above hands over only what the link carries, so this queue stays short; its
/// bound keeps memory in check for a caller that pushes frames without pacing them. Data
/// tracks are lossy: the freshest frame is the one worth keeping, and a frame is useless
/// without all of its packets.
pub(crate) struct FrameQueue {
    frames: Mutex<(VecDeque<QueuedFrame>, usize)>,
    ready: Notify,
    max_bytes: usize,
    counters: Arc<Counters>,
    link: Arc<LinkMeter>,
}

/// The packets of one frame not yet sent.
struct QueuedFrame {
    /// The track handle of its packets: frames of one track never overtake each other.
    handle: Option<[u8; 2]>,
    packets: VecDeque<Bytes>,
    bytes: usize,
}

/// Byte offset of the 16-bit track handle in a data track packet header.
pub(crate) const PACKET_HANDLE_OFFSET: usize = 2;

/// One packet handed out by [`FrameQueue::pop_packet`].
pub(crate) struct NextPacket {
    pub packet: Bytes,
    /// Whether it was its frame's last.
    pub frame_done: bool,
}

impl FrameQueue {
    pub fn new(max_bytes: usize, counters: Arc<Counters>, link: Arc<LinkMeter>) -> Self {
        let frames = Mutex::new((VecDeque::new(), 0));
        Self { frames, ready: Notify::new(), max_bytes, counters, link }
    }

    /// Whether frames wait to be sent.
    pub fn is_empty(&self) -> bool {
        crate::util::lock(&self.frames).0.is_empty()
    }

    /// Queues a frame, dropping the oldest ones until it fits (a frame larger than the whole
    /// queue is still admitted alone).
    pub fn push(&self, packets: Vec<Bytes>) {
        let len: usize = packets.iter().map(Bytes::len).sum();
        let mut guard = crate::util::lock(&self.frames);
        let (frames, bytes) = &mut *guard;
        let mut discarded = 0;
        while *bytes + len > self.max_bytes {
            let Some(old) = frames.pop_front() else { break };
            *bytes -= old.bytes;
            discarded += old.bytes;
            Counters::add(&self.counters.frames_dropped, 1);
        }
        let handle = packets.first().and_then(|packet| {
            packet.get(PACKET_HANDLE_OFFSET..PACKET_HANDLE_OFFSET + 2)?.try_into().ok()
        });
        frames.push_back(QueuedFrame { handle, packets: packets.into(), bytes: len });
        *bytes += len;
        drop(guard);
        self.link.update(|link| {
            link.on_frame_taken(len as u64, std::time::Instant::now());
            link.on_frame_discarded(discarded as u64);
        });
        self.ready.notify_one();
    }

    /// Drops every queued frame, counted: after a lost connection their packets carry track
    /// handles the next session does not know, and sending them would only delay the frames
    /// of the tracks published again.
    pub fn discard_all(&self) {
        let (frames, bytes) = std::mem::take(&mut *crate::util::lock(&self.frames));
        Counters::add(&self.counters.frames_dropped, frames.len() as u64);
        self.link.update(|link| link.on_frame_discarded(bytes as u64));
    }

    /// Waits for the next packet: that of the oldest frame with a single packet left and no
    /// earlier frame of its track queued, else the next of the oldest frame.
    pub async fn pop_packet(&self) -> NextPacket {
        loop {
            {
                let mut guard = crate::util::lock(&self.frames);
                let (frames, bytes) = &mut *guard;
                let next = (0..frames.len()).find(|&index| {
                    frames[index].packets.len() == 1
                        && frames
                            .iter()
                            .take(index)
                            .all(|earlier| earlier.handle != frames[index].handle)
                });
                if let Some(index) = next.or((!frames.is_empty()).then_some(0)) {
                    let frame = &mut frames[index];
                    let packet = frame.packets.pop_front().unwrap_or_default();
                    frame.bytes -= packet.len();
                    *bytes -= packet.len();
                    let frame_done = frame.packets.is_empty();
                    if frame_done {
                        frames.remove(index);
                    }
                    return NextPacket { packet, frame_done };
                }
            }
            self.ready.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_small_frame_overtakes_the_rest_of_a_large_one() {
        let counters = Arc::new(Counters::default());
        let queue = FrameQueue::new(1_000_000, counters, Arc::new(LinkMeter::new()));
        queue.push(track_frame(1, &[16_000, 16_000, 16_000]));
        let first = queue.pop_packet().await;
        assert!(!first.frame_done);
        queue.push(track_frame(2, &[400]));
        let next = queue.pop_packet().await;
        assert_eq!((next.packet.len(), next.frame_done), (400, true));
        assert_eq!(queue.pop_packet().await.packet.len(), 16_000);
        assert!(queue.pop_packet().await.frame_done);
    }

    #[tokio::test]
    async fn small_frames_leave_in_the_order_they_came() {
        let counters = Arc::new(Counters::default());
        let queue = FrameQueue::new(1_000_000, counters, Arc::new(LinkMeter::new()));
        queue.push(track_frame(1, &[724]));
        for _ in 0..5 {
            queue.push(track_frame(2, &[340]));
        }
        assert_eq!(queue.pop_packet().await.packet.len(), 724);
    }

    #[tokio::test]
    async fn frames_of_one_track_never_overtake_each_other() {
        let counters = Arc::new(Counters::default());
        let queue = FrameQueue::new(1_000_000, counters, Arc::new(LinkMeter::new()));
        queue.push(track_frame(1, &[16_000, 16_000]));
        queue.push(track_frame(1, &[300]));
        assert_eq!(queue.pop_packet().await.packet.len(), 16_000);
        assert_eq!(queue.pop_packet().await.packet.len(), 16_000);
        assert_eq!(queue.pop_packet().await.packet.len(), 300);
    }

    fn frame(sizes: &[usize]) -> Vec<Bytes> {
        track_frame(0, sizes)
    }

    /// A frame of track `handle` with packets of `sizes` bytes (at least 4).
    fn track_frame(handle: u8, sizes: &[usize]) -> Vec<Bytes> {
        sizes
            .iter()
            .map(|&n| {
                let mut packet = vec![0u8; n];
                packet[PACKET_HANDLE_OFFSET + 1] = handle;
                Bytes::from(packet)
            })
            .collect()
    }

    #[tokio::test]
    async fn drops_oldest_whole_frames_when_full() {
        let counters = Arc::new(Counters::default());
        let queue = FrameQueue::new(100, counters.clone(), Arc::new(LinkMeter::new()));
        queue.push(frame(&[30, 30]));
        queue.push(frame(&[10]));
        queue.push(frame(&[50])); // 60 + 10 + 50 > 100: the first frame goes
        assert_eq!(counters.snapshot().frames_dropped, 1);
        assert_eq!(queue.pop_packet().await.packet.len(), 10);
        assert_eq!(queue.pop_packet().await.packet.len(), 50);
        assert!(queue.is_empty());
    }

    #[tokio::test]
    async fn discards_everything_counted() {
        let counters = Arc::new(Counters::default());
        let queue = FrameQueue::new(100, counters.clone(), Arc::new(LinkMeter::new()));
        queue.push(frame(&[30, 30]));
        queue.push(frame(&[10]));
        queue.discard_all();
        assert!(queue.is_empty());
        assert_eq!(counters.snapshot().frames_dropped, 2);
        queue.push(frame(&[5]));
        assert_eq!(queue.pop_packet().await.packet.len(), 5);
    }

    #[tokio::test]
    async fn admits_a_frame_larger_than_the_queue_alone() {
        let counters = Arc::new(Counters::default());
        let queue = FrameQueue::new(10, counters.clone(), Arc::new(LinkMeter::new()));
        queue.push(frame(&[5]));
        queue.push(frame(&[40]));
        assert_eq!(counters.snapshot().frames_dropped, 1);
        assert_eq!(queue.pop_packet().await.packet.len(), 40);
    }
}
