package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Load reads the configuration file at path (none when path is empty) over
// the defaults, decodes each provider instance's settings with the decoder of
// its type, and applies HYPERSDK_* overrides from lookupEnv (os.LookupEnv
// when nil). It does not validate: apply flags, then call Validate.
func Load(path string, lookupEnv func(string) (string, bool), decoders Decoders) (*Config, error) {
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	return load(data, path, lookupEnv, decoders)
}

func load(data []byte, path string, lookupEnv func(string) (string, bool), decoders Decoders) (*Config, error) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	cfg := Default()
	if err := decodeStrict(data, cfg, decoders); err != nil {
		if path == "" {
			return nil, fmt.Errorf("config: %w", err)
		}
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if path != "" {
		cfg.path = path
		cfg.resolveRelativePaths(filepath.Dir(path))
	}
	if err := errors.Join(applyEnv(cfg, lookupEnv), cfg.vcenterFromEnv(decoders, lookupEnv)); err != nil {
		return nil, err
	}
	return cfg, nil
}

func decodeStrict(data []byte, cfg *Config, decoders Decoders) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil // empty file: defaults
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil
	}
	c := &checker{decoders: decoders, providers: map[string]decodedProvider{}}
	c.checkNode("", root, reflect.TypeFor[Config]())
	if len(c.errs) > 0 {
		return errors.Join(c.errs...)
	}
	if err := root.Decode(cfg); err != nil {
		return err
	}
	cfg.attachProviders(c.providers)
	return nil
}

// checker is one strict pass over a configuration file: the problems found
// so far, and the provider settings decoded on the way.
type checker struct {
	decoders  Decoders
	errs      []error
	providers map[string]decodedProvider // by path: "vcenter", "providers[1]"
}

var (
	secretType   = reflect.TypeFor[Secret]()
	durationType = reflect.TypeFor[time.Duration]()
	providerType = reflect.TypeFor[ProviderInstance]()
)

// checkNode walks n against type t and records every unknown key, every
// value of the wrong shape and every malformed scalar, each with its path and
// line, so that one run of --check-config shows all of them. Provider
// instances go to their type's decoder, which checks its settings with the
// same walk (ProviderSettings.Decode).
func (c *checker) checkNode(path string, n *yaml.Node, t reflect.Type) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	fail := func(format string, args ...any) {
		c.errs = append(c.errs, fmt.Errorf("line %d: %s: %s", n.Line, displayPath(path), fmt.Sprintf(format, args...)))
	}
	switch {
	case t == secretType:
		switch n.Kind {
		case yaml.ScalarNode:
		case yaml.MappingNode:
			if len(n.Content) != 2 || (n.Content[0].Value != "env" && n.Content[0].Value != "file") {
				fail("a secret reference is {env: NAME} or {file: PATH}")
				return
			}
			if err := new(Secret).UnmarshalYAML(n); err != nil {
				fail("%v", trimLine(err))
			}
		default:
			fail("expected a string or {env: NAME} or {file: PATH}")
		}
	case t == durationType:
		if n.Kind != yaml.ScalarNode {
			fail("expected a duration such as 30s or 5m")
		} else if _, err := time.ParseDuration(n.Value); err != nil {
			fail("invalid duration %q (examples: 30s, 5m, 1h)", n.Value)
		}
	case t == providerType:
		c.checkProvider(path, n, path == "vcenter")
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			fail("expected a mapping of keys")
			return
		}
		c.checkMapping(path, n, structKeys(t))
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			fail("expected a list")
			return
		}
		for i, item := range n.Content {
			c.checkNode(fmt.Sprintf("%s[%d]", path, i), item, t.Elem())
		}
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			fail("expected a mapping")
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			c.checkNode(joinPath(path, n.Content[i].Value), n.Content[i+1], t.Elem())
		}
	default:
		if n.Kind != yaml.ScalarNode {
			fail("expected a single value, not a %s", kindName(n.Kind))
			return
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			fail("expected %s, got %q", typeName(t), n.Value)
		}
	}
}

func (c *checker) checkMapping(path string, n *yaml.Node, keys map[string]reflect.Type) {
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := joinPath(path, k.Value)
		if seen[k.Value] {
			c.errs = append(c.errs, fmt.Errorf("line %d: %s: duplicate key", k.Line, p))
			continue
		}
		seen[k.Value] = true
		ft, ok := keys[k.Value]
		if !ok {
			c.errs = append(c.errs, fmt.Errorf("line %d: %s: unknown key (known keys here: %s)", k.Line, p, strings.Join(sortedKeys(keys), ", ")))
			continue
		}
		c.checkNode(p, v, ft)
	}
}

