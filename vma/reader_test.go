package vma_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"slices"
	"testing"

	"github.com/hypersdk/hypersdk/vma"
	"github.com/hypersdk/hypersdk/vma/vmatest"
)

// extractAll reads archive b with package vma into memory sinks.
func extractAll(t testing.TB, b []byte) (*vma.Header, map[string]*memSink, *vma.Stats) {
	t.Helper()
	r, err := vma.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	sinks := map[string]*memSink{}
	st, err := r.Extract(context.Background(), vma.ExtractOptions{Open: func(d vma.Device) (io.WriterAt, error) {
		s := newMemSink(d.Size)
		sinks[d.Name] = s
		return s, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	return r.Header(), sinks, st
}

// TestRoundTrip writes archives as vma-writer.c would — disks in every
// cluster order vzdump produces, with and without a vmstate, with garbage
// past a device's end in the writer's buffers — and reads them back with
// package vma and with the spec-written decoder: both must give every
// disk's bytes exactly (SHA-256), the headers must agree, and zero blocks
// must never have been written to the sinks.
func TestRoundTrip(t *testing.T) {
	disks := standardDisks()
	vmstate := make([]byte, 200<<10+3)
	for i := range vmstate {
		vmstate[i] = byte(i*7 + 1)
	}
	for _, order := range []vmatest.Order{vmatest.Sequential, vmatest.Interleaved, vmatest.Shuffled} {
		for _, withState := range []bool{false, true} {
			for _, garbage := range []bool{false, true} {
				t.Run(fmt.Sprintf("order%d/vmstate=%v/tailgarbage=%v", order, withState, garbage), func(t *testing.T) {
					var state []byte
					if withState {
						state = vmstate
					}
					b := buildArchive(t, disks, state, order, garbage)
					h, sinks, st := extractAll(t, b)
					spec, err := specDecode(b)
					if err != nil {
						t.Fatalf("the spec decoder refuses the archive: %v", err)
					}
					if h.UUID != testUUID || spec.uuid != testUUID || !h.Created.Equal(testTime) || spec.ctime != testTime.Unix() {
						t.Fatalf("uuid/ctime: reader %s %v, spec %x %d", h.UUID, h.Created, spec.uuid, spec.ctime)
					}
					wantDevs := len(disks)
					if withState {
						wantDevs++
						if d, ok := h.Device("vmstate"); !ok || !d.VMState() || d.Size != int64(len(vmstate)) || spec.sizes["vmstate"] != d.Size {
							t.Fatalf("vmstate device: %+v %v", d, ok)
						}
						if _, ok := sinks["vmstate"]; ok {
							t.Fatal("Extract opened a sink for the vmstate")
						}
					}
					if len(h.Devices) != wantDevs || len(h.Disks()) != len(disks) {
						t.Fatalf("devices %+v", h.Devices)
					}
					for i, d := range disks {
						dev := h.Devices[i]
						if dev.ID != uint8(i+1) || dev.Name != d.name || dev.Size != int64(len(d.data)) || spec.sizes[d.name] != dev.Size {
							t.Fatalf("device %d: %+v, spec size %d", i, dev, spec.sizes[d.name])
						}
						want := sha(d.data)
						if got := sha(sinks[d.name].b); got != want {
							t.Fatalf("%s: package vma read %s, source %s", d.name, got, want)
						}
						if got := sha(spec.devices[d.name]); got != want {
							t.Fatalf("%s: the spec decoder read %s, source %s", d.name, got, want)
						}
						requireSparse(t, d, sinks[d.name])
						ds := st.Devices[i]
						if ds.DataBytes+ds.ZeroBytes != dev.Size || ds.DataBytes != storedBytes(d.data, garbage) {
							t.Fatalf("%s stats %+v, stored bytes %d", d.name, ds, storedBytes(d.data, garbage))
						}
					}
					for _, name := range []string{"qemu-server.conf", "qemu-server.fw"} {
						got, ok := h.Config(name)
						if !ok || !bytes.Equal(got, spec.configs[name]) {
							t.Fatalf("config %s: %q vs spec %q", name, got, spec.configs[name])
						}
					}
					if st.ArchiveBytes != int64(len(b)) {
						t.Fatalf("read %d of %d archive bytes", st.ArchiveBytes, len(b))
					}
				})
			}
		}
	}
}

// requireSparse: no byte of an all-zero 4 KiB block of the source was
// written to the sink.
func requireSparse(t *testing.T, d disk, s *memSink) {
	t.Helper()
	for off := 0; off < len(d.data); off += vma.BlockSize {
		end := min(len(d.data), off+vma.BlockSize)
		if bytes.Count(d.data[off:end], []byte{0}) == end-off && slices.Contains(s.written[off:end], true) {
			t.Fatalf("%s: the zero block at %d was written", d.name, off)
		}
	}
}

// storedBytes is what a writer stores for data: non-zero blocks, cut at
// the end; with tail garbage an all-zero last partial block is stored
// too (the writer tests the whole 4 KiB buffer).
func storedBytes(data []byte, garbage bool) int64 {
	var n int64
	for off := 0; off < len(data); off += vma.BlockSize {
		end := min(len(data), off+vma.BlockSize)
		if bytes.Count(data[off:end], []byte{0}) != end-off || (garbage && end-off < vma.BlockSize) {
			n += int64(end - off)
		}
	}
	return n
}

// TestWriterLayout pins the bytes vma-writer.c produces, by offset, on a
// tiny archive, independently of both decoders: where each header field
// sits, the blob buffer's little-endian lengths from offset 1, device
// names appended after the configs, the header size (fixed part plus the
// blob table in 512-byte steps) against blob_buffer_size (its used
// length), the blockinfo bit order, block_count, and the final flush.
func TestWriterLayout(t *testing.T) {
	var buf bytes.Buffer
	w := vmatest.NewWriter(&buf, testUUID, testTime)
	if err := w.AddConfig("/var/tmp/qemu-server.conf", []byte("name: a\n")); err != nil {
		t.Fatal(err)
	}
	dev, err := w.RegisterStream("drive-scsi0", 2*vma.ClusterSize+100)
	if err != nil || dev != 1 {
		t.Fatalf("register: %d %v", dev, err)
	}
	c := make([]byte, vma.ClusterSize)
	c[0] = 0xaa // block 0 only
	if err := w.WriteCluster(dev, 0, c); err != nil {
		t.Fatal(err)
	}
	c = make([]byte, vma.ClusterSize)
	c[15*vma.BlockSize] = 0xbb // block 15 only
	if err := w.WriteCluster(dev, 1, c); err != nil {
		t.Fatal(err)
	}
	c = make([]byte, vma.ClusterSize)
	c[50] = 0xcc            // inside the device (100 bytes of this cluster)
	c[vma.BlockSize] = 0xdd // block 1: past the end, must not be stored
	if err := w.WriteCluster(dev, 2, c); err != nil {
		t.Fatal(err)
	}
	if err := w.CloseStream(dev); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	be := binary.BigEndian
	// Blob table: byte 0 unused; "qemu-server.conf\0" (17) at 1; data (8)
	// at 20; "drive-scsi0\0" (12) at 30; used length 44; table 512 bytes.
	const fixed = 12288
	wantBlobs := []struct {
		at   int
		data string
	}{{1, "qemu-server.conf\x00"}, {20, "name: a\n"}, {30, "drive-scsi0\x00"}}
	for _, wb := range wantBlobs {
		at := fixed + wb.at
		if n := int(b[at]) | int(b[at+1])<<8; n != len(wb.data) || string(b[at+2:at+2+n]) != wb.data {
			t.Fatalf("blob at %d: length bytes % x, data %q", wb.at, b[at:at+2], b[at+2:at+2+len(wb.data)])
		}
	}
	checks := []struct {
		name      string
		got, want uint64
	}{
		{"version", uint64(be.Uint32(b[4:])), 1},
		{"ctime", be.Uint64(b[24:]), uint64(testTime.Unix())},
		{"blob_buffer_offset", uint64(be.Uint32(b[48:])), fixed},
		{"blob_buffer_size", uint64(be.Uint32(b[52:])), 44},
		{"header_size", uint64(be.Uint32(b[56:])), fixed + 512},
		{"config_names[0]", uint64(be.Uint32(b[2044:])), 1},
		{"config_data[0]", uint64(be.Uint32(b[3068:])), 20},
		{"config_names[1]", uint64(be.Uint32(b[2048:])), 0},
		{"dev_info[1].devname_ptr", uint64(be.Uint32(b[4096+32:])), 30},
		{"dev_info[1].size", be.Uint64(b[4096+32+8:]), 2*vma.ClusterSize + 100},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	if !bytes.Equal(b[8:24], testUUID[:]) || string(b[:4]) != "VMA\x00" {
		t.Fatalf("magic/uuid % x", b[:24])
	}
	// One extent (3 clusters), flushed when the stream closed: 3 blocks.
	e := fixed + 512
	if len(b) != e+512+3*vma.BlockSize {
		t.Fatalf("archive is %d bytes, want %d", len(b), e+512+3*vma.BlockSize)
	}
	if string(b[e:e+4]) != "VMAE" || be.Uint16(b[e+4:]) != 0 || be.Uint16(b[e+6:]) != 3 || !bytes.Equal(b[e+8:e+24], testUUID[:]) {
		t.Fatalf("extent header % x", b[e:e+24])
	}
	// Blockinfo as stored: mask (big-endian, bit i = block i), 0, dev_id,
	// cluster number.
	wantInfo := [][8]byte{
		{0x00, 0x01, 0, 1, 0, 0, 0, 0},
		{0x80, 0x00, 0, 1, 0, 0, 0, 1},
		{0x00, 0x01, 0, 1, 0, 0, 0, 2},
	}
	for i, want := range wantInfo {
		if got := b[e+40+8*i : e+48+8*i]; !bytes.Equal(got, want[:]) {
			t.Fatalf("blockinfo %d = % x, want % x", i, got, want)
		}
	}
	if bytes.Count(b[e+40+24:e+512], []byte{0}) != 512-64 {
		t.Fatal("unused blockinfo slots are not zero")
	}
	d := e + 512
	if b[d] != 0xaa || b[d+2*vma.BlockSize-1] != 0 || b[d+vma.BlockSize] != 0xbb || b[d+2*vma.BlockSize+50] != 0xcc {
		t.Fatal("stored blocks are not the written ones, in order")
	}
	// The device's 100 bytes end inside the last stored block: the rest of
	// it is zeroed, whatever the buffer held.
	if bytes.Count(b[d+2*vma.BlockSize+100:], []byte{0}) != vma.BlockSize-100 {
		t.Fatal("the tail of the cut block is not zeroed")
	}
	if _, err := specDecode(b); err != nil {
		t.Fatal(err)
	}
}

// TestWriterExtentsHold58 checks the writer's flushing: extents of 58
// clusters (it flushes once 58 wait), then the rest, then nothing more.
func TestWriterExtentsHold58(t *testing.T) {
	d := makeDisk("drive-scsi0", 130*vma.ClusterSize, 4, 2)
	b := buildArchive(t, []disk{d}, nil, vmatest.Sequential, false)
	var counts []int
	for _, e := range splitExtents(b) {
		n := 0
		for i := range vma.MaxClustersPerExtent {
			if binary.BigEndian.Uint64(b[e.off+40+8*i:]) != 0 {
				n++
			}
			mask := binary.BigEndian.Uint16(b[e.off+40+8*i:])
			_ = bits.OnesCount16(mask)
		}
		counts = append(counts, n)
	}
	if !slices.Equal(counts, []int{58, 58, 14}) {
		t.Fatalf("clusters per extent %v, want [58 58 14]", counts)
	}
}

// TestNextYieldsClusters walks Next directly: archive order, offsets,
// lengths cut at the device end, masks against the data, Read and Block.
func TestNextYieldsClusters(t *testing.T) {
	disks := standardDisks()
	b := buildArchive(t, disks, []byte("state"), vmatest.Shuffled, true)
	r, err := vma.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	src := map[string][]byte{}
	for _, d := range disks {
		src[d.name] = d.data
	}
	seen := map[string]int{}
	outOfOrder := false
	last := map[string]int64{}
	buf := make([]byte, vma.ClusterSize)
	for {
		c, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data := src[c.Device.Name]
		want := data[c.Offset:min(int64(len(data)), c.Offset+vma.ClusterSize)]
		if c.Length != len(want) || c.Offset != c.Index*vma.ClusterSize {
			t.Fatalf("%s cluster %d: offset %d length %d", c.Device.Name, c.Index, c.Offset, c.Length)
		}
		c.Read(buf)
		if !bytes.Equal(buf[:c.Length], want) {
			t.Fatalf("%s cluster %d: bytes differ", c.Device.Name, c.Index)
		}
		for i := range vma.BlocksPerCluster {
			blk := c.Block(i)
			if blk != nil && !bytes.Equal(blk, want[i*vma.BlockSize:i*vma.BlockSize+len(blk)]) {
				t.Fatalf("block %d differs", i)
			}
		}
		if p, ok := last[c.Device.Name]; ok && c.Index < p {
			outOfOrder = true
		}
		last[c.Device.Name] = c.Index
		seen[c.Device.Name]++
	}
	for _, d := range disks {
		if want := (len(d.data) + vma.ClusterSize - 1) / vma.ClusterSize; seen[d.name] != want {
			t.Fatalf("%s: %d clusters, want %d", d.name, seen[d.name], want)
		}
	}
	if !outOfOrder {
		t.Fatal("the shuffled archive had every disk in order: the test does not test out-of-order clusters")
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("Next after the end: %v", err)
	}
}

// TestEmptyArchive: a backup without disks (vzdump's "vma create" with
// configs only, flushed once) is header plus one empty extent.
func TestEmptyArchive(t *testing.T) {
	var buf bytes.Buffer
	a := vmatest.Archive{UUID: testUUID, Created: testTime, Configs: []vma.Config{{Name: "qemu-server.conf", Data: []byte("name: x\n")}}}
	if err := vmatest.Write(&buf, a); err != nil {
		t.Fatal(err)
	}
	h, sinks, st := extractAll(t, buf.Bytes())
	if len(h.Devices) != 0 || len(sinks) != 0 || st.Extents != 1 || st.Clusters != 0 {
		t.Fatalf("devices %v, stats %+v", h.Devices, st)
	}
	c, err := h.VMConfig()
	if err != nil || c.Name != "x" {
		t.Fatalf("config %+v %v", c, err)
	}
}

// TestExtractCancels: a cancelled context stops Extract between clusters.
func TestExtractCancels(t *testing.T) {
	b := buildArchive(t, standardDisks(), nil, vmatest.Interleaved, false)
	r, err := vma.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	_, err = r.Extract(ctx, vma.ExtractOptions{Open: func(d vma.Device) (io.WriterAt, error) { return newMemSink(d.Size), nil },
		Progress: func(done, total int64) {
			if n++; n == 2 {
				cancel()
			}
		}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Extract: %v", err)
	}
}
