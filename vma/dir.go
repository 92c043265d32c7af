package vma

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"unicode"

	"github.com/hypersdk/hypersdk/internal/safepath"
)

// DiskFileName is the file a disk is extracted to: "disk-<device>.raw",
// the name Proxmox's own `vma extract` gives it.
func DiskFileName(d Device) string { return "disk-" + d.Name + ".raw" }

// ExtractedFile is one file ExtractToDir wrote.
type ExtractedFile struct {
	Name string `json:"name"`
	// Kind is "disk" (a sparse raw image) or "config".
	Kind string `json:"kind"`
	// Device is the archive device a disk came from.
	Device string `json:"device,omitempty"`
	Size   int64  `json:"size"`
}

// DirOptions control ExtractToDir.
type DirOptions struct {
	// Overwrite replaces files that already exist; without it an
	// existing file is an error before anything is written.
	Overwrite bool
	// Progress is Extract's.
	Progress func(done, total int64)
}

// ExtractToDir writes every disk of the archive as a sparse raw image
// (DiskFileName) and every configuration file under its own name into
// root: each to "<name>.part" created beneath root without following links
// (internal/safepath), the disks truncated to their size and only their
// stored, non-zero blocks written, then synced and renamed into place once
// the whole archive was read and found complete. On failure the part
// files are removed and nothing is renamed. Names from the archive are
// used only when they are plain file names (no separators, "..", control
// characters), and must not collide.
func ExtractToDir(ctx context.Context, r *Reader, root *os.Root, o DirOptions) ([]ExtractedFile, *Stats, error) {
	h := r.Header()
	var files []ExtractedFile
	for _, d := range h.Disks() {
		files = append(files, ExtractedFile{Name: DiskFileName(d), Kind: "disk", Device: d.Name, Size: d.Size})
	}
	for _, c := range h.Configs {
		files = append(files, ExtractedFile{Name: c.Name, Kind: "config", Size: int64(len(c.Data))})
	}
	taken := map[string]bool{}
	for _, f := range files {
		if err := plainName(f.Name); err != nil {
			return nil, nil, fmt.Errorf("vma: %s %q: %w", f.Kind, f.Name, err)
		}
		if taken[f.Name] || taken[f.Name+".part"] {
			return nil, nil, fmt.Errorf("vma: two files of the archive would be named %q", f.Name)
		}
		taken[f.Name], taken[f.Name+".part"] = true, true
	}
	if !o.Overwrite {
		if err := absent(root, files); err != nil {
			return nil, nil, err
		}
	}
	open := map[string]*os.File{}
	var parts []string
	fail := func(err error) ([]ExtractedFile, *Stats, error) {
		for _, f := range open {
			f.Close()
		}
		for _, p := range parts {
			root.Remove(p)
		}
		return nil, nil, err
	}
	create := func(name string) (*os.File, error) {
		f, err := safepath.OpenFile(root, name+".part", os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return nil, err
		}
		parts = append(parts, name+".part")
		open[name] = f
		return f, nil
	}
	for _, c := range h.Configs {
		f, err := create(c.Name)
		if err != nil {
			return fail(err)
		}
		if _, err := f.Write(c.Data); err != nil {
			return fail(err)
		}
	}
	stats, err := r.Extract(ctx, ExtractOptions{Progress: o.Progress, Open: func(d Device) (io.WriterAt, error) {
		f, err := create(DiskFileName(d))
		if err != nil {
			return nil, err
		}
		return f, f.Truncate(d.Size) // all holes until data arrives
	}})
	if err != nil {
		return fail(err)
	}
	for name, f := range open {
		err := f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		delete(open, name)
		if err != nil {
			return fail(fmt.Errorf("vma: write %s: %w", name, err))
		}
	}
	if !o.Overwrite {
		if err := absent(root, files); err != nil {
			return fail(err)
		}
	}
	for i, f := range files {
		if err := root.Rename(f.Name+".part", f.Name); err != nil {
			for _, done := range files[:i] {
				root.Remove(done.Name)
			}
			return fail(fmt.Errorf("vma: %w", err))
		}
	}
	return files, stats, nil
}

// absent refuses to go on when a file to be written already exists.
func absent(root *os.Root, files []ExtractedFile) error {
	var exist []string
	for _, f := range files {
		if _, err := root.Lstat(f.Name); err == nil {
			exist = append(exist, f.Name)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if len(exist) > 0 {
		return fmt.Errorf("vma: %s already exist(s) in %s (replace with --force)", strings.Join(exist, ", "), root.Name())
	}
	return nil
}

// plainName accepts a name from an archive as a file name only when it
// names a file right there: no separators, no "." or "..", no control
// characters, at most 250 bytes (room for ".part").
func plainName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return errors.New("is not a file name")
	case len(name) > 250:
		return errors.New("is too long for a file name")
	case strings.ContainsAny(name, `/\`):
		return errors.New("contains a path separator")
	case strings.ContainsFunc(name, unicode.IsControl):
		return errors.New("contains control characters")
	}
	return nil
}
