package sambatest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestServerWithSmbclient checks the harness with Samba's own client: the
// user and password log in, files of ShareDir are served and a wrong
// password is refused. The encrypted variant proves the server options.
func TestServerWithSmbclient(t *testing.T) {
	smbclient, err := exec.LookPath("smbclient")
	if err != nil {
		t.Fatal("smbclient not found: install Debian's smbclient (apt-get install smbclient)")
	}
	for _, opts := range []Options{{}, {Signing: true, Encrypt: true, Share: "staging"}} {
		t.Run(strconv.FormatBool(opts.Encrypt), func(t *testing.T) {
			s := Start(t, opts)
			if err := os.WriteFile(filepath.Join(s.ShareDir, "vm.vhdx"), []byte("disk bytes"), 0o600); err != nil {
				t.Fatal(err)
			}
			got := filepath.Join(t.TempDir(), "got")
			args := []string{"-s", s.Conf, "-p", strconv.Itoa(s.Port), "//" + s.Host + "/" + s.Share,
				"-U", s.User, "-c", "get vm.vhdx " + got}
			if opts.Encrypt {
				args = append(args, "--client-protection=encrypt")
			}
			cmd := exec.Command(smbclient, args...)
			cmd.Env = append(os.Environ(), "PASSWD="+s.Password) // never in the arguments
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("smbclient: %v: %s", err, out)
			}
			if b, _ := os.ReadFile(got); string(b) != "disk bytes" {
				t.Fatalf("fetched %q", b)
			}
			cmd = exec.Command(smbclient, args...)
			cmd.Env = append(os.Environ(), "PASSWD=wrong")
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), "NT_STATUS_LOGON_FAILURE") {
				t.Fatalf("wrong password: %v: %s", err, out)
			}
		})
	}
}
