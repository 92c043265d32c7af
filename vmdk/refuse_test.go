package vmdk_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/disk"
	"github.com/hypersdk/hypersdk/vmdk"
)

// smallWorkstation is a 4 MiB monolithicSparse with 64 KiB grains: grains
// 0 and 3 stored, grain 5 zeroed.
func smallWorkstation(descExtra string) []byte {
	g := bytes.Repeat([]byte{0x5a}, 64<<10)
	return workstationSparse{capacity: 8192, grain: 128, name: "ws.vmdk", descExtra: descExtra,
		data: map[int64][]byte{0: g, 3: g}, order: []int64{3, 0}, zeroed: []int64{5}}.build()
}

// gdAt and gteAt locate the grain directory and grain 0's entry in a
// workstationSparse image (primary tables).
func gdAt(img []byte) int64 { return int64(le.Uint64(img[56:])) * 512 }
func gteAt(img []byte, g int64) int64 {
	return int64(le.Uint32(img[gdAt(img):]))*512 + g*4
}

func smallStream(inflated map[int64][]byte) []byte {
	g := bytes.Repeat([]byte("stream grain "), 64<<10/13+1)[:64<<10]
	return esxStream{capacity: 8192, grain: 128, overhead: 128, level: 6,
		data: map[int64][]byte{0: g, 2: g}, inflated: inflated}.build()
}

func descriptorFile(createType, extents, extra string) []byte {
	return []byte("# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"" + createType + "\"\n" + extra +
		"\n# Extent description\n" + extents + "\n\n# The Disk Data Base\n#DDB\n\nddb.adapterType = \"lsilogic\"\n")
}

func patch32(img []byte, off int64, v uint32) []byte {
	img = bytes.Clone(img)
	le.PutUint32(img[off:], v)
	return img
}

func patch64(img []byte, off int64, v uint64) []byte {
	img = bytes.Clone(img)
	le.PutUint64(img[off:], v)
	return img
}

// exercise opens b as "t.vmdk" beside related, walks the extents, reads
// every extent and checks the image, returning the first error.
func exercise(b []byte, related map[string][]byte) error {
	im, err := vmdk.Open(disk.BytesFile("t.vmdk", b, related))
	if err != nil {
		return err
	}
	defer im.Close()
	for e, err := range im.Extents() {
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, io.NewSectionReader(im, e.Offset, e.Length)); err != nil {
			return err
		}
	}
	return im.(disk.Checker).Check(context.Background())
}

