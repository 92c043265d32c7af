package vcsim

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/hypersdk/hypersdk/vmdk"
)

type diskResult struct {
	size   int64  // bytes of the stored (served) file
	sha    string // SHA-256 of the stored file
	rawSHA string // SHA-256 of the whole virtual disk
}

// writeDisk stores a disk's bytes at path as d.Format says.
func writeDisk(path string, d DiskSpec, extentName, adapter string) (res diskResult, err error) {
	var src io.Reader
	generated := false
	switch {
	case d.Reader != nil:
		src = d.Reader
	case d.File != "":
		f, err := os.Open(d.File)
		if err != nil {
			return res, err
		}
		defer f.Close()
		src = f
	default:
		used := d.Used
		if used == 0 {
			used = d.Capacity
		}
		if used < 0 || used > d.Capacity {
			return res, fmt.Errorf("used %d outside 0..capacity %d", used, d.Capacity)
		}
		src = vmdk.GenerateRaw(d.Seed, used)
		generated = true
	}

	f, err := os.Create(path)
	if err != nil {
		return res, err
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()

	fileHash := sha256.New()
	switch d.Format {
	case StreamOptimized:
		rawHash := sha256.New()
		st, err := vmdk.WriteStreamOptimized(io.MultiWriter(f, fileHash), io.TeeReader(src, rawHash), d.Capacity,
			vmdk.WriteOptions{FileName: extentName, AdapterType: adapter})
		if err != nil {
			return res, err
		}
		hashZeros(rawHash, d.Capacity-st.SourceBytes)
		return diskResult{size: st.Size, sha: hexSum(fileHash), rawSHA: hexSum(rawHash)}, nil
	case Verbatim:
		var n int64
		if generated {
			// Full-capacity raw content; zero blocks become holes.
			n, err = copySparse(f, fileHash, src)
			if err == nil && n < d.Capacity {
				hashZeros(fileHash, d.Capacity-n)
				err = f.Truncate(d.Capacity)
				n = d.Capacity
			}
		} else {
			n, err = io.Copy(io.MultiWriter(f, fileHash), src)
		}
		if err != nil {
			return res, err
		}
		sum := hexSum(fileHash)
		return diskResult{size: n, sha: sum, rawSHA: sum}, nil
	default:
		return res, fmt.Errorf("unknown disk format %d", d.Format)
	}
}

// copySparse copies src to f, seeking over all-zero 64 KiB blocks so that
// the file gets holes; h sees every byte.
func copySparse(f *os.File, h hash.Hash, src io.Reader) (int64, error) {
	buf := make([]byte, 64<<10)
	zero := make([]byte, len(buf))
	var n int64
	for {
		k, err := io.ReadFull(src, buf)
		if k > 0 {
			h.Write(buf[:k])
			if bytes.Equal(buf[:k], zero[:k]) {
				if _, serr := f.Seek(int64(k), io.SeekCurrent); serr != nil {
					return n, serr
				}
			} else if _, werr := f.Write(buf[:k]); werr != nil {
				return n, werr
			}
			n += int64(k)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			if terr := f.Truncate(n); terr != nil {
				return n, terr
			}
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// emptyVMDK returns a streamOptimized VMDK of the given capacity with no
// grains, and its SHA-256.
func emptyVMDK(capacity int64) ([]byte, string, error) {
	var buf bytes.Buffer
	if _, err := vmdk.WriteStreamOptimized(&buf, bytes.NewReader(nil), capacity, vmdk.WriteOptions{FileName: "disk-0.vmdk"}); err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(buf.Bytes())
	return buf.Bytes(), hex.EncodeToString(sum[:]), nil
}

func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }
