// Package resources holds what a tandem node starts and stops to serve: the
// Resource contract, ordered groups of resources, and the generic kinds,
// filesystem and floatip.
//
// # The contract
//
// A Resource starts, stops, monitors and validates itself, and every
// operation is safe in any state: Start on a started resource and Stop on a
// stopped one succeed and change nothing. Stop returns nil only when the
// resource is really stopped. Monitor returns nil when healthy, an error
// wrapping ErrStopped when cleanly stopped, any other error when failed.
// A resource that can be stopped harder than Stop does implements
// ForceStopper; the node uses it before it fences itself.
//
// # Groups
//
// A Group runs its members as one, in order:
//
//	g, err := resources.NewGroup("service",
//		resources.Member{Resource: resources.NewFilesystem(fsParams)},
//		resources.Member{Resource: resources.NewFloatIP(ipParams), Timeouts: resources.Timeouts{Start: 5 * time.Second}},
//		resources.Member{Resource: smb},
//	)
//	if err := g.Start(ctx); err != nil {
//		var se *resources.StartError
//		if errors.As(err, &se) && len(se.Rollback) > 0 {
//			// Something may still run: escalate.
//			err = g.ForceStop(ctx)
//		}
//	}
//
// Start goes top to bottom; when a member fails, the group stops that member
// and those before it, bottom to top, and reports the failure and any
// failure of that rollback. Stop goes bottom to top and halts at the first
// member that will not stop, naming it. ForceStop goes bottom to top past
// failures. Monitor names the first member that is not healthy. Each
// operation on a member is bounded by the member's Timeouts, and the group
// keeps a Record per member (state, last operation, last error, and when)
// for a status API.
//
// # filesystem
//
// Start mounts Device on Mountpoint with FSType and Options (mount(8)'s
// option string: the kernel's flags are mapped as mount(8) maps them, the
// rest go to the filesystem), after "fsck -a" when asked. It succeeds when
// the device is already mounted there, and fails naming both devices when
// another one is. Devices are compared by device number, never by path, so
// a /dev/disk/by-id link and the node it points to are the same device.
//
// Stop unmounts. A busy mount is not a reason to give up: the processes of
// the node's mount namespace that hold it (open files, working or root
// directory, executable or mapping under the mountpoint, found in /proc as
// fuser -m finds them) get SIGTERM, a grace period, then SIGKILL, and the
// unmount is tried again. Stop never reports stopped while the device is
// mounted there; it never unmounts lazily, since a detached mount still
// writes to the shared disk.
//
// Monitor checks the mount table and reads the mount's root and the first
// block of the device (with O_DIRECT, so the disk answers, not the page
// cache) within a bound, so a hung disk is reported as a failure instead of
// hanging the monitor.
//
// # floatip
//
// Start adds Address to its interface (given, or the one interface with an
// address in the same subnet) and announces it in rounds: the first before
// Start returns, the others in the background until Stop. IPv4 addresses
// are announced with gratuitous ARP, in request and reply form; IPv6
// addresses are added without duplicate address detection, so they serve
// at once, and announced with unsolicited neighbour advertisements to all
// nodes (override flag set, target link-layer address option). Stop ends
// the announcements, then removes the address from every interface that
// has it. Monitor checks that the address is on an interface that is up.
//
// With DHCP the address comes from a DHCPv4 lease instead: Start runs
// DISCOVER, OFFER, REQUEST, ACK on the interface with a fixed client id
// (option 61) that both nodes share, so the server leases either node the
// same address; it adds the address with the lease's prefix length and a
// lifetime that ends with the lease, announces it, and renews the lease in
// the background: unicast to the server at T1, broadcast to any server at
// T2. A lease refused or run out removes the address and makes Monitor
// report the loss. Stop removes the address without DHCPRELEASE, so the
// server keeps the address for the client id until the peer asks.
//
// Each resource reaches the system through a small unexported interface;
// the tests of the logic replace it, and the tests that run as root use the
// real one in namespaces they create.
package resources
