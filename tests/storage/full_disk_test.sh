#!/usr/bin/env bash
# full_disk_test.sh - the storage engine on a full filesystem.
# Makes a 48 MiB ext4 image, loop-mounts it (tmpfs is not used: O_DIRECT support there
# depends on the kernel), and runs fulldisk_tool in it. The mount and image are removed
# on every exit path. Exits 77 (skipped) only when this machine cannot loop-mount.
# usage: full_disk_test.sh FULLDISK_TOOL
set -euo pipefail
tool=$1
work=$(mktemp -d /var/tmp/sluice-fulldisk-XXXXXX)
mnt=$work/mnt
cleanup() {
  if mountpoint -q "$mnt" 2>/dev/null; then umount "$mnt" || umount -l "$mnt"; fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
mkdir -p "$mnt"
truncate -s 48M "$work/fs.img"
if ! mkfs.ext4 -q -F -m 0 "$work/fs.img" >/dev/null 2>&1; then
  echo "SKIP: mkfs.ext4 not available"; exit 77
fi
if ! mount -o loop "$work/fs.img" "$mnt" 2>"$work/mount.err"; then
  echo "SKIP: cannot loop-mount on this machine: $(cat "$work/mount.err")"; exit 77
fi
"$tool" "$mnt/data"
