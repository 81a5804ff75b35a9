package failover

import (
	"flag"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	seedFlag    = flag.Uint64("failover.seed", 0, "run only the random history with this seed")
	historyFlag = flag.Int("failover.histories", 0, "number of random histories (0: default)")
	deepFlag    = flag.Bool("failover.deep", false, "explore interleavings with larger fault budgets (minutes)")
)

func pairConfig(f func(*Config)) [2]Config {
	var c [2]Config
	for i := range c {
		c[i] = simConfig(i)
		if f != nil {
			f(&c[i])
		}
	}
	return c
}

// TestRandomHistories drives thousands of seeded random histories, each
// hundreds of events long, through the simulated world, checking the
// invariant after every event and that the pair settles with exactly one
// active node once the faults end.
func TestRandomHistories(t *testing.T) {
	variants := []struct {
		name string
		cfg  [2]Config
	}{
		{"plain", pairConfig(nil)},
		{"preferred-beta-failback", pairConfig(func(c *Config) { c.PreferredNode = "beta"; c.AutoFailback = true })},
		{"preferred-alpha-delay", pairConfig(func(c *Config) { c.PreferredNode = "alpha"; c.FenceDelay = 3 * simQuantum })},
		{"no-restarts", pairConfig(func(c *Config) { c.RestartLimit = -1 })},
		{"quorum-disk", pairConfig(simDisk)},
	}
	histories, events := 1500, 400
	if testing.Short() {
		histories, events = 200, 300
	}
	if *historyFlag > 0 {
		histories = *historyFlag
	}
	total, steps := 0, 0
	stats := map[string]int{}
	for vi, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			for h := range histories / len(variants) {
				seed := uint64(vi)<<32 | uint64(h)
				if *seedFlag != 0 && seed != *seedFlag {
					continue
				}
				w, err := randomWorld(seed, events, v.cfg, stats)
				total++
				steps += w.steps
				if err != nil {
					t.Fatalf("seed %d (rerun with -failover.seed=%d): %v\nlast events:\n  %s",
						seed, seed, err, strings.Join(w.trace, "\n  "))
				}
			}
		})
	}
	t.Logf("%d random histories, %d events in all", total, steps)
	keys := slices.Sorted(maps.Keys(stats))
	for _, k := range keys {
		t.Logf("  %-45s %d", k, stats[k])
	}
}

// simDisk gives a pair a quorum disk, with times in the world's quanta.
func simDisk(c *Config) {
	c.Disk = true
	c.Lease = 2 * simQuantum
	c.PeerWatchdog = simQuantum
	c.DiskInterval = simQuantum / 2
}

func exploreConfig(f func(*Config)) [2]Config {
	return pairConfig(func(c *Config) {
		c.InitDead = 3 * simQuantum
		c.FenceRetryMin = simQuantum
		c.FenceRetryMax = 2 * simQuantum
		if f != nil {
			f(c)
		}
	})
}

