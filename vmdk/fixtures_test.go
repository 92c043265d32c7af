package vmdk_test

// Fixtures laid out as VMware's products write them, built here from the
// "Virtual Disk Format 5.0" technical note — not from this package's
// writer — with the standard library's zlib.

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"sort"
)

const sector = 512

var le = binary.LittleEndian

// sparseHeader is SparseExtentHeader as the spec lays it out.
type sparseHeader struct {
	version, flags                uint32
	capacity, grain               uint64 // sectors
	descOffset, descSize          uint64
	numGTEsPerGT                  uint32
	rgdOffset, gdOffset, overhead uint64
	compressAlgorithm             uint16
}

func (h sparseHeader) bytes() []byte {
	b := make([]byte, sector)
	copy(b, "KDMV")
	le.PutUint32(b[4:], h.version)
	le.PutUint32(b[8:], h.flags)
	le.PutUint64(b[12:], h.capacity)
	le.PutUint64(b[20:], h.grain)
	le.PutUint64(b[28:], h.descOffset)
	le.PutUint64(b[36:], h.descSize)
	le.PutUint32(b[44:], h.numGTEsPerGT)
	le.PutUint64(b[48:], h.rgdOffset)
	le.PutUint64(b[56:], h.gdOffset)
	le.PutUint64(b[64:], h.overhead)
	b[72] = 0 // uncleanShutdown
	copy(b[73:], "\n \r\n")
	le.PutUint16(b[77:], h.compressAlgorithm)
	return b
}

// workstationSparse describes a monolithicSparse disk as VMware Workstation
// writes it: header, embedded descriptor at sector 1 (20 sectors), the
// redundant grain directory and its grain tables, the grain directory and
// its grain tables (all tables preallocated), overhead rounded up to a
// grain, then uncompressed grains in the order the guest wrote them.
type workstationSparse struct {
	capacity, grain int64 // sectors
	name            string
	data            map[int64][]byte // grain number → content (one grain)
	order           []int64          // allocation order of data's grains
	zeroed          []int64          // grains whose entry is 1 (zeroed grain)
	descExtra       string           // lines added to the descriptor
}

func (w workstationSparse) build() []byte {
	grainBytes := w.grain * sector
	numGrains := (w.capacity + w.grain - 1) / w.grain
	numGTs := (numGrains + 511) / 512
	gdSectors := (numGTs*4 + sector - 1) / sector
	rgd := int64(21)
	rgts := rgd + gdSectors
	gd := rgts + numGTs*4
	gts := gd + gdSectors
	overhead := (gts + numGTs*4 + w.grain - 1) / w.grain * w.grain

	h := sparseHeader{version: 2, flags: 1 | 2 | 4, capacity: uint64(w.capacity), grain: uint64(w.grain),
		descOffset: 1, descSize: 20, numGTEsPerGT: 512, rgdOffset: uint64(rgd), gdOffset: uint64(gd), overhead: uint64(overhead)}
	img := make([]byte, overhead*sector, (overhead+int64(len(w.order)))*sector+int64(len(w.order))*grainBytes)
	copy(img, h.bytes())
	desc := fmt.Sprintf(`# Disk DescriptorFile
version=1
encoding="UTF-8"
CID=5a3c1f07
parentCID=ffffffff
isNativeSnapshot="no"
createType="monolithicSparse"

# Extent description
RW %d SPARSE "%s"

# The Disk Data Base 
#DDB

ddb.adapterType = "lsilogic"
ddb.geometry.cylinders = "%d"
ddb.geometry.heads = "16"
ddb.geometry.sectors = "63"
ddb.longContentID = "8f3b2d1c0e9a4b5c6d7e8f901a2b3c4d"
ddb.uuid = "60 00 C2 9b 4c 1d 2e 3f-40 51 62 73 84 95 a6 b7"
ddb.virtualHWVersion = "19"
%s`, w.capacity, w.name, w.capacity/(16*63), w.descExtra)
	copy(img[sector:21*sector], desc)
	gte := make([]uint32, numGTs*512)
	for _, g := range w.zeroed {
		gte[g] = 1
	}
	for _, g := range w.order {
		gte[g] = uint32(len(img) / sector)
		img = append(img, w.data[g]...)
		img = append(img, make([]byte, grainBytes-int64(len(w.data[g])))...)
	}
	for _, dir := range []struct{ gd, gts int64 }{{rgd, rgts}, {gd, gts}} {
		for i := int64(0); i < numGTs; i++ {
			le.PutUint32(img[dir.gd*sector+i*4:], uint32(dir.gts+i*4))
			for j := int64(0); j < 512; j++ {
				le.PutUint32(img[(dir.gts+i*4)*sector+j*4:], gte[i*512+j])
			}
		}
	}
	return img
}

