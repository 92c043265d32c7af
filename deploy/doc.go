// Package deploy holds no code. It is the home of the deployment artifacts
// (container/: the configuration baked into the image; kubernetes/: the
// kustomization) and of the tests that check them, together with the
// repository's Dockerfile, .dockerignore and systemd unit
// (packaging/hypervisord.service), against the daemon they deploy: its
// configuration loader, its routes, its build command and its binary,
// started in a file system laid out as the image lays it out.
package deploy
