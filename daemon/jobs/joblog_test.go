package jobs

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// Whatever a provider logs, the job's stored lines and the daemon's log
// carry its URLs redacted: message, string values, errors, groups and
// logger attributes alike.
func TestJobLogRedactsURLs(t *testing.T) {
	const secret = "52f5b1b4-6cd4-3e7b-2a58-0d43ed9c0b1c"
	nfc := "https://esx1/nfc/" + secret + "/disk-0.vmdk"
	var daemonLog bytes.Buffer
	sink := newLogSink("j1")
	log := slog.New(&jobLogHandler{next: slog.NewJSONHandler(&daemonLog, nil), sink: sink}).
		With("job_id", "j1", "source", nfc)
	log.Info("fetching "+nfc, "url", nfc, "err", fmt.Errorf("get %q: %w", nfc, errors.New("EOF")),
		slog.Group("g", "u", "https://b.s3/k?X-Amz-Signature="+secret), "n", 3)
	var stored strings.Builder
	for _, r := range sink.pending {
		fmt.Fprintf(&stored, "%s %v\n", r.msg, r.attrs)
	}
	for what, s := range map[string]string{"stored": stored.String(), "daemon log": daemonLog.String()} {
		if strings.Contains(s, secret) {
			t.Errorf("%s holds the secret:\n%s", what, s)
		}
		if !strings.Contains(s, "https://esx1/nfc/REDACTED/disk-0.vmdk") || !strings.Contains(s, "https://b.s3/k") {
			t.Errorf("%s lost the redacted URLs:\n%s", what, s)
		}
	}
	if r := sink.pending[0]; r.attrs["n"] != int64(3) {
		t.Errorf("non-string values changed: %v", r.attrs)
	}
}
