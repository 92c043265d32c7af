package lzop

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz from files the lzop tool makes")

// lzopTool is the Debian lzop binary, the oracle: what it writes we must
// read back byte for byte.
func lzopTool(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("lzop")
	if err != nil {
		t.Fatalf("the lzop tool is needed as the test oracle: apt-get install lzop (or make test-deps)")
	}
	return p
}

// compress runs lzop over data with args and returns the .lzo bytes.
func compress(t testing.TB, data []byte, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(lzopTool(t), append([]string{"-c"}, args...)...)
	cmd.Stdin = bytes.NewReader(data)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("lzop %v: %v: %s", args, err, errb.String())
	}
	return out.Bytes()
}

// samples are inputs that take every LZO1X path: empty, single bytes,
// incompressible noise (stored blocks), long zero runs (length
// extensions, far overlapping matches), text (short and mid matches), and
// several 256 KiB blocks mixing them.
func samples() map[string][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	noise := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	text := func(n int) []byte {
		words := []string{"vzdump ", "qemu-server ", "backup ", "cluster ", "extent ", "\n", "0123 ", "proxmox "}
		var b bytes.Buffer
		for b.Len() < n {
			b.WriteString(words[rng.IntN(len(words))])
		}
		return b.Bytes()[:n]
	}
	mixed := func(n int) []byte {
		var b bytes.Buffer
		for b.Len() < n {
			switch rng.IntN(4) {
			case 0:
				b.Write(noise(rng.IntN(20000)))
			case 1:
				b.Write(make([]byte, rng.IntN(70000)))
			case 2:
				b.Write(text(rng.IntN(30000)))
			default: // a repeat of something recent, farther than 16 KiB back at times
				if b.Len() > 0 {
					from := rng.IntN(b.Len())
					b.Write(bytes.Clone(b.Bytes()[from:min(b.Len(), from+rng.IntN(5000))]))
				}
			}
		}
		return b.Bytes()[:n]
	}
	return map[string][]byte{
		"empty":  {},
		"one":    {42},
		"small":  []byte("hello, hello, hello, hello!\n"),
		"noise":  noise(300 << 10),
		"zeros":  make([]byte, 1<<20+17),
		"text":   text(200 << 10),
		"mixed":  mixed(3<<20 + 12345),
		"blocks": bytes.Repeat(text(4096), 200),
	}
}

// TestReadsLzopFiles decompresses what lzop writes at its fast and best
// levels (LZO1X-1 and LZO1X-999), with Adler-32 (the default), CRC-32 and
// no checksums, from a pipe (no name) and from a named file.
func TestReadsLzopFiles(t *testing.T) {
	variants := [][]string{{"-1"}, {}, {"-7"}, {"-9"}, {"--crc32"}, {"-F"}, {"-9", "--crc32"}}
	for name, data := range samples() {
		for _, args := range variants {
			t.Run(fmt.Sprintf("%s%v", name, args), func(t *testing.T) {
				lzo := compress(t, data, args...)
				z, err := NewReader(bytes.NewReader(lzo))
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(z)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, data) {
					t.Fatalf("decompressed %d bytes differ from the %d lzop compressed", len(got), len(data))
				}
			})
		}
	}
	t.Run("named file", func(t *testing.T) {
		dir := t.TempDir()
		src := filepath.Join(dir, "disk.vma")
		data := samples()["mixed"]
		if err := os.WriteFile(src, data, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(lzopTool(t), "-c", src).Output()
		if err != nil {
			t.Fatal(err)
		}
		z, err := NewReader(bytes.NewReader(out))
		if err != nil {
			t.Fatal(err)
		}
		if z.Header().Name != "disk.vma" || z.Header().Method != methodLZO1X1 {
			t.Fatalf("header %+v", z.Header())
		}
		got, err := io.ReadAll(z)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read back: %v, equal %v", err, bytes.Equal(got, data))
		}
	})
}

func readAll(b []byte) error {
	z, err := NewReader(bytes.NewReader(b))
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, z)
	return err
}

