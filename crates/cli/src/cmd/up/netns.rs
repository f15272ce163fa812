//! Namespace mode: each workload in its own network namespace, joined to the others by
//! a veth pair on one bridge, its TCP intercepted by iptables as Istio's init container
//! does it, and service names resolved by a per-namespace hosts file to virtual IPs.
//!
//! Addresses come from the benchmarking block 198.18.0.0/15 (RFC 2544), which weft
//! assigns to its own namespaces only:
//!
//! | block           | what                                                       |
//! |-----------------|------------------------------------------------------------|
//! | 198.18.0.1/24   | the bridge `weft0` on the host (the control plane listens here) |
//! | 198.18.0.2–.251 | workloads, one per namespace (`eth0`)                      |
//! | 198.19.0.0/16   | service virtual IPs, routable only inside the namespaces   |
//!
//! Inside a namespace the only routes are the bridge's /24 and the virtual IPs: nothing
//! is sent off the machine.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use super::state::Network;

/// The bridge joining weft's namespaces.
pub const BRIDGE: &str = "weft0";
/// The bridge's address on the host.
pub const BRIDGE_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The uid the sidecars run as; iptables leaves their own traffic alone (Istio's 1337).
pub const SIDECAR_UID: u32 = 1337;
/// The block of service virtual IPs.
const VIP_BLOCK: &str = "198.19.0.0/16";
/// The comment marking the host rule weft adds, so it is found and removed exactly.
const RULE_COMMENT: &str = "weft up: bridged mesh traffic";

/// The address of the workload at `index` (0-based).
pub fn workload_ip(index: usize) -> Ipv4Addr {
    let n = u8::try_from(index + 2).unwrap_or(u8::MAX);
    Ipv4Addr::new(198, 18, 0, n)
}

/// The virtual IP of the service at `index` (0-based).
pub fn service_vip(index: usize) -> Ipv4Addr {
    let [hi, lo] = u16::try_from(index + 1).unwrap_or(u16::MAX).to_be_bytes();
    Ipv4Addr::new(198, 19, hi, lo)
}

/// The namespace of a workload.
pub fn namespace_of(workload: &str) -> String {
    format!("weft-{workload}")
}

/// True when the effective uid is 0 (the second `Uid:` field of /proc/self/status).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
            .unwrap_or(false)
    })
}

/// Why namespace mode cannot run here, if it cannot.
pub fn unavailable() -> Option<String> {
    if !is_root() {
        return Some("namespace mode needs root".into());
    }
    for tool in ["ip", "iptables", "iptables-restore", "setpriv"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Some(format!(
                "namespace mode needs `{tool}` (apt-get install iproute2 iptables util-linux)"
            ));
        }
    }
    None
}

/// Fails unless the sidecar's uid can run `exe` (every directory on the way searchable,
/// the file executable by others), which `setpriv --reuid` needs.
pub fn check_sidecar_can_run(exe: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let others_may =
        |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o001 != 0);
    let blocked = exe
        .ancestors()
        .skip(1)
        .find(|dir| !dir.as_os_str().is_empty() && !others_may(dir))
        .map(Path::to_path_buf)
        .or_else(|| (!others_may(exe)).then(|| exe.to_path_buf()));
    if let Some(path) = blocked {
        bail!(
            "namespace mode runs each sidecar as uid {SIDECAR_UID}, which cannot reach {} ({} is not open to others); install weft somewhere like /usr/local/bin, or use --mode loopback",
            exe.display(),
            path.display()
        );
    }
    Ok(())
}

/// Runs a command, failing with its stderr.
fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let shown = format!("{cmd:?}").replace('"', "");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    run(Command::new("ip").args(args))
}

/// True when the host sends bridged frames through iptables (br_netfilter), so the
/// FORWARD chain's policy applies to traffic between namespaces.
fn bridged_traffic_filtered() -> bool {
    std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables")
        .is_ok_and(|v| v.trim() == "1")
}

fn forward_rule(action: &str) -> Command {
    let mut cmd = Command::new("iptables");
    cmd.args([action, "FORWARD", "-i", BRIDGE, "-o", BRIDGE])
        .args(["-m", "comment", "--comment", RULE_COMMENT, "-j", "ACCEPT"]);
    cmd
}

/// Creates the bridge (recording each step in `network` as it is done).
pub fn create_bridge(network: &mut Network) -> anyhow::Result<()> {
    if Path::new(&format!("/sys/class/net/{BRIDGE}")).exists() {
        bail!(
            "a namespace-mode mesh is already up on this machine (bridge {BRIDGE} exists); stop it with `weft down` (and its --state-dir)"
        );
    }
    ip(&["link", "add", BRIDGE, "type", "bridge"])?;
    network.bridge = Some(BRIDGE.to_string());
    ip(&["addr", "add", &format!("{BRIDGE_IP}/24"), "dev", BRIDGE])?;
    ip(&["link", "set", BRIDGE, "up"])?;
    if bridged_traffic_filtered() {
        run(&mut forward_rule("-I"))?;
        network.forward_rule = true;
    }
    Ok(())
}

