package azurefake

import (
	"crypto/rand"
	"encoding/binary"
	"time"
)

// fixedVHDFooter returns the 512-byte footer Azure ends a managed disk's
// page blob with: a fixed VHD (Microsoft Virtual Hard Disk Image Format
// Specification 1.0) of size bytes, as Azure writes it — creator "wa",
// host "Wi2k". Written here from the specification, independently of the
// product's reader, so that the tests check one against the other.
func fixedVHDFooter(size int64) []byte {
	be := binary.BigEndian
	b := make([]byte, 512)
	copy(b[0:], "conectix")
	be.PutUint32(b[8:], 2)           // features: reserved bit
	be.PutUint32(b[12:], 0x00010000) // file format version
	be.PutUint64(b[16:], ^uint64(0)) // data offset: none, a fixed disk
	be.PutUint32(b[24:], uint32(time.Since(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC))/time.Second))
	copy(b[28:], "wa\x00\x00")
	be.PutUint32(b[32:], 0x00070000)
	copy(b[36:], "Wi2k")
	be.PutUint64(b[40:], uint64(size)) // original size
	be.PutUint64(b[48:], uint64(size)) // current size
	c, h, s := chs(size)
	be.PutUint16(b[56:], c)
	b[58], b[59] = h, s
	be.PutUint32(b[60:], 2) // disk type: fixed
	_, _ = rand.Read(b[68:84])
	var sum uint32
	for _, v := range b {
		sum += uint32(v)
	}
	be.PutUint32(b[64:], ^sum)
	return b
}

// chs is the specification's CHS geometry for size bytes.
func chs(size int64) (uint16, uint8, uint8) {
	sectors := size / 512
	if sectors > 65535*16*255 {
		sectors = 65535 * 16 * 255
	}
	var spt, heads, cth int64
	if sectors >= 65535*16*63 {
		spt, heads = 255, 16
		cth = sectors / spt
	} else {
		spt = 17
		cth = sectors / spt
		heads = (cth + 1023) / 1024
		if heads < 4 {
			heads = 4
		}
		if cth >= heads*1024 || heads > 16 {
			spt, heads = 31, 16
			cth = sectors / spt
		}
		if cth >= heads*1024 {
			spt, heads = 63, 16
			cth = sectors / spt
		}
	}
	return uint16(cth / heads), uint8(heads), uint8(spt)
}
