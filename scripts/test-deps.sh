#!/usr/bin/env bash
# Builds the real peers that the tests start, from their Go modules at the versions pinned
# below: kube-apiserver and etcd (tests/apiserver.rs), crane and regctl/regsync (independent
# readers of what relsync writes), distribution v3's registry (a second registry
# implementation: tag DELETE), go-containerregistry's registry with the referrers API on
# (ggcr-registry) and cosign.
#
# Each binary is built once per version into target/test-deps/<name>-<version>/ and linked
# from target/test-deps/bin/, so a second run builds nothing. A module the Go proxy refuses
# is reported here and recorded as target/test-deps/bin/<binary>.missing; the tests that need
# that binary fail with its message. The last line of output is the bin folder.
#
# Builds run with `go build -p 2` (TEST_DEPS_GO_P overrides): the machine has two cores.
set -uo pipefail
cd "$(dirname "$0")/.."

KUBERNETES_VERSION=v1.37.2 # kube-apiserver; its k8s.io/* staging modules at v0.37.2
ETCD_VERSION=v3.7.3        # go.etcd.io/etcd/server/v3, started through etcdmain
CRANE_VERSION=v0.22.1      # github.com/google/go-containerregistry
REGCLIENT_VERSION=v0.11.7  # github.com/regclient/regclient: regctl, regsync
DISTRIBUTION_VERSION=v3.1.2 # github.com/distribution/distribution/v3: registry
COSIGN_VERSION=v3.1.3      # github.com/sigstore/cosign/v3

root=$PWD/target/test-deps
bin=$root/bin
mkdir -p "$bin"
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
  export PATH=/usr/local/go/bin:$PATH
fi
export GOFLAGS="-buildvcs=false -mod=mod"
export CGO_ENABLED=0
export GOTOOLCHAIN=local
p=${TEST_DEPS_GO_P:-2}
failed=()

say() { echo "test-deps: $*" >&2; }

# link NAME DIR: bin/NAME points at DIR/NAME; a stale .missing note goes.
link() {
  ln -sfn "../$(basename "$2")/$1" "$bin/$1"
  rm -f "$bin/$1.missing"
}

# missing NAME WHAT LOG: records why NAME could not be had, for the tests to repeat.
missing() {
  local why
  why=$(grep -E 'go: |cannot|not found|refused|404|410|error' "$3" 2>/dev/null | head -3 | tr '\n' ' ')
  echo "scripts/test-deps.sh could not build $1 from $2: ${why:-see $3}" >"$bin/$1.missing"
  rm -f "$bin/$1"
  failed+=("$1 ($2)")
  say "FAILED $1 from $2 (log: $3)"
}

# have DIR NAME...: true when every NAME is already built in DIR (then they are linked).
have() {
  local dir=$1 n
  shift
  for n in "$@"; do [ -x "$dir/$n" ] || return 1; done
  for n in "$@"; do link "$n" "$dir"; done
}

# install DIR MODULE@VERSION PKG...: `go install` for modules without replace directives.
install() {
  local dir=$1 modver=$2 pkg names=()
  shift 2
  for pkg in "$@"; do names+=("$(basename "$pkg")"); done
  have "$dir" "${names[@]}" && return 0
  say "building ${names[*]} from $modver"
  mkdir -p "$dir.tmp"
  local log=$dir.log ok=1
  for pkg in "$@"; do
    GOBIN=$dir.tmp go install -p "$p" -trimpath -ldflags='-s -w' "$pkg@${modver#*@}" >>"$log" 2>&1 || ok=0
  done
  if [ $ok = 1 ]; then
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
    for n in "${names[@]}"; do link "$n" "$dir"; done
  else
    for n in "${names[@]}"; do missing "$n" "$modver" "$log"; done
  fi
}

