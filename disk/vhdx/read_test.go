package vhdx

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/disk"
	"github.com/hypersdk/hypersdk/disk/disktest"
)

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// qemuRaw converts a VHDX to raw with qemu-img and returns its bytes.
func qemuRaw(t *testing.T, p string) []byte {
	t.Helper()
	out := p + ".raw"
	disktest.Convert(t, p, "vhdx", out, "raw")
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHyperVLayouts(t *testing.T) {
	for _, c := range []struct {
		name, sub string
		build     func() ([]byte, []byte)
		block     int64
	}{
		{"dynamic", "dynamic", hyperVDynamic, 32 << 20},
		{"fixed", "fixed", hyperVFixed, 2 << 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, want := c.build()
			p := writeFile(t, t.TempDir(), c.name+".vhdx", b)
			img := disktest.OpenImage(t, p, Open)
			if got := img.Info(); got.Subformat != c.sub || got.ClusterSize != c.block || got.VirtualSize != int64(len(want)) {
				t.Fatalf("Info = %+v", got)
			}
			if !bytes.Equal(readAll(t, img), want) {
				t.Fatal("read differs from the fixture's content")
			}
			checkExtents(t, img, want)
			if err := img.Check(context.Background()); err != nil {
				t.Fatalf("Check: %v", err)
			}
			// The fixture is what the spec says, not only what we read.
			disktest.Check(t, p, "vhdx")
			if !bytes.Equal(qemuRaw(t, p), want) {
				t.Fatal("qemu-img reads the fixture differently")
			}
		})
	}
}

func TestDynamicExtentsSkipAbsentBlocks(t *testing.T) {
	b, want := hyperVDynamic()
	img, err := Open(disk.BytesFile("d.vhdx", b, nil))
	if err != nil {
		t.Fatal(err)
	}
	var got []disk.Extent
	for e, err := range img.Extents() {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e)
	}
	wantExt := []disk.Extent{{Offset: 0, Length: 32 << 20}, {Offset: 64 << 20, Length: int64(len(want)) - 64<<20}}
	if len(got) != 2 || got[0] != wantExt[0] || got[1] != wantExt[1] {
		t.Fatalf("extents %v, want %v", got, wantExt)
	}
}

