package heartbeat

import (
	"context"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/quorum"
)

// rawMessage returns a message with the given type byte, enough for the
// disk medium, which stores messages as they are.
func rawMessage(typ Type, tag byte) []byte {
	return []byte{'t', 'n', 'd', 'm', Version, byte(typ), tag}
}

func TestDiskMailboxAndAcknowledge(t *testing.T) {
	path := diskImage(t)
	a := dialDisk(t, path, "alpha", "beta")
	b := dialDisk(t, path, "beta", "alpha")
	if err := b.Send(rawMessage(TypeHeartbeat, 1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alpha's first mailbox read", func() bool { return a.Stats().MailboxRead && a.Stats().PeerMoved != (time.Time{}) })
	if st := a.Stats(); st.Mailbox.Kind != quorum.MsgNone {
		t.Fatalf("empty mailbox read as %v", st.Mailbox)
	}
	if st := b.Stats(); st.LastWrite.IsZero() {
		t.Fatalf("beta wrote but LastWrite is zero: %+v", st)
	}

	// beta leaves a fence message for alpha, as a fencer does.
	qd, err := quorum.Open(path, quorum.Options{Cluster: "filer"})
	if err != nil {
		t.Fatal(err)
	}
	defer qd.Close()
	msg := quorum.Message{Kind: quorum.MsgReset, From: "beta", To: "alpha", Sequence: 5}
	if err := qd.WriteMessage(msg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alpha sees the message", func() bool { return a.Stats().Mailbox == msg })

	// alpha acknowledges through its running medium; the ack survives the
	// medium's later writes.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Acknowledge(ctx, msg); err != nil {
		t.Fatal(err)
	}
	ack, _, err := qd.ReadAck("alpha")
	if err != nil || ack != msg {
		t.Fatalf("alpha's slot acknowledges %v (%v), want %v", ack, err, msg)
	}
	for i := range 3 {
		before := a.Stats().Counter
		if err := a.Send(rawMessage(TypeHeartbeat, byte(i))); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the next write", func() bool { return a.Stats().Counter > before })
	}
	if ack, _, err := qd.ReadAck("alpha"); err != nil || ack != msg {
		t.Fatalf("a later write dropped the acknowledgement: %v (%v)", ack, err)
	}
	if err := a.Acknowledge(ctx, quorum.Message{Kind: quorum.MsgNone, From: "beta", To: "alpha"}); err == nil {
		t.Error("acknowledged an empty message")
	}
}

func TestDiskHeartbeatDoesNotDisplaceAppMessage(t *testing.T) {
	report, newer := rawMessage(TypeAppFirst, 1), rawMessage(TypeAppFirst, 3)
	hb, hb2 := rawMessage(TypeHeartbeat, 2), rawMessage(TypeHeartbeat, 4)
	for _, c := range []struct {
		name         string
		msg, pending []byte
		want         bool
	}{
		{"heartbeat, nothing waiting", hb, nil, true},
		{"heartbeat over a report", hb, report, false},
		{"heartbeat over a heartbeat", hb2, hb, true},
		{"report over a heartbeat", report, hb, true},
		{"newer report over a report", newer, report, true},
	} {
		if got := displaces(c.msg, c.pending); got != c.want {
			t.Errorf("%s: displaces = %v, want %v", c.name, got, c.want)
		}
	}
}
