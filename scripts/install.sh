#!/usr/bin/env bash
# Installs LayerMesh from this checkout on Debian (as root): Node.js if missing,
# the npm dependencies, the build, and the meshd/meshctl commands on PATH.
# The test suite installs its own system packages (containerd, skopeo, ...) when it runs.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages npm apart from nodejs: a machine may have node and no npm.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  echo "LayerMesh needs Node.js >= 20 (found $(node --version)); Debian 13 ships 20, or use nodejs from NodeSource." >&2
  exit 1
fi

npm ci --no-audit --no-fund
npm run build
npm link --no-audit --no-fund >/dev/null
# Local users of this group may push to meshd's loopback registry, as root may (docs/security.md).
getent group layermesh >/dev/null || groupadd --system layermesh
echo "installed: $(command -v meshd); let a user push with: usermod -aG layermesh USER"
