package jobs

import "sync"

// hub wakes in-process watchers of a job (log followers, watch requests)
// when this daemon changes it. It carries no data: watchers re-read the
// store, which is also how they see changes made by other daemons.
type hub struct {
	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
}

func newHub() *hub { return &hub{subs: map[string]map[chan struct{}]struct{}{}} }

// subscribe returns a channel that receives a value after each change of
// job id, and a function to unsubscribe.
func (h *hub) subscribe(id string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if h.subs[id] == nil {
		h.subs[id] = map[chan struct{}]struct{}{}
	}
	h.subs[id][ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs[id], ch)
		if len(h.subs[id]) == 0 {
			delete(h.subs, id)
		}
		h.mu.Unlock()
	}
}

// anyJob is the subscription key of watchers of every job.
const anyJob = ""

func (h *hub) publish(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, key := range []string{id, anyJob} {
		for ch := range h.subs[key] {
			select {
			case ch <- struct{}{}:
			default: // a wake-up is already pending
			}
		}
	}
}
