package config

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ProviderInstance is one named provider in the `providers:` list. The keys
// name, type and max_concurrent are common; every other key belongs to the
// settings of the instance's type, which the type's decoder (see Decoders)
// checks and decodes:
//
//	providers:
//	  - name: vc-east
//	    type: vsphere
//	    max_concurrent: 2
//	    url: https://vc-east.example.com/sdk
//	    username: exporter@vsphere.local
//	    password: {env: VC_EAST_PASSWORD}
type ProviderInstance struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"`
	// MaxConcurrent caps concurrent exports from this instance (0: only
	// jobs.per_provider_limit and jobs.max_concurrent apply).
	MaxConcurrent int `yaml:"max_concurrent"`

	// Raw holds the type-specific keys as written, undecoded (a mapping
	// node with their lines); nil for an instance not read from a file.
	Raw *yaml.Node `yaml:"-"`
	// Settings is what the type's decoder returned for Raw (for example a
	// *vsphere.Config); the type's factory receives it.
	Settings any `yaml:"-"`
}

// SeedVCenterType is the provider type of the seed configuration's
// `vcenter:` block.
const SeedVCenterType = "vsphere"

// ProviderDecoder checks and decodes the settings of one instance of its
// provider type, usually with ProviderSettings.Decode into the type's own
// struct. It returns every problem found, each naming its key and line.
type ProviderDecoder func(s *ProviderSettings) (any, error)

// Decoders maps provider types to their decoders. The composition root
// supplies them (providers.Registry.Decoders); a type without a decoder is
// unknown to the configuration.
type Decoders map[string]ProviderDecoder

// Types lists the types that have a decoder, sorted.
func (d Decoders) Types() []string {
	out := make([]string, 0, len(d))
	for t := range d {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

func (d Decoders) available() string {
	if len(d) == 0 {
		return "none"
	}
	return strings.Join(d.Types(), ", ")
}

// ProviderSettings is the type-specific part of one provider instance, as
// handed to its type's decoder.
type ProviderSettings struct {
	// Name is the instance name, Type its provider type.
	Name, Type string
	// Path locates the instance in the file for messages: "providers[1]"
	// or "vcenter".
	Path string
	// Node is the mapping of the type-specific keys (the common keys are
	// removed), with their lines.
	Node *yaml.Node

	common []string
}

// Decode decodes the settings into v, a pointer to the type's settings
// struct whose yaml tags name its keys, as strictly as the rest of the
// configuration: every unknown key, value of the wrong shape, malformed
// duration and bad secret reference is reported at once with its path and
// line; Secret fields accept {env: NAME} and {file: PATH}.
func (s *ProviderSettings) Decode(v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("%s: settings decode into a pointer to a struct, not %T", s.Path, v)
	}
	if s.Node == nil {
		return nil
	}
	keys := structKeys(rv.Elem().Type())
	for _, k := range s.common {
		keys[k] = nil // listed in "known keys" messages; never in Node
	}
	c := &checker{}
	c.checkMapping(s.Path, s.Node, keys)
	if len(c.errs) > 0 {
		return errors.Join(c.errs...)
	}
	if err := s.Node.Decode(v); err != nil {
		return fmt.Errorf("%s: %w", s.Path, err)
	}
	return nil
}

// providerKeys are the common keys of a `providers:` item and of the seed's
// `vcenter:` block (whose type is implied).
var (
	providerKeys = []string{"name", "type", "max_concurrent"}
	vcenterKeys  = []string{"name"}
)

// splitProviderNode separates the common keys from the type's settings.
func splitProviderNode(n *yaml.Node, commonKeys []string) (common, settings *yaml.Node, typ string) {
	common = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line, Column: n.Column}
	settings = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line, Column: n.Column}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if slices.Contains(commonKeys, k.Value) {
			common.Content = append(common.Content, k, v)
			if k.Value == "type" {
				typ = v.Value
			}
		} else {
			settings.Content = append(settings.Content, k, v)
		}
	}
	return common, settings, typ
}

// decodedProvider is what the strict pass found for one instance.
type decodedProvider struct {
	raw      *yaml.Node
	settings any
}

