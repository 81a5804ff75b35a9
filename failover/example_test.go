package failover_test

import (
	"fmt"
	"time"

	"github.com/tandem-ha/tandem/failover"
)

// A node starts alone: it makes sure its group is stopped, waits initdead
// for its peer, fences the silent peer and only then starts the group.
func Example() {
	m, err := failover.New(failover.Config{
		Node:        "alpha",
		Peer:        "beta",
		Incarnation: 1,
		InitDead:    10 * time.Second,
	})
	if err != nil {
		panic(err)
	}
	show := func(now time.Duration, ev failover.Event) {
		for _, a := range m.Step(now, ev) {
			switch a := a.(type) {
			case failover.StartGroup:
				fmt.Printf("%v: start the group\n", now)
			case failover.StopGroup:
				fmt.Printf("%v: stop the group (force %v)\n", now, a.Force)
			case failover.Fence:
				fmt.Printf("%v: fence %s\n", now, a.Node)
			case failover.RoleChanged:
				fmt.Printf("%v: role %v -> %v\n", now, a.From, a.To)
			}
		}
	}
	show(0, failover.Tick{})
	show(time.Second, failover.ResourceResult{Op: failover.OpStop})
	show(10*time.Second, failover.Tick{})
	show(12*time.Second, failover.FenceResult{Node: "beta", Off: true})
	show(15*time.Second, failover.ResourceResult{Op: failover.OpStart})
	fmt.Println(m.Status().Role, m.Status().Holder)
	// Output:
	// 0s: stop the group (force false)
	// 0s: role unknown -> stopping
	// 1s: role stopping -> unknown
	// 10s: fence beta
	// 10s: role unknown -> fencing
	// 12s: start the group
	// 12s: role fencing -> starting
	// 15s: role starting -> active
	// active alpha
}