/// Istio's interception, for one namespace: inbound TCP to the sidecar's 15006 (except
/// its admin and metrics ports), outbound TCP to 15001 (except the sidecar's own, by
/// uid, and loopback).
fn iptables_rules() -> String {
    format!(
        "*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:WEFT_INBOUND - [0:0]
:WEFT_OUTPUT - [0:0]
-A PREROUTING -p tcp -j WEFT_INBOUND
-A WEFT_INBOUND -p tcp --dport 15000 -j RETURN
-A WEFT_INBOUND -p tcp --dport 15020 -j RETURN
-A WEFT_INBOUND -p tcp -j REDIRECT --to-ports 15006
-A OUTPUT -p tcp -j WEFT_OUTPUT
-A WEFT_OUTPUT -m owner --uid-owner {SIDECAR_UID} -j RETURN
-A WEFT_OUTPUT -d 127.0.0.1/32 -j RETURN
-A WEFT_OUTPUT -p tcp -j REDIRECT --to-ports 15001
COMMIT
"
    )
}

/// Creates the namespace of the workload at `index` with address `address`, its veth
/// on the bridge, its routes, its interception rules and its hosts file.
pub fn create_namespace(
    network: &mut Network,
    name: &str,
    index: usize,
    hosts: &str,
) -> anyhow::Result<()> {
    if Path::new(&format!("/run/netns/{name}")).exists() {
        bail!(
            "network namespace {name} already exists (another mesh, or one `weft down` did not remove: `ip netns delete {name}`)"
        );
    }
    // The hosts file first: `ip netns exec` binds it over /etc/hosts for every process.
    let etc = PathBuf::from("/etc/netns").join(name);
    std::fs::create_dir_all("/etc/netns").context("creating /etc/netns")?;
    match std::fs::create_dir(&etc) {
        Ok(()) => network.etc_dirs.push(etc.clone()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
            "{} already exists (left by another mesh?); remove it or run `weft down` for that mesh",
            etc.display()
        ),
        Err(e) => bail!("creating {}: {e}", etc.display()),
    }
    std::fs::write(etc.join("hosts"), hosts)
        .with_context(|| format!("writing {}", etc.join("hosts").display()))?;

    ip(&["netns", "add", name])?;
    network.namespaces.push(name.to_string());
    let host_end = format!("weftv{index}");
    let peer = format!("weftp{index}");
    ip(&[
        "link", "add", &host_end, "type", "veth", "peer", "name", &peer,
    ])?;
    network.veths.push(host_end.clone());
    ip(&["link", "set", &peer, "netns", name])?;
    ip(&["link", "set", &host_end, "master", BRIDGE, "up"])?;
    ip(&["-n", name, "link", "set", &peer, "name", "eth0"])?;
    let address = workload_ip(index);
    ip(&[
        "-n",
        name,
        "addr",
        "add",
        &format!("{address}/24"),
        "dev",
        "eth0",
    ])?;
    ip(&["-n", name, "link", "set", "eth0", "up"])?;
    ip(&["-n", name, "link", "set", "lo", "up"])?;
    // Virtual IPs need a route so that connect() reaches iptables' OUTPUT chain.
    ip(&[
        "-n",
        name,
        "route",
        "add",
        VIP_BLOCK,
        "via",
        &BRIDGE_IP.to_string(),
    ])?;
    let mut restore = Command::new("ip")
        .args(["netns", "exec", name, "iptables-restore"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running iptables-restore")?;
    restore
        .stdin
        .take()
        .context("iptables-restore input")?
        .write_all(iptables_rules().as_bytes())?;
    let out = restore.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "installing the interception rules in {name} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A command run inside namespace `name`.
pub fn exec_in(name: &str) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", name]);
    cmd
}

/// True when `name` is one weft gives (so a tampered state file cannot make `weft down`
/// remove anything else): `weft-*` namespaces, `weftv<N>` veths, the bridge,
/// `/etc/netns/weft-*` directories.
fn weft_owned(network: &Network) -> Result<(), String> {
    let numbered = |s: &str, prefix: &str| {
        s.strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    let namespace = |s: &str| {
        s.strip_prefix("weft-")
            .is_some_and(weft_api::validate::checks::is_dns1123_label)
    };
    let bad = network
        .namespaces
        .iter()
        .filter(|n| !namespace(n))
        .chain(network.veths.iter().filter(|v| !numbered(v, "weftv")))
        .chain(network.bridge.iter().filter(|b| *b != BRIDGE))
        .cloned()
        .chain(
            network
                .etc_dirs
                .iter()
                .filter(|d| {
                    d.parent() != Some(Path::new("/etc/netns"))
                        || !d
                            .file_name()
                            .and_then(|f| f.to_str())
                            .is_some_and(namespace)
                })
                .map(|d| d.display().to_string()),
        )
        .collect::<Vec<_>>();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the state file names things weft does not create ({}); refusing to remove them",
            bad.join(", ")
        ))
    }
}

