package heartbeat

// Medium carries signed messages between the nodes: a UDP socket on the
// heartbeat LAN, a serial cable, a slot on the quorum disk. It moves opaque
// datagrams and judges nothing: a Node signs, verifies, rejects replays and
// tracks liveness above it, so a medium only needs to deliver each message
// whole or not at all. A medium may lose, duplicate or reorder messages.
//
// A Node never calls Send concurrently with itself, nor Receive; it calls
// Receive from a goroutine of its own, and Close from any goroutine.
type Medium interface {
	// Name identifies the medium in events, status and logs, e.g. "udp",
	// "serial", "disk". Names are unique within a Node.
	Name() string
	// Send transmits one message of at most MaxMessageSize bytes to the
	// peers. It must not keep msg after it returns. A medium that paces its
	// writes (a serial line) may block up to its own bound.
	Send(msg []byte) error
	// Receive blocks until a message arrives and returns it; the caller
	// owns the returned slice. from describes where it came from for log
	// lines (an address, or "" when the medium cannot tell); it is never
	// trusted. Errors that are not caused by Close are taken as passing:
	// the Node logs them and calls Receive again after a pause.
	Receive() (msg []byte, from string, err error)
	// Close releases the medium and makes a blocked Receive return an
	// error. It is safe to call more than once.
	Close() error
}
