package disk

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// File is an image file as readers see it: a name for messages, random
// access to its bytes and its size.
type File struct {
	Name string
	R    io.ReaderAt
	Size int64
	// Open opens another file the image names (a VMDK flat extent, a VHDX
	// parent) beside this one. The name is taken from the image, so Open
	// must never leave the image's directory; nil refuses such images.
	Open func(name string) (*File, error)

	closer io.Closer
}

// Close closes the underlying file, if this File owns one.
func (f *File) Close() error {
	if f == nil || f.closer == nil {
		return nil
	}
	return f.closer.Close()
}

// OS returns the *os.File behind f, if there is one (raw images ask the
// file system where its holes are).
func (f *File) OS() *os.File {
	o, _ := f.R.(*os.File)
	return o
}

// OpenFile opens the image at path read-only. Files the image names are
// opened beneath path's directory only (os.Root: no "..", no symlink out).
func OpenFile(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		fh.Close()
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	dir := filepath.Dir(path)
	return &File{Name: path, R: fh, Size: fi.Size(), Open: related(dir), closer: fh}, nil
}

// related opens names beneath dir. Images record related files as
// relative or absolute paths, written on other machines (Windows paths in
// VHDX parent locators); only the base name, looked up beside the image,
// is trusted — as qemu-img does with a relative backing path.
func related(dir string) func(string) (*File, error) {
	return func(name string) (*File, error) {
		base := filepath.Base(filepath.FromSlash(toSlash(name)))
		if base == "." || base == ".." || base == string(filepath.Separator) || base == "" {
			return nil, fmt.Errorf("related file %q has no usable name", name)
		}
		root, err := os.OpenRoot(dir)
		if err != nil {
			return nil, err
		}
		defer root.Close()
		fh, err := root.Open(base)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("%s (named %q) not found beside the image in %s: %w", base, name, dir, err)
			}
			return nil, err
		}
		fi, err := fh.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			fh.Close()
			if err == nil {
				err = fmt.Errorf("%s: not a regular file", base)
			}
			return nil, err
		}
		p := filepath.Join(dir, base)
		return &File{Name: p, R: fh, Size: fi.Size(), Open: related(dir), closer: fh}, nil
	}
}

// toSlash turns Windows separators into slashes so Base finds the name.
func toSlash(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '\\' {
			b[i] = '/'
		}
	}
	return string(b)
}

// BytesFile is a File over b (tests, fuzzing, small fixtures). related may
// be nil.
func BytesFile(name string, b []byte, related map[string][]byte) *File {
	f := &File{Name: name, R: bytes.NewReader(b), Size: int64(len(b))}
	if related != nil {
		f.Open = func(n string) (*File, error) {
			base := filepath.Base(toSlash(n))
			data, ok := related[base]
			if !ok {
				return nil, fmt.Errorf("%s (named %q) not found beside the image: %w", base, n, os.ErrNotExist)
			}
			return BytesFile(base, data, related), nil
		}
	}
	return f
}
