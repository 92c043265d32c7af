package ova

import (
	"fmt"
	"strings"
)

// ProblemKind classifies a structural problem of an archive.
type ProblemKind string

// Kinds of problems. All but ProblemOrder make an archive invalid;
// ProblemOrder (files or manifest out of DSP0243 order) is reported as a
// warning, since importers accept such archives.
const (
	ProblemFormat             ProblemKind = "format"               // not tar, gzip or zstd
	ProblemUnsafePath         ProblemKind = "unsafe-path"          // "..", absolute, backslash, control characters
	ProblemLink               ProblemKind = "link"                 // symbolic or hard link
	ProblemSpecialFile        ProblemKind = "special-file"         // device, FIFO, directory, sparse entry
	ProblemDuplicate          ProblemKind = "duplicate"            // a name seen before (ignoring case)
	ProblemDescriptorNotFirst ProblemKind = "descriptor-not-first" // first entry is not the .ovf
	ProblemDescriptor         ProblemKind = "descriptor"           // descriptor invalid or unusable for a package
	ProblemUnreferenced       ProblemKind = "unreferenced"         // entry the descriptor does not reference
	ProblemSizeMismatch       ProblemKind = "size-mismatch"        // entry size differs from ovf:size
	ProblemTooLarge           ProblemKind = "too-large"            // beyond a size limit (decompression bomb)
	ProblemMissing            ProblemKind = "missing"              // referenced file absent
	ProblemManifest           ProblemKind = "manifest"             // manifest invalid, missing or naming absent files
	ProblemDigestMismatch     ProblemKind = "digest-mismatch"      // content differs from the manifest
	ProblemTruncated          ProblemKind = "truncated"            // stream ends early
	ProblemCorrupt            ProblemKind = "corrupt"              // bad tar header or compressed data
	ProblemOrder              ProblemKind = "order"                // warning: not in DSP0243 order
)

// Problem is one thing wrong with an archive.
type Problem struct {
	// Member is the entry's name as stored in the archive, "" for problems
	// of the archive as a whole.
	Member string
	Kind   ProblemKind
	Detail string
}

func (p Problem) String() string {
	if p.Member == "" {
		return fmt.Sprintf("%s: %s", p.Kind, p.Detail)
	}
	return fmt.Sprintf("%q: %s: %s", p.Member, p.Kind, p.Detail)
}

// Error reports every structural problem found in an archive, not only the
// first.
type Error struct {
	Archive  string
	Problems []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	name := e.Archive
	if name == "" {
		name = "archive"
	}
	fmt.Fprintf(&b, "ova: %s is not a valid OVA (%d problem(s))", name, len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Has reports whether any problem is of kind k.
func (e *Error) Has(k ProblemKind) bool {
	for _, p := range e.Problems {
		if p.Kind == k {
			return true
		}
	}
	return false
}
