package config

import "testing"

func TestIndexLines(t *testing.T) {
	doc := "\xef\xbb\xbf# comment [not] a = 1\n" + // 1
		`top = "x # not a comment" # comment` + "\n" + // 2
		`[cluster]` + "\n" + // 3
		`name = """` + "\n" + // 4
		`multi = "line" \"""` + "\n" + // 5
		`"""` + "\n" + // 6
		`lit = '''a` + "\n" + // 7
		`b''''` + "\n" + // 8
		`after = 'x'` + "\n" + // 9
		`  [ "heartbeat" . udp ]  # spaced` + "\n" + // 10
		`port = 694` + "\n" + // 11
		`[[node]]` + "\n" + // 12
		`name = "a"` + "\n" + // 13
		`fence = { agent = "f", plug = { x = 1,` + "\n" + // 14
		`  y = [1, 2] } }` + "\n" + // 15
		`[[node]]` + "\n" + // 16
		`name = "b"` + "\n" + // 17
		`fence.agent = "g"` + "\n" + // 18
		`[[resource]]` + "\n" + // 19
		`ports = [` + "\n" + // 20
		`  445, # smb` + "\n" + // 21
		`  139,` + "\n" + // 22
		`]` + "\n" + // 23
		`[resource.params]` + "\n" + // 24
		`'quoted key' = 1979-05-27 07:32:00Z` + "\n" + // 25
		`[[resource]]` + "\n" + // 26
		`list = [{ a = 1 }, ` + "\n" + // 27
		`  { b = "]}" }]` + "\n" + // 28
		`[[resource.sub]]` + "\n" + // 29
		`[[resource.sub]]` + "\n" + // 30
		`k = "\u0041\\"` + "\n" // 31

	want := map[string]int{
		"top":                           2,
		"cluster":                       3,
		"cluster.name":                  4,
		"cluster.lit":                   7,
		"cluster.after":                 9,
		"heartbeat":                     10,
		"heartbeat.udp":                 10,
		"heartbeat.udp.port":            11,
		"node":                          12,
		"node[0]":                       12,
		"node[0].name":                  13,
		"node[0].fence":                 14,
		"node[0].fence.agent":           14,
		"node[0].fence.plug.x":          14,
		"node[0].fence.plug.y":          15,
		"node[0].fence.plug.y[1]":       15,
		"node[1]":                       16,
		"node[1].name":                  17,
		"node[1].fence":                 18,
		"node[1].fence.agent":           18,
		"resource[0]":                   19,
		"resource[0].ports":             20,
		"resource[0].ports[0]":          21,
		"resource[0].ports[1]":          22,
		"resource[0].params":            24,
		"resource[0].params.quoted key": 25,
		"resource[1]":                   26,
		"resource[1].list[0].a":         27,
		"resource[1].list[1]":           28,
		"resource[1].list[1].b":         28,
		"resource[1].sub[0]":            29,
		"resource[1].sub[1]":            30,
		"resource[1].sub[1].k":          31,
	}
	ix := indexLines([]byte(doc))
	for path, line := range want {
		if got, ok := ix[path]; !ok || got != line {
			t.Errorf("line of %s = %d (found %v), want %d", path, got, ok, line)
		}
	}
	for _, absent := range []string{"cluster.multi", "a", "not", "resource[2]"} {
		if ix.has(absent) {
			t.Errorf("%s found at line %d; it is not a key", absent, ix[absent])
		}
	}
	if got := ix.line("node[1].fence.plug"); got != 18 {
		t.Errorf("line of a missing key = %d, want its table's 18", got)
	}
	if got := ix.line("watchdog.timeout"); got != 0 {
		t.Errorf("line of a missing table = %d, want 0", got)
	}
}

// Input the parser would refuse must not hang or crash the scanner.
func TestIndexLinesBroken(t *testing.T) {
	for _, doc := range []string{"", "[", "[[", "a", "a =", `a = "`, `a = """`, "a = '''", "a = [", "a = {", "a = [1,", "a = {b", "= 1", "\\", `"`, "[a.", "a.'b"} {
		indexLines([]byte(doc))
	}
}
