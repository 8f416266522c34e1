#!/usr/bin/env bash
# Generates proto/gen/*.ts from proto/tswarm/*.proto with protoc (Debian's protobuf-compiler) and
# ts-proto. The output is committed; test/proto.test.ts checks that regenerating changes nothing.
# Usage: proto/generate.sh [OUT_DIR]   (default proto/gen)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/gen}
plugin=$here/../node_modules/.bin/protoc-gen-ts_proto
command -v protoc >/dev/null || { echo "proto/generate.sh: protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }
[ -x "$plugin" ] || { echo "proto/generate.sh: $plugin not found (npm install)" >&2; exit 1; }
rm -rf "$out" && mkdir -p "$out"
protoc \
  --plugin=protoc-gen-ts_proto="$plugin" \
  --proto_path="$here" \
  --ts_proto_out="$out" \
  --ts_proto_opt=outputServices=grpc-js,esModuleInterop=true,importSuffix=.js,forceLong=number,oneof=unions,useOptionals=messages,stringEnums=true,env=node,useExactTypes=false \
  "$here"/tswarm/*.proto
