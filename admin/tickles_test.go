package admin

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// tickleDaemon is a fakeDaemon that also lists connections.
type tickleDaemon struct {
	fakeDaemon
	tickles Tickles
}

func (d *tickleDaemon) Tickles(ctx context.Context) (Tickles, error) {
	return d.tickles, d.record(ctx, "tickles")
}

func TestTicklesEndpoint(t *testing.T) {
	d := &tickleDaemon{tickles: Tickles{Node: "alpha", Lists: []TickleList{
		{Node: "beta", Source: "lan", Version: "5/7", Count: 1, Connections: []string{"198.18.0.100:51234->198.18.0.50:445"}},
		{Node: "beta", Source: "disk"},
	}, Counts: &TickleCounts{Running: true, Tracked: 3}}}
	_, sock := serve(t, d)
	c := NewClient(sock)
	got, err := c.Tickles(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got.Schema != Schema || got.Time.IsZero() || got.Node != "alpha" || len(got.Lists) != 2 || got.Counts == nil || got.Counts.Tracked != 3 {
		t.Fatalf("document %+v", got)
	}
	if got.Lists[1].Connections == nil || got.Lists[0].Connections[0] != "198.18.0.100:51234->198.18.0.50:445" {
		t.Fatalf("lists %+v", got.Lists)
	}
	raw, err := c.TicklesJSON(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"connections": []`, `"last_round": null`, `"source": "lan"`, `"version": "5/7"`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("JSON lacks %s:\n%s", want, raw)
		}
	}
	resp, err := rawClient(sock).Post("http://tandemd/v1/tickles", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET" {
		t.Errorf("POST /v1/tickles: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	d.mu.Lock()
	d.err = Errorf(ErrUnavailable, "starting")
	d.mu.Unlock()
	if _, err := c.Tickles(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Errorf("daemon error: %v, want ErrUnavailable", err)
	}
}

// A Daemon without TickleLister answers 404 with a message that says so.
func TestTicklesNotTracked(t *testing.T) {
	_, sock := serve(t, &fakeDaemon{})
	resp, err := rawClient(sock).Get("http://tandemd/v1/tickles")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "does not track") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	_, err = NewClient(sock).Tickles(context.Background())
	if !errors.Is(err, ErrNotFound) || !strings.HasPrefix(err.Error(), "tickles: ") {
		t.Fatalf("client: %v", err)
	}
}
