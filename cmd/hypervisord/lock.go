package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// lockFileName is the data directory's lock. The file stays on disk: the
// lock is the flock on it, which the kernel drops when the holder exits,
// however it exits (deleting the file could let two daemons lock two
// different inodes of the same name).
const lockFileName = "hypervisord.lock"

// dataDirLock is held for the daemon's lifetime: one daemon per data
// directory, since two would share the SQLite file, the node id (and so
// each other's running jobs) and the endpoint file.
type dataDirLock struct{ f *os.File }

// lockDataDir takes the exclusive lock without waiting; if another process
// holds it the error names that process from what it recorded.
func lockDataDir(dataDir string) (*dataDirLock, error) {
	path := filepath.Join(dataDir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data dir lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data dir %s is in use by another hypervisord (%s); stop it or start this one with another --data-dir",
				dataDir, holder(f))
		}
		return nil, fmt.Errorf("data dir lock %s: %w", path, err)
	}
	return &dataDirLock{f: f}, nil
}

// record writes who holds the lock as one line, in place: replacing the
// file would move the name to a new, unlocked inode. Written over the old
// line and then truncated, so a reader sees a whole first line.
func (l *dataDirLock) record(pid int, listen string) error {
	line := fmt.Sprintf("pid=%d listen=%s\n", pid, listen)
	if _, err := l.f.WriteAt([]byte(line), 0); err != nil {
		return fmt.Errorf("data dir lock: %w", err)
	}
	return l.f.Truncate(int64(len(line)))
}

// Close releases the lock.
func (l *dataDirLock) Close() error { return l.f.Close() }

// holder describes the lock's holder. The holder records itself right after
// locking, so an empty file means it is just starting: read again briefly.
func holder(f *os.File) string {
	for range 20 {
		b, _ := io.ReadAll(io.NewSectionReader(f, 0, 4096))
		line, _, _ := strings.Cut(string(b), "\n")
		var pid, listen string
		for _, field := range strings.Fields(line) {
			k, v, _ := strings.Cut(field, "=")
			switch k {
			case "pid":
				pid = v
			case "listen":
				listen = v
			}
		}
		if pid != "" {
			return fmt.Sprintf("pid %s, listening on %s", pid, listen)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "pid unknown"
}
