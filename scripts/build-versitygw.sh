#!/bin/sh
# build-versitygw.sh: makes sure versitygw v1.8.0 (Versity's S3 gateway: a
# real S3 server with SigV4, the S3 side of the AWS export-task tests) is
# built in the per-user cache, and prints its path. A cache hit is instant;
# a build takes a few minutes (go install from the module proxy).
# HYPERSDK_VERSITYGW overrides the binary's path.
set -eu
ver=v1.8.0
out=${HYPERSDK_VERSITYGW:-${XDG_CACHE_HOME:-$HOME/.cache}/hypersdk/versitygw-$ver/versitygw}
# go version -m reads the module version the binary was built from.
if [ -x "$out" ] && go version -m "$out" 2>/dev/null | grep -q "mod[[:space:]]*github.com/versity/versitygw[[:space:]]*$ver"; then
	echo "$out"
	exit 0
fi
echo "building versitygw $ver into $(dirname "$out") (a few minutes, once)" >&2
mkdir -p "$(dirname "$out")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Outside any module, with the project's GOFLAGS cleared: go install
# builds exactly the tagged release.
(cd "$tmp" && GOFLAGS= GOBIN="$tmp" go install "github.com/versity/versitygw/cmd/versitygw@$ver")
mv "$tmp/versitygw" "$out"
echo "$out"
