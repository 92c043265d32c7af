package vma_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/disk/disktest"
	"github.com/hypersdk/hypersdk/internal/benchcmd"
	"github.com/hypersdk/hypersdk/vma"
	"github.com/hypersdk/hypersdk/vma/vmatest"
)

// BenchmarkExtractVsDecompress times `hyperctl vma extract` of a vzdump
// archive of two disks (1 GiB and 256 MiB of disktest content: holes,
// data, written zeros, text) against the floor of the same work: the
// compressor alone decompressing the dump to /dev/null (`zstd -dc`,
// `lzop -dc`, `gzip -dc`; `cat` for the plain one). Alternating runs,
// medians of 3, in HYPERSDK_BENCH_DIR (default /dev/shm). The ratio is
// hyperctl's speed relative to the anchor (1.0: as fast as decompressing
// alone); peak RSS shows the memory bound.
func BenchmarkExtractVsDecompress(b *testing.B) {
	dir := benchcmd.Dir(b)
	hyperctl := benchcmd.Hyperctl(b, dir)
	sizes := map[string]int64{"drive-scsi0": 1 << 30, "drive-scsi1": 256 << 20}
	a := vmatest.Archive{UUID: testUUID, Created: testTime, Order: vmatest.Shuffled, Seed: 1,
		Configs: []vma.Config{{Name: "qemu-server.conf", Data: []byte(qemuServerConf)}}}
	for _, name := range []string{"drive-scsi0", "drive-scsi1"} {
		p := filepath.Join(dir, name+".raw")
		disktest.WriteImage(b, p, sizes[name], 3)
		f, err := os.Open(p)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		a.Disks = append(a.Disks, vmatest.Disk{Name: name, Size: sizes[name], Data: f})
	}
	plain := filepath.Join(dir, "dump.vma")
	out, err := os.Create(plain)
	if err != nil {
		b.Fatal(err)
	}
	if err := vmatest.Write(out, a); err != nil {
		b.Fatal(err)
	}
	out.Close()
	for _, c := range []struct{ tool, ext string }{{"", ""}, {"zstd", ".zst"}, {"lzop", ".lzo"}, {"gzip", ".gz"}} {
		dump, anchor := plain, []string{"cat", plain}
		if c.tool != "" {
			dump = plain + c.ext
			cmd := exec.Command("sh", "-c", fmt.Sprintf("%s -c %s > %s", c.tool, plain, dump))
			if o, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%s: %v: %s", c.tool, err, o)
			}
			anchor = []string{c.tool, "-dc", dump}
		}
		name := c.tool
		if name == "" {
			name = "plain"
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				var walls = map[string][]float64{}
				var rss int64
				for i := range 3 {
					target := filepath.Join(dir, fmt.Sprintf("out-%s-%d", name, i))
					r := benchcmd.Time(b, exec.Command(hyperctl, "vma", "extract", dump, target))
					walls["hyperctl"] = append(walls["hyperctl"], r.Wall.Seconds())
					rss = max(rss, r.MaxRSSKiB)
					os.RemoveAll(target)
					r = benchcmd.Time(b, exec.Command(anchor[0], anchor[1:]...))
					walls["anchor"] = append(walls["anchor"], r.Wall.Seconds())
				}
				fi, _ := os.Stat(dump)
				h, an := benchcmd.Median(walls["hyperctl"]), benchcmd.Median(walls["anchor"])
				fmt.Printf("vma extract %-5s (%s, %.0f MiB): hyperctl %.2f s (peak RSS %d MiB), %s %.2f s: %.2fx the anchor's speed\n",
					name, filepath.Base(dump), float64(fi.Size())/(1<<20), h, rss/1024, strings.Join(anchor[:min(2, len(anchor))], " "), an, an/h)
				b.ReportMetric(an/h, "x-anchor-speed")
				b.ReportMetric(float64(rss)/1024, "peak-RSS-MiB")
			}
		})
	}
}