// structKeys maps YAML keys to field types, flattening inline fields.
func structKeys(t reflect.Type) map[string]reflect.Type {
	keys := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			for k, v := range structKeys(f.Type) {
				keys[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		keys[name] = f.Type
	}
	return keys
}

func sortedKeys(m map[string]reflect.Type) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func displayPath(path string) string {
	if path == "" {
		return "(top level)"
	}
	return path
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	default:
		return "value"
	}
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	default:
		return "a " + t.Kind().String()
	}
}

func trimLine(err error) string {
	s := err.Error()
	if strings.HasPrefix(s, "line ") {
		if _, rest, ok := strings.Cut(s, ": "); ok {
			return rest
		}
	}
	return s
}

func (c *Config) resolveRelativePaths(base string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	abs(&c.DataDir)
	abs(&c.Database.Path)
	abs(&c.Export.OutputDir)
	abs(&c.API.TLSCert)
	abs(&c.API.TLSKey)
	for i := range c.Export.AllowedRoots {
		abs(&c.Export.AllowedRoots[i])
	}
}

// EnvPrefix starts every environment override: HYPERSDK_API_LISTEN sets
// api.listen, HYPERSDK_VCENTER_PASSWORD sets vcenter.password.
const EnvPrefix = "HYPERSDK_"

func applyEnv(cfg *Config, lookupEnv func(string) (string, bool)) error {
	var errs []error
	// A nil section (vcenter:) is created only when one of its variables is set.
	anySetUnder := func(prefix string, t reflect.Type) bool {
		set := false
		walkEnv(reflect.New(t).Elem(), prefix, func(string, reflect.Type) bool { return true }, func(name string, _ reflect.Value) {
			if _, ok := lookupEnv(name); ok {
				set = true
			}
		})
		return set
	}
	walkEnv(reflect.ValueOf(cfg).Elem(), EnvPrefix, anySetUnder, func(name string, v reflect.Value) {
		raw, ok := lookupEnv(name)
		if !ok {
			return
		}
		if err := setFromString(v, raw); err != nil {
			errs = append(errs, fmt.Errorf("environment %s: %w", name, err))
		}
	})
	return errors.Join(errs...)
}

// walkEnv visits every scalar setting reachable through structs, and
// through pointers to structs for which alloc(prefix) says to create them.
func walkEnv(v reflect.Value, prefix string, alloc func(prefix string, t reflect.Type) bool, visit func(name string, v reflect.Value)) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		fv := v.Field(i)
		if strings.Contains(opts, "inline") {
			walkEnv(fv, prefix, alloc, visit)
			continue
		}
		key := prefix + strings.ToUpper(name)
		ft := f.Type
		if ft == providerType || ft == reflect.PointerTo(providerType) {
			continue // the vcenter block: see vcenterFromEnv
		}
		switch {
		case ft == secretType || ft == durationType || isScalar(ft) || (ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.String):
			visit(key, fv)
		case ft.Kind() == reflect.Pointer && isScalar(ft.Elem()):
			visit(key, fv)
		case ft.Kind() == reflect.Struct:
			walkEnv(fv, key+"_", alloc, visit)
		case ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct:
			if fv.IsNil() {
				if !alloc(key+"_", ft.Elem()) {
					continue
				}
				fv.Set(reflect.New(ft.Elem()))
			}
			walkEnv(fv.Elem(), key+"_", alloc, visit)
		}
	}
}

func isScalar(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int64, reflect.Int32, reflect.Float64:
		return true
	}
	return false
}

func setFromString(v reflect.Value, raw string) error {
	switch {
	case v.Type() == secretType:
		v.Set(reflect.ValueOf(Secret{value: raw, source: ""}))
	case v.Type() == durationType:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("invalid duration %q (examples: 30s, 5m, 1h)", raw)
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.Pointer:
		nv := reflect.New(v.Type().Elem())
		if err := setFromString(nv.Elem(), raw); err != nil {
			return err
		}
		v.Set(nv)
	case v.Kind() == reflect.String:
		v.SetString(raw)
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("expected true or false, got %q", raw)
		}
		v.SetBool(b)
	case v.Kind() == reflect.Int || v.Kind() == reflect.Int64 || v.Kind() == reflect.Int32:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return fmt.Errorf("expected an integer, got %q", raw)
		}
		v.SetInt(n)
	case v.Kind() == reflect.Float64:
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return fmt.Errorf("expected a number, got %q", raw)
		}
		v.SetFloat(f)
	case v.Kind() == reflect.Slice:
		var parts []string
		for p := range strings.SplitSeq(raw, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		v.Set(reflect.ValueOf(parts))
	default:
		return fmt.Errorf("cannot be set from the environment")
	}
	return nil
}
