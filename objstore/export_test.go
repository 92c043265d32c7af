package objstore

import "github.com/hypersdk/hypersdk/providers"

// HeldParts is the number of parts w keeps in memory besides the one
// filling: part 1 and the parts holding reserved bytes not yet filled.
func HeldParts(w providers.SinkWriter) int {
	wr := w.(*writer)
	n := len(wr.held)
	if wr.first != nil {
		n++
	}
	return n
}
