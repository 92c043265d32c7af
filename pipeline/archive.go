package pipeline

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/hypersdk/hypersdk/ova"
	"github.com/hypersdk/hypersdk/ovf"
	"github.com/hypersdk/hypersdk/providers"
)

// archive is an OVA streaming straight into its object (FormatOVA to
// object storage, compressed or not): every item is encoded into its member
// as it is produced, nothing of the disks is written to the output root.
// Members follow each other in descriptor order, so items take turns:
// an item's member begins once the previous item's member has ended.
type archive struct {
	name  string
	obj   providers.SinkWriter
	w     *ova.StreamWriter
	index map[string]int  // item name -> position
	ended []chan struct{} // closed when the item's member has ended
}

// streamsOVA reports whether the export's OVA streams into its object
// rather than being packed from an OVF folder in the output root (a
// local OVA: see pack).
func streamsOVA(opts providers.ExportOptions) bool {
	return opts.Output != nil && opts.Format == providers.FormatOVA
}

// beginArchive creates the OVA object and writes what precedes the first
// member: the descriptor's header and its reserved region, as long as
// the descriptor built with the largest file sizes.
func (r *run) beginArchive(ctx context.Context, items []*item) error {
	spec := r.spec(items)
	var hint int64
	for i := range spec.Disks {
		spec.Disks[i].FileSize = ova.MaxSize
	}
	for i := range spec.Files {
		spec.Files[i].Size = ova.MaxSize
	}
	desc, err := ovf.Build(spec)
	if err != nil {
		return providers.Permanent(fmt.Errorf("descriptor for %s: %w", r.exp.VM.Name, err))
	}
	bound := desc.Marshal()
	// The object's size bounds its parts' size: a disk's encoding is at
	// most its capacity plus the VMDK's markers and tables (well under
	// 1/64), or the source's size when passed through.
	hint = int64(len(bound)) + 64<<10
	for _, it := range items {
		_, _, size := it.source()
		if it.disk != nil {
			size = max(size, it.disk.Capacity+it.disk.Capacity/64+1<<20)
		}
		hint += max(size, 0) + 4<<10
	}
	comp := r.ovaCompression()
	name := r.base + comp.Extension()
	obj, err := r.opts.Output.Create(ctx, name, hint)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	r.noteObject(name)
	w, err := ova.NewStreamWriter(obj, r.base+".ovf", bound, ova.Options{ModTime: r.archiveTime(name),
		Compression: comp, Level: r.opts.CompressionLevel})
	if err != nil {
		obj.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	a := &archive{name: name, obj: obj, w: w, index: map[string]int{}, ended: make([]chan struct{}, len(items))}
	for i, it := range items {
		a.index[it.name] = i
		a.ended[i] = make(chan struct{})
	}
	r.arch = a
	return nil
}

// waitTurn waits until it's member may begin: the previous item's member
// has ended. Without an archive it returns at once. Items wait before
// they take a concurrency slot or open their source, so that neither a
// slot nor a download is held while another item's member streams.
func (r *run) waitTurn(ctx context.Context, it *item) error {
	a := r.arch
	if a == nil {
		return nil
	}
	i, ok := a.index[it.name]
	if !ok {
		return fmt.Errorf("write %s: not a member of %s", it.name, a.name)
	}
	if i == 0 {
		return nil
	}
	select {
	case <-a.ended[i-1]:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// member writes it as the next member of the archive, once its turn has
// come.
func (r *run) member(ctx context.Context, it *item, write func(io.Writer) error) error {
	a := r.arch
	if err := r.waitTurn(ctx, it); err != nil {
		return err
	}
	if err := a.w.Begin(it.name); err != nil {
		return err
	}
	bw := bufio.NewWriterSize(a.w, blockSize)
	err := write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = it.endSource()
	}
	if err != nil {
		return fmt.Errorf("write %s into %s: %w", it.name, a.name, err)
	}
	m, err := a.w.End()
	if err != nil {
		return err
	}
	it.size, it.sha256 = m.Size, m.Digests[ovf.SHA256]
	close(a.ended[a.index[it.name]])
	return nil
}

// endArchive releases the archive's writers: after a failure, the
// compressor stops without writing more and the upload stays open for
// the next attempt (or is removed: see removeWritten).
func (r *run) endArchive() {
	if a := r.arch; a != nil {
		a.w.Abort()
		a.obj.Close()
	}
}

// finishArchive fills the descriptor, appends the manifest, commits the
// object and reads it back for its SHA-256 (see archiveSum).
func (r *run) finishArchive(ctx context.Context, items []*item) (*providers.ExportResult, error) {
	a := r.arch
	desc, err := ovf.Build(r.spec(items))
	if err != nil {
		return nil, providers.Permanent(fmt.Errorf("descriptor for %s: %w", r.exp.VM.Name, err))
	}
	pr, err := a.w.Close(desc.Marshal())
	if err == nil {
		err = a.obj.Commit(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", a.name, err)
	}
	_ = r.root.Remove(a.name + ".time")
	r.dropPartial(a.name + ".time")
	sum, err := r.archiveSum(ctx, a.name, pr.Size)
	if err != nil {
		return nil, err
	}
	r.log.Info("streamed OVA", "file", a.name, "bytes", pr.Size, "members", len(pr.Members),
		"throughput_mib_s", fmt.Sprintf("%.1f", pr.Throughput/(1<<20)))
	res := r.result(nil, ovf.ManifestName(r.base+".ovf"))
	res.Format, res.OVAPath = providers.FormatOVA, a.name
	res.Packaging = &providers.Packaging{Compression: string(pr.Compression), Level: pr.Level, Ratio: pr.Ratio,
		Throughput: pr.Throughput, Duration: pr.Duration}
	for _, m := range pr.Members {
		res.Members = append(res.Members, providers.ExportedFile{Path: m.Name, Size: m.Size, SHA256: m.Digests[ovf.SHA256], Kind: string(m.Kind)})
	}
	res.Files = []providers.ExportedFile{{Path: a.name, Size: pr.Size, SHA256: sum, Kind: "ova"}}
	res.Bytes = pr.Size
	return res, nil
}

// archiveSum reads the committed archive back and returns its SHA-256.
// The archive's bytes cannot be hashed as they stream: its descriptor and
// member headers are written after the bytes that follow them. Reading it
// back costs one download of the archive, and doubles as a check of what
// the store holds: the result states a digest of the object as stored, as
// it does for a local OVA, so that `sha256sum` of a download can be
// compared with it.
func (r *run) archiveSum(ctx context.Context, name string, size int64) (string, error) {
	start := time.Now()
	sum, err := hashObject(ctx, r.opts.Output, name, size)
	if err != nil {
		return "", fmt.Errorf("read back %s: %w", name, err)
	}
	r.log.Info("read the OVA back for its SHA-256", "file", name, "bytes", size, "duration", time.Since(start).Round(time.Millisecond).String())
	return sum, nil
}
