package config

import (
	"fmt"
	"reflect"
	"sort"

	"go.yaml.in/yaml/v3"
)

// ProviderInstance is one named provider in the `providers:` list. The keys
// name, type and max_concurrent are common; every other key belongs to the
// settings of the instance's type and is checked against them:
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

	// Settings of the instance's type; exactly the one matching Type is set.
	VSphere *VSphere `yaml:"-"`
}

// providerSettings maps a provider type to its settings struct and the field
// of ProviderInstance that holds it. A new provider type adds a line here.
var providerSettings = map[string]struct {
	typ   reflect.Type
	field string
}{
	"vsphere": {reflect.TypeFor[VSphere](), "VSphere"},
}

// ProviderTypes lists the provider types the configuration understands.
func ProviderTypes() []string {
	out := make([]string, 0, len(providerSettings))
	for t := range providerSettings {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

var commonProviderKeys = map[string]bool{"name": true, "type": true, "max_concurrent": true}

// splitProviderNode separates the common keys from the type's settings.
func splitProviderNode(n *yaml.Node) (common, settings *yaml.Node, typ string) {
	common = &yaml.Node{Kind: yaml.MappingNode, Line: n.Line, Column: n.Column}
	settings = &yaml.Node{Kind: yaml.MappingNode, Line: n.Line, Column: n.Column}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if commonProviderKeys[k.Value] {
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

// UnmarshalYAML decodes the common keys and the settings of the type.
func (p *ProviderInstance) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: a provider instance is a mapping", n.Line)
	}
	common, settings, typ := splitProviderNode(n)
	type plain ProviderInstance // no UnmarshalYAML: avoids recursion
	var c plain
	if err := common.Decode(&c); err != nil {
		return err
	}
	*p = ProviderInstance(c)
	s, ok := providerSettings[typ]
	if !ok {
		// Reported with its path by the strict check; nothing to decode.
		return nil
	}
	v := reflect.New(s.typ)
	if err := settings.Decode(v.Interface()); err != nil {
		return err
	}
	reflect.ValueOf(p).Elem().FieldByName(s.field).Set(v)
	return nil
}

// settings returns the type-specific settings, or nil.
func (p *ProviderInstance) settings() any {
	if s, ok := providerSettings[p.Type]; ok {
		f := reflect.ValueOf(p).Elem().FieldByName(s.field)
		if !f.IsNil() {
			return f.Interface()
		}
	}
	return nil
}
