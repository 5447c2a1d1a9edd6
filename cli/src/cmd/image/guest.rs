//! `confide` as the node image's `/init` (PID 1): docs/image.md.
//!
//! The image holds no shell and no other program, so the node binary sets up the little
//! the kernel leaves undone before it serves: kernel file systems, the modules of the
//! virtual network card, one static IPv4 address, a read-only root. What it does comes
//! from `/etc/confide/guest.toml` inside the initrd, which the launch measurement
//! covers; nothing comes from the host (the kernel command line only selects the init).
//! Then it runs `confide node serve` with the arguments that file lists, and when the
//! node stops, for whatever reason, the guest powers off: PID 1 must never exit.

use std::ffi::CStr;
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rustix::mount::{MountFlags, mount, mount_remount};
use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketType};
use serde::Deserialize;

use super::netlink::{self, Ack};

/// Where the guest's configuration sits in the initrd.
pub const CONFIG: &str = "/etc/confide/guest.toml";
/// Where kernel modules sit in the initrd.
pub const MODULES: &str = "/lib/modules";

/// `/etc/confide/guest.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestConfig {
    /// Kernel modules to load, in order (file names in `/lib/modules`).
    #[serde(default)]
    pub modules: Vec<String>,
    /// The network interface to configure.
    pub network: Network,
    /// The node's arguments, after `confide node serve`.
    pub node: NodeArgs,
}

/// One interface, one static address.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Interface name, such as `eth0`.
    pub interface: String,
    /// IPv4 address and prefix length, such as `10.0.2.15/24`.
    pub address: String,
    /// Default gateway, if the node must reach beyond its subnet.
    pub gateway: Option<Ipv4Addr>,
}

/// The node's command line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeArgs {
    /// Arguments after `confide node serve`.
    pub args: Vec<String>,
}

impl GuestConfig {
    /// Parses and checks a configuration.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let c: Self = toml::from_str(text).context("guest configuration")?;
        parse_cidr(&c.network.address)?;
        for m in &c.modules {
            if m.contains('/') || !m.ends_with(".ko") {
                bail!("module {m:?}: give a .ko file name in {MODULES}");
            }
        }
        Ok(c)
    }

    /// `confide node serve ARGS…` as an argument vector.
    pub fn argv(&self) -> Vec<String> {
        ["confide", "node", "serve"]
            .into_iter()
            .map(str::to_owned)
            .chain(self.node.args.iter().cloned())
            .collect()
    }
}

/// `A.B.C.D/N`.
pub fn parse_cidr(s: &str) -> anyhow::Result<(Ipv4Addr, u8)> {
    let (a, p) = s
        .split_once('/')
        .with_context(|| format!("address {s:?}: give ADDRESS/PREFIX"))?;
    let addr: Ipv4Addr = a
        .parse()
        .with_context(|| format!("address {s:?}: not an IPv4 address"))?;
    let prefix: u8 = p
        .parse()
        .ok()
        .filter(|p| *p <= 32)
        .with_context(|| format!("address {s:?}: prefix must be 0..=32"))?;
    Ok((addr, prefix))
}

/// Whether this process is the guest's init: PID 1, started as `/init` (what the kernel
/// runs from an initramfs). Both, so that `confide` as PID 1 of a container stays the
/// ordinary command line.
pub fn is_init() -> bool {
    std::process::id() == 1 && std::env::args_os().next().is_some_and(|a| a == "/init")
}

/// Prepares the guest and returns the node's argument vector.
pub fn boot() -> anyhow::Result<Vec<String>> {
    mount_kernel_filesystems()?;
    let text = std::fs::read_to_string(CONFIG).with_context(|| format!("reading {CONFIG}"))?;
    let config = GuestConfig::parse(&text)?;
    for m in &config.modules {
        load_module(&Path::new(MODULES).join(m))?;
    }
    configure_network(&config.network)?;
    // Everything the node writes goes to /run (RAM, gone at power-off); the root it
    // starts in is read-only, which the node checks (`check_cwd_read_only`).
    std::env::set_current_dir("/").context("chdir /")?;
    mount_remount("/", MountFlags::RDONLY, c"").context("remounting / read-only")?;
    Ok(config.argv())
}

fn mount_kernel_filesystems() -> anyhow::Result<()> {
    let nosuid = MountFlags::NOSUID | MountFlags::NOEXEC | MountFlags::NODEV;
    let fs: [(&str, &str, MountFlags, Option<&CStr>); 4] = [
        ("/proc", "proc", nosuid, None),
        ("/sys", "sysfs", nosuid, None),
        (
            "/dev",
            "devtmpfs",
            MountFlags::NOSUID | MountFlags::NOEXEC,
            None,
        ),
        ("/run", "tmpfs", nosuid, Some(c"mode=0700")),
    ];
    for (target, kind, flags, data) in fs {
        match mount(kind, target, kind, flags, data) {
            // The kernel may have mounted devtmpfs already.
            Ok(()) | Err(rustix::io::Errno::BUSY) => {}
            Err(e) => bail!("mounting {kind} on {target}: {e}"),
        }
    }
    // The TSM report interface of SEV-SNP and TDX guests lives in configfs; a kernel
    // without it (or a simulated platform) does without.
    let _ = mount(
        "configfs",
        "/sys/kernel/config",
        "configfs",
        MountFlags::NOSUID | MountFlags::NOEXEC | MountFlags::NODEV,
        None,
    );
    Ok(())
}

