package objstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/hypersdk/hypersdk/internal/safepath"
)

// uploadState is what the state file of one object records.
type uploadState struct {
	Key string `json:"key"`
	// UploadID is empty until the store created the upload.
	UploadID string `json:"upload_id,omitempty"`
	PartSize int64  `json:"part_size"`
	// Parts are the parts the store acknowledged.
	Parts []part `json:"parts,omitempty"`
	// Completed: the object is published (a single PUT or a completed
	// upload).
	Completed bool `json:"completed,omitempty"`
}

// part is one finished part.
type part struct {
	N    int    `json:"n"`
	Size int64  `json:"size"`
	Sum  []byte `json:"sha256"` // of the part's bytes
	ETag string `json:"etag,omitempty"`
}

// stateName is the state file of the object name in the state root.
func stateName(name string) string { return name + ".upload.json" }

// loadState reads the state of name; nil when there is none.
func loadState(root *os.Root, name string) (*uploadState, error) {
	b, err := root.ReadFile(stateName(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st uploadState
	if err := json.Unmarshal(b, &st); err != nil {
		// A torn write cannot happen (temp + rename); an unreadable file
		// is not ours to trust, and the upload is redone.
		return nil, nil
	}
	return &st, nil
}

// saveState records st durably: temp file, fsync, rename.
func saveState(root *os.Root, name string, st *uploadState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := stateName(name) + ".tmp"
	f, err := safepath.OpenFile(root, tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("upload state: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Rename(tmp, stateName(name))
	}
	if err != nil {
		_ = root.Remove(tmp)
		return fmt.Errorf("upload state of %s: %w", name, err)
	}
	return nil
}

func removeState(root *os.Root, name string) error {
	if err := root.Remove(stateName(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
