// Package config is HyperSDK's typed configuration: the YAML file given with
// --config, HYPERSDK_* environment overrides and command-line flags, applied
// in that order over built-in defaults, then validated as a whole.
//
// Loading is strict: an unknown key is an error naming the key, its path and
// its line; an invalid value names the key and what is allowed. Every problem
// found is reported, not only the first. Secrets (passwords, tokens, URLs
// with credentials) are held in Secret values that never print themselves.
package config
