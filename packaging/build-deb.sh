#!/usr/bin/env bash
# Build dist/harvest-agent_<version>_<arch>.deb from this repository: the agent and all its
# dependencies in a self-contained virtual environment under /opt/harvest-agent, `harvest`
# on the PATH, the systemd unit, an example /etc/harvest-agent/config.yaml. The package
# creates the `harvest` system user and starts nothing until the service is enabled.
# Needs: /usr/bin/python3 with venv, dpkg-deb. Usage: bash packaging/build-deb.sh [OUTDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-/usr/bin/python3}
outdir=${1:-dist}
prefix=/opt/harvest-agent
version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)
arch=$(dpkg --print-architecture)
py_version=$("$python" -c 'import sys; print(f"{sys.version_info.major}.{sys.version_info.minor}")')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/root"

"$python" -m venv "$root$prefix"
"$root$prefix/bin/python" -m pip install -q --disable-pip-version-check --no-compile --constraint constraints.txt .
# The venv was built in a staging folder: point its scripts at the installed location.
grep -rlI "$root$prefix" "$root$prefix/bin" | xargs -r sed -i "s|$root$prefix|$prefix|g"
sed -i "s|$root||g" "$root$prefix/pyvenv.cfg"
find "$root$prefix" -name '__pycache__' -type d -prune -exec rm -rf {} +

install -d "$root/usr/bin"
ln -s "$prefix/bin/harvest" "$root/usr/bin/harvest"
install -D -m 644 systemd/harvest-agent.service "$root/lib/systemd/system/harvest-agent.service"
install -D -m 640 packaging/debian/config.yaml "$root/etc/harvest-agent/config.yaml"
install -D -m 644 README.md "$root$prefix/share/doc/harvest-agent/README.md"
cp -r docs "$root$prefix/share/doc/harvest-agent/docs"

install -d "$root/DEBIAN"
size=$(du -sk "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: harvest-agent
Version: $version
Architecture: $arch
Maintainer: Harvest agent developers <harvest-agent@localhost>
Depends: python$py_version, adduser
Installed-Size: $size
Section: science
Priority: optional
Homepage: https://example.org/harvest-agent
Description: instrument-side acquisition harvesting agent for imaging facilities
 Watches microscope and scanner output folders, waits until acquisitions are complete,
 extracts their metadata, checksums every file and delivers each dataset as a verified
 BagIt bag to a facility archive (folder/share, tus, S3, SFTP).
CONTROL
echo "/etc/harvest-agent/config.yaml" > "$root/DEBIAN/conffiles"
install -m 755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"

mkdir -p "$outdir"
deb="$outdir/harvest-agent_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$root" "$deb" >/dev/null
echo "$deb"
