#!/bin/sh
# The compose fleet's end-to-end check: push a fresh multi-layer image to one node, then wait (bounded) until
# every other node holds it itself. "Holds" is asked of each node's own store (meshctl ls) and of the mesh's
# announcements (who-has), never by pulling the image through that node first: a node that lacks it would fetch
# it from a peer on the spot (the mirror), and the check would prove nothing about replication.
set -eu

push_to=${CHECK_PUSH_TO:?host:port of the registry to push to}
token=${CHECK_REGISTRY_TOKEN:?the push token of that registry}
expect_on=${CHECK_EXPECT_ON:?host:port of every registry that must end up holding the image}
timeout=${CHECK_TIMEOUT:-120}
# buildImage writes a real OCI layout (gzipped tar layers of random bytes) offline.
image_module=/opt/layermesh/dist/test/helpers/oci-image.js
repo=compose-check
tag=run-$(date +%s)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

say() { echo "check: $*"; }
fail() {
  echo "check: FAILED: $*" >&2
  exit 1
}
now() { date +%s; }

# 1. Every node answers, and the pushed-to node is connected to all others (a node that joins after the push
#    may never hear of it).
deadline=$(($(now) + 60))
for node in $push_to $expect_on; do
  until meshctl --node "http://$node" --json status >"$work/status" 2>"$work/err"; do
    [ "$(now)" -lt "$deadline" ] || fail "meshd at $node does not answer: $(cat "$work/err")"
    sleep 1
  done
  jq -r .id "$work/status" >"$work/id.$node"
  say "$node is $(jq -r .name "$work/status") ($(cat "$work/id.$node"))"
done
for node in $expect_on; do
  id=$(cat "$work/id.$node")
  until meshctl --node "http://$push_to" --json peers 2>/dev/null | jq -e --arg id "$id" 'any(.[]; .id == $id)' >/dev/null; do
    [ "$(now)" -lt "$deadline" ] || fail "$push_to is not connected to $node ($id) after 60 s"
    sleep 1
  done
done
say "$push_to is connected to $expect_on"

# 2. A fresh image (random layers, so no node can hold it already), pushed with the token as password.
node --input-type=module -e "
  import { buildImage } from '$image_module';
  const image = buildImage({ layerSizes: [1048576, 2097152, 524288], tag: '$tag', dir: '$work/image' });
  console.log(JSON.stringify({ digest: image.digest, blobs: image.blobs.map((b) => b.digest) }));
" >"$work/image.json"
digest=$(jq -r .digest "$work/image.json")
blobs=$(jq -r '.blobs[]' "$work/image.json")
nblobs=$(jq '.blobs | length' "$work/image.json")
skopeo --insecure-policy copy --quiet --dest-tls-verify=false --dest-creds "check:$token" \
  "oci:$work/image:$tag" "docker://$push_to/$repo:$tag"
start=$(now)
say "pushed $repo:$tag ($digest, $nblobs blobs) to $push_to; waiting up to $timeout s for $expect_on"

# 3. Wait until each node lists the image in its own store and announces every blob of it.
deadline=$((start + timeout))
while :; do
  missing=""
  for node in $expect_on; do
    id=$(cat "$work/id.$node")
    if ! meshctl --node "http://$node" --json ls 2>/dev/null | jq -e --arg d "$digest" 'any(.[]; .digest == $d)' >/dev/null; then
      missing="$missing
  $node: no image $digest in its store (meshctl ls)"
      continue
    fi
    for blob in $blobs; do
      if ! meshctl --node "http://$push_to" --json who-has "$blob" 2>/dev/null | jq -e --arg id "$id" 'any(.providers[]; .id == $id)' >/dev/null; then
        missing="$missing
  $node: does not announce $blob (meshctl who-has)"
      fi
    done
  done
  [ -n "$missing" ] || break
  [ "$(now)" -lt "$deadline" ] || fail "after $timeout s, $repo:$tag pushed to $push_to has not arrived everywhere:$missing"
  sleep 2
done

# 4. Now that they hold it, each serves the very manifest that was pushed.
for node in $expect_on; do
  got=sha256:$(skopeo --insecure-policy inspect --raw --tls-verify=false "docker://$node/$repo@$digest" | sha256sum | cut -d' ' -f1)
  [ "$got" = "$digest" ] || fail "$node serves $got for $repo@$digest"
done

say "OK: $repo:$tag ($digest, $nblobs blobs) pushed to $push_to arrived on $(echo $expect_on) in $(($(now) - start)) s"
