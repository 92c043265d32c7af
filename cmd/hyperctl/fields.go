package main

import (
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hypersdk/hypersdk/internal/fielderr"
)

// apiFieldAnnotation ties a flag (or, in a command's Annotations, a
// positional argument) to the request body field it sets, so that the
// API's field errors ("body.compression_level") name what the user typed
// ("--compression-level").
const apiFieldAnnotation = "hyperctl/api-field"

// submitFields are the request fields the export flags set (jobs.Request).
var submitFields = map[string]string{
	"provider": "provider", "vm": "vm", "output": "output", "format": "format", "disk-format": "disk_format", "vhd-type": "vhd_type",
	"compress": "compress", "compression": "compression", "compression-level": "compression_level",
	"cleanup-ovf": "cleanup_ovf", "keep-ovf": "cleanup_ovf", "parallel": "parallel_downloads", "snapshot": "snapshot",
	"power-off": "power_off", "power-off-timeout": "power_off_timeout",
	"bandwidth-limit": "bandwidth_limit", "max-attempts": "max_attempts", "method": "method",
}

// bindFields annotates the flags of cmd named in fields (flag → field)
// with prefix+field, replacing earlier annotations.
func bindFields(cmd *cobra.Command, prefix string, fields map[string]string) {
	for flag, field := range fields {
		if cmd.Flags().Lookup(flag) != nil {
			_ = cmd.Flags().SetAnnotation(flag, apiFieldAnnotation, []string{prefix + field})
		}
	}
}

// bindArg names the positional argument that sets a request field.
func bindArg(cmd *cobra.Command, field, arg string) {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[apiFieldAnnotation+":"+field] = arg
}

// arrayIndex matches the element indexes of a location ("events[0]").
var arrayIndex = regexp.MustCompile(`\[\d+\]`)

// inputFor returns what the user typed on cmd's command line for an API
// error location such as "body.output", "body.job.compression_level" or
// "body.events[1]": "--output", "--header or --header-file", "argument
// NAME"; "" when nothing on this command line sets it.
func inputFor(cmd *cobra.Command, location string) string {
	field, ok := strings.CutPrefix(location, "body.")
	if !ok || cmd == nil {
		return ""
	}
	field = arrayIndex.ReplaceAllString(field, "")
	for f := field; f != ""; {
		if arg, ok := cmd.Annotations[apiFieldAnnotation+":"+f]; ok {
			return "argument " + arg
		}
		var flags []string
		cmd.Flags().VisitAll(func(fl *pflag.Flag) {
			for _, v := range fl.Annotations[apiFieldAnnotation] {
				if v == f {
					flags = append(flags, "--"+fl.Name)
				}
			}
		})
		if len(flags) > 0 {
			return strings.Join(flags, " or ")
		}
		// A nested field no flag sets on its own (headers.X-Team) is
		// named by its parent's flag.
		i := strings.LastIndexByte(f, '.')
		if i < 0 {
			break
		}
		f = f[:i]
	}
	return ""
}

// namedProblems renders problems found locally, before any request, in
// the words of the API's field errors: one "--flag: message" per line.
func namedProblems(cmd *cobra.Command, list fielderr.List) string {
	lines := make([]string, len(list))
	for i, e := range list {
		name := inputFor(cmd, "body."+e.Field)
		if name == "" {
			name = e.Field
		}
		lines[i] = e.Message
		if name != "" {
			lines[i] = name + ": " + e.Message
		}
	}
	return strings.Join(lines, "\n  ")
}
