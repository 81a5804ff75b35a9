package heartbeat_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/tandem-ha/tandem/heartbeat"
)

func ExampleCodec() {
	key := []byte("a shared secret of at least 16 bytes")
	alpha, _ := heartbeat.NewCodec("filer", key)
	status, _ := heartbeat.Status{Role: "active", Items: []heartbeat.StatusItem{{Name: "vip", State: "started"}}}.MarshalBinary()
	msg, _ := alpha.Marshal(&heartbeat.Message{Type: heartbeat.TypeHeartbeat, Sender: "alpha", Generation: 12, Sequence: 1, Payload: status})

	beta, _ := heartbeat.NewCodec("filer", key)
	m, err := beta.Unmarshal(msg)
	if err != nil {
		fmt.Println(err)
		return
	}
	var s heartbeat.Status
	_ = s.UnmarshalBinary(m.Payload)
	fmt.Println(m.Type, m.Sender, m.Generation, m.Sequence, s.Role, s.Items)

	msg[len(msg)-1] ^= 1
	_, err = beta.Unmarshal(msg)
	fmt.Println(err)
	// Output:
	// heartbeat alpha 12 1 active [{vip started}]
	// heartbeat: message byte 61: bad MAC: heartbeat from "alpha"
}

func ExampleTracker() {
	timing := heartbeat.Timing{Keepalive: 200 * time.Millisecond, Warntime: time.Second, Deadtime: 2 * time.Second, Initdead: 30 * time.Second}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tr, _ := heartbeat.NewTracker(timing, []string{"beta"}, []string{"udp", "serial"}, start)
	ms := func(n int) time.Time { return start.Add(time.Duration(n) * time.Millisecond) }
	show := func(evs []heartbeat.Event) {
		for _, e := range evs {
			fmt.Println(e.Time.Sub(start), e)
		}
	}
	evs, _ := tr.Heard("beta", "udp", ms(100))
	show(evs)
	evs, _ = tr.Heard("beta", "serial", ms(150))
	show(evs)
	evs, _ = tr.Heard("beta", "udp", ms(1400))
	show(evs)
	evs, _ = tr.Heard("beta", "serial", ms(1500))
	show(evs)
	show(tr.Tick(ms(3400))) // udp silent for deadtime
	show(tr.Tick(ms(3500))) // serial too
	// Output:
	// 100ms medium up (peer beta, medium udp)
	// 100ms peer alive (peer beta)
	// 150ms medium up (peer beta, medium serial)
	// 1.4s late heartbeat: 1300 ms (peer beta, medium udp)
	// 1.5s late heartbeat: 1350 ms (peer beta, medium serial)
	// 3.4s medium down: 2000 ms (peer beta, medium udp)
	// 3.5s medium down: 2000 ms (peer beta, medium serial)
	// 3.5s peer dead: 2000 ms (peer beta)
}

func ExamplePeerState_MarshalText() {
	b, _ := json.Marshal(map[string]any{
		"peer":  heartbeat.PeerAlive,
		"media": []heartbeat.LinkState{heartbeat.LinkUp, heartbeat.LinkDown, heartbeat.LinkUnknown},
	})
	fmt.Println(string(b))
	// Output:
	// {"media":["up","down","unknown"],"peer":"alive"}
}
