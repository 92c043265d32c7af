package vmdk_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/hypersdk/hypersdk/disk"
	"github.com/hypersdk/hypersdk/disk/disktest"
	"github.com/hypersdk/hypersdk/vmdk"
)

var writeSeeds = flag.Bool("vmdk.seeds", false, "rewrite the fuzz seed corpora in testdata/fuzz")

// fuzzRelated are the files beside a fuzzed image: the second input under
// every name the seeds' descriptors use.
func fuzzRelated(other []byte) map[string][]byte {
	return map[string][]byte{"f-flat.vmdk": other, "f-s001.vmdk": other, "t.vmdk": other}
}

// openSeeds are small images of every layout: 8-sector grains and tiny
// capacities, so the fuzzer reaches the tables quickly.
func openSeeds() map[string][2][]byte {
	tiny := func(seed byte) []byte { return bytes.Repeat([]byte{seed, 0, seed + 1}, 4096/3+1)[:4096] }
	ws := workstationSparse{capacity: 64, grain: 8, name: "t.vmdk",
		data: map[int64][]byte{0: tiny(1), 5: tiny(2)}, order: []int64{5, 0}, zeroed: []int64{3}}.build()
	stream := esxStream{capacity: 72, grain: 8, overhead: 8, level: 6,
		data: map[int64][]byte{1: tiny(3), 2: tiny(4), 8: tiny(5)[:512]}}.build()
	var ours bytes.Buffer
	if _, err := vmdk.WriteStreamOptimized(&ours, bytes.NewReader(tiny(6)), 128<<10, vmdk.WriteOptions{}); err != nil {
		panic(err)
	}
	flat := tiny(7) // 8 sectors
	return map[string][2][]byte{
		"workstation":      {ws, nil},
		"esx-stream":       {stream, nil},
		"writer":           {ours.Bytes(), nil},
		"vmfs-flat":        {[]byte(esxDescriptor(8, "f-flat.vmdk")), flat},
		"sparse-extent":    {descriptorFile("twoGbMaxExtentSparse", `RW 64 SPARSE "f-s001.vmdk"`, ""), ws},
		"multi-extent":     {descriptorFile("twoGbMaxExtentFlat", "RW 4 FLAT \"f-flat.vmdk\" 0\nRW 8 ZERO\nRW 4 FLAT \"f-flat.vmdk\" 4", ""), flat},
		"delta":            {descriptorFile("monolithicSparse", `RW 64 SPARSE "f-s001.vmdk"`, "parentFileNameHint=\"p.vmdk\"\n"), ws},
		"stream-as-extent": {descriptorFile("streamOptimized", `RW 72 SPARSE "f-s001.vmdk"`, ""), stream},
	}
}

// FuzzOpen opens arbitrary bytes (with the second input as every file the
// descriptor may name) and exercises the image (disktest.Exercise: Check,
// extents, data — at most 64 MiB read). Nothing may panic or hang;
// refusals are FormatErrors; extents ascend, merged, inside the disk.
func FuzzOpen(f *testing.F) {
	for _, s := range openSeeds() {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, data, other []byte) {
		im, err := vmdk.Open(disk.BytesFile("t.vmdk", data, fuzzRelated(other)))
		if err != nil {
			disktest.RequireFormatError(t, "Open", err)
			return
		}
		defer im.Close()
		disktest.Exercise(t, im, disktest.Limits{Read: 64 << 20, CheckReadsData: true})
	})
}

// FuzzStreamReader decodes arbitrary bytes as a streamOptimized stream.
func FuzzStreamReader(f *testing.F) {
	for _, name := range []string{"esx-stream", "writer", "workstation"} {
		f.Add(openSeeds()[name][0])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := vmdk.NewStreamReader(bytes.NewReader(data), "s.vmdk")
		if err != nil {
			if !errors.Is(err, disk.ErrFormat) {
				t.Fatalf("refusal is not a FormatError: %v", err)
			}
			return
		}
		end := int64(-1)
		for {
			e, err := s.NextExtent()
			if err == io.EOF {
				return
			}
			if err != nil {
				if !errors.Is(err, disk.ErrFormat) {
					t.Fatalf("error is not a FormatError: %v", err)
				}
				return
			}
			if e.Offset < end || e.Length <= 0 || e.End() > s.Size() {
				t.Fatalf("extent %+v after %d in a %d-byte disk", e, end, s.Size())
			}
			end = e.End()
			if n, err := io.Copy(io.Discard, s); err != nil || n != e.Length {
				t.Fatalf("extent %+v: read %d bytes, %v", e, n, err)
			}
		}
	})
}

// TestFuzzSeeds writes the seed corpora with -vmdk.seeds, and otherwise
// checks the committed seeds open cleanly.
func TestFuzzSeeds(t *testing.T) {
	for name, s := range openSeeds() {
		err := exercise(s[0], fuzzRelated(s[1]))
		if (err != nil) != (name == "delta") {
			t.Errorf("seed %s: %v", name, err)
		}
		if !*writeSeeds {
			continue
		}
		write := func(fuzz string, args ...[]byte) {
			dir := filepath.Join("testdata", "fuzz", fuzz)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			b := []byte("go test fuzz v1\n")
			for _, a := range args {
				b = fmt.Appendf(b, "[]byte(%s)\n", strconv.Quote(string(a)))
			}
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write("FuzzOpen", s[0], s[1])
		if name == "esx-stream" || name == "writer" {
			write("FuzzStreamReader", s[0])
		}
	}
}
