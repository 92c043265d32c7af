package progress

// Phases of an export, reported in Report.Phase.
const (
	PhaseConnecting  = "connecting"
	PhasePreparing   = "preparing" // snapshot, power-off, lease
	PhaseDownloading = "downloading"
	PhasePackaging   = "packaging"
	PhaseVerifying   = "verifying"
	PhaseCleanup     = "cleanup"
	PhaseConverting  = "converting" // a disk image from one format to another
)

// Report is a snapshot of an operation's advance. Totals are honest: the
// bytes the phase will actually write, never an upper bound such as a
// disk's capacity; 0 means not known yet (a stream without a length).
type Report struct {
	Phase string `json:"phase"`
	// BytesDone and BytesTotal cover the whole phase (every file of a
	// download, the whole archive of a pack).
	BytesDone  int64 `json:"bytes_done"`
	BytesTotal int64 `json:"bytes_total"`
	// Item names what is being worked on, e.g. a disk file; ItemBytes and
	// ItemSize are its own progress (ItemSize 0 while unknown). ItemBytes
	// goes back down when a download has to restart the item from zero.
	Item      string `json:"item,omitempty"`
	ItemBytes int64  `json:"item_bytes,omitempty"`
	ItemSize  int64  `json:"item_size,omitempty"`
	// Final marks the last report for Item: it is complete or has failed.
	// Its size is then known: ItemBytes on success.
	Final bool `json:"final,omitempty"`
}

// Func receives reports. It must be cheap and must not block; it may be
// called from several goroutines at once.
type Func func(Report)

// Send calls f with r when f is set.
func (f Func) Send(r Report) {
	if f != nil {
		f(r)
	}
}
