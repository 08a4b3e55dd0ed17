//! The three network namespaces and two veth pairs the emulator sits in, made and removed
//! with iproute2's `ip` (and `ethtool` for the offloads):
//!
//! ```text
//!  <name>-bot           <name>-emu                 <name>-srv
//!  bot0 10.201.0.1 ---- emu-bot [bridge] emu-srv ---- srv0 10.201.0.2
//! ```

use anyhow::{Context, Result, bail};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::str::FromStr;

/// The robot's interface, in the robot namespace.
pub const ROBOT_INTERFACE: &str = "bot0";
/// The server's interface, in the server namespace.
pub const SERVER_INTERFACE: &str = "srv0";
/// Fixed, locally administered MAC addresses of the robot's and the server's interface, so
/// each side can know the other's without ARP.
const ROBOT_MAC: &str = "02:00:0a:c9:00:01";
const SERVER_MAC: &str = "02:00:0a:c9:00:02";
/// The emulator's end of the robot's pair.
pub const EMU_ROBOT_SIDE: &str = "emu-bot";
/// The emulator's end of the server's pair.
pub const EMU_SERVER_SIDE: &str = "emu-srv";

/// An IPv4 address with its prefix length, as `ip addr add` takes it (`10.201.0.1/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub address: Ipv4Addr,
    pub prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Cidr, String> {
        let bad = || format!("{text:?}: expected an IPv4 address with prefix, e.g. 10.201.0.1/24");
        let (address, prefix) = text.split_once('/').ok_or_else(bad)?;
        let address = address.parse().map_err(|_| bad())?;
        let prefix = prefix.parse().ok().filter(|&p| p <= 32).ok_or_else(bad)?;
        Ok(Cidr { address, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

/// A name prefix usable in namespace names: letters, digits, `_`, `.` and `-`, at most 40.
pub fn parse_name(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text.len() <= 40
        && !text.starts_with(['.', '-'])
        && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if valid {
        Ok(text.to_owned())
    } else {
        Err(format!("{text:?}: expected 1 to 40 letters, digits, '_', '.' or '-'"))
    }
}

/// The namespaces of one emulated link, named after its prefix.
#[derive(Debug, Clone)]
pub struct Namespaces {
    pub robot: String,
    pub emulator: String,
    pub server: String,
}

impl Namespaces {
    pub fn named(prefix: &str) -> Namespaces {
        Namespaces {
            robot: format!("{prefix}-bot"),
            emulator: format!("{prefix}-emu"),
            server: format!("{prefix}-srv"),
        }
    }

    fn all(&self) -> [&str; 3] {
        [&self.robot, &self.emulator, &self.server]
    }

    /// Deletes those of the namespaces that exist (their veth pairs go with them).
    pub fn delete(&self) -> Result<()> {
        for namespace in self.all() {
            if Path::new("/run/netns").join(namespace).exists() {
                ip(&["netns", "del", namespace])?;
            }
        }
        Ok(())
    }

    /// Makes the namespaces and the veth pairs, after removing stale ones of the same names;
    /// on failure removes what it made.
    pub fn create(&self, robot: Cidr, server: Cidr) -> Result<()> {
        self.delete().context("removing stale namespaces")?;
        let made = self.build(robot, server);
        if made.is_err() {
            // The build's error is the one worth reporting.
            _ = self.delete();
        }
        made
    }

    fn build(&self, robot: Cidr, server: Cidr) -> Result<()> {
        for namespace in self.all() {
            ip(&["netns", "add", namespace])?;
            ip(&["-n", namespace, "link", "set", "lo", "up"])?;
        }
        // IPv4 only: no IPv6 router solicitations, duplicate address probes or multicast
        // reports mixed into the emulated traffic, so the counters hold the traffic under test.
        for namespace in self.all() {
            for key in ["all", "default"] {
                let setting = format!("net.ipv6.conf.{key}.disable_ipv6=1");
                run(in_namespace(namespace, "sysctl", &["-qw", &setting]))?;
            }
        }
        let robot_end = End {
            namespace: &self.robot,
            interface: ROBOT_INTERFACE,
            mac: ROBOT_MAC,
            address: robot,
            emulator_side: EMU_ROBOT_SIDE,
        };
        let server_end = End {
            namespace: &self.server,
            interface: SERVER_INTERFACE,
            mac: SERVER_MAC,
            address: server,
            emulator_side: EMU_SERVER_SIDE,
        };
        let emulator = self.emulator.as_str();
        for (end, peer) in [(&robot_end, &server_end), (&server_end, &robot_end)] {
            let (namespace, outer, inner) = (end.namespace, end.interface, end.emulator_side);
            ip(&[
                "link", "add", outer, "address", end.mac, "netns", namespace, "type", "veth",
                "peer", "name", inner, "netns", emulator,
            ])?;
            ip(&["-n", namespace, "addr", "add", &end.address.to_string(), "dev", outer])?;
            // The peer's address resolved for good: a lost ARP request (the link drops frames
            // at random) would stall the first packets for a second; other addresses still
            // resolve through the bridge.
            let peer_ip = peer.address.address.to_string();
            ip(&[
                "-n",
                namespace,
                "neigh",
                "replace",
                &peer_ip,
                "lladdr",
                peer.mac,
                "dev",
                outer,
                "nud",
                "permanent",
            ])?;
            // Checksum and segmentation offloads off on every end: with them, veth passes
            // TCP super-frames up to 64 KiB and frames with unfinished checksums, which the
            // bridge could not send out of the other pair.
            for (ns, interface) in [(namespace, outer), (emulator, inner)] {
                let features =
                    ["-K", interface, "tx", "off", "tso", "off", "gso", "off", "gro", "off"];
                run(in_namespace(ns, "ethtool", &features))?;
            }
            ip(&["-n", emulator, "link", "set", inner, "up"])?;
            ip(&["-n", namespace, "link", "set", outer, "up"])?;
        }
        Ok(())
    }
}

/// One outer end of the link: the robot's or the server's interface and its emulator peer.
struct End<'a> {
    namespace: &'a str,
    interface: &'static str,
    mac: &'static str,
    address: Cidr,
    emulator_side: &'static str,
}

/// `ip ARGS`, failing with its stderr.
fn ip(args: &[&str]) -> Result<()> {
    let mut command = Command::new("ip");
    command.args(args);
    run(command)
}

/// `PROGRAM ARGS` run inside `namespace` (`ip netns exec`).
fn in_namespace(namespace: &str, program: &str, args: &[&str]) -> Command {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", namespace, program]).args(args);
    command
}

fn run(mut command: Command) -> Result<()> {
    let shown = format!("{command:?}").replace('"', "");
    let output = command.output().with_context(|| format!("cannot run `{shown}`"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("ethtool") && stderr.contains("No such file") {
            " (install the ethtool package)"
        } else {
            ""
        };
        bail!("`{shown}` failed ({}): {}{hint}", output.status, stderr.trim());
    }
    Ok(())
}

/// Runs `work` on a thread that has entered network namespace `namespace`: sockets made
/// there belong to it, whichever thread uses them later.
pub fn within<T: Send>(namespace: &str, work: impl FnOnce() -> T + Send) -> Result<T> {
    let path = Path::new("/run/netns").join(namespace);
    let handle = std::fs::File::open(&path)
        .with_context(|| format!("cannot open network namespace {}", path.display()))?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                use std::os::fd::AsRawFd;
                // SAFETY: setns on a valid namespace descriptor; only this thread moves.
                if unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    let err = std::io::Error::last_os_error();
                    bail!("cannot enter network namespace {namespace}: {err}");
                }
                Ok(work())
            })
            .join()
            .map_err(|_| anyhow::anyhow!("thread in namespace {namespace} panicked"))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_names_are_checked() {
        let cidr: Cidr = "10.201.0.1/24".parse().unwrap();
        assert_eq!(cidr.to_string(), "10.201.0.1/24");
        assert!("10.201.0.1".parse::<Cidr>().is_err());
        assert!("10.201.0.1/33".parse::<Cidr>().is_err());
        assert!(parse_name("lk-test_1").is_ok());
        assert!(parse_name("a/b").is_err());
        assert!(parse_name("-x").is_err());
    }
}
