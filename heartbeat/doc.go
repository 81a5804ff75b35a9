// Package heartbeat carries tandem's authenticated liveness messages
// between the two nodes and judges, per medium and per peer, whether the
// peer is alive. It knows nothing of resources: a heartbeat's payload and
// application messages are opaque bytes for the decision core.
//
// # Wire format
//
// Every message, on every medium, is one self-contained byte string
// (integers big endian):
//
//	offset    size  field
//	0         4     magic "tndm"
//	4         1     version (Version, 1)
//	5         1     message type (TypeHeartbeat, or TypeAppFirst..TypeAppLast)
//	6         1     cluster name length c, 1..MaxNameLen (64)
//	7         c     cluster name
//	7+c       1     sender name length s, 1..MaxNameLen
//	8+c       s     sender name
//	8+c+s     8     generation
//	16+c+s    8     sequence
//	24+c+s    2     payload length p, 0..MaxPayload (1200)
//	26+c+s    p     payload
//	26+c+s+p  32    HMAC-SHA256 over every byte before it, keyed with the
//	                cluster's shared key
//
// A message is at most MaxMessageSize (1386) bytes, so it fits one UDP
// datagram without fragmentation over IPv4 or IPv6 on a 1500-byte MTU. A
// Codec signs (Marshal) and verifies (Unmarshal) them; the MAC is compared
// in constant time, and the cluster name is checked before the MAC so that
// another cluster's traffic is counted as foreign rather than forged.
// Every rejection is a *DecodeError with the byte offset of the offending
// field and a class to test with errors.Is: ErrTruncated, ErrBadMagic,
// ErrVersion, ErrType, ErrLength, ErrForeignCluster, ErrBadMAC.
//
// The heartbeat payload is the sender's Status (role, flags, named items
// with states) in a small versioned encoding of its own; application
// messages carry whatever the decision core puts in them.
//
// # Replays and generations
//
// Each node numbers its run with a generation, persisted in
// DefaultStateDir/GenerationFile and bumped at every start by
// BumpGeneration (temporary file, fsync, rename, fsync of the directory; a
// corrupt file is an error, never a silent restart at 0), and numbers its
// messages within the run with a sequence. One message, with one sequence
// number, is sent on every medium. The receiver keeps a Window per sender
// and medium, like IPsec's anti-replay window: a message is accepted when
// its generation is newer than the newest seen (the sender restarted), or
// when it has the newest generation and a sequence not yet seen within
// WindowSize of the highest. Accepted copies count for the liveness of the
// medium that carried them; a second Window per sender makes sure the
// caller gets each message once, from the first medium that delivers it.
//
// Windows live in memory: after this node restarts, it accepts the
// peer's newest generation it hears first. A message captured on one
// medium and played into another before the genuine copy arrives there
// counts once for that other medium; the media besides the LAN are
// physically local to the pair.
//
// # Media
//
// A Medium moves whole messages and judges nothing. UDP is one (DialUDP):
// unicast to the peer's address, multicast on a group joined on the
// heartbeat interface, or broadcast on the heartbeat subnet. The interface
// asks only for Send, a blocking Receive that Close unblocks, and a name, so
// a serial line that frames messages and a slot on the quorum disk fit it
// as well.
//
// The serial medium (DialSerial) frames each message with a sync marker,
// its length and a CRC32C, finds frames again after noise, a half frame
// or a corrupted length, and paces its writes to the line rate: a frame
// still waiting for the line is replaced by a newer one, never queued.
//
// # Liveness
//
// A Tracker is the pure judge: time comes in as arguments, never from the
// clock. A heartbeat more than Timing.Warntime after the previous one on
// the same medium is reported late with the measured gap, once per late
// episode; a medium silent for Timing.Deadtime is down for that peer; the
// peer is dead only when every medium is down. Until a medium has heard the
// peer once since this node started, Timing.Initdead replaces Deadtime.
//
// # Running
//
// A Node ties it together: it sends a heartbeat every keepalive on every
// medium, receives on each, verifies, drops replays, feeds its Tracker and
// delivers events and messages on one channel. Bad input is counted per
// medium and kind (Counters) and logged at most once per LogInterval per
// kind, never acted on. tandemd drives it roughly so:
//
//	gen, err := heartbeat.BumpGeneration(heartbeat.DefaultStateDir)
//	...
//	udp, err := heartbeat.DialUDP(heartbeat.UDPConfig{Local: local, Peer: peer})
//	...
//	n, err := heartbeat.Start(ctx, heartbeat.NodeConfig{
//		Cluster: "filer", Name: "alpha", Peers: []string{"beta"},
//		Key: key, Generation: gen, Timing: timing,
//		Media: []heartbeat.Medium{udp},
//	})
//	...
//	defer n.Close()
//	for e := range n.Events() {
//		switch e.Kind {
//		case heartbeat.EventPeerDead:
//			// tell the decision core the peer is silent everywhere
//		case heartbeat.EventReceived:
//			// e.Message.Type, e.Message.Payload: a Status or an
//			// application message for the decision core
//		}
//	}
//
// The Node logs liveness changes itself ("late heartbeat: 1250 ms",
// "medium down", "peer dead"), so its owner need not log them again.
package heartbeat
