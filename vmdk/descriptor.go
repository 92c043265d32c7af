package vmdk

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/hypersdk/hypersdk/disk"
)

// Detect reports whether head, the first bytes of a file, starts a VMDK:
// the sparse extent magic "KDMV", or a text descriptor. A descriptor starts
// with the "# Disk DescriptorFile" comment; like VMware and qemu, blank and
// other comment lines may precede it, and a descriptor whose first
// statement is "version=1" (2, 3) counts without the comment.
func Detect(head []byte) bool {
	if hasMagic(head) {
		return true
	}
	head = bytes.TrimPrefix(head, []byte("\xef\xbb\xbf")) // a UTF-8 BOM from a Windows editor
	for len(head) > 0 {
		line, rest, _ := bytes.Cut(head, []byte("\n"))
		head = rest
		s := strings.TrimSpace(string(line))
		switch {
		case s == "":
			continue
		case strings.HasPrefix(s, "#"):
			if strings.EqualFold(strings.Join(strings.Fields(s[1:]), " "), "Disk DescriptorFile") {
				return true
			}
			continue
		}
		k, v, ok := strings.Cut(s, "=")
		v = strings.Trim(strings.TrimSpace(v), `"`)
		return ok && strings.TrimSpace(k) == "version" && (v == "1" || v == "2" || v == "3")
	}
	return false
}

// descriptor is what a reader needs of a VMDK descriptor.
type descriptor struct {
	createType string
	parentCID  string
	parentHint string // parentFileNameHint
	extents    []extentLine
}

// extentLine is one line of the extent description:
// access sectors type ["file name" [offset]].
type extentLine struct {
	access  string // RW, RDONLY, NOACCESS
	sectors int64
	typ     string // FLAT, SPARSE, ZERO, VMFS, VMFSSPARSE…
	file    string
	offset  int64 // sectors into a flat file
	line    int   // 1-based, for messages
}

// parseDescriptor parses descriptor text. It is as lenient as VMware's
// parser with lines it does not know (ignored) and strict with extent lines,
// whose numbers are checked here.
func parseDescriptor(f *disk.File, text []byte, off int64) (descriptor, error) {
	var d descriptor
	if i := bytes.IndexByte(text, 0); i >= 0 {
		text = text[:i]
	}
	for n, line := range strings.Split(string(text), "\n") {
		s := strings.TrimSpace(line)
		if s == "" || s[0] == '#' {
			continue
		}
		if e, ok, err := parseExtentLine(f, s, n+1, off); err != nil {
			return d, err
		} else if ok {
			d.extents = append(d.extents, e)
			continue
		}
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			continue
		}
		v = strings.Trim(strings.TrimSpace(v), `"`)
		switch strings.TrimSpace(k) {
		case "createType":
			d.createType = v
		case "parentCID":
			d.parentCID = v
		case "parentFileNameHint":
			d.parentHint = v
		}
	}
	return d, nil
}

// parseExtentLine parses s when it is an extent line (ok), refusing one
// whose numbers are not numbers.
func parseExtentLine(f *disk.File, s string, line int, off int64) (e extentLine, ok bool, err error) {
	access, rest, _ := strings.Cut(s, " ")
	switch access {
	case "RW", "RDONLY", "NOACCESS":
	default:
		return e, false, nil
	}
	bad := func(problem string, args ...any) error {
		return disk.Errorf(f, disk.VMDK, "descriptor extent line "+strconv.Itoa(line), off, problem, args...)
	}
	e.access, e.line = access, line
	// The file name is quoted and may hold spaces: split around it.
	before, quoted, hasName := strings.Cut(rest, `"`)
	fields := strings.Fields(before)
	if len(fields) != 2 {
		return e, true, bad("want `access sectors type \"file\" [offset]`, got %q", s)
	}
	if e.sectors, err = strconv.ParseInt(fields[0], 10, 64); err != nil || e.sectors <= 0 {
		return e, true, bad("extent size %q is not a positive number of sectors", fields[0])
	}
	e.typ = strings.ToUpper(fields[1])
	if hasName {
		name, after, closed := strings.Cut(quoted, `"`)
		if !closed {
			return e, true, bad("unterminated file name in %q", s)
		}
		e.file = name
		switch t := strings.Fields(after); len(t) {
		case 0:
		case 1:
			if e.offset, err = strconv.ParseInt(t[0], 10, 64); err != nil || e.offset < 0 {
				return e, true, bad("extent offset %q is not a number of sectors", t[0])
			}
		default:
			// VMware accepts trailing fields (partition UUIDs of device
			// extents); those extents are refused by their type anyway.
		}
	}
	return e, true, nil
}