fn load_module(path: &Path) -> anyhow::Result<()> {
    let f = File::open(path).with_context(|| format!("opening module {}", path.display()))?;
    match rustix::system::finit_module(&f, c"", 0) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(()),
        Err(e) => bail!("loading module {}: {e}", path.display()),
    }
}

fn configure_network(n: &Network) -> anyhow::Result<()> {
    let (addr, prefix) = parse_cidr(&n.address)?;
    // A driver's probe can finish after its module is loaded; wait a while for the name.
    let index_file = format!("/sys/class/net/{}/ifindex", n.interface);
    let deadline = Instant::now() + Duration::from_secs(10);
    let index: u32 = loop {
        if let Ok(s) = std::fs::read_to_string(&index_file) {
            break s
                .trim()
                .parse()
                .with_context(|| format!("{index_file}: not a number"))?;
        }
        if Instant::now() > deadline {
            bail!("network interface {} did not appear", n.interface);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let lo: u32 = std::fs::read_to_string("/sys/class/net/lo/ifindex")
        .context("no loopback interface")?
        .trim()
        .parse()
        .context("/sys/class/net/lo/ifindex: not a number")?;
    let sock = rustix::net::socket(AddressFamily::NETLINK, SocketType::RAW, None)
        .context("netlink socket")?;
    rustix::net::sockopt::set_socket_timeout(
        &sock,
        rustix::net::sockopt::Timeout::Recv,
        Some(Duration::from_secs(5)),
    )
    .context("netlink socket timeout")?;
    let mut requests = vec![
        ("loopback up", netlink::link_up(1, lo)),
        ("link up", netlink::link_up(2, index)),
        ("address", netlink::add_address(3, index, addr, prefix)),
    ];
    if let Some(gw) = n.gateway {
        requests.push(("default route", netlink::default_route(4, index, gw)));
    }
    for (seq, (what, msg)) in (1u32..).zip(requests) {
        rustix::net::sendto(
            &sock,
            &msg,
            SendFlags::empty(),
            &SocketAddrNetlink::new(0, 0),
        )
        .with_context(|| format!("netlink {what}"))?;
        let mut buf = [0u8; 4096];
        loop {
            let (len, _) = rustix::net::recv(&sock, &mut buf[..], RecvFlags::empty())
                .with_context(|| format!("netlink {what}: no answer"))?;
            match netlink::parse_ack(&buf[..len], seq) {
                Some(Ack::Ok) => break,
                Some(Ack::Errno(e)) => bail!(
                    "netlink {what} on {}: {}",
                    n.interface,
                    std::io::Error::from_raw_os_error(e)
                ),
                None => continue,
            }
        }
    }
    Ok(())
}

/// Powers the guest off; never returns (PID 1 must not exit).
pub fn power_off() -> ! {
    rustix::fs::sync();
    let _ = rustix::system::reboot(rustix::system::RebootCommand::PowerOff);
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
modules = ["virtio.ko", "virtio_net.ko"]
[network]
interface = "eth0"
address = "10.0.2.15/24"
gateway = "10.0.2.2"
[node]
args = ["--dir", "/run/confide", "--platform", "simulated"]
"#;

    #[test]
    fn configuration_parses_into_the_node_command() {
        let c = GuestConfig::parse(EXAMPLE).unwrap();
        assert_eq!(c.modules, ["virtio.ko", "virtio_net.ko"]);
        assert_eq!(c.network.gateway, Some(Ipv4Addr::new(10, 0, 2, 2)));
        assert_eq!(
            c.argv(),
            [
                "confide",
                "node",
                "serve",
                "--dir",
                "/run/confide",
                "--platform",
                "simulated"
            ]
        );
    }

    #[test]
    fn bad_configurations_are_refused() {
        for (bad, why) in [
            (
                EXAMPLE.replace("10.0.2.15/24", "10.0.2.15"),
                "ADDRESS/PREFIX",
            ),
            (EXAMPLE.replace("10.0.2.15/24", "10.0.2.15/33"), "prefix"),
            (EXAMPLE.replace("10.0.2.15/24", "::1/64"), "IPv4"),
            (EXAMPLE.replace("virtio.ko", "../x.ko"), "module"),
            (EXAMPLE.replace("virtio.ko", "virtio"), "module"),
            (
                EXAMPLE.replace("[node]", "shell = true\n[node]"),
                "guest configuration",
            ),
        ] {
            let e = format!("{:#}", GuestConfig::parse(&bad).unwrap_err());
            assert!(e.contains(why), "{e}");
        }
    }
}
