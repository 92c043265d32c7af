package vmdk

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// oneByte hands bytes over one at a time, like the smallest network reads.
type oneByte struct{ r io.Reader }

func (o oneByte) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

// The streaming decoder reproduces the source disk of what our writer
// produces, read front to back in any read sizes, including holes and a
// capacity that is not a multiple of the grain size.
func TestStreamReaderRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name     string
		capacity int64
		src      func() io.Reader
	}{
		{"mixed", 3<<20 + 4096, func() io.Reader { return GenerateRaw(5, 3<<20+4096) }},
		{"islands", 6 << 20, func() io.Reader { return islands(9, 6<<20) }},
		{"empty", 1 << 20, func() io.Reader { return bytes.NewReader(nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, _ := writeVMDK(t, tc.src(), tc.capacity, WriteOptions{})
			want := sha(t, rawWithZeroTail(tc.src(), tc.capacity))
			for _, wrap := range []func(io.Reader) io.Reader{func(r io.Reader) io.Reader { return r }, func(r io.Reader) io.Reader { return oneByte{r} }} {
				s, err := NewStreamReader(wrap(bytes.NewReader(img)), "t.vmdk")
				if err != nil {
					t.Fatal(err)
				}
				if s.Size() != tc.capacity || s.Info().Subformat != "streamOptimized" {
					t.Fatalf("info %+v", s.Info())
				}
				var n int64
				h := sha(t, io.TeeReader(s.Raw(), writerFunc(func(p []byte) { n += int64(len(p)) })))
				if h != want || n != tc.capacity {
					t.Fatalf("decoded %d bytes sha %s, want %d bytes %s", n, h, tc.capacity, want)
				}
			}
		})
	}
}

type writerFunc func([]byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }

// A stream cut anywhere fails; it never decodes as a shorter disk.
func TestStreamReaderTruncated(t *testing.T) {
	img, _ := writeVMDK(t, GenerateRaw(6, 1<<20), 2<<20, WriteOptions{})
	for _, cut := range []int{100, 600, len(img) / 2, len(img) - 512, len(img) - 1} {
		s, err := NewStreamReader(bytes.NewReader(img[:cut]), "t.vmdk")
		if err == nil {
			_, err = io.Copy(io.Discard, s.Raw())
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("cut at %d: %v", cut, err)
		}
	}
}
