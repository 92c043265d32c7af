package ovf

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits on package-relative names. A name longer than this is no file an
// exporter produced; refusing it early keeps hostile input cheap.
const (
	maxPathLen    = 1024
	maxSegmentLen = 255
)

// CheckPath reports whether name is safe as the name of a file inside an
// OVF package: a relative, slash-separated path with no empty, "." or ".."
// segments, no backslash, no colon (URI schemes, drive letters), no control
// characters and valid UTF-8. DSP0243 requires the file references of an
// OVA to be relative paths without ".." segments; the rest keeps a name
// from meaning different things to different tools.
func CheckPath(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case len(name) > maxPathLen:
		return fmt.Errorf("name longer than %d bytes", maxPathLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("name %q is not valid UTF-8", name)
	case strings.HasPrefix(name, "/"):
		return fmt.Errorf("absolute path %q", name)
	case strings.ContainsRune(name, '\\'):
		return fmt.Errorf("name %q contains a backslash", name)
	case strings.ContainsRune(name, ':'):
		return fmt.Errorf("name %q contains a colon (URI or drive letter)", name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("name %q contains a control character", name)
		}
	}
	for seg := range strings.SplitSeq(name, "/") {
		switch {
		case seg == "":
			return fmt.Errorf("name %q has an empty path segment", name)
		case seg == "..":
			return fmt.Errorf("name %q escapes its directory (..)", name)
		case seg == ".":
			return fmt.Errorf("name %q has a \".\" segment", name)
		case len(seg) > maxSegmentLen:
			return fmt.Errorf("name %q has a segment longer than %d bytes", name, maxSegmentLen)
		}
	}
	return nil
}
