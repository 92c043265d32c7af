package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Secret holds a credential. It never reveals its value through fmt, JSON,
// YAML or slog; call Reveal to use it.
//
// In YAML a secret is either a literal string or a reference that keeps the
// value out of the file:
//
//	password: "s3cret"                  # literal
//	password: {env: VCENTER_PASSWORD}   # read from the environment at load
//	password: {file: /run/secrets/vc}   # read from a file (trailing newline dropped)
type Secret struct {
	value  string
	source string // "" for a literal, "env NAME" or "file PATH"
}

// NewSecret wraps a literal value.
func NewSecret(v string) Secret { return Secret{value: v} }

// Reveal returns the secret value.
func (s Secret) Reveal() string { return s.value }

// IsSet reports whether the secret has a non-empty value.
func (s Secret) IsSet() bool { return s.value != "" }

const redacted = "[REDACTED]"

func (s Secret) String() string {
	if s.value == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return `config.Secret("` + s.String() + `")` }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON never writes the value.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalYAML never writes the value; a secret read from env or file is
// written back as its reference.
func (s Secret) MarshalYAML() (any, error) {
	if kind, ref, ok := strings.Cut(s.source, " "); ok {
		return map[string]string{kind: ref}, nil
	}
	return s.String(), nil
}

// UnmarshalYAML accepts a scalar or an {env: NAME} / {file: PATH} mapping.
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*s = Secret{value: n.Value}
		return nil
	case yaml.MappingNode:
		if len(n.Content) != 2 {
			return fmt.Errorf("line %d: a secret reference has exactly one key, env or file", n.Line)
		}
		kind, ref := n.Content[0].Value, n.Content[1].Value
		return s.resolve(kind, ref, n.Line)
	default:
		return fmt.Errorf("line %d: a secret is a string or {env: NAME} or {file: PATH}", n.Line)
	}
}

func (s *Secret) resolve(kind, ref string, line int) error {
	switch kind {
	case "env":
		v, ok := os.LookupEnv(ref)
		if !ok {
			return fmt.Errorf("line %d: environment variable %s is not set", line, ref)
		}
		*s = Secret{value: v, source: "env " + ref}
	case "file":
		b, err := os.ReadFile(ref)
		if err != nil {
			return fmt.Errorf("line %d: reading secret file: %w", line, err)
		}
		*s = Secret{value: strings.TrimRight(string(b), "\r\n"), source: "file " + ref}
	default:
		return fmt.Errorf("line %d: unknown secret reference %q (use env or file)", line, kind)
	}
	return nil
}
