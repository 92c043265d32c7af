package azblobfake

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestContentModel drives the extent store with random overlapping writes
// and clears at arbitrary byte offsets and checks every read, range list
// and byte count against a flat model.
func TestContentModel(t *testing.T) {
	const size = 1 << 16
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 99))
		var c content
		model := make([]byte, size)
		written := make([]bool, size)
		for step := range 300 {
			off := rng.Int64N(size)
			n := 1 + rng.Int64N(min(size-off, 8192))
			if rng.IntN(4) == 0 {
				c.clear(off, off+n)
				clear(model[off : off+n])
				for i := off; i < off+n; i++ {
					written[i] = false
				}
			} else {
				b := make([]byte, n)
				for i := range b {
					b[i] = byte(rng.Uint32())
				}
				c.write(extent{off: off, n: n, data: b})
				copy(model[off:], b)
				for i := off; i < off+n; i++ {
					written[i] = true
				}
			}
			for i := 1; i < len(c.ext); i++ {
				if c.ext[i-1].end() > c.ext[i].off || c.ext[i].n <= 0 {
					t.Fatalf("seed %d step %d: extents overlap or are empty: %+v %+v", seed, step, c.ext[i-1], c.ext[i])
				}
			}
			from := rng.Int64N(size)
			to := from + rng.Int64N(size-from+1)
			var out bytes.Buffer
			if n, err := copyView(&out, c.view(from, to), from, to); err != nil || n != to-from {
				t.Fatalf("copyView: %d, %v", n, err)
			}
			if !bytes.Equal(out.Bytes(), model[from:to]) {
				t.Fatalf("seed %d step %d: read %d-%d differs", seed, step, from, to)
			}
			var want []PageRange
			var stored int64
			for i := from; i < to; i++ {
				if !written[i] {
					continue
				}
				if k := len(want); k > 0 && want[k-1].End == i-1 {
					want[k-1].End = i
				} else {
					want = append(want, PageRange{i, i})
				}
			}
			for _, w := range written {
				if w {
					stored++
				}
			}
			got := c.ranges(from, to)
			if len(got) != len(want) {
				t.Fatalf("seed %d step %d: ranges %v, want %v", seed, step, got, want)
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("seed %d step %d: ranges %v, want %v", seed, step, got, want)
				}
			}
			if c.stored() != stored {
				t.Fatalf("seed %d step %d: stored %d, want %d", seed, step, c.stored(), stored)
			}
		}
	}
}

// TestHeaderOrder: the canonicalized-header order skips hyphens first and
// breaks ties by where they are, as the service and the SDKs sort.
func TestHeaderOrder(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"x-ms-date", "x-ms-version", -1},
		{"x-ms-blob-type", "x-ms-blob-content-length", 1},
		{"x-ms-range", "x-ms-range-get-content-md5", -1},
		{"x-ms-blob-type", "x-ms-blobtype", 1}, // equal but for a hyphen: the one without it first
		{"x-ms-meta-ab", "x-ms-meta-a-b", -1},  // the hyphen later sorts first
		{"x-ms-meta-a1", "x-ms-meta-ab", -1},   // digits before letters
		{"x-ms-meta-a_b", "x-ms-meta-a1", -1},  // token punctuation before digits
		{"x-ms-meta-a'b", "x-ms-meta-a-b", -1}, // apostrophe before hyphen
		{"x-ms-meta-X", "x-ms-meta-x", 0},
	} {
		if got := headerCompare(tc.a, tc.b); got != tc.want {
			t.Errorf("headerCompare(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := headerCompare(tc.b, tc.a); got != -tc.want {
			t.Errorf("headerCompare(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}