// Every damaged or unsupported image is refused with a *disk.FormatError
// naming the structure, never read as something else.
func TestRefusals(t *testing.T) {
	ws := smallWorkstation("")
	flat := make([]byte, 8192*512)
	for _, c := range []struct {
		name    string
		img     []byte
		related map[string][]byte
		want    []string // in the error text
	}{
		{"delta disk (descriptor)", descriptorFile("monolithicSparse", `RW 8192 SPARSE "vm-000001-s001.vmdk"`, "parentFileNameHint=\"vm.vmdk\"\n"),
			map[string][]byte{"vm-000001-s001.vmdk": ws}, []string{"descriptor", `parent "vm.vmdk"`, "consolidate"}},
		{"delta disk (embedded descriptor)", smallWorkstation("parentFileNameHint=\"C:\\\\VMs\\\\base.vmdk\"\n"), nil,
			[]string{"descriptor", "base.vmdk", "consolidate"}},
		{"delta disk (parent CID only)", descriptorFile("monolithicFlat", `RW 8192 FLAT "t-flat.vmdk" 0`, "parentCID=1a2b3c4d\n"),
			map[string][]byte{"t-flat.vmdk": flat}, []string{"1a2b3c4d", "consolidate"}},
		{"ESXi snapshot extent", descriptorFile("vmfsSparse", `RW 8192 VMFSSPARSE "vm-000001-delta.vmdk"`, ""), nil,
			[]string{"VMFSSPARSE", "snapshot"}},
		{"SEsparse extent", descriptorFile("seSparse", `RW 8192 SESPARSE "vm-000001-sesparse.vmdk"`, ""), nil,
			[]string{"SESPARSE"}},
		{"unknown extent type", descriptorFile("vmfs", `RW 8192 VMFSRDM "vm-rdm.vmdk"`, ""), nil,
			[]string{"extent line", `unsupported extent type "VMFSRDM"`}},
		{"device-backed disk", descriptorFile("fullDevice", `RW 8192 FLAT "/dev/sda" 0`, ""), nil, []string{"device"}},
		{"descriptor naming itself", descriptorFile("monolithicFlat", `RW 8192 FLAT "t.vmdk" 0`, ""),
			map[string][]byte{"t.vmdk": descriptorFile("monolithicFlat", `RW 8192 FLAT "t.vmdk" 0`, "")}, []string{"itself a descriptor"}},
		{"descriptor naming a descriptor", descriptorFile("monolithicFlat", `RW 8192 FLAT "u.vmdk" 0`, ""),
			map[string][]byte{"u.vmdk": descriptorFile("monolithicFlat", `RW 8192 FLAT "t.vmdk" 0`, "")}, []string{"itself a descriptor"}},
		{"missing extent file", descriptorFile("monolithicFlat", `RW 8192 FLAT "t-flat.vmdk" 0`, ""), map[string][]byte{}, []string{"cannot open extent file"}},
		{"short flat extent", descriptorFile("monolithicFlat", `RW 8192 FLAT "t-flat.vmdk" 0`, ""), map[string][]byte{"t-flat.vmdk": flat[:4096]}, []string{"flat extent", "needs 4194304"}},
		{"bad extent size", descriptorFile("monolithicFlat", `RW -5 FLAT "t-flat.vmdk" 0`, ""), nil, []string{"extent line"}},
		{"extents beyond the size limit", descriptorFile("monolithicFlat", "RW 137438953472 ZERO\nRW 137438953472 ZERO", ""), nil, []string{"limit"}},
		{"no extents", descriptorFile("monolithicFlat", "", ""), nil, []string{"no extents"}},
		{"bad magic", append([]byte("KDMX"), ws[4:]...), nil, []string{"neither a sparse extent"}},
		{"text-mode transfer", func() []byte { b := bytes.Clone(ws); b[75] = '\n'; return b }(), nil, []string{"header", "newline"}},
		{"version 4", patch32(ws, 4, 4), nil, []string{"header", "version 4"}},
		{"zero capacity", patch64(ws, 12, 0), nil, []string{"header", "not positive"}},
		{"absurd capacity", patch64(ws, 12, 1<<50), nil, []string{"header", "beyond"}},
		{"grain not a power of two", patch64(ws, 20, 96), nil, []string{"header", "grain size of 96 sectors"}},
		{"grain of 4 sectors", patch64(ws, 20, 4), nil, []string{"grain size of 4 sectors"}},
		{"grain of 4 MiB", patch64(ws, 20, 8192), nil, []string{"grain size of 8192 sectors"}},
		{"256 entries per grain table", patch32(ws, 44, 256), nil, []string{"header", "256 entries per grain table"}},
		{"descriptor past the file", patch64(ws, 28, 1<<40), nil, []string{"embedded descriptor", "past the end"}},
		{"grain directory past the file", patch64(ws, 56, 1<<40), nil, []string{"grain directory", "past the end"}},
		{"grain directory on the descriptor", patch64(ws, 56, 5), nil, []string{"grain directory", "overlaps the embedded descriptor"}},
		{"grain directory on the header", patch64(ws, 56, 0), nil, []string{"grain directory at sector 0"}},
		{"grain table past the file", patch32(ws, gdAt(ws), 0x7fffffff), nil, []string{"grain directory entry 0", "past the end"}},
		{"grain directory entry cleared", patch32(ws, gdAt(ws), 0), nil, []string{"redundant grain directory entry 0", "disagrees"}},
		{"grain table on the descriptor", patch32(ws, gdAt(ws), 3), nil, []string{"grain directory entry 0", "overlaps the embedded descriptor"}},
		{"grain past the file", patch32(ws, gteAt(ws, 0), 0x7fffff00), nil, []string{"grain table entry for grain 0", "past the end"}},
		{"grain on the descriptor", patch32(ws, gteAt(ws, 3), 2), nil, []string{"grain table entry for grain 3", "overlaps the embedded descriptor"}},
		{"grain on the grain directory", patch32(ws, gteAt(ws, 3), uint32(gdAt(ws)/512)), nil, []string{"grain table entry for grain 3", "overlaps the grain directory"}},
		{"zeroed-grain entry in a version 1 extent", patch32(ws, 4, 1), nil, []string{"grain table entry for grain 5", "overlaps the embedded descriptor"}},
		{"two entries sharing a grain", func() []byte {
			b := patch32(ws, gteAt(ws, 3), le.Uint32(ws[gteAt(ws, 0):]))
			rgt := int64(le.Uint32(b[int64(le.Uint64(b[48:]))*512:])) * 512 // keep the redundant table equal
			le.PutUint32(b[rgt+3*4:], le.Uint32(ws[gteAt(ws, 0):]))
			return b
		}(), nil, []string{"grain 3", "shares bytes of the file with grain 0"}},
		{"redundant grain table differs", func() []byte {
			b := bytes.Clone(ws)
			rgt := int64(le.Uint32(b[int64(le.Uint64(b[48:]))*512:])) * 512
			le.PutUint32(b[rgt+7*4:], le.Uint32(ws[gteAt(ws, 0):]))
			return b
		}(), nil, []string{"redundant grain table 0", "differs"}},
		{"compressed grain inflating short", smallStream(map[int64][]byte{2: make([]byte, 32<<10)}), nil, []string{"grain 2", "inflates to 32768 bytes"}},
		{"compressed grain inflating long", smallStream(map[int64][]byte{2: make([]byte, 64<<10+512)}), nil, []string{"grain 2", "more than 65536"}},
		{"grain marker naming another grain", patch64(smallStream(nil), 128*512, 128), nil, []string{"grain marker of grain 0", "names sector 128"}},
		{"compressed size past the file", patch32(smallStream(nil), 128*512+8, 1<<20), nil, []string{"grain marker of grain 0"}},
		{"stream without its footer", func() []byte { b := smallStream(nil); return b[:len(b)-512] }(), nil, []string{"footer"}},
		{"footer disagreeing with the header", func() []byte {
			b := smallStream(nil)
			return patch64(b, int64(len(b))-1024+12, 16384)
		}(), nil, []string{"footer", "disagrees"}},
		{"unknown compression", patch32(smallStream(nil), 77, 2), nil, []string{"header", "unknown algorithm 2"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := exercise(c.img, c.related)
			if c.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var fe *disk.FormatError
			if !errors.Is(err, disk.ErrFormat) || !errors.As(err, &fe) {
				t.Fatalf("err = %v, want a *disk.FormatError", err)
			}
			if fe.Format != disk.VMDK || fe.File == "" || fe.Structure == "" {
				t.Fatalf("FormatError %+v does not name file, format and structure", fe)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// The streaming reader refuses what the random-access reader refuses.
func TestStreamReaderRefusals(t *testing.T) {
	read := func(b []byte) error {
		s, err := vmdk.NewStreamReader(bytes.NewReader(b), "s.vmdk")
		if err != nil {
			return err
		}
		for {
			if _, err := s.NextExtent(); err == io.EOF {
				return nil
			} else if err != nil {
				return err
			}
			if _, err := io.Copy(io.Discard, s); err != nil {
				return err
			}
		}
	}
	if err := read(smallStream(nil)); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		img  []byte
		want string
	}{
		"not streamOptimized": {smallWorkstation(""), "not a streamOptimized extent"},
		"delta disk":          {esxStream{capacity: 8192, grain: 128, overhead: 128, level: 1, descExtra: "parentFileNameHint=\"base.vmdk\"\n"}.build(), `parent "base.vmdk"`},
		"inflating short":     {smallStream(map[int64][]byte{2: make([]byte, 32<<10)}), "inflates to 32768 bytes"},
		"inflating long":      {smallStream(map[int64][]byte{2: make([]byte, 64<<10+512)}), "more than 65536"},
		"grain out of order":  {patch64(smallStream(nil), 128*512, 8192-128), "out of order"},
		"grain past capacity": {patch64(smallStream(nil), 128*512, 1<<30), "not a grain boundary"},
		"oversized GT marker": {func() []byte { b := smallStream(nil); return patch64(b, int64(len(b))-5*512-4*512-512, 1<<40) }(), "announces"},
		"truncated":           {smallStream(nil)[:128*512+100], "ends early"},
		"absurd grain size":   {patch64(smallStream(nil), 20, 1<<20), "grain size"},
		"unknown compression": {patch32(smallStream(nil), 77, 2), "unknown algorithm"},
		"end marker missing":  {func() []byte { b := smallStream(nil); return b[:len(b)-512] }(), "ends early"},
	} {
		t.Run(name, func(t *testing.T) {
			err := read(c.img)
			if !errors.Is(err, disk.ErrFormat) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want a FormatError saying %q", err, c.want)
			}
		})
	}
}
