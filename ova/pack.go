package ova

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/hypersdk/hypersdk/ovf"
)

// maxCertSize bounds a .cert file: a signature and one PEM certificate
// chain.
const maxCertSize = 1 << 20

// Pack assembles the OVF folder dir into an OVA at out (see CreateIn for how
// the file is committed). descriptorName is the .ovf file in dir; "" picks
// the only one. Members are written in DSP0243 order: the descriptor, the
// folder's manifest and certificate if present (each file is then checked
// against the manifest as it streams), the files in References order, and a
// generated manifest at the end if the folder had none (Options.Manifest,
// Options.NoManifest).
//
// Every file is read exactly once. Everything is checked before the output
// is created: the descriptor parses, each referenced file exists, is a
// regular file inside dir and has the size the descriptor declares.
func Pack(ctx context.Context, dir, descriptorName, out string, opts Options) (*Result, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("ova: pack: %w", err)
	}
	defer root.Close()
	outDir, outName := filepath.Split(out)
	if outDir == "" {
		outDir = "."
	}
	dst, err := os.OpenRoot(outDir)
	if err != nil {
		return nil, fmt.Errorf("ova: pack: %w", err)
	}
	defer dst.Close()
	return PackIn(ctx, root, descriptorName, dst, outName, opts)
}

// PackIn is Pack for opened directories: the folder is read from src and
// the archive created as outName in dst (see CreateIn), so no link in
// either can redirect a read or a write.
func PackIn(ctx context.Context, root *os.Root, descriptorName string, dst *os.Root, outName string, opts Options) (*Result, error) {
	return pack(ctx, root, descriptorName, opts, func(descriptorName string, descriptor []byte, opts Options) (*Writer, error) {
		return CreateIn(dst, outName, descriptorName, descriptor, opts)
	})
}

func pack(ctx context.Context, root *os.Root, descriptorName string, opts Options,
	create func(descriptorName string, descriptor []byte, opts Options) (*Writer, error)) (*Result, error) {
	dir := root.Name()
	var err error
	if descriptorName == "" {
		if descriptorName, err = findDescriptor(root); err != nil {
			return nil, err
		}
	}
	descInfo, err := root.Stat(descriptorName)
	if err != nil {
		return nil, fmt.Errorf("ova: pack: %w", err)
	}
	descBytes, err := readSmall(root, descriptorName, ovf.MaxDescriptorSize)
	if err != nil {
		return nil, fmt.Errorf("ova: pack: %w", err)
	}
	desc, err := ovf.Parse(descBytes)
	if err != nil {
		return nil, fmt.Errorf("ova: pack %s: %w", descriptorName, err)
	}
	files, err := desc.PackageFiles()
	if err != nil {
		return nil, fmt.Errorf("ova: pack %s: %w", descriptorName, err)
	}
	var problems []error
	for _, pf := range files {
		fi, err := root.Stat(pf.Name)
		switch {
		case err != nil:
			problems = append(problems, err)
		case !fi.Mode().IsRegular():
			problems = append(problems, fmt.Errorf("%s is not a regular file", pf.Name))
		case pf.Size >= 0 && fi.Size() != pf.Size:
			problems = append(problems, fmt.Errorf("%s has %d bytes, the descriptor declares %d (set ovf:size after the download)", pf.Name, fi.Size(), pf.Size))
		}
	}

	var manifest *ovf.Manifest
	mfName := ovf.ManifestName(descriptorName)
	if b, err := readSmall(root, mfName, ovf.MaxManifestSize); err == nil {
		if manifest, err = ovf.ParseManifest(b); err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", mfName, err))
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		problems = append(problems, err)
	}
	certName := ovf.CertificateName(descriptorName)
	cert, err := readSmall(root, certName, maxCertSize)
	switch {
	case err == nil && manifest == nil:
		problems = append(problems, fmt.Errorf("%s present without %s: the certificate signs the manifest", certName, mfName))
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		problems = append(problems, err)
	case err != nil:
		cert = nil
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("ova: pack %s: %w", dir, errors.Join(problems...))
	}

	if opts.ModTime.IsZero() {
		opts.ModTime = descInfo.ModTime()
	}
	w, err := create(descriptorName, descBytes, opts)
	if err != nil {
		return nil, err
	}
	defer w.Abort()
	if manifest != nil {
		if err := w.AddManifest(manifest); err != nil {
			return nil, err
		}
		if cert != nil {
			if err := w.AddCertificate(cert); err != nil {
				return nil, err
			}
		}
	}
	for _, pf := range files {
		if err := addFile(ctx, w, root, pf.Name); err != nil {
			return nil, err
		}
		if opts.CleanupOVF {
			if err := root.Remove(pf.Name); err != nil {
				return nil, fmt.Errorf("ova: cleanup %s: %w", pf.Name, err)
			}
		}
	}
	res, err := w.Close()
	if err != nil {
		return nil, err
	}
	if opts.CleanupOVF {
		for _, name := range []string{descriptorName, mfName, certName} {
			if err := root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return res, fmt.Errorf("ova: cleanup %s: %w", name, err)
			}
		}
	}
	return res, nil
}

func addFile(ctx context.Context, w *Writer, root *os.Root, name string) error {
	f, err := root.Open(name)
	if err != nil {
		return w.fail(fmt.Errorf("ova: %w", err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return w.fail(fmt.Errorf("ova: %w", err))
	}
	return w.Add(ctx, name, fi.Size(), f)
}

func findDescriptor(root *os.Root) (string, error) {
	dir := root.Name()
	entries, err := fs.ReadDir(root.FS(), ".")
	if err != nil {
		return "", fmt.Errorf("ova: pack: %w", err)
	}
	var found []string
	for _, e := range entries {
		if e.Type().IsRegular() && strings.EqualFold(filepath.Ext(e.Name()), ".ovf") {
			found = append(found, e.Name())
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return "", fmt.Errorf("ova: pack: no .ovf descriptor in %s", dir)
	}
	return "", fmt.Errorf("ova: pack: several descriptors in %s (%s): name one", dir, strings.Join(found, ", "))
}

// readSmall reads a whole small file through root, refusing more than max
// bytes.
func readSmall(root *os.Root, name string, max int64) ([]byte, error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var b bytes.Buffer
	if _, err := io.Copy(&b, io.LimitReader(f, max+1)); err != nil {
		return nil, err
	}
	if int64(b.Len()) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, max)
	}
	return b.Bytes(), nil
}
