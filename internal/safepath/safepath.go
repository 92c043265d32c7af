package safepath

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// UnsafeError reports a path component that would make a write leave its
// root or land somewhere else than named.
type UnsafeError struct {
	Root      string // the root's name as it was opened
	Path      string // the full path being created
	Component string // the offending component, joined to Root
	Reason    string // "is a symbolic link", "is not a directory", …
}

func (e *UnsafeError) Error() string {
	return fmt.Sprintf("%s: %s %s; refusing to write outside %s", e.Path, e.Component, e.Reason, e.Root)
}

// ErrUnsafe is matched by every *UnsafeError (errors.Is).
var ErrUnsafe = errors.New("unsafe path")

func (e *UnsafeError) Is(target error) bool { return target == ErrUnsafe }

// Rel returns path relative to root when path lies lexically beneath root
// (or is root: "."), and false otherwise. Both are cleaned first.
func Rel(root, path string) (string, bool) {
	rel, err := filepath.Rel(filepath.Clean(root), filepath.Clean(path))
	if err != nil || !filepath.IsLocal(rel) && rel != "." {
		return "", false
	}
	return rel, true
}

// MkdirAll creates directory rel and its missing parents beneath root with
// perm. Every component that already exists must be a directory, not a
// symbolic link (even one pointing inside root) and not a file.
func MkdirAll(root *os.Root, rel string, perm fs.FileMode) error {
	parts, err := split(root, rel)
	if err != nil {
		return err
	}
	for i := range parts {
		if err := mkdirOne(root, rel, filepath.Join(parts[:i+1]...), perm); err != nil {
			return err
		}
	}
	return nil
}

func mkdirOne(root *os.Root, rel, p string, perm fs.FileMode) error {
	for range 3 { // a component may appear or vanish between the checks
		fi, err := root.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			err = root.Mkdir(p, perm)
			if err == nil || !errors.Is(err, fs.ErrExist) {
				return wrap(root, rel, err)
			}
			continue
		case err != nil:
			return wrap(root, rel, err)
		case fi.Mode()&fs.ModeSymlink != 0:
			return unsafe(root, rel, p, "is a symbolic link")
		case !fi.IsDir():
			return unsafe(root, rel, p, "is not a directory")
		default:
			return nil
		}
	}
	return wrap(root, rel, fmt.Errorf("%s keeps changing", p))
}

// OpenDir creates directory rel beneath root like MkdirAll and opens it as
// a root of its own, for the files that go there. rel may be "." (root
// itself, opened again).
func OpenDir(root *os.Root, rel string, perm fs.FileMode) (*os.Root, error) {
	if err := MkdirAll(root, rel, perm); err != nil {
		return nil, err
	}
	r, err := root.OpenRoot(rel)
	if err != nil {
		return nil, wrap(root, rel, err)
	}
	return r, nil
}

// OpenPath opens the trusted directory base (created with os.MkdirAll if it
// does not exist: the operator named it) and then directory rel beneath it
// with OpenDir. It is the entry point for a configured directory plus a
// user-supplied path inside it.
func OpenPath(base, rel string, perm fs.FileMode) (*os.Root, error) {
	if err := os.MkdirAll(base, perm); err != nil {
		return nil, err
	}
	r, err := os.OpenRoot(base)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return OpenDir(r, rel, perm)
}

// OpenFile opens name beneath root with flag (os.O_WRONLY, os.O_RDWR,
// os.O_CREATE, os.O_EXCL, os.O_TRUNC…) and perm. With os.O_CREATE the
// missing parent directories are created as by MkdirAll (with 0o755 masked
// by perm's group/other bits). An existing name must be a regular file with
// a single link: a symbolic link, a device, a directory or a hard link to a
// file elsewhere is refused and never written through.
func OpenFile(root *os.Root, name string, flag int, perm fs.FileMode) (*os.File, error) {
	parts, err := split(root, name)
	if err != nil {
		return nil, err
	}
	if len(parts) == 0 {
		return nil, unsafe(root, name, ".", "is a directory")
	}
	if dir := filepath.Dir(name); dir != "." {
		if flag&os.O_CREATE != 0 {
			err = MkdirAll(root, dir, 0o755&(perm|0o700))
		} else {
			err = checkDirs(root, name, parts[:len(parts)-1])
		}
		if err != nil {
			return nil, err
		}
	}
	fi, err := root.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, wrap(root, name, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return nil, unsafe(root, name, name, "is a symbolic link")
	case !fi.Mode().IsRegular():
		return nil, unsafe(root, name, name, "is not a regular file")
	}
	// Truncate only once the opened file is known to be ours alone: a hard
	// link planted in place of name shares its bytes with a file elsewhere.
	f, err := root.OpenFile(name, flag&^os.O_TRUNC, perm)
	if err != nil {
		return nil, wrap(root, name, err)
	}
	if err := checkOpened(root, name, f); err != nil {
		f.Close()
		return nil, err
	}
	if flag&os.O_TRUNC != 0 {
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, wrap(root, name, err)
		}
	}
	return f, nil
}

func checkDirs(root *os.Root, rel string, parts []string) error {
	for i := range parts {
		p := filepath.Join(parts[:i+1]...)
		fi, err := root.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil
		case err != nil:
			return wrap(root, rel, err)
		case fi.Mode()&fs.ModeSymlink != 0:
			return unsafe(root, rel, p, "is a symbolic link")
		case i < len(parts)-1 && !fi.IsDir():
			return unsafe(root, rel, p, "is not a directory")
		}
	}
	return nil
}

func checkOpened(root *os.Root, name string, f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return wrap(root, name, err)
	}
	if !fi.Mode().IsRegular() {
		return unsafe(root, name, name, "is not a regular file")
	}
	if links(fi) > 1 {
		return unsafe(root, name, name, "has other hard links")
	}
	return nil
}

// split checks that rel is a local path and returns its components.
func split(root *os.Root, rel string) ([]string, error) {
	if strings.ContainsRune(rel, 0) {
		return nil, &UnsafeError{Root: root.Name(), Path: rel, Component: rel, Reason: "contains a NUL byte"}
	}
	rel = filepath.Clean(rel)
	if rel == "." {
		return nil, nil
	}
	if !filepath.IsLocal(rel) {
		return nil, unsafe(root, rel, rel, "is not a path inside it")
	}
	return strings.Split(rel, string(filepath.Separator)), nil
}

func unsafe(root *os.Root, rel, component, reason string) error {
	return &UnsafeError{Root: root.Name(), Path: filepath.Join(root.Name(), rel),
		Component: filepath.Join(root.Name(), component), Reason: reason}
}

func wrap(root *os.Root, rel string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", filepath.Join(root.Name(), rel), err)
}

// WriteFile writes data to name in the trusted directory dir (created with
// os.MkdirAll if missing) through a temporary file that is synced and then
// renamed, so the file is whole or absent. Neither the temporary name nor
// name is ever followed if it is a link: a link at name is replaced, one at
// the temporary name refused. For the small files of the data directory.
func WriteFile(dir, name string, data []byte, perm fs.FileMode) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	tmp := name + ".tmp"
	f, err := OpenFile(root, tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		root.Remove(tmp)
		return wrap(root, name, err)
	}
	if err := root.Rename(tmp, name); err != nil {
		root.Remove(tmp)
		return wrap(root, name, err)
	}
	return nil
}