# kube-apiserver: k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them
# with ./staging paths, which do not apply to a dependency; a wrapper module pins each one to
# the matching published v0.X.Y.
build_kube_apiserver() {
  local v=$KUBERNETES_VERSION dir=$root/kubernetes-$KUBERNETES_VERSION
  have "$dir" kube-apiserver && return 0
  say "building kube-apiserver from k8s.io/kubernetes@$v (heavy: several minutes)"
  local src=$root/src/kubernetes-$v log=$dir.log staging=v0.${v#v1.}
  rm -rf "$src" && mkdir -p "$src" "$dir.tmp"
  : >"$log"
  local gomod
  (cd "$src" && go mod download -json "k8s.io/kubernetes@$v") >"$src/download.json" 2>>"$log"
  sed -n 's/.*"Error": "\(.*\)".*/go: \1/p' "$src/download.json" >>"$log"
  gomod=$(sed -n 's/.*"GoMod": "\(.*\)".*/\1/p' "$src/download.json")
  if [ -z "$gomod" ] || [ ! -f "$gomod" ]; then
    missing kube-apiserver "k8s.io/kubernetes@$v" "$log"
    return
  fi
  {
    echo "module relsync.test/kube-apiserver"
    echo
    echo "go 1.26.0"
    echo
    echo "require k8s.io/kubernetes $v"
    echo
    grep -oE '^\s+k8s\.io/[a-z0-9-]+ v0\.0\.0$' "$gomod" | awk -v s="$staging" '{ print "replace " $1 " => " $1 " " s }'
  } >"$src/go.mod"
  if (cd "$src" && go mod tidy -e >>"$log" 2>&1 \
    && go build -p "$p" -trimpath -ldflags='-s -w' -o "$dir.tmp/kube-apiserver" \
      k8s.io/kubernetes/cmd/kube-apiserver >>"$log" 2>&1); then
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
    link kube-apiserver "$dir"
  else
    missing kube-apiserver "k8s.io/kubernetes@$v" "$log"
  fi
}

# etcd: the server module's etcdmain is the etcd command; a two-line main starts it.
build_etcd() {
  local v=$ETCD_VERSION dir=$root/etcd-$ETCD_VERSION
  have "$dir" etcd && return 0
  say "building etcd from go.etcd.io/etcd/server/v3@$v"
  local src=$root/src/etcd-$v log=$dir.log
  rm -rf "$src" && mkdir -p "$src" "$dir.tmp"
  : >"$log"
  cat >"$src/go.mod" <<EOF
module relsync.test/etcd

go 1.26.0

require go.etcd.io/etcd/server/v3 $v
EOF
  cat >"$src/main.go" <<'EOF'
// Command etcd runs etcd's server, as the etcd binary does.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
  if (cd "$src" && go mod tidy >>"$log" 2>&1 \
    && go build -p "$p" -trimpath -ldflags='-s -w' -o "$dir.tmp/etcd" . >>"$log" 2>&1); then
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
    link etcd "$dir"
  else
    missing etcd "go.etcd.io/etcd/server/v3@$v" "$log"
  fi
}

# ggcr-registry: go-containerregistry's in-memory registry (pkg/registry) with its OCI 1.1
# referrers API switched on, which `crane registry serve` leaves off; a small main serves it
# on `-addr HOST:PORT`.
build_ggcr_registry() {
  local v=$CRANE_VERSION dir=$root/ggcr-registry-$CRANE_VERSION
  have "$dir" ggcr-registry && return 0
  say "building ggcr-registry from github.com/google/go-containerregistry@$v"
  local src=$root/src/ggcr-registry-$v log=$dir.log
  rm -rf "$src" && mkdir -p "$src" "$dir.tmp"
  : >"$log"
  cat >"$src/go.mod" <<EOF
module relsync.test/ggcr-registry

go 1.26.0

require github.com/google/go-containerregistry $v
EOF
  cat >"$src/main.go" <<'EOF'
// Command ggcr-registry serves go-containerregistry's in-memory registry, with the OCI 1.1
// referrers API (GET /v2/<name>/referrers/<digest>) enabled, on -addr.
package main

import (
	"flag"
	"log"
	"net/http"

	"github.com/google/go-containerregistry/pkg/registry"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:5000", "address to listen on")
	flag.Parse()
	log.Printf("serving on %s", *addr)
	log.Fatal(http.ListenAndServe(*addr, registry.New(registry.WithReferrersSupport(true))))
}
EOF
  if (cd "$src" && go mod tidy >>"$log" 2>&1 \
    && go build -p "$p" -trimpath -ldflags='-s -w' -o "$dir.tmp/ggcr-registry" . >>"$log" 2>&1); then
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
    link ggcr-registry "$dir"
  else
    missing ggcr-registry "github.com/google/go-containerregistry@$v" "$log"
  fi
}

start=$(date +%s)
build_kube_apiserver
build_etcd
install "$root/crane-$CRANE_VERSION" "github.com/google/go-containerregistry@$CRANE_VERSION" \
  github.com/google/go-containerregistry/cmd/crane
install "$root/regclient-$REGCLIENT_VERSION" "github.com/regclient/regclient@$REGCLIENT_VERSION" \
  github.com/regclient/regclient/cmd/regctl github.com/regclient/regclient/cmd/regsync
install "$root/distribution-$DISTRIBUTION_VERSION" \
  "github.com/distribution/distribution/v3@$DISTRIBUTION_VERSION" \
  github.com/distribution/distribution/v3/cmd/registry
install "$root/cosign-$COSIGN_VERSION" "github.com/sigstore/cosign/v3@$COSIGN_VERSION" \
  github.com/sigstore/cosign/v3/cmd/cosign
build_ggcr_registry

say "done in $(($(date +%s) - start))s"
if [ ${#failed[@]} -gt 0 ]; then
  say "could not be had: ${failed[*]}; the tests that need them fail with the reason"
fi
echo "$bin"
