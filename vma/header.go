package vma

import (
	"bytes"
	"crypto/md5" //nolint:gosec // the format's own integrity check, verified, not trusted for security
	"encoding/binary"
	"time"

	"github.com/google/uuid"

	"github.com/hypersdk/hypersdk/disk"
)

// Header is what a VMA archive says before its data: when and under which
// uuid it was made, its devices and its configuration files.
type Header struct {
	// UUID marks the archive; every extent repeats it.
	UUID uuid.UUID
	// Created is the backup's time (the header's ctime), UTC.
	Created time.Time
	// Size is the header's length in bytes; the extents follow it.
	Size int64
	// Devices are the archive's devices by ascending ID, the vmstate
	// device (a snapshot's RAM) included.
	Devices []Device
	// Configs are the configuration files in the order of the header's
	// slots: "qemu-server.conf" (the VM's configuration) and, when the VM
	// has one, "qemu-server.fw" (its firewall rules).
	Configs []Config
}

// Device is one device of an archive: a disk, or the vmstate.
type Device struct {
	// ID is the device's number in the data stream (1-255).
	ID uint8 `json:"id"`
	// Name is the name QEMU gave the drive ("drive-scsi0"); the VM
	// configuration's "#qmdump#map" lines name the disk it backs.
	Name string `json:"name"`
	// Size is the device's size in bytes; the last cluster is cut there.
	Size int64 `json:"size"`
}

// VMState reports whether d holds a snapshot's RAM state, which the
// reader skips, rather than a disk.
func (d Device) VMState() bool { return d.Name == VMStateDevice }

// Clusters is the number of 64 KiB clusters that cover the device.
func (d Device) Clusters() int64 { return (d.Size + ClusterSize - 1) / ClusterSize }

// Config is a configuration file carried in the header.
type Config struct {
	Name string
	Data []byte
}

// Config returns the data of the configuration file named name.
func (h *Header) Config(name string) ([]byte, bool) {
	for _, c := range h.Configs {
		if c.Name == name {
			return c.Data, true
		}
	}
	return nil, false
}

// Device returns the device named name.
func (h *Header) Device(name string) (Device, bool) {
	for _, d := range h.Devices {
		if d.Name == name {
			return d, true
		}
	}
	return Device{}, false
}

// Disks are the devices that hold disks: all but the vmstate.
func (h *Header) Disks() []Device {
	var out []Device
	for _, d := range h.Devices {
		if !d.VMState() {
			out = append(out, d)
		}
	}
	return out
}

// VMConfigName is the configuration file vzdump writes the VM's
// configuration to.
const VMConfigName = "qemu-server.conf"

// VMConfig parses the archive's qemu-server.conf.
func (h *Header) VMConfig() (*VMConfig, error) {
	data, ok := h.Config(VMConfigName)
	if !ok {
		return nil, formatErr(-1, "header", "the archive carries no %s (not a vzdump of a QEMU VM)", VMConfigName)
	}
	return ParseConfig(data)
}

