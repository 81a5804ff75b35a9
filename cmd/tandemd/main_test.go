package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRefusals(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "tandem.toml")
	if err := os.WriteFile(bad, []byte("[cluster]\nname = \"x\"\nkeepalive = \"fast\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"extra"}, 2, `unexpected argument "extra"`},
		{[]string{"--log-level", "loud"}, 2, `--log-level "loud"`},
		{[]string{"--log-format", "xml"}, 2, `--log-format "xml"`},
		{[]string{"--config", filepath.Join(dir, "missing.toml")}, 1, "missing.toml"},
		{[]string{"--config", bad}, 1, "tandem.toml:3"},
	} {
		var stderr bytes.Buffer
		code := run(c.args, &stderr)
		if code != c.code || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("tandemd %q: exit %d, %q; want exit %d and %q", c.args, code, stderr.String(), c.code, c.want)
		}
		if c.code == 1 && !strings.Contains(stderr.String(), "refusing to start") {
			t.Errorf("tandemd %q: %q does not say it refuses to start", c.args, stderr.String())
		}
	}
}
