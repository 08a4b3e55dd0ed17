//! Whose packets SCTP gave up on. rtc-sctp tells the process, not the association, the first
//! bytes of every message it abandons (`vendor/rtc-sctp/PATCHES.md`, item 5); a data track
//! packet's header carries its track handle in bytes 2 and 3 (`docs/wire.md`), and a local
//! track registers a counter under its handle. Process-wide like rtc-sctp's counts: tracks of
//! two rooms in one process that publish under the same handle share the last registered
//! counter (dtbridge publishes from one room per process).

use super::transport::PACKET_HANDLE_OFFSET;
use crate::util::lock;
use std::{
    collections::HashMap,
    sync::{
        Arc, LazyLock, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

/// Where the packets of each publisher handle that SCTP gives up on are counted.
static COUNTERS: LazyLock<Mutex<HashMap<u16, Arc<AtomicU64>>>> = LazyLock::new(Default::default);

/// Counts into `counter` the packets published under `handle` that SCTP gives up on, from now
/// on (replacing a counter registered before for the handle).
pub(crate) fn count_for(handle: u16, counter: Arc<AtomicU64>) {
    // Returns false once the observer is set: it is this function, set by the first call.
    rtc_sctp::set_abandoned_message_observer(on_abandoned);
    lock(&COUNTERS).insert(handle, counter);
}

/// Called by rtc-sctp, on the thread that drives the association, for every message it
/// abandons.
fn on_abandoned(head: &[u8]) {
    let Some(&[high, low]) = head.get(PACKET_HANDLE_OFFSET..PACKET_HANDLE_OFFSET + 2) else {
        return;
    };
    if let Some(counter) = lock(&COUNTERS).get(&u16::from_be_bytes([high, low])) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_given_up_on_counts_for_its_track() {
        let (mine, other) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        count_for(0x7101, mine.clone());
        count_for(0x7102, other.clone());
        on_abandoned(&[0x18, 0x00, 0x71, 0x01]);
        on_abandoned(&[0x18, 0x00, 0x71, 0x01]);
        on_abandoned(&[0x18, 0x00, 0x71, 0x03]);
        on_abandoned(&[0x18]);
        assert_eq!((mine.load(Ordering::Relaxed), other.load(Ordering::Relaxed)), (2, 0));
    }
}
