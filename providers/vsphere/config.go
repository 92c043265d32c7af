package vsphere

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/hypersdk/hypersdk/config"
)

// Config is the settings of one vSphere instance: an item of `providers:`
// with type vsphere, or the seed's `vcenter:` block.
type Config struct {
	URL        string        `yaml:"url"`
	Username   string        `yaml:"username"`
	Password   config.Secret `yaml:"password"`
	Insecure   bool          `yaml:"insecure"`
	Thumbprint string        `yaml:"thumbprint"`
	// Datacenter limits discovery to one datacenter (default: all).
	Datacenter string `yaml:"datacenter"`
}

// Decode is the configuration decoder of type vsphere: strict, every
// problem with its key and line.
func Decode(s *config.ProviderSettings) (*Config, error) {
	var c Config
	if err := s.Decode(&c); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate checks the settings; each problem names its key (config.Validate
// prefixes the instance's path).
func (c *Config) Validate() error {
	var errs []error
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		errs = append(errs, errors.New("url: required (e.g. https://vcenter.example.com/sdk)"))
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		errs = append(errs, fmt.Errorf("url: must be an https:// URL of the vCenter or ESXi host, got %q", c.URL))
	case u.User != nil:
		if _, hasPw := u.User.Password(); hasPw {
			errs = append(errs, errors.New("url: must not contain a password; use the password key ({env: NAME} keeps it out of the file)"))
		}
	}
	return errors.Join(errs...)
}