// parseHeader checks and decodes a complete header (head is header_size
// bytes long, at most MaxHeaderSize): its MD5 computed with the md5sum
// field zeroed, as vma-writer.c computes it, the version, the blob buffer,
// then the configuration and device tables, every pointer resolved to a
// blob. It follows vma-reader.c and is stricter where that reader would
// quietly drop something: a device entry with a size but no valid name (or
// a name but no size), a configuration pointer to nothing, duplicate
// names.
func parseHeader(head []byte) (*Header, error) {
	be := binary.BigEndian
	var sum [16]byte
	copy(sum[:], head[offMD5:])
	clear(head[offMD5 : offMD5+16])
	computed := md5.Sum(head) //nolint:gosec
	copy(head[offMD5:], sum[:])
	if sum != computed {
		return nil, formatErr(offMD5, "header", "MD5 %x does not match the header's (%x)", sum, computed)
	}
	if v := be.Uint32(head[offVersion:]); v != 1 {
		return nil, formatErr(offVersion, "header", "version %d (only version 1 exists)", v)
	}
	h := &Header{Size: int64(len(head))}
	copy(h.UUID[:], head[offUUID:])
	ctime := int64(be.Uint64(head[offCTime:]))
	if ctime < 0 || ctime > 1<<40 {
		return nil, formatErr(offCTime, "header", "creation time %d is not a time", ctime)
	}
	h.Created = time.Unix(ctime, 0).UTC()

	blobs, err := parseBlobs(head)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for i := range MaxConfigs {
		off := int64(offConfigNames + 4*i)
		np, dp := be.Uint32(head[off:]), be.Uint32(head[offConfigData+4*i:])
		if np == 0 || dp == 0 {
			continue // an unused slot (vma-reader.c skips half-filled ones too)
		}
		name, ok := blobs.str(np)
		data, ok2 := blobs.blob(dp)
		if !ok || !ok2 {
			return nil, formatErr(off, "header", "configuration slot %d points outside the blob buffer's blobs (name %d, data %d)", i, np, dp)
		}
		if name == "" || names[name] {
			return nil, formatErr(off, "header", "configuration slot %d has an empty or repeated name %q", i, name)
		}
		names[name] = true
		h.Configs = append(h.Configs, Config{Name: name, Data: bytes.Clone(data)})
	}
	names = map[string]bool{}
	for id := 1; id < 256; id++ {
		off := int64(offDevInfo + devInfoSize*id)
		np, size := be.Uint32(head[off:]), be.Uint64(head[off+8:])
		if np == 0 && size == 0 {
			continue
		}
		name, ok := blobs.str(np)
		switch {
		case !ok || name == "":
			return nil, formatErr(off, "header", "device %d has no valid name (pointer %d)", id, np)
		case names[name]:
			return nil, formatErr(off, "header", "device %d repeats the name %q", id, name)
		case size == 0:
			return nil, formatErr(off, "header", "device %d (%s) has size 0", id, name)
		case name != VMStateDevice && size > uint64(disk.MaxVirtualSize):
			return nil, formatErr(off, "header", "device %d (%s) claims %d bytes, beyond the %d-byte limit", id, name, size, disk.MaxVirtualSize)
		case size > 1<<62:
			return nil, formatErr(off, "header", "device %d (%s) claims %d bytes", id, name, size)
		}
		names[name] = true
		h.Devices = append(h.Devices, Device{ID: uint8(id), Name: name, Size: int64(size)})
	}
	return h, nil
}

// blobTable locates the blobs of the header's blob buffer: a pointer is
// valid only when it is the start of a blob found by walking the buffer
// from its second byte, length by length (vma-reader.c's walk; offset 0
// means "none").
type blobTable struct {
	head   []byte
	off    int64  // the blob buffer's offset in the header
	starts []bool // starts[p]: a blob starts at pointer p
}

func parseBlobs(head []byte) (*blobTable, error) {
	be := binary.BigEndian
	off, size := int64(be.Uint32(head[offBlobOffset:])), int64(be.Uint32(head[offBlobSize:]))
	if off < HeaderFixedSize {
		return nil, formatErr(offBlobOffset, "header", "blob buffer offset %d is inside the fixed header (%d bytes)", off, HeaderFixedSize)
	}
	if off+size > int64(len(head)) {
		return nil, formatErr(offBlobSize, "header", "blob buffer of %d bytes at %d runs past the header's %d bytes", size, off, len(head))
	}
	t := &blobTable{head: head, off: off, starts: make([]bool, size)}
	for p := int64(1); p+2 <= size; {
		n := int64(head[off+p]) | int64(head[off+p+1])<<8 // little-endian, unlike every other field
		if p+2+n <= size {
			t.starts[p] = true
		}
		p += 2 + n
	}
	return t, nil
}

func (t *blobTable) blob(p uint32) ([]byte, bool) {
	if int64(p) >= int64(len(t.starts)) || !t.starts[p] {
		return nil, false
	}
	at := t.off + int64(p)
	n := int64(t.head[at]) | int64(t.head[at+1])<<8
	return t.head[at+2 : at+2+n], true
}

// str is a blob holding a NUL-terminated string, as vma-writer.c stores
// names; the name is what precedes the first NUL.
func (t *blobTable) str(p uint32) (string, bool) {
	b, ok := t.blob(p)
	if !ok || len(b) == 0 || b[len(b)-1] != 0 {
		return "", false
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b), true
}
