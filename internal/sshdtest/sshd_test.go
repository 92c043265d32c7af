package sshdtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestServerWithOpenSSHClient checks the harness with OpenSSH's own client:
// the host key in KnownHostsFile is the one served, the client key logs in,
// the forced command sees the client's command and SFTP keeps working.
func TestServerWithOpenSSHClient(t *testing.T) {
	for _, bin := range []string{"ssh", "sftp"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found: install Debian's openssh-client (apt-get install openssh-client)", bin)
		}
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "cmd.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"ran: $SSH_ORIGINAL_COMMAND\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello over sftp\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := Start(t, Options{Command: script, SFTPDir: dir})
	common := []string{"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile=" + s.KnownHostsFile, "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "IdentitiesOnly=yes", "-i", s.ClientKeyFile, "-F", "/dev/null"}

	out, err := exec.Command("ssh", append(common, "-p", strconv.Itoa(s.Port), s.User+"@"+s.Host, "vzdump 100 --stdout")...).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ran: vzdump 100 --stdout" {
		t.Fatalf("ssh: %v: %q\n%s", err, out, s.Log())
	}

	got := filepath.Join(t.TempDir(), "got.txt")
	cmd := exec.Command("sftp", append(common, "-P", strconv.Itoa(s.Port), "-b", "-", s.User+"@"+s.Host)...)
	cmd.Stdin = strings.NewReader("get hello.txt " + got + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sftp: %v: %s\n%s", err, out, s.Log())
	}
	if b, _ := os.ReadFile(got); string(b) != "hello over sftp\n" {
		t.Fatalf("sftp fetched %q", b)
	}
}