// TestRefusesDamagedFiles: every truncation and every flipped byte of a
// real lzop file is refused with a FormatError (the checksums catch what
// the decoder accepts), never a panic.
func TestRefusesDamagedFiles(t *testing.T) {
	data := samples()["mixed"][:600<<10]
	for _, args := range [][]string{{}, {"--crc32"}} {
		lzo := compress(t, data, args...)
		for n := 0; n < len(lzo); n += 1 + n/50 {
			err := readAll(lzo[:n])
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("%v truncated at %d of %d: %v, want a FormatError", args, n, len(lzo), err)
			}
		}
		rng := rand.New(rand.NewPCG(3, 4))
		for range 400 {
			b := bytes.Clone(lzo)
			i := rng.IntN(len(b))
			b[i] ^= byte(1 + rng.IntN(255))
			if err := readAll(b); !errors.Is(err, ErrFormat) {
				t.Fatalf("%v byte %d flipped: %v, want a FormatError", args, i, err)
			}
		}
	}
	// Trailing garbage after the end marker.
	if err := readAll(append(compress(t, []byte("abc")), 0)); !errors.Is(err, ErrFormat) {
		t.Fatalf("trailing byte: %v", err)
	}
}

// header builds a minimal valid lzop header (version 0x1040, LZO1X-1,
// Adler-32 of the data) with flags, for hand-made hostile files.
func header(flags uint32) []byte {
	var h bytes.Buffer
	be := func(v any) { binary.Write(&h, binary.BigEndian, v) }
	be(uint16(0x1040))
	be(uint16(0x20a0))
	be(uint16(0x0940))
	h.WriteByte(methodLZO1X1)
	h.WriteByte(5)
	be(flags)
	be(uint32(0))  // mode
	be(uint32(0))  // mtime
	be(uint32(0))  // mtime high
	h.WriteByte(0) // name length
	sum := adlerOf(h.Bytes())
	out := append([]byte(Magic), h.Bytes()...)
	return binary.BigEndian.AppendUint32(out, sum)
}

func adlerOf(b []byte) uint32 {
	const mod = 65521
	a, s := uint32(1), uint32(0)
	for _, c := range b {
		a = (a + uint32(c)) % mod
		s = (s + a) % mod
	}
	return s<<16 | a
}

func TestRefusesHostileHeaders(t *testing.T) {
	block := func(dst, src uint32, data []byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, dst)
		b = binary.BigEndian.AppendUint32(b, src)
		return append(b, data...)
	}
	cases := map[string]struct {
		file []byte
		want string
	}{
		"not lzop":      {[]byte("VMA\x00 not lzop at all"), "not an lzop file"},
		"filter":        {header(fHFilter), "filters"},
		"reserved flag": {header(1 << 16), "unknown header flags"},
		"huge block":    {append(header(0), block(MaxBlockSize+1, 10, nil)...), "lzop's limit"},
		"bomb block":    {append(header(0), block(50<<20, 100, make([]byte, 100))...), "beyond LZO1X"},
		"src > dst":     {append(header(0), block(10, 11, make([]byte, 11))...), "compressed bytes for"},
		"zero src":      {append(header(0), block(10, 0, nil)...), "compressed bytes for"},
		"no end marker": {append(header(0), block(3, 3, []byte("abc"))...), "file ends"},
		"bad lzo1x":     {append(header(0), append(block(40, 4, []byte{0x11, 0x01, 0x00, 0x00}), 0, 0, 0, 0)...), "lzo1x"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			err := readAll(c.file)
			if !errors.Is(err, ErrFormat) || !bytes.Contains([]byte(err.Error()), []byte(c.want)) {
				t.Fatalf("got %v, want a FormatError containing %q", err, c.want)
			}
		})
	}
	// A stored block with a good header reads back (the hand-made header
	// is right, so the refusals above are for what they name).
	ok := append(header(0), append(block(3, 3, []byte("abc")), 0, 0, 0, 0)...)
	z, err := NewReader(bytes.NewReader(ok))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(z); err != nil || string(got) != "abc" {
		t.Fatalf("stored block: %q, %v", got, err)
	}
}

