package fence

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/testenv"
)

// TestLabPowerSwitch fences a lab node through the lab's power switch,
// fence_tandemlab, a standard stdin agent, run from the test process.
func TestLabPowerSwitch(t *testing.T) {
	lab := testenv.Start(t, testenv.Options{})
	a := lab.Node("a")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	agent := &Agent{
		Name:    lab.FenceAgent(),
		Node:    "a",
		Params:  map[string]string{"plug": "a"},
		Timeout: 30 * time.Second,
		Retry:   Retry{Attempts: 2, Backoff: 100 * time.Millisecond},
	}
	if err := agent.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := agent.Monitor(ctx); err != nil {
		t.Fatal(err)
	}
	if res, err := agent.Status(ctx); err != nil || res.Power != PowerOn {
		t.Fatalf("status of a running node: %+v, %v", res, err)
	}

	res, err := agent.Fence(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	if res.Power != PowerOff || res.Attempts != 1 {
		t.Errorf("fence: %+v", res)
	}
	if a.Powered() {
		t.Fatal("node a is powered after a confirmed fence")
	}
	if res, err := agent.Status(ctx); err != nil || res.Power != PowerOff {
		t.Fatalf("status after fence: %+v, %v", res, err)
	}
	// Fencing a node that is already off succeeds: the survivor may retry
	// after a fence whose answer it lost.
	if res, err := agent.Fence(ctx); err != nil || res.Power != PowerOff {
		t.Fatalf("second fence: %+v, %v", res, err)
	}

	if res, err := agent.On(ctx); err != nil || res.Power != PowerOn {
		t.Fatalf("on: %+v, %v", res, err)
	}
	if !a.Powered() {
		t.Fatal("node a is not powered after a confirmed on")
	}

	// The same from inside node b, as tandemd there runs it: the Command
	// seam starts the agent in b's namespaces.
	fromB := *agent
	fromB.Command = lab.Node("b").CommandContext
	if res, err := fromB.Fence(ctx); err != nil || res.Power != PowerOff {
		t.Fatalf("fence from b: %+v, %v", res, err)
	}
	if a.Powered() {
		t.Fatal("node a is powered after a confirmed fence from b")
	}
	if res, err := fromB.On(ctx); err != nil || res.Power != PowerOn || !a.Powered() {
		t.Fatalf("on from b: %+v, %v, powered %v", res, err, a.Powered())
	}

	// A plug the switch does not have: the switch's own message.
	bad := &Agent{Name: lab.FenceAgent(), Node: "c", Params: map[string]string{"plug": "c"}, Retry: Retry{Attempts: 1}}
	_, err = bad.Fence(ctx)
	if err == nil || !strings.HasPrefix(err.Error(), "fence: agent "+lab.FenceAgent()+": off for c: exit 1: ") || !strings.Contains(err.Error(), `unknown node "c"`) {
		t.Errorf("fence of an unknown plug: %v", err)
	}
	if !lab.Node("b").Powered() || !a.Powered() {
		t.Error("a failed fence powered a node off")
	}
}
