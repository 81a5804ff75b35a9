package testenv

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"
)

const crashEnv = "TANDEM_LAB_TEST_CRASH"

func TestMain(m *testing.M) {
	if os.Getenv(crashEnv) == "1" {
		os.Exit(crashedRun())
	}
	os.Exit(m.Run())
}

// crashedRun builds a lab, puts a mount and processes in it, and exits
// without closing it, as a test binary that crashed would.
func crashedRun() int {
	lab, err := New(Options{})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	a := lab.Node("a")
	ctx := context.Background()
	if _, err := a.Run(ctx, "mount", "-t", "ext4", lab.DataDevice(), lab.Mountpoint()); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	if err := a.Command("sh", "-c", "cd "+lab.Mountpoint()+" && exec sleep 600").Start(); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("lab", lab.Name)
	return 0
}

func TestSweepAfterCrash(t *testing.T) {
	Require(t)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), crashEnv+"=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("crashing run: %v: %s", err, out)
	}
	var name string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "lab "); ok {
			name = n
		}
	}
	if name == "" {
		t.Fatalf("crashing run printed no lab name: %s", out)
	}
	left := Leftovers(name)
	t.Cleanup(func() { Sweep(name) })
	for _, want := range []string{"cgroup", "network namespace", "loop device", "directory"} {
		found := false
		for _, l := range left {
			found = found || strings.HasPrefix(l, want)
		}
		if !found {
			t.Fatalf("the crashed lab left no %s, so the sweep is not tested: %v", want, left)
		}
	}
	removed, err := Sweep(name)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) < len(left) {
		t.Errorf("sweep removed %v; the lab had left %v", removed, left)
	}
	if again := Leftovers(name); len(again) > 0 {
		t.Fatalf("after the sweep, still left: %v", again)
	}
}

// BenchmarkLabUpDown measures building a lab and tearing it down.
func BenchmarkLabUpDown(b *testing.B) {
	Require(b)
	var ups, downs []time.Duration
	for b.Loop() {
		start := time.Now()
		lab, err := New(Options{})
		if err != nil {
			b.Fatal(err)
		}
		up := time.Now()
		if err := lab.Close(); err != nil {
			b.Fatal(err)
		}
		ups = append(ups, up.Sub(start))
		downs = append(downs, time.Since(up))
		if left := Leftovers(lab.Name); len(left) > 0 {
			b.Fatalf("left behind: %v", left)
		}
	}
	b.ReportMetric(median(ups).Seconds()*1000, "up-ms")
	b.ReportMetric(median(downs).Seconds()*1000, "down-ms")
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
