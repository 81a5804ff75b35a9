package admin

import (
	"context"
	"net/http"
	"time"
)

// TickleLister is implemented by a Daemon that tracks client connections
// for tickle ACKs. The server finds it by a type assertion on the Daemon;
// a Daemon without it answers GET /v1/tickles with 404.
type TickleLister interface {
	// Tickles returns the connection lists this node holds. The server
	// fills in Schema, a zero Time, and empty arrays for nil ones.
	Tickles(ctx context.Context) (Tickles, error)
}

// Tickles is the document of GET /v1/tickles: the client connections this
// node knows of, each list with the node whose clients they are.
type Tickles struct {
	// Schema is the version of this document, Schema.
	Schema int `json:"schema"`
	// Time is when the daemon took this snapshot.
	Time time.Time `json:"time"`
	// Node is the node that answered.
	Node string `json:"node"`
	// Lists are the lists held: this node's own tracked connections while
	// it is active, and the peer's as replicated over the LAN and as read
	// from the quorum disk.
	Lists []TickleList `json:"lists"`
	// Counts are the tickle resource's counters on this node; null when
	// the group has no tickle resource.
	Counts *TickleCounts `json:"counts"`
}

// TickleList is one list of connections.
type TickleList struct {
	// Node is the node whose clients these are.
	Node string `json:"node"`
	// Source is where the list comes from: "tracked" (this node's own,
	// from its last poll), "lan" (replicated from the peer), "disk" (the
	// peer's area of the quorum disk) or "file" (saved in /var/lib/tandem).
	Source string `json:"source"`
	// Version is the list's version, "EPOCH/SEQ"; "" when none.
	Version string `json:"version"`
	// Count is the number of connections.
	Count int `json:"count"`
	// Connections are "CLIENT->SERVER", sorted by server then client.
	Connections []string `json:"connections"`
}

// TickleCounts are the counters of the tickle resource.
type TickleCounts struct {
	// Running says the resource is started on this node.
	Running bool `json:"running"`
	// Tracked is how many connections the last poll found.
	Tracked int `json:"tracked"`
	// Tickled is how many connections the last start tickled; Sent and
	// Failed count the segments of its rounds.
	Tickled int `json:"tickled"`
	Sent    int `json:"sent"`
	Failed  int `json:"failed"`
	// Rounds is how many rounds the last start sent; LastRound when the
	// latest began, null when none.
	Rounds    int        `json:"rounds"`
	LastRound *time.Time `json:"last_round"`
	// Reset is how many connections the last stop reset.
	Reset int `json:"reset"`
	// PollFailures is how many polls in a row failed; LastError the
	// latest failure, "" when none.
	PollFailures int    `json:"poll_failures"`
	LastError    string `json:"last_error"`
}

func (t *Tickles) normalize(now time.Time) {
	t.Schema = Schema
	if t.Time.IsZero() {
		t.Time = now
	}
	if t.Lists == nil {
		t.Lists = []TickleList{}
	}
	for i := range t.Lists {
		if t.Lists[i].Connections == nil {
			t.Lists[i].Connections = []string{}
		}
	}
}

func (s *Server) tickles(w http.ResponseWriter, r *http.Request) {
	tl, ok := s.daemon.(TickleLister)
	if !ok {
		writeError(w, http.StatusNotFound, "this tandemd does not track client connections")
		return
	}
	t, err := tl.Tickles(r.Context())
	if err != nil {
		writeDaemonError(w, err)
		return
	}
	t.normalize(s.now())
	writeJSON(w, http.StatusOK, t)
}

// Tickles returns the client connections the node knows of
// (GET /v1/tickles).
func (c *Client) Tickles(ctx context.Context) (Tickles, error) {
	var t Tickles
	data, err := c.TicklesJSON(ctx)
	if err != nil {
		return t, err
	}
	err = decode("tickles", data, &t, &t.Schema)
	return t, err
}

// TicklesJSON returns the tickles document as the server wrote it.
func (c *Client) TicklesJSON(ctx context.Context) ([]byte, error) {
	return c.do(ctx, "tickles", http.MethodGet, "/v1/tickles", nil)
}