/// Removes what `network` records; what is already gone is skipped. Returns the
/// problems met (each also left in place for a later `weft down`).
pub fn remove(network: &mut Network) -> Vec<String> {
    if let Err(e) = weft_owned(network) {
        return vec![e];
    }
    let mut problems = Vec::new();
    // The kernel tears a deleted namespace down asynchronously, its veth with it; deleting
    // the host end first removes the pair at once.
    network.veths.retain(|veth| {
        if !Path::new(&format!("/sys/class/net/{veth}")).exists() {
            return false;
        }
        match ip(&["link", "delete", veth]) {
            Ok(()) => false,
            Err(e) => {
                problems.push(format!("{e:#}"));
                true
            }
        }
    });
    network.namespaces.retain(|name| {
        if !Path::new(&format!("/run/netns/{name}")).exists() {
            return false;
        }
        // Deleting the namespace deletes its rules with it.
        match ip(&["netns", "delete", name]) {
            Ok(()) => false,
            Err(e) => {
                problems.push(format!("{e:#}"));
                true
            }
        }
    });
    network
        .etc_dirs
        .retain(|dir| match std::fs::remove_dir_all(dir) {
            Ok(()) => false,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => {
                problems.push(format!("removing {}: {e}", dir.display()));
                true
            }
        });
    // /etc/netns itself goes only when nothing else uses it.
    let _ = std::fs::remove_dir("/etc/netns");
    if network.forward_rule {
        // Delete every copy (a crash between insert and save could leave two).
        while run(&mut forward_rule("-C")).is_ok() {
            if let Err(e) = run(&mut forward_rule("-D")) {
                problems.push(format!("{e:#}"));
                break;
            }
        }
        network.forward_rule = run(&mut forward_rule("-C")).is_ok();
    }
    if let Some(bridge) = network.bridge.clone() {
        if Path::new(&format!("/sys/class/net/{bridge}")).exists() {
            match ip(&["link", "delete", &bridge]) {
                Ok(()) => network.bridge = None,
                Err(e) => problems.push(format!("{e:#}")),
            }
        } else {
            network.bridge = None;
        }
    }
    problems
}

/// The HTTP status of `GET path` on `addr` inside namespace `name` (a sidecar's admin
/// listener is loopback-only), or `None` when it cannot be reached.
pub fn probe(name: &str, addr: SocketAddr, path: &str) -> Option<u16> {
    let netns = PathBuf::from("/run/netns").join(name);
    let path = path.to_string();
    // setns moves only the calling thread: a short-lived thread keeps weft itself outside.
    std::thread::spawn(move || -> Option<u16> {
        let file = std::fs::File::open(&netns).ok()?;
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).ok()?;
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
        )
        .ok()?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).ok()?;
        std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
    })
    .join()
    .ok()
    .flatten()
}

/// The hosts file of a namespace: every service's virtual IP under the names a
/// Kubernetes pod in `namespace` could use for it.
pub fn hosts_file(namespace: &str, services: &[(String, String, Ipv4Addr)]) -> String {
    let mut out = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n# weft up: the mesh's services (virtual IPs, routable only inside weft's namespaces)\n",
    );
    for (ns, service, vip) in services {
        let fqdn = format!("{service}.{ns}.svc.cluster.local");
        let mut names = vec![
            fqdn,
            format!("{service}.{ns}.svc"),
            format!("{service}.{ns}"),
        ];
        if ns == namespace {
            names.push(service.clone());
        }
        out.push_str(&format!("{vip}\t{}\n", names.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_stay_in_weft_block() {
        assert_eq!(workload_ip(0), Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(workload_ip(249), Ipv4Addr::new(198, 18, 0, 251));
        assert_eq!(service_vip(0), Ipv4Addr::new(198, 19, 0, 1));
        assert_eq!(service_vip(300), Ipv4Addr::new(198, 19, 1, 45));
    }

    #[test]
    fn only_names_weft_gives_are_removed() {
        let mut network = Network {
            bridge: Some(BRIDGE.into()),
            namespaces: vec!["weft-bff".into()],
            veths: vec!["weftv0".into()],
            etc_dirs: vec!["/etc/netns/weft-bff".into()],
            forward_rule: false,
        };
        assert!(weft_owned(&network).is_ok());
        network.veths.push("eth0".into());
        network.etc_dirs.push("/home".into());
        let refused = weft_owned(&network).expect_err("tampered state");
        assert!(
            refused.contains("eth0") && refused.contains("/home"),
            "{refused}"
        );
        // remove() refuses the whole state rather than part of it.
        assert_eq!(remove(&mut network), vec![refused]);
        assert_eq!(network.veths.len(), 2);
    }

    #[test]
    fn short_names_resolve_only_in_their_namespace() {
        let services = vec![
            (
                "default".to_string(),
                "bff-service".to_string(),
                service_vip(0),
            ),
            ("shop".to_string(), "cart".to_string(), service_vip(1)),
        ];
        let hosts = hosts_file("default", &services);
        assert!(hosts.contains(
            "198.19.0.1\tbff-service.default.svc.cluster.local bff-service.default.svc bff-service.default bff-service\n"
        ));
        assert!(
            hosts.contains("198.19.0.2\tcart.shop.svc.cluster.local cart.shop.svc cart.shop\n")
        );
    }
}
