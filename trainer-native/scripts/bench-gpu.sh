#!/usr/bin/env bash
# GPU benchmark of the native trainer. The CUDA backend is not built yet, so there is nothing to
# measure: fail instead of printing CPU numbers under a GPU heading.
echo "bench-gpu: the CUDA backend of trainer-native is not built yet (only 'cpu' exists); nothing to benchmark." >&2
echo "bench-gpu: for PyTorch-on-CUDA reference numbers on a GPU machine, run trainer-native/scripts/device-check.sh." >&2
exit 1
