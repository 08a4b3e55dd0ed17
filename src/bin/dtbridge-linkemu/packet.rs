//! Raw Ethernet frames in and out of one interface (an AF_PACKET socket), which makes the
//! emulator a layer-2 bridge: ARP, IPv4 and IPv6 all pass as they are.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Not in the libc crate yet: drop the frames this socket's interface sends (ours), so that
/// the bridge does not read back what it just forwarded (linux/if_packet.h, Linux 4.20).
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
/// Room for bursts while a forwarding thread is briefly preempted (root may exceed rmem_max).
const RECEIVE_BUFFER_BYTES: libc::c_int = 8 << 20;

/// An AF_PACKET socket bound to one interface, receiving every frame the interface receives
/// and sending frames out of it.
pub struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    /// Opens a socket on `interface` of the calling thread's network namespace.
    pub fn open(interface: &str) -> io::Result<PacketSocket> {
        let context = |what: &str, err: io::Error| {
            io::Error::new(err.kind(), format!("{what} for interface {interface}: {err}"))
        };
        let name = std::ffi::CString::new(interface)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in interface name"))?;
        // SAFETY: `name` is a valid NUL-terminated string.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if index == 0 {
            return Err(context("if_nametoindex", io::Error::last_os_error()));
        }
        // Protocol 0: no frames until bound, so none from another interface slips in.
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(context("socket(AF_PACKET)", io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let socket = PacketSocket { fd };
        socket
            .set_option(libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            .map_err(|err| context("PACKET_IGNORE_OUTGOING", err))?;
        socket
            .set_option(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, RECEIVE_BUFFER_BYTES)
            .map_err(|err| context("SO_RCVBUFFORCE", err))?;
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid starting value.
        let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        address.sll_ifindex = index as i32;
        // SAFETY: `address` is a valid sockaddr_ll of the length passed.
        let rc = unsafe {
            libc::bind(
                socket.fd.as_raw_fd(),
                (&address as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(context("bind", io::Error::last_os_error()));
        }
        Ok(socket)
    }

    fn set_option(
        &self,
        level: libc::c_int,
        name: libc::c_int,
        value: libc::c_int,
    ) -> io::Result<()> {
        // SAFETY: `value` is a valid c_int of the length passed.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    /// Blocks until a frame arrives; its length (a frame larger than `buffer` is cut short,
    /// which cannot happen with offloads off and a 64 KiB buffer).
    pub fn receive(&self, buffer: &mut [u8]) -> io::Result<usize> {
        loop {
            // SAFETY: `buffer` is valid for writes of its length.
            let n = unsafe {
                libc::recv(self.fd.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len(), 0)
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }

    /// Sends one whole frame out of the interface.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: `frame` is valid for reads of its length.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if n < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }
}