// steady returns a world in which alpha is active and beta standby.
func steady(t *testing.T, cfg [2]Config) *world {
	t.Helper()
	w := newWorld(cfg, budget{powerOns: 2})
	for i := range 2 {
		if err := w.apply(simEvent{kind: evPowerOn, node: i}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.settle(); err != nil {
		t.Fatal(err)
	}
	if !w.nodes[0].m.owner {
		t.Fatalf("alpha should hold the service after start-up: %+v", w.nodes[0].m.Status())
	}
	w.trace = nil
	return w
}

// TestExhaustive explores every interleaving of small scenarios: each
// delivery order of the messages in flight, each order of results, ticks,
// heartbeat verdicts and operator commands, within a budget of faults.
// The invariant is checked in every state; the states where nothing more
// can happen are settled and must end with exactly one active node.
func TestExhaustive(t *testing.T) {
	scenarios := []struct {
		name   string
		cfg    [2]Config
		start  func(t *testing.T, cfg [2]Config) *world
		deep   budget // with -failover.deep
		budget budget
		short  budget // with -short
		admin  []adminOp
		depth  int
	}{
		{
			name:   "both start at once",
			cfg:    exploreConfig(nil),
			start:  bothOn,
			deep:   budget{ticks: 3, drops: 1, falseVerdicts: 1},
			budget: budget{ticks: 3, falseVerdicts: 1},
			short:  budget{ticks: 2, falseVerdicts: 1},
			depth:  40,
		},
		{
			name:   "both start at once with a quorum disk",
			cfg:    exploreConfig(simDisk),
			start:  bothOn,
			deep:   budget{ticks: 3, drops: 1, falseVerdicts: 1},
			budget: budget{ticks: 3, falseVerdicts: 1},
			short:  budget{ticks: 2, falseVerdicts: 1},
			depth:  40,
		},
		{
			name:   "both lose each other, fence_delay for beta",
			cfg:    exploreConfig(func(c *Config) { c.PreferredNode = "alpha"; c.FenceDelay = 2 * simQuantum }),
			start:  steady,
			deep:   budget{ticks: 4, falseVerdicts: 2},
			budget: budget{ticks: 3, falseVerdicts: 2},
			short:  budget{ticks: 2, falseVerdicts: 2},
			depth:  40,
		},
		{
			name:   "both start at once, one powered off",
			cfg:    exploreConfig(nil),
			start:  bothOn,
			deep:   budget{ticks: 3, powerOffs: 1, powerOns: 1},
			budget: budget{ticks: 2, powerOffs: 1, powerOns: 1},
			short:  budget{ticks: 1, powerOffs: 1, powerOns: 1},
			depth:  40,
		},
		{
			name:   "standby and takeover at once",
			cfg:    exploreConfig(nil),
			start:  steady,
			deep:   budget{ticks: 2, drops: 1, dups: 1, falseVerdicts: 1},
			budget: budget{ticks: 1, drops: 1, dups: 1},
			short:  budget{ticks: 1, drops: 1},
			admin:  []adminOp{{node: 0, cmd: AdminStandby}, {node: 1, cmd: AdminTakeover}},
			depth:  40,
		},
		{
			name:   "failover while a monitor fails",
			cfg:    exploreConfig(nil),
			start:  steady,
			deep:   budget{ticks: 2, monitors: 2, opFails: 1},
			budget: budget{ticks: 1, monitors: 2, opFails: 1},
			short:  budget{ticks: 1, monitors: 1, opFails: 1},
			admin:  []adminOp{{node: 0, cmd: AdminFailover}},
			depth:  40,
		},
		{
			name:   "peer dies mid-handshake",
			cfg:    exploreConfig(nil),
			start:  steady,
			deep:   budget{ticks: 2, powerOffs: 1, powerOns: 1, reorders: 1},
			budget: budget{ticks: 1, powerOffs: 1, powerOns: 1, reorders: 1},
			short:  budget{powerOffs: 1, powerOns: 1, reorders: 1},
			admin:  []adminOp{{node: 0, cmd: AdminStandby}},
			depth:  40,
		},
		{
			name:   "stop fails during a move",
			cfg:    exploreConfig(nil),
			start:  steady,
			deep:   budget{ticks: 1, opFails: 2, drops: 1},
			budget: budget{ticks: 1, opFails: 2},
			short:  budget{opFails: 2},
			admin:  []adminOp{{node: 1, cmd: AdminTakeover}},
			depth:  40,
		},
		{
			name:   "fenced node returns before the fencing result",
			cfg:    exploreConfig(nil),
			start:  steady,
			deep:   budget{ticks: 3, falseVerdicts: 1, powerOns: 1, reorders: 1},
			budget: budget{ticks: 2, falseVerdicts: 1, powerOns: 1},
			short:  budget{ticks: 1, falseVerdicts: 1, powerOns: 1},
			depth:  40,
		},
		{
			name:   "daemon restarts on the active node",
			cfg:    exploreConfig(nil),
			start:  steady,
			deep:   budget{ticks: 3, restarts: 1, falseVerdicts: 1},
			budget: budget{ticks: 2, restarts: 1, falseVerdicts: 1},
			short:  budget{ticks: 1, restarts: 1},
			depth:  40,
		},
		{
			name:   "auto_failback when the preferred node returns",
			cfg:    exploreConfig(func(c *Config) { c.PreferredNode = "alpha"; c.AutoFailback = true }),
			start:  alphaRebooted,
			deep:   budget{ticks: 2, drops: 1, dups: 1},
			budget: budget{ticks: 1, drops: 1, dups: 1},
			short:  budget{ticks: 1, drops: 1},
			depth:  40,
		},
	}
	totalStates, totalLeaves := 0, 0
	for _, sc := range scenarios {
		t.Run(strings.ReplaceAll(sc.name, " ", "_"), func(t *testing.T) {
			w := sc.start(t, sc.cfg)
			switch {
			case *deepFlag:
				w.budget = sc.deep
			case testing.Short():
				w.budget = sc.short
			default:
				w.budget = sc.budget
			}
			w.admin = append(w.admin, sc.admin...)
			w.coalesce = true
			x := &explorer{seen: map[uint64]struct{}{}, maxDepth: sc.depth}
			begin := time.Now()
			if err := x.run(w); err != nil {
				t.Fatal(err)
			}
			t.Logf("%d states, %d settled end states, in %v", x.states, x.leaves, time.Since(begin).Round(time.Millisecond))
			totalStates += x.states
			totalLeaves += x.leaves
		})
	}
	t.Logf("%d states explored in all, %d end states settled", totalStates, totalLeaves)
}

func bothOn(t *testing.T, cfg [2]Config) *world {
	w := newWorld(cfg, budget{powerOns: 2})
	for i := range 2 {
		if err := w.apply(simEvent{kind: evPowerOn, node: i}); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// alphaRebooted: beta holds the service after alpha, the preferred node,
// was powered off and fenced; alpha has just been powered on again.
func alphaRebooted(t *testing.T, cfg [2]Config) *world {
	w := steady(t, cfg)
	w.budget = budget{powerOns: 1}
	w.powerOff(0)
	// Let beta notice, fence and take over, with alpha kept off.
	for range 200 {
		evs := w.enabled()
		var ev *simEvent
		for i := range evs {
			if evs[i].kind != evPowerOn {
				ev = &evs[i]
				break
			}
		}
		if ev == nil {
			w.budget.ticks = 1
			continue
		}
		if err := w.apply(*ev); err != nil {
			t.Fatal(err)
		}
	}
	if !w.nodes[1].m.owner || !w.nodes[1].exec.started {
		t.Fatalf("beta did not take over: %+v", w.nodes[1].m.Status())
	}
	w.budget = budget{powerOns: 1}
	if err := w.apply(simEvent{kind: evPowerOn, node: 0}); err != nil {
		t.Fatal(err)
	}
	w.trace = nil
	return w
}
