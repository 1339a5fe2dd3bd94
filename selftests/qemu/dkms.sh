#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Packaging check, on the host: the tree that `make dkms-install` ships
# builds under DKMS for each kernel, and dkms.conf names the version in
# VERSION. Leaves nothing behind in /usr/src or the DKMS tree.
#
# Usage: dkms.sh KERNEL_RELEASE...

set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
version=$(cat "$top/VERSION")
name=zcdev
src=/usr/src/$name-$version

conf_version=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' "$top/dkms.conf")
if [ "$conf_version" != "$version" ]; then
	echo "not ok dkms.conf PACKAGE_VERSION=$conf_version but VERSION=$version"
	exit 1
fi

cleanup() {
	dkms remove "$name/$version" --all >/dev/null 2>&1 || true
	rm -rf "$src"
}
trap cleanup EXIT
cleanup

# Exactly what a user gets: the tracked sources, no build products.
mkdir -p "$src"
git -C "$top" ls-files -z -- Kbuild VERSION dkms.conf module uapi |
	(cd "$top" && xargs -0 cp --parents -t "$src")
dkms add "$name/$version" >/dev/null

fail=0
for k in "$@"; do
	log=$(mktemp)
	if dkms build "$name/$version" -k "$k" >"$log" 2>&1 &&
	   dkms status "$name/$version" -k "$k" 2>/dev/null | grep -q ': built'; then
		echo "ok dkms build $name/$version for $k"
	else
		echo "not ok dkms build $name/$version for $k"
		sed 's/^/# /' "$log"
		fail=1
	fi
	rm -f "$log"
done
exit $fail
