#!/usr/bin/env bash
# The README's first command: installs missing Debian packages, builds, and
# runs the embedded default (Fashion-MNIST, 5 tasks of 2 classes, `tiny`
# model) under mpirun for DMNSP, finetune and zeroshot, then prints a
# comparison table. Runs go to experiments/demo/<method>/ and are replaced
# on every call (overwrite=true).
#
#   RANKS=2 (MPI ranks)  THREADS=1 (OpenMP/OpenBLAS threads per rank)
#   DEMO_METHODS="DMNSP finetune zeroshot"  extra key=value arguments are
#   passed to every run, e.g. env/demo.sh epochs=1
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$top/build}
ranks=${RANKS:-2}
threads=${THREADS:-1}
methods=${DEMO_METHODS:-DMNSP finetune zeroshot}
config=$top/configs/class/fashionmnist_2-2.yaml
output_root=${OUTPUT_ROOT:-$top/experiments/demo}

"$top/env/install-deps.sh"
"$top/env/build.sh"

mpi_flags=(--oversubscribe)
if [[ $(id -u) -eq 0 ]]; then
    mpi_flags+=(--allow-run-as-root)
fi
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads

start=$(date +%s)
run_dirs=()
for method in $methods; do
    run_dir=$output_root/$method
    run_dirs+=("$run_dir")
    echo "=== $method: mpirun -np $ranks dmnsp train $config method=$method output_dir=$run_dir $*"
    mpirun -np "$ranks" "${mpi_flags[@]}" "$build_dir/dmnsp" train "$config" \
        method="$method" output_dir="$run_dir" overwrite=true "$@"
done
end=$(date +%s)

echo
# Run folders relative to the checkout, so the table stays narrow.
(cd "$top" && "$build_dir/dmnsp" compare "${run_dirs[@]#"$top"/}")
plural() { [[ $1 -eq 1 ]] || echo s; }
echo "wall time for all runs: $((end - start)) s on $ranks rank$(plural "$ranks") x $threads" \
    "thread$(plural "$threads") per rank"
