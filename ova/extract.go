package ova

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hypersdk/hypersdk/internal/safepath"
	"github.com/hypersdk/hypersdk/ovf"
)

// ErrNoSpace: the destination's file system has less free space than the
// members of an archive declare.
var ErrNoSpace = errors.New("not enough free space")

// Report describes an archive that was extracted, validated or inspected.
type Report struct {
	Archive        string
	Compression    Compression
	DescriptorName string
	// Descriptor is nil when the archive has no valid descriptor first.
	Descriptor *ovf.Descriptor
	// Manifest is nil when the archive has none (or an invalid one).
	Manifest *ovf.Manifest
	// ManifestAtEnd is true when the manifest follows the files.
	ManifestAtEnd bool
	// Verified is true when a manifest was present and every digest in it
	// matched. Inspect never verifies.
	Verified bool
	// Certificate is true when the archive has a .cert. Its signature is
	// not checked.
	Certificate bool
	// Members lists the entries that passed the checks, descriptor first,
	// in archive order.
	Members  []Member
	Warnings []Problem
	// Dir is where Extract put the files.
	Dir string
}

func (r *Reader) report() *Report {
	return &Report{
		Archive: r.name, Compression: r.compression, DescriptorName: r.descName, Descriptor: r.desc,
		Manifest: r.manifest, ManifestAtEnd: r.manifestAtEnd, Verified: r.verified, Certificate: r.haveCert,
		Members: slices.Clone(r.members), Warnings: slices.Clone(r.warnings),
	}
}

// Validate reads the whole archive, checks its structure and verifies the
// manifest, writing nothing. It returns the report and nil, or the report
// and an *Error listing every problem (or an I/O or context error).
func Validate(ctx context.Context, archive string, opts ReadOptions) (*Report, error) {
	r, err := Open(ctx, archive, opts)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	for {
		if _, err := r.Next(); err != nil {
			if !errors.Is(err, io.EOF) {
				return r.report(), err
			}
			break
		}
		if _, err := io.Copy(io.Discard, onlyReader{r}); err != nil {
			break // the stream broke; Err says how
		}
	}
	return r.report(), r.Err()
}

// Inspect lists an archive without extracting or hashing it: descriptor,
// manifest and members with sizes. A plain .ova is read by seeking over the
// data; a compressed one must still be decompressed to find its members.
// Structural problems are returned as an *Error along with the report.
func Inspect(ctx context.Context, archive string, opts ReadOptions) (*Report, error) {
	opts.skipDigests = true
	r, err := Open(ctx, archive, opts)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	for {
		if _, err := r.Next(); err != nil {
			if !errors.Is(err, io.EOF) {
				return r.report(), err
			}
			break
		}
	}
	return r.report(), r.Err()
}

// ExtractOptions controls Extract.
type ExtractOptions struct {
	ReadOptions
	// Overwrite replaces files that already exist in the destination;
	// without it an existing file makes Extract fail before anything is
	// moved into place.
	Overwrite bool

	noSync bool // tests and fuzzing: skip fsync
}

