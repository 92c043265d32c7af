#!/bin/sh
# Makes sure what the test suite talks to is present: PostgreSQL running
# (the store and job tests run against it), the Debian tools some tests
# and benchmarks call (qemu-img, zstd, gzip, lzop, mkfs.ext4; OpenSSH's sshd
# and Samba's smbd, which the SFTP and SMB tests run as real servers, and
# their clients, the benchmarks' anchors; node/npm for Azurite), Azurite, the
# Azure Storage emulator the Azure tests run, and versitygw, the real S3
# server of the AWS export-task tests (built once into the per-user cache by
# build-versitygw.sh). Installs missing packages when run as root with
# apt-get available; otherwise says exactly what to install. Fails loudly.
set -eu

# have TOOL: in PATH, or in the sbin directories a normal user's PATH lacks.
have() {
	command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]
}

missing=""
have qemu-img || missing="$missing qemu-utils"
have zstd || missing="$missing zstd"
have gzip || missing="$missing gzip"
have lzop || missing="$missing lzop" # the oracle for .vma.lzo dumps (vma, internal/lzop)
have mkfs.ext4 || missing="$missing e2fsprogs" # the ova benchmarks' ext4 image (mkfs.ext4 -d)
have sshd || missing="$missing openssh-server"    # internal/sshdtest
have sftp || missing="$missing openssh-client"    # transfer/sftp benchmark anchor (sftp, scp)
have smbd || missing="$missing samba"             # internal/sambatest (smbd, pdbedit)
have pdbedit || case "$missing" in *" samba"*) ;; *) missing="$missing samba" ;; esac
have smbclient || missing="$missing smbclient"    # transfer/smb benchmark anchor
have node || missing="$missing nodejs"            # Azurite runs on Node.js
have npm || missing="$missing npm"
[ -x /usr/bin/chromium ] || missing="$missing chromium" # the dashboard's e2e tests (playwright-core drives it)
if [ -n "$missing" ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "installing Debian packages:$missing"
		# The tests run private sshd and smbd instances; the packages' own
		# system services must not start (and listen on 22/445) on install.
		# Debian's policy-rc.d hook says so, for the install only.
		policy=""
		if [ ! -e /usr/sbin/policy-rc.d ]; then
			policy=/usr/sbin/policy-rc.d
			printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy"
			trap 'rm -f "$policy"' EXIT
		fi
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null || {
			apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null
		}
		if [ -n "$policy" ]; then
			rm -f "$policy"
			trap - EXIT
		fi
	else
		echo "missing tools; install the Debian packages:$missing (sudo apt-get install$missing)" >&2
		exit 1
	fi
fi

# Azurite 3.35.0 (newer releases need Node.js 22), installed once from the
# lock file beside its test helper into a cache directory the helper
# (providers/azure/azuritetest) finds by the same rule; a cache hit costs a
# file comparison.
azurite_src=providers/azure/azuritetest/npm
azurite_dir=${HYPERSDK_AZURITE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hypersdk/azurite-3.35.0}
if ! { [ -x "$azurite_dir/node_modules/.bin/azurite-blob" ] &&
	cmp -s "$azurite_src/package-lock.json" "$azurite_dir/package-lock.json"; }; then
	echo "installing Azurite 3.35.0 into $azurite_dir"
	mkdir -p "$azurite_dir"
	cp "$azurite_src/package.json" "$azurite_src/package-lock.json" "$azurite_dir/"
	npm ci --prefix "$azurite_dir" --no-audit --no-fund --loglevel=error >/dev/null || {
		echo "npm could not install Azurite; run: npm ci --prefix $azurite_dir (from $azurite_src)" >&2
		exit 1
	}
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
