#!/usr/bin/env bash
# Validates deploy/ with each format's own tooling, installing what is missing:
#   compose    docker-compose config (Debian's docker-compose; no Docker engine needed)
#   kubernetes kustomize build (kubectl's, else kustomize from the Go module proxy), then
#              kubernetes-validate --strict (PyPI; JSON schemas bundled, no cluster needed)
#   prometheus promtool check rules on the alerting rules, then promtool test rules on their
#              unit tests (promtool built with go install from the Go module proxy, where
#              Prometheus v3.X.Y is module version v0.3XX.Y; the first build takes minutes)
# The Dockerfile cannot be built without a Docker engine; the configs it and the manifests
# carry are checked by gateway/src/config/load.rs's tests, and the Grafana dashboard's metric
# names by tests/tests/metrics.rs. The alerts' metric names are not checked against the gateway.
#
# Environment: SLUICE_CACHE_DIR (default ~/.cache/sluice) holds the venv and Go binaries.
# Needs: python3, and go (promtool; kustomize too when kubectl is absent).
set -euo pipefail

cd "$(dirname "$0")/.."
cache="${SLUICE_CACHE_DIR:-$HOME/.cache/sluice}"
mkdir -p "$cache"

KUBERNETES_VALIDATE=1.37.0
KUSTOMIZE=v5.7.1
KUBERNETES_VERSION=1.33.0
PROMTOOL=v0.316.0 # Prometheus 3.16.0

echo "-- docker-compose config"
if ! command -v docker-compose >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
    $sudo_ apt-get install -y -q --no-install-recommends docker-compose >/dev/null
  else
    echo "error: docker-compose is missing and apt-get is not available to install it" >&2
    exit 1
  fi
fi
docker-compose -f deploy/compose/compose.yaml config -q

echo "-- kustomize build deploy/kubernetes"
rendered="$(mktemp)"
trap 'rm -f "$rendered"' EXIT
if command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then
  kubectl kustomize deploy/kubernetes >"$rendered"
else
  kustomize="$cache/go/bin/kustomize"
  if [ ! -x "$kustomize" ]; then
    GOBIN="$cache/go/bin" go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE"
  fi
  "$kustomize" build deploy/kubernetes >"$rendered"
fi

echo "-- kubernetes-validate --strict (Kubernetes $KUBERNETES_VERSION)"
venv="$cache/venv-deploy-$KUBERNETES_VALIDATE"
if [ ! -e "$venv/.installed" ]; then
  # A venv cannot be moved into place (its scripts name their own path): mark it done instead.
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE"
  touch "$venv/.installed"
fi
"$venv/bin/kubernetes-validate" --strict --quiet -k "$KUBERNETES_VERSION" "$rendered"
kinds="$(grep -c '^kind:' "$rendered")"
for kind in Deployment Service ConfigMap Secret HorizontalPodAutoscaler PodDisruptionBudget; do
  grep -q "^kind: $kind\$" "$rendered" || { echo "error: no $kind in deploy/kubernetes" >&2; exit 1; }
done

echo "-- promtool check rules, test rules (Prometheus module $PROMTOOL)"
promtool_bin="$cache/go/promtool-$PROMTOOL"
promtool="$promtool_bin/promtool"
if [ ! -x "$promtool" ]; then
  command -v go >/dev/null 2>&1 || { echo "error: go is required to build promtool" >&2; exit 1; }
  # The version's own directory: changing the pin builds it anew.
  GOBIN="$promtool_bin" go install "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL"
fi
"$promtool" check rules --lint=all --lint-fatal deploy/prometheus/sluice-alerts.yaml
"$promtool" test rules deploy/prometheus/sluice-alerts.test.yaml
alerts="$(grep -c '^ *- alert:' deploy/prometheus/sluice-alerts.yaml)"

echo "deploy/: compose, $kinds Kubernetes resources and $alerts alerting rules valid"
