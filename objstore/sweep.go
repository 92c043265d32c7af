package objstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// StartedUploads lists the objects whose upload state is kept in state:
// those an export started and neither published for good (Release) nor
// removed.
func StartedUploads(state *os.Root) ([]string, error) {
	dir, err := state.Open(".")
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	entries, err := dir.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), stateName("")); ok && name != "" && e.Type().IsRegular() {
			names = append(names, name)
		}
	}
	return names, nil
}

// RemoveStarted removes what an export to outputURL that no attempt will
// continue left in the store, as its last attempt would have: for each
// of names (objects whose state is kept in state; see StartedUploads), its open uploads are aborted, the
// object (partial or published) deleted and the state forgotten. It
// returns the locations removed; an object it could not remove keeps its
// state, for a later sweep.
func (ts Targets) RemoveStarted(ctx context.Context, outputURL string, state *os.Root, names []string, log *slog.Logger) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	sink, err := ts.Open(ctx, "output", outputURL, state, log)
	if err != nil {
		return nil, err
	}
	var (
		removed []string
		errs    []error
	)
	for _, name := range names {
		if err := sink.Remove(ctx, name); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, sink.st.location(sink.key(name)))
	}
	return removed, errors.Join(errs...)
}

// ForgetStarted forgets the upload state of names kept in state without
// touching the store: objects a later export of the same output now
// owns. It returns the objects forgotten.
func ForgetStarted(state *os.Root, names []string) ([]string, error) {
	var errs []error
	for _, name := range names {
		if err := removeState(state, name); err != nil {
			errs = append(errs, fmt.Errorf("upload state of %s: %w", name, err))
		}
	}
	return names, errors.Join(errs...)
}
