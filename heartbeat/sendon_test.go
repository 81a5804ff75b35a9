package heartbeat

import (
	"bytes"
	"testing"
)

func TestSendOnOneMedium(t *testing.T) {
	lanOut, serialOut := make(chan []byte, 64), make(chan []byte, 64)
	lan := &tap{Medium: newMem("lan", make(chan []byte), lanOut)}
	serial := &tap{Medium: newMem("serial", make(chan []byte), serialOut)}
	n := startNode(t, NodeConfig{Name: "alpha", Peers: []string{"beta"}, Generation: 1, Media: []Medium{lan, serial}})
	payload := []byte("connection list")
	if err := n.SendOn("lan", TypeAppFirst+1, payload); err != nil {
		t.Fatal(err)
	}
	carries := func(tp *tap) bool {
		tp.mu.Lock()
		defer tp.mu.Unlock()
		for _, m := range tp.sent {
			if bytes.Contains(m, payload) {
				return true
			}
		}
		return false
	}
	waitFor(t, "the message on the LAN", func() bool { return carries(lan) })
	if carries(serial) {
		t.Fatal("SendOn(lan) also sent on the serial medium")
	}
	if err := n.SendOn("disk", TypeAppFirst+1, payload); err == nil {
		t.Error("SendOn accepted a medium the node does not have")
	}
	if err := n.SendOn("lan", TypeHeartbeat, payload); err == nil {
		t.Error("SendOn sent a heartbeat")
	}
}
