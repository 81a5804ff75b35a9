package resources

import (
	"context"
	"slices"
	"testing"
	"time"
)

// benchmarkCycle measures Start (with the first round of announcements),
// Monitor and Stop of a floating address in a namespace, and reports the
// median cycle and the median Start.
func benchmarkCycle(b *testing.B, p FloatIPParams) {
	v := newVethPair(b)
	p.Name, p.NetNS, p.Interface = "vip", v.nodeNS, v.nodeLink
	f := NewFloatIP(p)
	ctx := context.Background()
	var cycles, starts []time.Duration
	for b.Loop() {
		t0 := time.Now()
		if err := f.Start(ctx); err != nil {
			b.Fatal(err)
		}
		started := time.Since(t0)
		if err := f.Monitor(ctx); err != nil {
			b.Fatal(err)
		}
		if err := f.Stop(ctx); err != nil {
			b.Fatal(err)
		}
		cycles, starts = append(cycles, time.Since(t0)), append(starts, started)
	}
	b.ReportMetric(median(cycles), "median-cycle-ms")
	b.ReportMetric(median(starts), "median-start-ms")
}

func median(ds []time.Duration) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[len(s)/2]) / float64(time.Millisecond)
}

// BenchmarkFloatIPv4Median is an IPv4 cycle with gratuitous ARP, the
// first round within Start, the rest cancelled by Stop.
func BenchmarkFloatIPv4Median(b *testing.B) {
	benchmarkCycle(b, FloatIPParams{Address: "198.18.0.50/24"})
}

// BenchmarkFloatIPv6Median is the same cycle for IPv6: the address added
// without DAD and announced by an unsolicited NA.
func BenchmarkFloatIPv6Median(b *testing.B) {
	benchmarkCycle(b, FloatIPParams{Address: "2001:2::50/64"})
}
