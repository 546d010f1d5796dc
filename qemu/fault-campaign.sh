#!/usr/bin/env bash
# The long power-cut campaign of issue 13: RAMBOOT_FAULT_CYCLES (default 100) cycles of
# tests/qemu_faults.rs's power cut during `ramboot commit` (a random commit, a random number of
# the guest's 20 ms progress lines into it, then QEMU killed; after each cut the card must hold
# one whole apkovl, old or new, and the next boot must bring it). The seed is
# RAMBOOT_FAULT_SEED (default: the time); the summary line counts the outcomes.
#
# Usage: qemu/fault-campaign.sh [CYCLES]
set -euo pipefail
cd "$(dirname "$0")/.."
cycles=${1:-${RAMBOOT_FAULT_CYCLES:-100}}
seed=${RAMBOOT_FAULT_SEED:-$(date +%s)}
echo "fault campaign: $cycles power cuts, RAMBOOT_FAULT_SEED=$seed"
RAMBOOT_FAULT_CYCLES=$cycles RAMBOOT_FAULT_SEED=$seed \
  nice cargo test --test qemu_faults power_cuts -- --nocapture 2>&1 |
  grep -E '^(power cuts|cycle|test |thread|  left|  right)|panicked|test result'