func TestDifferencing(t *testing.T) {
	parent, child, want := differencingPair(parentDataWrite)
	dir := t.TempDir()
	writeFile(t, dir, "parent.vhdx", parent)
	p := writeFile(t, dir, "child.vhdx", child)

	img := disktest.OpenImage(t, p, Open)
	info := img.Info()
	if info.Subformat != "differencing" || info.Parent != `..\base\parent.vhdx` || info.VirtualSize != diffSize {
		t.Fatalf("Info = %+v", info)
	}
	if !bytes.Equal(readAll(t, img), want) {
		t.Fatal("the child read through its parent differs from the merged content")
	}
	// Blocks 0 and 1 (child and parent) and 3 (the parent's, zeroed by the
	// child: a superset is allowed), none of the parent's hole, block 2.
	if covered := checkExtents(t, img, want); covered != 3*diffBlock {
		t.Fatalf("extents cover %d bytes, want %d", covered, 3*diffBlock)
	}
	if err := img.Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	// qemu-img does not read differencing VHDX; the parent it does.
	if !bytes.Equal(qemuRaw(t, filepath.Join(dir, "parent.vhdx")), mustRead(t, img.parent)) {
		t.Fatal("qemu-img reads the parent fixture differently")
	}

	t.Run("absolute path only", func(t *testing.T) {
		_, child, _ := differencingPairPaths([][2]string{{"absolute_win32_path", `C:\Hyper-V\VMs\base\parent.vhdx`}})
		img, err := Open(disk.BytesFile("child.vhdx", child, map[string][]byte{"parent.vhdx": parent}))
		if err != nil {
			t.Fatal(err)
		}
		if img.Info().Parent != `C:\Hyper-V\VMs\base\parent.vhdx` {
			t.Fatalf("Parent = %q", img.Info().Parent)
		}
	})

	t.Run("parent missing", func(t *testing.T) {
		_, err := Open(disk.BytesFile("child.vhdx", child, map[string][]byte{}))
		t.Log(err)
		if !errors.Is(err, disk.ErrFormat) || !strings.Contains(err.Error(), "parent.vhdx") || !strings.Contains(err.Error(), "merge") {
			t.Fatalf("Open without the parent: %v; want a FormatError naming parent.vhdx and saying to merge", err)
		}
		dir := t.TempDir()
		p := writeFile(t, dir, "child.vhdx", child)
		f, err := disk.OpenFile(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := Open(f); err == nil || !strings.Contains(err.Error(), "parent.vhdx") {
			t.Fatalf("Open from disk without the parent: %v", err)
		}
	})

	t.Run("linkage mismatch", func(t *testing.T) {
		parent, child, _ := differencingPair("{00000000-1111-2222-3333-444444444444}")
		_, err := Open(disk.BytesFile("child.vhdx", child, map[string][]byte{"parent.vhdx": parent}))
		t.Log(err)
		if !errors.Is(err, disk.ErrFormat) || !strings.Contains(err.Error(), "DataWriteGuid") {
			t.Fatalf("Open with a mismatched parent: %v", err)
		}
	})

	t.Run("loop", func(t *testing.T) {
		// A child naming itself as its parent.
		_, child, _ := differencingPair(parentDataWrite)
		_, err := Open(disk.BytesFile("parent.vhdx", child, map[string][]byte{"parent.vhdx": child}))
		t.Log(err)
		if !errors.Is(err, disk.ErrFormat) || !strings.Contains(err.Error(), "loop") {
			t.Fatalf("Open of a self-parented image: %v", err)
		}
	})
}

// differencingPairPaths is differencingPair with other locator paths.
func differencingPairPaths(paths [][2]string) (parent, child, want []byte) {
	parent, childFx, want := differencingFixture(parentDataWrite)
	childFx.locator = append([][2]string{{"parent_linkage", parentDataWrite}}, paths...)
	return parent, childFx.image(), want
}

func mustRead(t *testing.T, img disk.Image) []byte {
	t.Helper()
	return readAll(t, img)
}

func TestLogReplay(t *testing.T) {
	b, want := logged()
	dir := t.TempDir()
	p := writeFile(t, dir, "logged.vhdx", b)
	img := disktest.OpenImage(t, p, Open)
	if !img.replayed {
		t.Fatal("the log was not replayed")
	}
	if !bytes.Equal(readAll(t, img), want) {
		t.Fatal("read does not reflect the log")
	}
	checkExtents(t, img, want)
	if err := img.Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	// qemu-img replays the log when it may write (check -r all); its
	// replayed file must read as ours does without writing.
	disktest.Run(t, "check", "-r", "all", "-f", "vhdx", p)
	if !bytes.Equal(qemuRaw(t, p), want) {
		t.Fatal("qemu-img's replay reads differently")
	}

	t.Run("no valid sequence", func(t *testing.T) {
		b, _ := logged()
		clear(b[fxLogOffset : fxLogOffset+1<<20])
		_, err := Open(disk.BytesFile("l.vhdx", b, nil))
		if !errors.Is(err, disk.ErrFormat) || !strings.Contains(err.Error(), "log") {
			t.Fatalf("Open with an empty log to replay: %v", err)
		}
	})
	t.Run("truncated below FlushedFileOffset", func(t *testing.T) {
		b, _ := logged()
		_, err := Open(disk.BytesFile("l.vhdx", b[:6<<20], nil))
		if !errors.Is(err, disk.ErrFormat) || !strings.Contains(err.Error(), "truncated") {
			t.Fatalf("Open of a truncated logged file: %v", err)
		}
	})
}

// small is a minimal valid dynamic image: 3 MiB disk, 1 MiB blocks, block
// 0 and 2 present.
func small() *fixture {
	return &fixture{virtualSize: 3 << 20, blockSize: 1 << 20, size: 6 << 20,
		bat:    map[int]uint64{0: fxEntry(fxFull, fxDataOffset), 2: fxEntry(fxFull, fxDataOffset+1<<20)},
		writes: map[int64][]byte{fxDataOffset: pattern(10, 1<<20), fxDataOffset + 1<<20: pattern(11, 1<<20)}}
}

func TestRefusals(t *testing.T) {
	le := binary.LittleEndian
	recrc := func(b []byte, at, n int) { specCRC(b[at:at+n], 4) }
	for _, c := range []struct {
		name      string
		damage    func(*fixture) []byte
		structure string
	}{
		{"bad CRC in both headers", func(fx *fixture) []byte {
			b := fx.image()
			b[64<<10+100] ^= 1
			b[128<<10+100] ^= 1
			return b
		}, "headers"},
		{"bad region table CRC", func(fx *fixture) []byte {
			b := fx.image()
			b[192<<10+1000] ^= 1
			b[256<<10+1000] ^= 1
			return b
		}, "region tables"},
		{"unknown required region", func(fx *fixture) []byte {
			fx.regions = []fxRegion{
				{"2DC27766-F623-4200-9D64-115E9BFD4A08", fxBATOffset, 1 << 20, 1},
				{"8B7CA206-4790-4B9A-B8FE-575F050F886E", fxMetaOffset, 1 << 20, 1},
				{"01234567-89AB-CDEF-0123-456789ABCDEF", 5 << 20, 1 << 20, 1},
			}
			return fx.image()
		}, "region table entry 2"},
		{"BAT entry past EOF", func(fx *fixture) []byte {
			fx.bat[2] = fxEntry(fxFull, 64<<20)
			return fx.image()
		}, "BAT entry 2"},
		{"two BAT entries on one block", func(fx *fixture) []byte {
			fx.bat[2] = fxEntry(fxFull, fxDataOffset)
			return fx.image()
		}, "BAT"},
		{"block overlapping the metadata", func(fx *fixture) []byte {
			fx.bat[2] = fxEntry(fxFull, fxMetaOffset)
			return fx.image()
		}, "BAT"},
		{"block size not a power of two", func(fx *fixture) []byte {
			fx.blockSize = 3 << 20
			return fx.image()
		}, "file parameters"},
		{"absurd virtual size", func(fx *fixture) []byte {
			fx.virtualSize = 1 << 62
			return fx.image()
		}, "virtual disk size"},
		{"virtual size not whole sectors", func(fx *fixture) []byte {
			fx.virtualSize = 3<<20 + 100
			return fx.image()
		}, "virtual disk size"},
		{"BAT too small for the disk", func(fx *fixture) []byte {
			fx.virtualSize = 1 << 40 // 1 TiB of 1 MiB blocks needs an 8 MiB BAT
			return fx.image()
		}, "BAT"},
		{"unknown required metadata item", func(fx *fixture) []byte {
			fx.extraItems = []fxItem{{"FEDCBA98-7654-3210-FEDC-BA9876543210", 4, []byte{1, 2, 3, 4}}}
			return fx.image()
		}, "metadata entry 5"},
		{"partially present block without a parent", func(fx *fixture) []byte {
			fx.bat[0] = fxEntry(fxPartial, fxDataOffset)
			return fx.image()
		}, "BAT entry 0"},
		{"truncated", func(fx *fixture) []byte {
			return fx.image()[:5<<20]
		}, "BAT entry 2"},
		{"truncated in the header section", func(fx *fixture) []byte {
			return fx.image()[:100<<10]
		}, "header section"},
		{"not VHDX", func(fx *fixture) []byte {
			b := fx.image()
			copy(b, "vhdxfilx")
			return b
		}, "file type identifier"},
		{"region inside the header section", func(fx *fixture) []byte {
			b := fx.image()
			le.PutUint64(b[192<<10+16+16:], 512<<10)
			le.PutUint64(b[256<<10+16+16:], 512<<10)
			recrc(b, 192<<10, 64<<10)
			recrc(b, 256<<10, 64<<10)
			return b
		}, "region table entry 0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := c.damage(small())
			_, err := Open(disk.BytesFile("bad.vhdx", b, nil))
			var fe *disk.FormatError
			if !errors.As(err, &fe) || !errors.Is(err, disk.ErrFormat) {
				t.Fatalf("Open: %v, want a *disk.FormatError", err)
			}
			if fe.File != "bad.vhdx" || !strings.HasPrefix(fe.Structure, c.structure) {
				t.Fatalf("Open: %v; want the structure %q named", err, c.structure)
			}
			if fe.Offset >= 0 && !strings.Contains(err.Error(), "at offset") {
				t.Fatalf("Open: %v; no offset in the message", err)
			}
		})
	}
}

func TestOneDamagedCopyIsTolerated(t *testing.T) {
	fx := small()
	b := fx.image()
	b[128<<10+100] ^= 1 // header 2, the newer one
	b[192<<10+1000] ^= 1
	img, err := Open(disk.BytesFile("d.vhdx", b, nil))
	if err != nil {
		t.Fatalf("Open with one good header and one good region table: %v", err)
	}
	err = img.Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "header") || !strings.Contains(err.Error(), "region table") {
		t.Fatalf("Check: %v; want both damaged copies named", err)
	}
}

func TestCheckFindsReservedBits(t *testing.T) {
	fx := small()
	fx.bat[1] = fxEntry(fxNotPresent, 0) | 1<<10
	fx.bat[3] = 0
	img, err := Open(disk.BytesFile("d.vhdx", fx.image(), nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := img.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "BAT entry 1") {
		t.Fatalf("Check: %v", err)
	}
}
