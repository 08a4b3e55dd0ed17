//! The monotonic clock in nanoseconds, sleeping until an absolute time, and real-time
//! scheduling so that a loaded machine does not stretch the emulated delays.

use std::io;

/// `CLOCK_MONOTONIC` in nanoseconds (the clock `std::time::Instant` uses on Linux).
pub fn now_ns() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid timespec to write; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// Sleeps until `CLOCK_MONOTONIC` reaches `deadline_ns`. An absolute deadline does not drift
/// when the thread wakes late or is interrupted.
pub fn sleep_until_ns(deadline_ns: u64) {
    let deadline = libc::timespec {
        tv_sec: (deadline_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (deadline_ns % 1_000_000_000) as libc::c_long,
    };
    // Bounded: each EINTR retry is a delivered signal, and the deadline does not move.
    for _ in 0..1000 {
        // SAFETY: `deadline` is a valid timespec; a null remainder is allowed with
        // TIMER_ABSTIME.
        let rc = unsafe {
            libc::clock_nanosleep(
                libc::CLOCK_MONOTONIC,
                libc::TIMER_ABSTIME,
                &deadline,
                std::ptr::null_mut(),
            )
        };
        if rc != libc::EINTR {
            return;
        }
    }
}

/// The SCHED_FIFO priority the emulator asks for: above every normal thread (the daemon,
/// the tests, CPU hogs), low among real-time ones so kernel threads still come first.
const FIFO_PRIORITY: i32 = 20;

/// Puts the calling thread (and the threads it starts afterwards) on SCHED_FIFO and makes
/// its timer slack minimal. Returns how the process is scheduled, for the log and the ready
/// line; a refusal (no CAP_SYS_NICE, a container without real-time budget) is reported
/// there, and the emulator still runs.
pub fn enable_realtime() -> String {
    // Timer slack would let the kernel postpone wake-ups by 50 µs by default; it matters
    // only if real-time scheduling is refused (real-time threads have no slack).
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
    let param = libc::sched_param { sched_priority: FIFO_PRIORITY };
    // SAFETY: `param` is a valid sched_param; pid 0 is the calling thread.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } == 0 {
        format!("SCHED_FIFO priority {FIFO_PRIORITY}")
    } else {
        let why = io::Error::last_os_error();
        format!("SCHED_OTHER (SCHED_FIFO refused: {why}; delays may stretch under load)")
    }
}
