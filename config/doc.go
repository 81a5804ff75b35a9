// Package config reads tandem's configuration, /etc/tandem/tandem.toml, the
// same file on both nodes of a pair.
//
// Load and Parse decode the file strictly and validate it as a whole: an
// unknown key, a value of the wrong type, a bad address, port or duration, a
// reference to a resource that does not exist, a shared key file that others
// can read, or a pair with no way to fence a node are all errors. Every
// problem in the file is reported at once, in file order, each naming the
// file, the line and the key:
//
//	config: tandem.toml:5: cluster: keepalive: want a duration like "200ms", have integer 200
//	config: tandem.toml:52: resource "vip": address "10.0.0.300/24": bad IP
//
// The error is then an ErrorList of *Error values. A Config that Parse
// returns has every default filled in (keepalive 200ms, warntime 1s,
// deadtime 2s, initdead 30s, watchdog 5s, and the per-resource defaults),
// so the packages that use it never apply defaults of their own.
//
// The file has these tables:
//
//	[cluster]           name, auth_key_file, keepalive, warntime, deadtime, initdead,
//	                    auto_failback, preferred_node, unsafe_no_fencing
//	[[node]]            exactly two: name, address, serial, fence = { agent = "fence_x", ... }
//	[heartbeat.udp]     port, mode (unicast, multicast, broadcast), group, interface
//	[heartbeat.serial]  baud; on when the nodes have serial
//	[heartbeat.disk]    device, interval
//	[watchdog]          device, timeout
//	[[resource]]        the resource group in start order: name, type and the
//	                    keys of that type
//
// Each resource type (Kind) has its own struct, and a key of another type is
// an error. The struct tags of those structs (toml, desc, required, default)
// are the one description of the keys: the decoder and its defaults read
// them, and Parameters lists them for the OCF agents' meta-data and for
// documentation.
//
// Fence agent parameters whose names end in _file, such as password_file,
// name files that hold secrets. They are kept as paths; this package never
// reads them. The shared key file is checked (it exists, is a regular file,
// is readable by its owner only and is not empty) but not read either.
//
// Check is Load plus warnings for settings that are valid but unsafe, for
// haclient config check. Marshal writes a Config back as TOML with every
// default spelled out.
package config
