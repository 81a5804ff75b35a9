// Package testenv is tandem's lab: a two-node cluster and a client on one
// Linux machine, built from network namespaces, bridges, loop devices, a pty
// serial cable and cgroups, with faults a test can inject on purpose.
//
// One call builds it:
//
//	lab := testenv.Start(t, testenv.Options{})
//	a, b, client := lab.Node("a"), lab.Node("b"), lab.Client()
//
// What a lab has:
//
//   - Hosts a, b and client, each in its own network, mount and pid namespace
//     and its own cgroup. A host's pid 1 is a small init that reaps orphans;
//     [Host.Command] runs a program inside the host.
//   - A public bridge (198.18.0.0/24: a .1, b .2, client .100, the floating
//     address .50 is free for the service; and 2001:2::/64: a ::1, b ::2,
//     client ::100, floating ::50, without duplicate address detection) and
//     a separate heartbeat bridge (198.18.1.0/24: a .1, b .2, IPv4 only),
//     both inside a "switch" namespace.
//   - On demand, a DHCP server ([Lab.StartDHCP]: dnsmasq, DHCP only) on the
//     public network, leasing from [DHCPRange].
//   - A serial cable: a pty per node, joined by a relay that moves bytes both
//     ways at line speed and can be cut.
//   - A shared disk: a quorum image and an ext4 data image. Each node reaches
//     them through its own loop devices, bind-mounted at the same paths in
//     both nodes ([Lab.QuorumDevice], [Lab.DataDevice]), so one configuration
//     file serves both nodes and the lab can cut one node off the disk.
//   - Production paths: /etc/tandem and /var/lib/tandem are per-node
//     directories bind-mounted in each node; /run/tandem is a tmpfs that a
//     reboot empties.
//   - A watchdog per node ([Lab.WatchdogDevice], a FIFO): written to as to
//     /dev/watchdog; 'V' disarms it; when an armed watchdog is not fed within
//     its timeout the lab powers that node off.
//   - A power switch reachable as a standard fence agent
//     ([Lab.FenceAgent], the fence-agents stdin key=value protocol).
//   - An observer ([Lab.Observe]) that samples both nodes and records every
//     instant at which both hold the floating address, the data volume or a
//     running smbd.
//
// Power off is as harsh as the real thing: the node's disk path is cut first,
// then every process of the node dies at once, its network goes dark, and the
// call returns only when its data volume's superblock is released. Power on
// is a reboot: fresh mount and pid namespaces, /run/tandem empty, the
// network back with the node's own addresses only.
//
// Every name a lab creates starts with its name, which starts with [Prefix]:
// namespaces, cgroups, the work directory under [BaseDir] and the loop
// devices' backing files. [Sweep] finds and removes leftovers of crashed
// runs by that prefix; [Leftovers] lists them, and tests assert it is empty
// after [Lab.Close].
//
// A lab needs root, cgroup v2 and a few Debian packages. [Start] skips the
// test with the reason when they are missing, unless TANDEM_LAB_REQUIRED=1
// is set (CI sets it), in which case it fails the test instead.
package testenv