// TestDecompress1XEdges covers what lzop files rarely hold: overlapping
// matches of distance 1, the end marker alone, and streams ending early.
func TestDecompress1XEdges(t *testing.T) {
	// One literal 'a' (first byte 18), then 01LDDDSS with L=1, D=0,
	// H=0: 4 bytes from distance 1, repeating the 'a'; then the end marker.
	lit := []byte{18, 'a'}          // first byte 18: one literal, state 1
	m := []byte{0x40 | 1<<5, 0}     // length 4, distance 1, no literals
	end := []byte{0x11, 0x00, 0x00} // end marker
	src := append(append(bytes.Clone(lit), m...), end...)
	dst := make([]byte, 5)
	if err := Decompress1X(dst, src); err != nil || string(dst) != "aaaaa" {
		t.Fatalf("overlapping match: %q, %v", dst, err)
	}
	if err := Decompress1X(nil, end); err != nil {
		t.Fatalf("empty stream: %v", err)
	}
	for n := range len(src) {
		if err := Decompress1X(make([]byte, 5), src[:n]); err == nil {
			t.Fatalf("prefix %d accepted", n)
		}
	}
	if err := Decompress1X(make([]byte, 6), src); err == nil {
		t.Fatal("output shorter than declared accepted")
	}
	if err := Decompress1X(make([]byte, 4), src); err == nil {
		t.Fatal("output longer than declared accepted")
	}
	if err := Decompress1X(make([]byte, 5), append(bytes.Clone(src), 0)); err == nil {
		t.Fatal("input after the end marker accepted")
	}
	if err := Decompress1X(make([]byte, 5), []byte{0x40 | 1<<5, 0, 0x11, 0, 0}); err == nil {
		t.Fatal("a match before any output accepted")
	}
}

// FuzzReader reads arbitrary bytes as an lzop file: a refusal must be a
// FormatError, and nothing may panic. The seeds are lzop's own output.
func FuzzReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		z, err := NewReader(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("NewReader: %v is not a FormatError", err)
			}
			return
		}
		if _, err := io.Copy(io.Discard, z); err != nil && !errors.Is(err, ErrFormat) {
			t.Fatalf("Read: %v is not a FormatError", err)
		}
	})
}

// FuzzDecompress1X decodes arbitrary bytes as a raw LZO1X stream into
// outputs of a few sizes: it must return, not panic.
func FuzzDecompress1X(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, n := range []int{0, len(b), 4 * len(b), 64 << 10} {
			_ = Decompress1X(make([]byte, n), b)
		}
	})
}

// TestFuzzCorpus keeps the committed seeds present and, with
// -update-corpus, rewrites them from lzop's output: small files at both
// levels and both checksums, and the raw LZO1X blocks inside them.
func TestFuzzCorpus(t *testing.T) {
	dirs := map[string]string{"FuzzReader": filepath.Join("testdata", "fuzz", "FuzzReader"), "FuzzDecompress1X": filepath.Join("testdata", "fuzz", "FuzzDecompress1X")}
	if *updateCorpus {
		for _, d := range dirs {
			os.RemoveAll(d)
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		write := func(dir, name string, b []byte) {
			seed := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(b)))
			if err := os.WriteFile(filepath.Join(dir, name), []byte(seed), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		inputs := map[string][]byte{
			"small": []byte("hello, hello, hello, hello!\n"),
			"text":  bytes.Repeat([]byte("vzdump qemu-server backup 0123 "), 300),
			"zeros": make([]byte, 70000),
			"mixed": samples()["mixed"][:40000],
		}
		for name, data := range inputs {
			for _, v := range []struct {
				tag  string
				args []string
			}{{"1", []string{"-1"}}, {"9", []string{"-9"}}, {"crc", []string{"--crc32"}}} {
				lzo := compress(t, data, v.args...)
				write(dirs["FuzzReader"], name+"-"+v.tag, lzo)
				// The first block's compressed bytes, when compressed.
				hl := len(header(0)) // lzop's header is the same length for a pipe
				if hl+8 <= len(lzo) {
					dst := binary.BigEndian.Uint32(lzo[hl:])
					src := binary.BigEndian.Uint32(lzo[hl+4:])
					off := hl + 8 + 4 // past the data checksum (Adler-32 or CRC-32)
					if src < dst && off+int(src) <= len(lzo) {
						write(dirs["FuzzDecompress1X"], name+"-"+v.tag, lzo[off:off+int(src)])
					}
				}
			}
		}
	}
	for name, d := range dirs {
		seeds, err := os.ReadDir(d)
		if err != nil || len(seeds) < 6 {
			t.Fatalf("%s corpus in %s: %d seeds, %v (regenerate with go test -run TestFuzzCorpus -update-corpus)", name, d, len(seeds), err)
		}
	}
}