// Extract unpacks an OVA (plain, gzip or zstd) into destDir, creating it if
// needed. Everything is first written to a private staging directory inside
// destDir and moved into place only once the whole archive has been read
// and found valid, manifest included; a bad archive leaves nothing behind.
// All writes go through os.Root, so no entry can reach outside destDir,
// whatever its name or the links already in destDir. destDir itself is
// created beneath the working directory (relative paths) or the file system
// root (absolute ones) without following links: a target reached through a
// symbolic link is refused, so name its real path. Each member must fit the
// size the descriptor declares and the free space of the destination's file
// system before a byte of it is written. Each file is synced before it is
// moved.
func Extract(ctx context.Context, archive, destDir string, opts ExtractOptions) (*Report, error) {
	// The directories MkdirAll is about to create, deepest first: a
	// refused archive leaves none of them behind.
	var created []string
	for d := filepath.Clean(destDir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); !errors.Is(err, fs.ErrNotExist) {
			break
		}
		created = append(created, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	dropDest := func() {
		for _, d := range created {
			if os.Remove(d) != nil { // only succeeds if empty, as it should be
				break
			}
		}
	}
	root, err := openTarget(destDir)
	if err != nil {
		dropDest()
		return nil, err
	}
	defer root.Close()
	staging, err := makeStaging(root)
	if err != nil {
		dropDest()
		return nil, fmt.Errorf("ova: extract: %w", err)
	}
	rep, names, err := extractTo(ctx, archive, root, staging, opts)
	if err == nil {
		err = commit(root, staging, names, opts.Overwrite)
	}
	root.RemoveAll(staging)
	if err != nil {
		dropDest()
		return rep, err
	}
	if d, err := root.Open("."); err == nil && !opts.noSync {
		d.Sync()
		d.Close()
	} else if err == nil {
		d.Close()
	}
	rep.Dir = destDir
	return rep, nil
}

// openTarget creates and opens destDir beneath the working directory or the
// file system root, refusing any component that is a link.
func openTarget(destDir string) (*os.Root, error) {
	base, rel := ".", filepath.Clean(destDir)
	if filepath.IsAbs(rel) {
		vol := filepath.VolumeName(rel)
		base = vol + string(filepath.Separator)
		rel = strings.TrimLeft(rel[len(vol):], string(filepath.Separator))
		if rel == "" {
			rel = "."
		}
	}
	root, err := safepath.OpenPath(base, rel, 0o755)
	var ue *safepath.UnsafeError
	if errors.As(err, &ue) {
		return nil, fmt.Errorf("ova: extract into %s: %s %s; refusing to extract through it (name the real directory)", destDir, ue.Component, ue.Reason)
	}
	if err != nil {
		return nil, fmt.Errorf("ova: extract: %w", err)
	}
	return root, nil
}

func makeStaging(root *os.Root) (string, error) {
	for range 10 {
		var b [8]byte
		rand.Read(b[:])
		name := ".ova-extract-" + hex.EncodeToString(b[:])
		err := root.Mkdir(name, 0o700)
		if err == nil {
			return name, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", err
		}
	}
	return "", errors.New("cannot create a staging directory")
}

// extractTo reads the archive into staging and returns the member names
// written there.
func extractTo(ctx context.Context, archive string, root *os.Root, staging string, opts ExtractOptions) (*Report, []string, error) {
	r, err := Open(ctx, archive, opts.ReadOptions)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	var names []string
	// Every member's size was checked against the descriptor's ovf:size
	// (or the cap for files without one) by the reader; the sum must also
	// fit the file system, or the extraction would fill it for nothing.
	free, need := freeBytes(root), int64(0)
	if r.desc != nil {
		// Open consumed the descriptor; write the bytes as they were.
		if err := copyStaged(root, staging, r.descName, bytes.NewReader(r.descBytes), !opts.noSync); err != nil {
			return r.report(), nil, err
		}
		names = append(names, r.descName)
	}
	for {
		e, err := r.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return r.report(), nil, err
			}
			break
		}
		need += e.Size
		if free >= 0 && need > free {
			return r.report(), nil, fmt.Errorf("ova: extract %s: %w: the archive needs at least %d bytes, only %d are free in %s",
				e.Name, ErrNoSpace, need, free, root.Name())
		}
		if err := copyStaged(root, staging, e.Name, onlyReader{r}, !opts.noSync); err != nil {
			if rerr := r.Err(); rerr != nil {
				return r.report(), nil, rerr // the archive's fault
			}
			return r.report(), nil, err
		}
		names = append(names, e.Name)
	}
	return r.report(), names, r.Err()
}

func copyStaged(root *os.Root, staging, name string, src io.Reader, sync bool) error {
	p := path.Join(staging, name)
	if dir := path.Dir(name); dir != "." {
		if err := root.MkdirAll(path.Join(staging, dir), 0o755); err != nil {
			return fmt.Errorf("ova: extract %s: %w", name, err)
		}
	}
	f, err := root.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("ova: extract %s: %w", name, err)
	}
	_, err = io.CopyBuffer(f, src, make([]byte, 1<<20))
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("ova: extract %s: %w", name, err)
	}
	return nil
}

// commit moves the staged files into place. Existing files are refused
// before anything moves unless overwrite is set; if a move fails, the ones
// already moved are removed again.
func commit(root *os.Root, staging string, names []string, overwrite bool) error {
	if !overwrite {
		for _, n := range names {
			if _, err := root.Lstat(n); err == nil {
				return fmt.Errorf("ova: extract: %s already exists in the destination", n)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("ova: extract: %w", err)
			}
		}
	}
	var moved, made []string
	undo := func() {
		for _, n := range moved {
			root.Remove(n)
		}
		for _, d := range slices.Backward(made) {
			root.Remove(d) // deepest first; fails harmlessly if not empty
		}
	}
	for _, n := range names {
		var fresh []string // directories this name needs, deepest first
		for d := path.Dir(n); d != "."; d = path.Dir(d) {
			if _, err := root.Lstat(d); errors.Is(err, fs.ErrNotExist) {
				fresh = append(fresh, d)
			}
		}
		slices.Reverse(fresh)
		made = append(made, fresh...)
		if dir := path.Dir(n); dir != "." {
			if err := root.MkdirAll(dir, 0o755); err != nil {
				undo()
				return fmt.Errorf("ova: extract %s: %w", n, err)
			}
		}
		if err := root.Rename(path.Join(staging, n), n); err != nil {
			undo()
			return fmt.Errorf("ova: extract %s: %w", n, err)
		}
		moved = append(moved, n)
	}
	return nil
}
