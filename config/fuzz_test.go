package config

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that every problem is reported
// as an *Error, and that whatever Parse accepts survives a round trip through
// Marshal. The seeds in testdata/fuzz/FuzzParse run with every go test.
func FuzzParse(f *testing.F) {
	key := writeKey(f, 0o600, "k")
	old := statFile
	statFile = func(string) (os.FileInfo, error) { return old(key) }
	f.Cleanup(func() { statFile = old })

	f.Add(designExample(f, "/etc/tandem/authkey"))
	f.Add([]byte(everyKind))
	f.Add([]byte(edit("/etc/tandem/authkey", "")))
	for _, doc := range validDocs("/etc/tandem/authkey") {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.toml", data)
		if err != nil {
			list, ok := err.(ErrorList)
			if !ok || len(list) == 0 {
				t.Fatalf("error %T %v is not a non-empty ErrorList", err, err)
			}
			for _, e := range list {
				if e.File != "fuzz.toml" || !strings.HasPrefix(e.Error(), "config: fuzz.toml") {
					t.Fatalf("badly formed problem %#v", e)
				}
			}
			if c != nil {
				t.Fatal("a Config with an error")
			}
			return
		}
		out, err := Marshal(c)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		c2, err := Parse("fuzz.toml", out)
		if err != nil {
			t.Fatalf("Parse(Marshal) failed: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip changed the config:\n%s", out)
		}
		if out2, _ := Marshal(c2); !bytes.Equal(out, out2) {
			t.Fatalf("Marshal not stable:\n%s\nthen\n%s", out, out2)
		}
	})
}
