package providers_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/providertest"
)

// twoWays is a provider with two export methods.
type twoWays struct{ *providertest.Fake }

func (twoWays) ExportMethods() []string { return []string{"direct", "task"} }

func TestExportMethods(t *testing.T) {
	single := providertest.NewFake("single")
	multi := twoWays{providertest.NewFake("multi")}
	// A registry instance is looked through to its provider.
	inst := &providers.Instance{Provider: multi}
	for _, tc := range []struct {
		name     string
		p        any
		method   string
		resolved string
		problem  string // "" when accepted
	}{
		{"single, default", single, "", "", ""},
		{"single, named", single, "direct", "", "single export method"},
		{"multi, default", multi, "", "direct", ""},
		{"multi, second", multi, "task", "task", ""},
		{"multi, unknown", multi, "vm-import", "", "its methods are direct, task (the first is the default)"},
		{"instance, default", inst, "", "direct", ""},
		{"instance, unknown", inst, "x", "", "its methods are direct, task"},
	} {
		msg := providers.MethodProblem(tc.p, tc.method)
		if (msg == "") != (tc.problem == "") || !strings.Contains(msg, tc.problem) {
			t.Errorf("%s: problem %q, want %q", tc.name, msg, tc.problem)
		}
		got, err := providers.ResolveMethod(tc.p, tc.method)
		switch {
		case tc.problem != "" && !errors.Is(err, providers.ErrInvalidArgument):
			t.Errorf("%s: ResolveMethod accepted it: %q, %v", tc.name, got, err)
		case tc.problem == "" && (err != nil || got != tc.resolved):
			t.Errorf("%s: ResolveMethod = %q, %v; want %q", tc.name, got, err, tc.resolved)
		}
	}
	if m := providers.ExportMethods(single); m != nil {
		t.Errorf("single method provider lists %v", m)
	}
}
