package fence

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
)

// fileSuffix marks a parameter that names a file holding a secret.
const fileSuffix = "_file"

// agentFileParams are the parameters of Debian's fence-agents that end in
// _file but are paths for the agent itself, not secrets for tandem to
// read. They matter only when an Agent has no Metadata to say so.
var agentFileParams = map[string]bool{
	"cookie_file":   true,
	"debug_file":    true,
	"identity_file": true,
	"status_file":   true,
	"token_file":    true,
}

// keyRE is what a parameter name may be: the agents' names and their
// long options (lanplus, ipport, ssh-options).
var keyRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// secretFile reports whether key names a file whose content is to be passed
// as the key without the suffix.
func (a *Agent) secretFile(key string) bool {
	if !strings.HasSuffix(key, fileSuffix) || key == fileSuffix {
		return false
	}
	if a.Metadata != nil {
		_, known := a.Metadata.Lookup(key)
		return !known
	}
	return !agentFileParams[key]
}

// secretKey reports whether an inline value of key is a secret, to be kept
// out of error messages.
func secretKey(key string) bool {
	k := strings.ToLower(key)
	for _, s := range []string{"pass", "secret", "token", "key", "_kg"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// input builds the agent's standard input for action: "action=ACTION" first,
// then the parameters sorted by key, secret files read. It leaves out plug
// and port unless withNode. It returns the secret values it holds, so that
// they can be redacted from anything the agent says.
func (a *Agent) input(action string, withNode bool) (string, []string, error) {
	keys := make([]string, 0, len(a.Params))
	for k := range a.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "action=%s\n", action)
	var secrets []string
	seen := map[string]string{}
	for _, k := range keys {
		v := a.Params[k]
		if !keyRE.MatchString(k) {
			return "", nil, fmt.Errorf("parameter %q: not a parameter name", k)
		}
		if k == "action" || k == "option" {
			return "", nil, fmt.Errorf("parameter %q: set by each operation, not configurable", k)
		}
		if !withNode && (k == "plug" || k == "port") {
			continue
		}
		name := k
		if a.secretFile(k) {
			name = strings.TrimSuffix(k, fileSuffix)
			s, err := readSecret(v)
			if err != nil {
				return "", nil, fmt.Errorf("parameter %s: %w", k, err)
			}
			v = s
			secrets = append(secrets, v)
		} else {
			if strings.ContainsAny(v, "\n\r\x00") {
				// The value stays out of the message: it may be a secret.
				return "", nil, fmt.Errorf("parameter %s: value holds a line break or NUL", k)
			}
			if secretKey(k) {
				secrets = append(secrets, v)
			}
		}
		if other, dup := seen[name]; dup {
			return "", nil, fmt.Errorf("parameters %s and %s both give %s", other, k, name)
		}
		seen[name] = k
		fmt.Fprintf(&b, "%s=%s\n", name, v)
	}
	return b.String(), secrets, nil
}

// readSecret reads a secret from path: its content without the trailing
// newline. The error names the file, never the content.
func readSecret(path string) (string, error) {
	if path == "" {
		return "", errors.New("no file named")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSuffix(string(data), "\n")
	s = strings.TrimSuffix(s, "\r")
	switch {
	case s == "":
		return "", fmt.Errorf("%s is empty", path)
	case strings.ContainsAny(s, "\n\r\x00"):
		return "", fmt.Errorf("%s holds more than one line", path)
	}
	return s, nil
}

// redact replaces every secret in s by "***", longest first, so that a
// secret containing another is not half shown.
func redact(s string, secrets []string) string {
	sorted := append([]string(nil), secrets...)
	sort.Slice(sorted, func(i, j int) bool { return len(sorted[i]) > len(sorted[j]) })
	for _, sec := range sorted {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "***")
		}
	}
	return s
}

// redactErr is err with its message redacted.
func redactErr(err error, secrets []string) error {
	msg := err.Error()
	if r := redact(msg, secrets); r != msg {
		return errors.New(r)
	}
	return err
}
