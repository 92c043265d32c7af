package hyperv

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/masterzen/winrm"

	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/hyperv/internal/ps"
	"github.com/hypersdk/hypersdk/providers/hyperv/winrmfake"
)

// Hostile VM names reach the host as data: the script text the fake
// decoded from -EncodedCommand never holds them, the JSON input holds them
// intact, and every script text is exactly one of the constants.
func TestInjectionProof(t *testing.T) {
	names := []string{
		`a'; Remove-Item C:\ -Recurse #`,
		`$(calc)`,
		`x"; Stop-Computer -Force; "`,
		"back`tick`$(whoami)",
		"new\nline; Remove-VM -Force *",
		`@' here-string '@ ${env:USERNAME} $null`,
	}
	var vms []*winrmfake.VM
	for i, n := range names {
		vms = append(vms, &winrmfake.VM{ID: "00000000-0000-4000-8000-00000000000" + string(rune('a'+i)), Name: n, State: "Running",
			Generation: 2, CPUs: 1, MemoryMiB: 512, Drives: []winrmfake.Drive{{ControllerType: "SCSI", Path: vhdDir + "off-1.vhdx"}}})
	}
	f := newFixture(t, "sftp", vms...)
	p := f.provider(t)
	ctx := context.Background()
	for i, n := range names {
		vm, err := p.GetVM(ctx, n)
		if err != nil {
			t.Fatalf("GetVM(%q): %v", n, err)
		}
		if vm.Name != n {
			t.Errorf("name %q came back as %q", n, vm.Name)
		}
		// The export checkpoints the VM with the name as data; the fake,
		// like Windows, refuses a folder named after it where the name
		// holds \ : " or a newline, and the error comes back structured.
		exp, err := p.PrepareExport(ctx, n, providers.ExportOptions{OutputDir: t.TempDir(), JobID: "job-inj-" + string(rune('a'+i))})
		var se *ScriptError
		switch {
		case err == nil:
			exp.Cleanup()
		case !errors.As(err, &se):
			t.Errorf("export of %q: %v, want a structured script error", n, err)
		}
	}
	if left := f.leftovers(t); len(left) != 0 {
		t.Errorf("left: %v", left)
	}
	constants := map[string]bool{}
	for s := range ps.Names() {
		constants[s] = true
	}
	seen := map[string]bool{}
	for _, c := range f.host.Calls() {
		script, input, err := ps.Parse(c.Text)
		if err != nil || !constants[script] {
			t.Fatalf("a script that is not one of the constants reached the host: %q", c.Text)
		}
		for _, n := range names {
			for _, frag := range []string{n, "calc", "Remove-Item C:", "Stop-Computer", "whoami", "Remove-VM -Force", "here-string", "USERNAME"} {
				if strings.Contains(n, frag) && strings.Contains(c.Text, frag) {
					t.Fatalf("script text holds %q from a VM name:\n%s", frag, c.Text)
				}
			}
		}
		if strings.Contains(c.Text, testPassword) {
			t.Fatal("the password is in a script")
		}
		var in map[string]any
		if err := json.Unmarshal(input, &in); err != nil {
			t.Fatal(err)
		}
		for _, v := range in {
			if s, ok := v.(string); ok {
				seen[s] = true
			}
		}
	}
	// The checkpoint names are job ids; VM names travel in answers, but
	// their ids in the inputs: make sure the listing answered them
	// intact, then that the ids reached the host.
	for i := range names {
		if !seen["00000000-0000-4000-8000-00000000000"+string(rune('a'+i))] {
			t.Errorf("VM id %d never reached the host as JSON input", i)
		}
	}
}

// Every script, with a generous input, fits the 8191-character command
// line powershell.exe -EncodedCommand is given.
func TestScriptsFitTheCommandLine(t *testing.T) {
	in := jobInput{ID: strings.Repeat("f", 36), Name: namePrefix + strings.Repeat("9", 64),
		Staging: `D:\` + strings.Repeat("s", 120), Folder: namePrefix + strings.Repeat("9", 64),
		Files: []string{strings.Repeat("n", 100) + ".vhdx", strings.Repeat("m", 100) + ".avhdx", strings.Repeat("o", 100) + ".vhdx", strings.Repeat("p", 100) + ".vhdx"}}
	for script, name := range ps.Names() {
		text, err := ps.Command(script, in)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(winrm.Powershell(text)); n > 8191 {
			t.Errorf("%s: %d characters on the command line, Windows allows 8191", name, n)
		}
		if !strings.HasSuffix(script, "}") || !strings.Contains(script, "ConvertTo-Json -Compress") {
			t.Errorf("%s does not end in its JSON answer", name)
		}
	}
}

// A wrong password is refused with 401, reported as ErrAuth, and neither
// password appears in the error or the logs.
func TestWrongPasswordIsErrAuth(t *testing.T) {
	f := newFixture(t, "sftp")
	cfg := f.cfg
	const wrong = "Wr0ng-Secret-Value"
	cfg.Password = configSecret(wrong)
	p, err := NewProvider("hv1", cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Connect(context.Background())
	if !errors.Is(err, providers.ErrAuth) {
		t.Fatalf("err = %v, want ErrAuth", err)
	}
	for _, s := range []string{wrong, testPassword} {
		if strings.Contains(err.Error(), s) || strings.Contains(f.log.String(), s) {
			t.Fatalf("a password is in the error or the log: %v", err)
		}
	}
}
