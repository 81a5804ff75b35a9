package heartbeat

import (
	"errors"
	"math/rand/v2"
	"testing"
)

func TestWindow(t *testing.T) {
	type step struct {
		gen, seq uint64
		want     error // nil, ErrReplayed or ErrStale
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"first message of any sequence", []step{{5, 1000, nil}}},
		{"in order", []step{{1, 1, nil}, {1, 2, nil}, {1, 3, nil}}},
		{"duplicate", []step{{1, 1, nil}, {1, 1, ErrReplayed}}},
		{"duplicate after newer", []step{{1, 1, nil}, {1, 2, nil}, {1, 1, ErrReplayed}, {1, 2, ErrReplayed}}},
		{"reorder within window accepted once", []step{
			{1, 10, nil}, {1, 8, nil}, {1, 9, nil}, {1, 7, nil},
			{1, 8, ErrReplayed}, {1, 9, ErrReplayed}, {1, 10, ErrReplayed}, {1, 7, ErrReplayed},
		}},
		{"gap then fill", []step{{1, 1, nil}, {1, 100, nil}, {1, 50, nil}, {1, 2, nil}, {1, 50, ErrReplayed}}},
		{"window edge", []step{
			{1, 200, nil},
			{1, 200 - WindowSize + 1, nil},
			{1, 200 - WindowSize, ErrStale},
			{1, 200 - WindowSize + 1, ErrReplayed},
		}},
		{"jump past the window forgets", []step{{1, 1, nil}, {1, 1 + WindowSize, nil}, {1, 1, ErrStale}, {1, 2, nil}, {1, 2, ErrReplayed}}},
		{"jump of exactly 64", []step{{1, 10, nil}, {1, 74, nil}, {1, 10, ErrReplayed}, {1, 11, nil}, {1, 11, ErrReplayed}}},
		{"jump of 65 keeps bits", []step{{1, 10, nil}, {1, 11, nil}, {1, 76, nil}, {1, 10, ErrReplayed}, {1, 11, ErrReplayed}, {1, 12, nil}}},
		{"old generation rejected", []step{{2, 1, nil}, {1, 5, ErrStale}, {1, 1000, ErrStale}}},
		{"restart accepted, low sequence", []step{{1, 500, nil}, {2, 1, nil}, {2, 2, nil}, {1, 501, ErrStale}, {2, 1, ErrReplayed}}},
		{"restart resets the bitmap", []step{{1, 5, nil}, {1, 6, nil}, {2, 6, nil}, {2, 5, nil}, {2, 5, ErrReplayed}}},
		{"sequence zero", []step{{1, 0, nil}, {1, 0, ErrReplayed}, {1, 1, nil}}},
		{"max sequence", []step{{1, 1<<64 - 1, nil}, {1, 1<<64 - 2, nil}, {1, 1<<64 - 1, ErrReplayed}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w Window
			for i, s := range tc.steps {
				check := w.Check(s.gen, s.seq)
				err := w.Accept(s.gen, s.seq)
				if !errors.Is(err, s.want) || (s.want == nil && err != nil) {
					t.Fatalf("step %d (gen %d seq %d): got %v, want %v", i, s.gen, s.seq, err, s.want)
				}
				if (check == nil) != (err == nil) {
					t.Fatalf("step %d: Check said %v, Accept %v", i, check, err)
				}
			}
		})
	}
}

// The window agrees with a plain model (a set of accepted sequence numbers
// per generation) over random orders of arrival.
func TestWindowModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		var w Window
		var gen, top uint64
		seen := map[uint64]bool{}
		started := false
		for range 500 {
			g := gen
			switch r.IntN(40) {
			case 0:
				g = gen + 1
			case 1:
				if gen > 0 {
					g = gen - 1
				}
			}
			s := top + uint64(r.IntN(20))
			if top > 150 {
				s = top - 150 + uint64(r.IntN(170))
			}
			var want error
			switch {
			case !started || g > gen:
			case g < gen:
				want = ErrStale
			case s > top:
			case top-s >= WindowSize:
				want = ErrStale
			case seen[s]:
				want = ErrReplayed
			}
			err := w.Accept(g, s)
			if !errors.Is(err, want) || (want == nil && err != nil) {
				t.Fatalf("gen %d seq %d (newest gen %d top %d): got %v, want %v", g, s, gen, top, err, want)
			}
			if err != nil {
				continue
			}
			if !started || g > gen {
				started, gen, top = true, g, s
				clear(seen)
			}
			seen[s] = true
			top = max(top, s)
			if got, ok := w.Generation(); !ok || got != gen {
				t.Fatalf("Generation() = %d, %v; want %d", got, ok, gen)
			}
		}
	}
}

func BenchmarkWindowAccept(b *testing.B) {
	var w Window
	var seq uint64
	for b.Loop() {
		seq++
		if err := w.Accept(1, seq); err != nil {
			b.Fatal(err)
		}
	}
}
