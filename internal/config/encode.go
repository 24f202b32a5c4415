package config

import (
	"bytes"
	"fmt"

	"github.com/BurntSushi/toml"
)

// TOML renders the configuration as a TOML document that Load reads back to
// an equal Config (what `oomguard config show` prints).
func (c *Config) TOML() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# Effective oomguard configuration.\n")
	// Empty lists are written as [] rather than left out, so that the
	// output shows every key.
	cc := *c
	cc.Rules = c.Rules
	for _, l := range []*[]Regexp{&cc.Rules.Prefer, &cc.Rules.Avoid, &cc.Rules.Ignore} {
		if *l == nil {
			*l = []Regexp{}
		}
	}
	if cc.Scope == nil {
		cc.Scope = []string{}
	}
	if cc.Rules.Protect == nil {
		cc.Rules.Protect = []string{}
	}
	enc := toml.NewEncoder(&b)
	enc.Indent = ""
	if err := enc.Encode(&cc); err != nil {
		return nil, fmt.Errorf("encode configuration: %w", err)
	}
	return b.Bytes(), nil
}
