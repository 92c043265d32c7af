package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hypersdk/hypersdk/ova"
	"github.com/hypersdk/hypersdk/ovf"
)

// verifyOut is what `hyperctl verify` reports for one manifest.
type verifyOut struct {
	Manifest string          `json:"manifest"`
	Files    []verifyFileOut `json:"files"`
	OK       bool            `json:"ok"`
}

type verifyFileOut struct {
	File   string `json:"file"`
	Status string `json:"status"` // ok, mismatch, missing, unreadable
	Detail string `json:"detail,omitempty"`
}

func (a *app) verifyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "verify PATH",
		Short: "Check an export against its manifest: an OVF folder, a disks export or an OVA",
		Long: `Check every file an export's manifest lists against the bytes on disk, the
way "sha256sum -c" would, without needing to know the export's format:

  a directory    every manifest in it (NAME.mf of an OVF export, NAME.sha256
                 of a disks export) is checked against the files beside it
  a .mf/.sha256  that manifest, against the files in its directory
  an OVA         structure and every digest, as "hyperctl ova verify"

Every problem is listed, naming the file (mismatch, missing, unreadable);
the exit code is 1 if there is any. Manifest names cannot reach outside the
manifest's directory.`,
		Example: `  hyperctl verify ./exports/db-01
  hyperctl verify ./exports/db-01/db-01.sha256 -o json
  hyperctl verify web01.ova`,
		Args: exactArgs("PATH"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			path := args[0]
			fi, err := os.Stat(path)
			if err != nil {
				return err
			}
			if !fi.IsDir() && isOVAName(path) {
				rep, err := ova.Validate(cmd.Context(), path, ova.ReadOptions{RequireManifest: true})
				return a.showReport(path, rep, err, "verify")
			}
			manifests, err := manifestsAt(path, fi)
			if err != nil {
				return err
			}
			var outs []verifyOut
			failed := 0
			for _, mf := range manifests {
				out, err := verifyManifest(cmd, mf)
				if err != nil {
					return err
				}
				if !out.OK {
					failed++
				}
				outs = append(outs, out)
			}
			if err := a.show(outs, func(w io.Writer) error { return verifyTable(w, outs) }); err != nil {
				return err
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d manifest(s) do not match the files", failed, len(outs))
			}
			return nil
		}),
	}
}

func isOVAName(p string) bool {
	p = strings.ToLower(p)
	return strings.HasSuffix(p, ".ova") || strings.HasSuffix(p, ".ova.gz") || strings.HasSuffix(p, ".ova.zst")
}

// manifestsAt returns the manifest path names, or the manifests in the
// directory it names.
func manifestsAt(path string, fi os.FileInfo) ([]string, error) {
	isManifest := func(n string) bool { return strings.HasSuffix(n, ".mf") || strings.HasSuffix(n, ".sha256") }
	if !fi.IsDir() {
		if !isManifest(path) {
			return nil, usageErrorf("%s is neither a directory, a manifest (.mf, .sha256) nor an OVA", path)
		}
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.Type().IsRegular() && isManifest(e.Name()) {
			out = append(out, filepath.Join(path, e.Name()))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no manifest (NAME.mf or NAME.sha256): nothing to verify against", path)
	}
	slices.Sort(out)
	return out, nil
}

func verifyManifest(cmd *cobra.Command, path string) (verifyOut, error) {
	out := verifyOut{Manifest: path}
	data, err := os.ReadFile(path)
	if err != nil {
		return out, err
	}
	m, err := ovf.ParseManifest(data)
	if err != nil {
		return out, fmt.Errorf("%s: %w", path, err)
	}
	problems := map[string]ovf.VerifyProblem{}
	err = ovf.VerifyDir(cmd.Context(), filepath.Dir(path), m)
	var ve *ovf.VerifyError
	switch {
	case errors.As(err, &ve):
		for _, p := range ve.Problems {
			if _, seen := problems[p.Name]; !seen {
				problems[p.Name] = p
			}
		}
	case err != nil:
		return out, err
	}
	for _, name := range m.Names() {
		f := verifyFileOut{File: name, Status: "ok"}
		if p, bad := problems[name]; bad {
			f.Status = string(p.Kind)
			f.Detail = strings.TrimPrefix(p.String(), name+": ")
		}
		out.Files = append(out.Files, f)
	}
	out.OK = len(problems) == 0
	return out, nil
}

func verifyTable(w io.Writer, outs []verifyOut) error {
	for i, o := range outs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		verdict := "OK: every digest matches"
		if !o.OK {
			verdict = "FAILED"
		}
		fmt.Fprintf(w, "%s: %s\n", o.Manifest, verdict)
		fmt.Fprintln(w, "FILE\tSTATUS\tDETAIL")
		for _, f := range o.Files {
			fmt.Fprintf(w, "%s\t%s\t%s\n", f.File, f.Status, f.Detail)
		}
	}
	return nil
}