// checkProvider checks the common keys of the instance at path and runs
// its type's decoder on the rest; vcenter is true for the seed's block.
func (c *checker) checkProvider(path string, n *yaml.Node, vcenter bool) {
	if n.Kind != yaml.MappingNode {
		c.errs = append(c.errs, fmt.Errorf("line %d: %s: expected a mapping with name, type and the type's settings", n.Line, displayPath(path)))
		return
	}
	commonKeys := providerKeys
	if vcenter {
		commonKeys = vcenterKeys
	}
	common, settings, typ := splitProviderNode(n, commonKeys)
	types := map[string]reflect.Type{}
	for _, k := range commonKeys {
		types[k] = reflect.TypeFor[string]()
	}
	if !vcenter {
		types["max_concurrent"] = reflect.TypeFor[int]()
	}
	c.checkMapping(path, common, types)
	name := ""
	for i := 0; i+1 < len(common.Content); i += 2 {
		if common.Content[i].Value == "name" {
			name = common.Content[i+1].Value
		}
	}
	if vcenter {
		typ = SeedVCenterType
	}
	dec, ok := c.decoders[typ]
	switch {
	case ok:
	case vcenter:
		c.errs = append(c.errs, fmt.Errorf("line %d: %s: the vcenter block is a provider of type %q, which is not available in this build (available: %s)", n.Line, displayPath(path), typ, c.decoders.available()))
		return
	case typ == "":
		c.errs = append(c.errs, fmt.Errorf("line %d: %s.type: required (one of %s)", n.Line, displayPath(path), c.decoders.available()))
		return
	default:
		c.errs = append(c.errs, fmt.Errorf("line %d: %s.type: unknown provider type %q (available in this build: %s)", n.Line, displayPath(path), typ, c.decoders.available()))
		return
	}
	s, err := dec(&ProviderSettings{Name: name, Type: typ, Path: path, Node: settings, common: commonKeys})
	if err != nil {
		c.errs = append(c.errs, err)
		return
	}
	c.providers[path] = decodedProvider{raw: settings, settings: s}
}

// attachProviders hands each decoded instance its settings once the whole
// file has decoded.
func (cfg *Config) attachProviders(found map[string]decodedProvider) {
	if cfg.VCenter != nil {
		d := found["vcenter"]
		cfg.VCenter.Type, cfg.VCenter.Raw, cfg.VCenter.Settings = SeedVCenterType, d.raw, d.settings
	}
	for i := range cfg.Providers {
		d := found[fmt.Sprintf("providers[%d]", i)]
		cfg.Providers[i].Raw, cfg.Providers[i].Settings = d.raw, d.settings
	}
}

// vcenterFromEnv applies HYPERSDK_VCENTER_* to the seed's vcenter block:
// over its settings when the file has one, or creating it when one of the
// variables is set. The variables are the settings struct's keys, so the
// vsphere decoder (through an empty block) says which exist.
func (cfg *Config) vcenterFromEnv(decoders Decoders, lookupEnv func(string) (string, bool)) error {
	const prefix = EnvPrefix + "VCENTER_"
	inst := cfg.VCenter
	if inst == nil {
		dec, ok := decoders[SeedVCenterType]
		if !ok {
			return nil
		}
		s, err := dec(&ProviderSettings{Type: SeedVCenterType, Path: "vcenter", Node: &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}, common: vcenterKeys})
		if err != nil {
			return err
		}
		inst = &ProviderInstance{Type: SeedVCenterType, Settings: s}
	}
	var errs []error
	set := false
	apply := func(name string, v reflect.Value) {
		raw, ok := lookupEnv(name)
		if !ok {
			return
		}
		set = true
		if err := setFromString(v, raw); err != nil {
			errs = append(errs, fmt.Errorf("environment %s: %w", name, err))
		}
	}
	apply(prefix+"NAME", reflect.ValueOf(&inst.Name).Elem())
	if sv := reflect.ValueOf(inst.Settings); sv.Kind() == reflect.Pointer && !sv.IsNil() && sv.Elem().Kind() == reflect.Struct {
		walkEnv(sv.Elem(), prefix, func(string, reflect.Type) bool { return false }, apply)
	}
	if set && cfg.VCenter == nil {
		cfg.VCenter = inst
	}
	return errors.Join(errs...)
}

// ProviderInstances returns every configured provider instance: the seed's
// `vcenter:` block (named "vcenter" unless it sets a name) and then the
// `providers:` list.
func (cfg *Config) ProviderInstances() []ProviderInstance {
	out := make([]ProviderInstance, 0, len(cfg.Providers)+1)
	if cfg.VCenter != nil {
		vc := *cfg.VCenter
		vc.Type = SeedVCenterType
		if vc.Name == "" {
			vc.Name = "vcenter"
		}
		out = append(out, vc)
	}
	return append(out, cfg.Providers...)
}
