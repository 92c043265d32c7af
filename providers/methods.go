package providers

import (
	"fmt"
	"slices"
	"strings"
)

// MethodLister is implemented by providers that can export a VM in more
// than one way (AWS: through the EBS direct APIs or an EC2 export task to
// S3; Proxmox: vzdump, pvesm export or the API). ExportOptions.Method picks
// one by name; "" is the provider's default. A provider that does not
// implement it has one unnamed method and accepts only "".
type MethodLister interface {
	// ExportMethods names the methods, the default first. The list is
	// fixed for the provider's lifetime and never empty.
	ExportMethods() []string
}

// ExportMethods returns the export methods p offers, default first, or
// nil when p has a single unnamed method. p is a Provider or an Exporter;
// a registry Instance is looked through to the provider it holds.
func ExportMethods(p any) []string {
	if in, ok := p.(*Instance); ok {
		p = in.Provider
	}
	if ml, ok := p.(MethodLister); ok {
		return slices.Clone(ml.ExportMethods())
	}
	return nil
}

// MethodProblem says what is wrong with asking p for method, "" when
// nothing is: the method must be one p offers, or "" for its default. The
// text names the methods offered and never the field, so that each client
// names its own (the API: method; hyperctl: --method).
func MethodProblem(p any, method string) string {
	if method == "" {
		return ""
	}
	methods := ExportMethods(p)
	switch {
	case len(methods) == 0:
		return fmt.Sprintf("%q is not offered: this provider has a single export method (leave the method unset)", method)
	case !slices.Contains(methods, method):
		return fmt.Sprintf("%q is not offered by this provider; its methods are %s (the first is the default)", method, strings.Join(methods, ", "))
	}
	return ""
}

// CheckMethod refuses a method p does not offer with an error wrapping
// ErrInvalidArgument (see MethodProblem).
func CheckMethod(p any, method string) error {
	if msg := MethodProblem(p, method); msg != "" {
		return fmt.Errorf("%w: method %s", ErrInvalidArgument, msg)
	}
	return nil
}

// ResolveMethod returns the method an export of p with opts uses: opts'
// method, or p's default when it is "" ("" for a provider with a single
// unnamed method). It refuses what CheckMethod refuses.
func ResolveMethod(p any, method string) (string, error) {
	if err := CheckMethod(p, method); err != nil {
		return "", err
	}
	if method == "" {
		if methods := ExportMethods(p); len(methods) > 0 {
			return methods[0], nil
		}
	}
	return method, nil
}
