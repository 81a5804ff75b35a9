package heartbeat

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestStatusRoundTrip(t *testing.T) {
	for _, s := range []Status{
		{},
		{Role: "standby"},
		{Role: "active", Flags: 0x80000001, Items: []StatusItem{{"data", "started"}, {"vip", "started"}, {"smb", "failed"}}},
		{Role: strings.Repeat("r", MaxRoleLen), Items: []StatusItem{{strings.Repeat("n", MaxNameLen), strings.Repeat("s", MaxStateLen)}}},
	} {
		b, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got Status
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("%+v: %v", s, err)
		}
		if !reflect.DeepEqual(got, s) {
			t.Errorf("round trip: got %+v, want %+v", got, s)
		}
	}
}

func TestStatusLargestFitsPayload(t *testing.T) {
	items := make([]StatusItem, MaxStatusItems)
	for i := range items {
		items[i] = StatusItem{strings.Repeat("n", 20), strings.Repeat("s", 10)}
	}
	s := Status{Role: "active", Items: items}
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > MaxPayload {
		t.Fatalf("%d bytes", len(b))
	}
	items[0].Name = strings.Repeat("n", MaxNameLen)
	for i := range items {
		items[i].State = strings.Repeat("s", MaxStateLen)
	}
	if _, err := (Status{Items: items}).MarshalBinary(); err == nil || !strings.Contains(err.Error(), "limit 1200") {
		t.Fatalf("oversized status: got %v", err)
	}
}

func TestStatusMarshalRejects(t *testing.T) {
	for _, tc := range []struct {
		s    Status
		want string
	}{
		{Status{Role: strings.Repeat("r", MaxRoleLen+1)}, "role"},
		{Status{Items: make([]StatusItem, MaxStatusItems+1)}, "33 items"},
		{Status{Items: []StatusItem{{Name: strings.Repeat("n", MaxNameLen+1)}}}, "item 0 name"},
		{Status{Items: []StatusItem{{Name: "vip", State: strings.Repeat("s", MaxStateLen+1)}}}, `item "vip" state`},
	} {
		if _, err := tc.s.MarshalBinary(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want an error containing %q", err, tc.want)
		}
	}
}

func TestStatusUnmarshalErrors(t *testing.T) {
	good, err := Status{Role: "active", Flags: 3, Items: []StatusItem{{"vip", "started"}}}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// version 0, role length 1, role 2..7, flags 8..11, count 12, item
	// name length 13, name 14..16, state length 17, state 18..24.
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "byte 0: bad status payload: empty"},
		{"version", append([]byte{9}, good[1:]...), "byte 0: bad status payload: version 9"},
		{"role length missing", good[:1], "byte 1: bad status payload: role length missing"},
		{"role length over", append([]byte{1, 33}, good[2:]...), "byte 1: bad status payload: role length 33, limit 32"},
		{"role cut", good[:4], "byte 2: bad status payload: role needs 6 bytes, 2 left"},
		{"flags cut", good[:10], "byte 8: bad status payload: flags and count need 5 bytes, 2 left"},
		{"too many items", append(append([]byte{}, good[:12]...), 33), "byte 12: bad status payload: 33 items, limit 32"},
		{"item cut", good[:16], "byte 14: bad status payload: item 0 name needs 3 bytes, 2 left"},
		{"state missing", good[:17], "byte 17: bad status payload: item 0 state length missing"},
		{"trailing", append(append([]byte{}, good...), 0), "byte 25: bad status payload: 1 bytes after the last item"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s Status
			err := s.UnmarshalBinary(tc.in)
			if err == nil || !errors.Is(err, ErrStatus) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}