// esxStream describes a streamOptimized disk as ESXi's NFC serves it:
// header with the grain directory "at the end", the descriptor at sector
// 1, grains from the overhead on, each behind its grain marker in
// ascending order, each grain table behind its marker after its grains,
// the grain directory behind its marker, the footer marker and footer,
// and the end-of-stream marker.
type esxStream struct {
	capacity, grain int64 // sectors
	overhead        int64 // sectors before the first grain
	data            map[int64][]byte
	level           int // zlib level of the grains
	descExtra       string
	// inflated overrides a grain's compressed content (damage tests).
	inflated map[int64][]byte
}

func (e esxStream) header(gdOffset uint64) sparseHeader {
	return sparseHeader{version: 3, flags: 1 | 1<<16 | 1<<17, capacity: uint64(e.capacity), grain: uint64(e.grain),
		descOffset: 1, descSize: 1, numGTEsPerGT: 512, gdOffset: gdOffset, overhead: uint64(e.overhead), compressAlgorithm: 1}
}

func (e esxStream) build() []byte {
	grainBytes := e.grain * sector
	numGrains := (e.capacity + e.grain - 1) / e.grain
	numGTs := (numGrains + 511) / 512
	img := make([]byte, e.overhead*sector)
	copy(img, e.header(^uint64(0)).bytes())
	copy(img[sector:], fmt.Sprintf(`# Disk DescriptorFile
version=1
CID=7c2e4a19
parentCID=ffffffff
createType="streamOptimized"

# Extent description
RW %d SPARSE "disk-0.vmdk"

# The Disk Data Base
#DDB

ddb.adapterType = "lsilogic"
ddb.virtualHWVersion = "14"
%s`, e.capacity, e.descExtra))
	pad := func() {
		if r := len(img) % sector; r != 0 {
			img = append(img, make([]byte, sector-r)...)
		}
	}
	marker := func(n uint64, typ uint32) {
		m := make([]byte, sector)
		le.PutUint64(m, n)
		le.PutUint32(m[12:], typ)
		img = append(img, m...)
	}
	var grains []int64
	for g := range e.data {
		grains = append(grains, g)
	}
	sort.Slice(grains, func(i, j int) bool { return grains[i] < grains[j] })
	gd := make([]uint32, numGTs)
	for gti := int64(0); gti < numGTs; gti++ {
		gt := make([]uint32, 512)
		used := false
		for _, g := range grains {
			if g/512 != gti {
				continue
			}
			used = true
			raw := make([]byte, grainBytes)
			copy(raw, e.data[g])
			if o, ok := e.inflated[g]; ok {
				raw = o
			}
			var z bytes.Buffer
			zw, _ := zlib.NewWriterLevel(&z, e.level)
			zw.Write(raw)
			zw.Close()
			gt[g%512] = uint32(len(img) / sector)
			var m [12]byte
			le.PutUint64(m[:], uint64(g*e.grain))
			le.PutUint32(m[8:], uint32(z.Len()))
			img = append(img, m[:]...)
			img = append(img, z.Bytes()...)
			pad()
		}
		if !used {
			continue
		}
		marker(4, 1)
		gd[gti] = uint32(len(img) / sector)
		for _, v := range gt {
			img = le.AppendUint32(img, v)
		}
	}
	gdSectors := (numGTs*4 + sector - 1) / sector
	marker(uint64(gdSectors), 2)
	gdOffset := len(img) / sector
	for _, v := range gd {
		img = le.AppendUint32(img, v)
	}
	pad()
	marker(1, 3)
	img = append(img, e.header(uint64(gdOffset)).bytes()...)
	marker(0, 0)
	return img
}

// esxDescriptor is the descriptor ESXi writes beside a flat (thick or
// thin) disk on VMFS.
func esxDescriptor(sectors int64, flat string) string {
	return fmt.Sprintf(`# Disk DescriptorFile
version=1
encoding="UTF-8"
CID=fffffffe
parentCID=ffffffff
createType="vmfs"

# Extent description
RW %d VMFS "%s"

# The Disk Data Base
#DDB

ddb.adapterType = "lsilogic"
ddb.deletable = "true"
ddb.geometry.cylinders = "%d"
ddb.geometry.heads = "255"
ddb.geometry.sectors = "63"
ddb.longContentID = "2a1f5e7d9c3b4a6f8e0d1c2b3a495867"
ddb.thinProvisioned = "1"
ddb.uuid = "60 00 C2 91 7a 2b 3c 4d-5e 6f 70 81 92 a3 b4 c5"
ddb.virtualHWVersion = "19"
`, sectors, flat, max(sectors/(255*63), 1))
}
