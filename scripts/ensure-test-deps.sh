#!/bin/sh
# Makes sure what the test suite talks to is present: PostgreSQL running
# (the store and job tests run against it), the Debian tools some tests
# and benchmarks call (qemu-img, zstd, gzip, mkfs.ext4) and versitygw, the
# real S3 server of the AWS export-task tests (built once into the per-user
# cache by build-versitygw.sh). Installs missing packages when run as root
# with apt-get available; otherwise says exactly what to install. Fails
# loudly.
set -eu

# have TOOL: in PATH, or in the sbin directories a normal user's PATH lacks.
have() {
	command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]
}

missing=""
have qemu-img || missing="$missing qemu-utils"
have zstd || missing="$missing zstd"
have gzip || missing="$missing gzip"
have mkfs.ext4 || missing="$missing e2fsprogs" # the ova benchmarks' ext4 image (mkfs.ext4 -d)
if [ -n "$missing" ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "installing Debian packages:$missing"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null || {
			apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null
		}
	else
		echo "missing tools; install the Debian packages:$missing (sudo apt-get install$missing)" >&2
		exit 1
	fi
fi

# versitygw v1.8.0: a cache hit is instant, a build takes a few minutes.
"$(dirname "$0")/build-versitygw.sh" >/dev/null

# PostgreSQL at 127.0.0.1:5432 unless the tests are pointed elsewhere.
if [ -z "${HYPERSDK_TEST_POSTGRES_URL:-}" ]; then
	if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
		if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
			echo "starting PostgreSQL"
			pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
		fi
		i=0
		until pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; do
			i=$((i + 1))
			if [ "$i" -gt 30 ]; then
				echo "PostgreSQL is not reachable at 127.0.0.1:5432 and could not be started." >&2
				echo "Start it (pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start) or set HYPERSDK_TEST_POSTGRES_URL." >&2
				exit 1
			fi
			sleep 1
		done
	fi
fi
