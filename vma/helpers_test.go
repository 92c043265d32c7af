package vma_test

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/vma"
	"github.com/hypersdk/hypersdk/vma/vmatest"
)

// testUUID and testTime mark the archives the tests write.
var (
	testUUID = [16]byte{0x5a, 0x1e, 0x3c, 0x4d, 0x12, 0x34, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67}
	testTime = time.Date(2026, 1, 31, 12, 34, 56, 0, time.UTC)
)

// qemuServerConf is a configuration as vzdump stores it: the VM's options,
// its description as "#" lines, and one "#qmdump#map" line per disk.
const qemuServerConf = `#web server%3A production
#second line
agent: 1
bios: ovmf
boot: order=scsi0;ide2;net0
cores: 2
cpu: x86-64-v2-AES
efidisk0: local-lvm:vm-101-disk-2,efitype=4m,pre-enrolled-keys=1,size=528K
ide2: local:iso/debian-12.iso,media=cdrom,size=628M
machine: q35
memory: 4096
meta: creation-qemu=9.0.2,ctime=1736349024
name: web01
net0: virtio=BC:24:11:A3:DA:B1,bridge=vmbr0,firewall=1
net1: model=e1000,macaddr=BC:24:11:79:D5:65,bridge=vmbr1,tag=42,link_down=1
numa: 0
ostype: l26
scsi0: local-lvm:vm-101-disk-0,iothread=1,size=3M
scsihw: virtio-scsi-single
smbios1: uuid=2c4a2cda-712b-44ab-8728-51f5e734b658
sockets: 2
tags: prod;web
virtio1: local-lvm:vm-101-disk-1,size=8M,discard=on
vmgenid: 713da648-38a6-489e-b0b2-dd9cef419f33
#qmdump#map:efidisk0:drive-efidisk0:local-lvm:raw:
#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:
#qmdump#map:virtio1:drive-virtio1:local-lvm:raw:
`

// disk is a source disk of a test archive.
type disk struct {
	name string
	data []byte
}

// makeDisk fills size bytes cluster by cluster with the mixes that matter:
// whole zero clusters, clusters with some zero 4 KiB blocks (partial
// masks), full ones, and a tail that ends inside a block.
func makeDisk(name string, size int64, seed uint64, dataRatio int) disk {
	rng := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, size)
	for off := int64(0); off < size; off += vma.ClusterSize {
		switch rng.IntN(dataRatio) {
		case 0: // full
			fill(rng, b[off:min(size, off+vma.ClusterSize)])
		case 1: // partial mask
			for blk := off; blk < min(size, off+vma.ClusterSize); blk += vma.BlockSize {
				if rng.IntN(2) == 0 {
					fill(rng, b[blk:min(size, blk+vma.BlockSize)])
				}
			}
		case 2: // one byte in one block
			b[min(size-1, off+int64(rng.IntN(vma.ClusterSize)))] = 1
		}
	}
	// The tail is always data, so the device's last partial block is
	// stored and cut.
	fill(rng, b[max(0, size-100):])
	return disk{name: name, data: b}
}

func fill(rng *rand.Rand, b []byte) {
	for i := range b {
		b[i] = byte(rng.Uint32() | 1)
	}
}

// buildArchive writes an archive of disks (and a vmstate when given) in
// the order asked.
func buildArchive(t testing.TB, disks []disk, vmstate []byte, order vmatest.Order, tailGarbage bool) []byte {
	t.Helper()
	a := vmatest.Archive{UUID: testUUID, Created: testTime, VMState: vmstate, Order: order, Seed: 9, TailGarbage: tailGarbage,
		Configs: []vma.Config{{Name: "qemu-server.conf", Data: []byte(qemuServerConf)}, {Name: "/tmp/vzdumptmp/qemu-server.fw", Data: []byte("[OPTIONS]\nenable: 1\n")}}}
	for _, d := range disks {
		a.Disks = append(a.Disks, vmatest.Disk{Name: d.name, Size: int64(len(d.data)), Data: bytes.NewReader(d.data)})
	}
	var buf bytes.Buffer
	if err := vmatest.Write(&buf, a); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// standardDisks: a disk whose size is not a cluster multiple (its last
// cluster one full block and 512 bytes), a sparse one, and an EFI vars
// disk (528 KiB: 8 clusters and a quarter).
func standardDisks() []disk {
	return []disk{
		makeDisk("drive-scsi0", 3<<20+4608, 1, 4),
		makeDisk("drive-virtio1", 8<<20, 2, 40),
		makeDisk("drive-efidisk0", 540672, 3, 3),
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// memSink is a sparse in-memory device: it records which bytes were
// written, so tests can tell that zero blocks never were.
type memSink struct {
	mu      sync.Mutex
	b       []byte
	written []bool
	writes  int
}

func newMemSink(size int64) *memSink {
	return &memSink{b: make([]byte, size), written: make([]bool, size)}
}

func (m *memSink) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if off < 0 || off+int64(len(p)) > int64(len(m.b)) {
		return 0, bytes.ErrTooLarge
	}
	copy(m.b[off:], p)
	for i := range p {
		m.written[off+int64(i)] = true
	}
	m.writes++
	return len(p), nil
}

// extents are the archive's extents: offset and data length.
type extentAt struct {
	off, blocks int
}

// splitExtents walks the archive's layout (header_size, then block_count
// per extent) without checking anything: for tests that damage one.
func splitExtents(b []byte) []extentAt {
	p := int(binary.BigEndian.Uint32(b[56:60]))
	var out []extentAt
	for p+512 <= len(b) {
		n := int(binary.BigEndian.Uint16(b[p+6:]))
		out = append(out, extentAt{off: p, blocks: n})
		p += 512 + n*4096
	}
	return out
}

// resumHeader recomputes the header's MD5 after a test changed it, so the
// change itself is what the reader sees.
func resumHeader(b []byte) {
	n := binary.BigEndian.Uint32(b[56:60])
	clear(b[32:48])
	s := md5.Sum(b[:n])
	copy(b[32:48], s[:])
}

// resumExtent does the same for the extent header at off.
func resumExtent(b []byte, off int) {
	clear(b[off+24 : off+40])
	s := md5.Sum(b[off : off+512])
	copy(b[off+24:off+40], s[:])
}
