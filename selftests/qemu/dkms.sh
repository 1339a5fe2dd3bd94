#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# DKMS check, inside a lane's Debian root: the tree that `make dkms-install`
# ships (the tracked sources, no build products) builds under the root's
# DKMS for each kernel, and dkms.conf names the version in VERSION. The
# host's /usr/src and DKMS tree are never touched; the root is left as it
# was found.
#
# Usage: dkms.sh ROOT KERNEL_RELEASE...

set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

root=$1
shift
version=$(cat "$top/VERSION")
stage=$build/dkms-$root

conf_version=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' "$top/dkms.conf")
if [ "$conf_version" != "$version" ]; then
	echo "not ok dkms.conf PACKAGE_VERSION=$conf_version but VERSION=$version"
	exit 1
fi

rm -rf "$stage"
mkdir -p "$stage/src"
git -C "$top" ls-files -z -- Kbuild VERSION dkms.conf module uapi |
	(cd "$top" && xargs -0 cp --parents -t "$stage/src")

# Inside the root: /zcdev is $stage.
cat > "$stage/run.sh" <<'EOT'
set -u
name=zcdev version=$1
shift
src=/usr/src/$name-$version
cleanup() {
	dkms remove "$name/$version" --all > /dev/null 2>&1 || true
	rm -rf "$src"
}
trap cleanup EXIT
cleanup
cp -a /zcdev/src "$src"
dkms add "$name/$version" > /dev/null
fail=0
for k in "$@"; do
	if dkms build "$name/$version" -k "$k" > /zcdev/build-$k.log 2>&1 &&
	   dkms status "$name/$version" -k "$k" 2>/dev/null | grep -q ': built'; then
		echo "ok dkms build $name/$version for $k"
	else
		echo "not ok dkms build $name/$version for $k"
		sed 's/^/# /' /zcdev/build-$k.log
		fail=1
	fi
done
exit $fail
EOT
exec 8> "$roots/$root.lock"
flock 8
in_root "$root" "$stage" sh /zcdev/run.sh "$version" "$@"
