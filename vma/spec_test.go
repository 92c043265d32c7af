package vma_test

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"fmt"
)

// specArchive is an archive as decoded by specDecode.
type specArchive struct {
	uuid    [16]byte
	ctime   int64
	configs map[string][]byte
	sizes   map[string]int64
	devices map[string][]byte // disk contents, vmstate left out
}

// specDecode is a second VMA decoder, written from the prose specification
// (pve-qemu's vma_spec.txt) alone and sharing nothing with package vma:
// the header table's offsets, the device info table, the blob buffer, the
// extent header and its blockinfo layout, exactly as the spec lists them.
// It reads a whole archive in memory and returns every disk's bytes.
//
// It departs from the text only where Proxmox's own writer and reader
// (vma-writer.c, vma-reader.c) both contradict it, each noted below, so
// that a mistake our writer and reader share cannot hide behind it.
func specDecode(b []byte) (*specArchive, error) {
	be := binary.BigEndian
	if len(b) < 12288 || string(b[0:4]) != "VMA\x00" {
		return nil, fmt.Errorf("spec: no VMA magic")
	}
	if be.Uint32(b[4:8]) != 1 {
		return nil, fmt.Errorf("spec: version %d", be.Uint32(b[4:8]))
	}
	a := &specArchive{configs: map[string][]byte{}, sizes: map[string]int64{}, devices: map[string][]byte{}}
	copy(a.uuid[:], b[8:24])
	a.ctime = int64(be.Uint64(b[24:32]))
	headerSize := int(be.Uint32(b[56:60]))
	if headerSize < 12288 || headerSize > len(b) {
		return nil, fmt.Errorf("spec: header_size %d", headerSize)
	}
	// "Header checksum (from byte 0 to header_size). This field is filled
	// with zero to generate the checksum."
	head := bytes.Clone(b[:headerSize])
	clear(head[32:48])
	if sum := md5.Sum(head); !bytes.Equal(sum[:], b[32:48]) {
		return nil, fmt.Errorf("spec: header md5")
	}
	blobOff, blobSize := int(be.Uint32(b[48:52])), int(be.Uint32(b[52:56]))
	if blobOff+blobSize > headerSize {
		return nil, fmt.Errorf("spec: blob buffer")
	}
	// "Each blob starts with a 2 byte size field, followed by the actual
	// data." The spec says all numbers are big-endian; vma-writer.c
	// stores this one little-endian (buf[0] = len & 255) and
	// vma-reader.c reads it so: departure 1.
	blob := func(p uint32) ([]byte, error) {
		at := blobOff + int(p)
		if p == 0 || at+2 > blobOff+blobSize {
			return nil, fmt.Errorf("spec: blob pointer %d", p)
		}
		n := int(binary.LittleEndian.Uint16(b[at:]))
		if at+2+n > blobOff+blobSize {
			return nil, fmt.Errorf("spec: blob %d overruns", p)
		}
		return b[at+2 : at+2+n], nil
	}
	str := func(p uint32) (string, error) {
		v, err := blob(p)
		if err != nil {
			return "", err
		}
		return string(bytes.TrimRight(v, "\x00")), nil
	}
	// "2044 - 3067: uint32_t config_names[256]", "3068 - 4091: config_data".
	for i := range 256 {
		np, dp := be.Uint32(b[2044+4*i:]), be.Uint32(b[3068+4*i:])
		if np == 0 {
			continue
		}
		name, err := str(np)
		if err != nil {
			return nil, err
		}
		data, err := blob(dp)
		if err != nil {
			return nil, err
		}
		a.configs[name] = bytes.Clone(data)
	}
	// "4096 - 12287: VmaDeviceInfoHeader dev_info[256]": name pointer at
	// 0-3, size at 8-15; the table index is the dev_id.
	names := map[byte]string{}
	for id := 1; id < 256; id++ {
		d := b[4096+32*id : 4096+32*id+32]
		size := int64(be.Uint64(d[8:16]))
		if size == 0 {
			continue
		}
		name, err := str(be.Uint32(d[0:4]))
		if err != nil {
			return nil, err
		}
		names[byte(id)] = name
		a.sizes[name] = size
		if name != "vmstate" { // "Devive name 'vmstate' is reserved to store VM RAM state."
			a.devices[name] = make([]byte, size)
		}
	}
	// "Image data is grouped with extents, which contains up to 59
	// clusters" (the spec's overview says 64: the layout's 59 it is).
	for p := headerSize; p < len(b); {
		if p+512 > len(b) || string(b[p:p+4]) != "VMAE" {
			return nil, fmt.Errorf("spec: extent at %d", p)
		}
		eh := bytes.Clone(b[p : p+512])
		clear(eh[24:40])
		if sum := md5.Sum(eh); !bytes.Equal(sum[:], b[p+24:p+40]) {
			return nil, fmt.Errorf("spec: extent md5 at %d", p)
		}
		if !bytes.Equal(b[p+8:p+24], a.uuid[:]) {
			return nil, fmt.Errorf("spec: extent uuid at %d", p)
		}
		blocks := int(be.Uint16(b[p+6 : p+8]))
		data := p + 512
		if data+blocks*4096 > len(b) {
			return nil, fmt.Errorf("spec: extent data at %d", p)
		}
		// blockinfo: "Byte 0 - 1: mask", "2: reserved", "3: dev_id",
		// "4 - 7: cluster_num"; the mask marks "non-zero 4K blocks inside
		// the cluster", bit i for block i; "we only store non-zero 4K
		// blocks".
		used := 0
		for i := range 59 {
			bi := b[p+40+8*i : p+48+8*i]
			mask, dev, cluster := be.Uint16(bi[0:2]), bi[3], int64(be.Uint32(bi[4:8]))
			if dev == 0 {
				continue
			}
			name, ok := names[dev]
			if !ok {
				return nil, fmt.Errorf("spec: unknown dev_id %d", dev)
			}
			for blk := range 16 {
				if mask&(1<<blk) == 0 {
					continue
				}
				src := b[data+used*4096 : data+(used+1)*4096]
				used++
				if dst, ok := a.devices[name]; ok {
					off := cluster*65536 + int64(blk)*4096
					if off >= int64(len(dst)) {
						return nil, fmt.Errorf("spec: block past the end of %s", name)
					}
					copy(dst[off:], src)
				}
			}
		}
		if used != blocks {
			return nil, fmt.Errorf("spec: extent at %d: block_count %d, masks %d", p, blocks, used)
		}
		p = data + blocks*4096
	}
	return a, nil
}
