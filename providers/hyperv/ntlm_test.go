package hyperv

import (
	"context"
	"errors"
	"testing"

	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/hyperv/winrmfake"
)

// NTLM (the default auth) over HTTPS: the real client's NTLMv2 handshake
// against the fake's MS-NLMP check, accepted with the right password and
// answered 401 (ErrAuth) with a wrong one or another user. (The client
// answers for the domain the server's challenge names, whatever domain
// the configured user name carries.)
func TestNTLMOverHTTPS(t *testing.T) {
	host, _ := newHost(t)
	srv := winrmfake.NewTLS(winrmfake.Options{Username: testUser, Password: testPassword, Host: host, NTLM: true})
	t.Cleanup(srv.Close)
	h, port := splitAddr(srv.Addr())
	cfg := Config{Host: h, Port: port, Username: testUser, Password: config.NewSecret(testPassword), CAPEM: srv.CAPEM(),
		StagingPath: testStaging, Files: Files{Method: "smb", SMB: SMBFiles{Addr: "127.0.0.1:1", Share: "x", Username: "x"}}}
	p, err := NewProvider("hv1", cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Connect(context.Background()); err != nil {
		t.Fatalf("NTLM connect: %v", err)
	}
	vms, err := p.ListVMs(context.Background(), providers.VMFilter{})
	if err != nil || len(vms) != 2 {
		t.Fatalf("ListVMs over NTLM: %v, %d VMs", err, len(vms))
	}
	for _, bad := range []struct{ user, pass string }{{testUser, "not-the-password"}, {`LAB\someone`, testPassword}} {
		c := cfg
		c.Username, c.Password = bad.user, config.NewSecret(bad.pass)
		p, err := NewProvider("hv1", c, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Connect(context.Background()); !errors.Is(err, providers.ErrAuth) {
			t.Errorf("%s: err = %v, want ErrAuth", bad.user, err)
		}
	}
}
